#include "snakepit/actors/run_registry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

#include "snakepit/actors/detail/emit.hpp"
#include "snakepit/actors/detail/log.hpp"
#include "snakepit/actors/detail/read_all.hpp"
#include "snakepit/actors/detail/trusted_files.hpp"
#include "snakepit/actors/runtime_paths.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

namespace {

/// A run file grows by ~25 bytes a worker start; one larger than this is not
/// one we wrote.
constexpr std::size_t max_run_file_bytes = 64u << 20;

/// A run file past this size is rewritten with only its live entries.
constexpr std::size_t compact_after_bytes = 1u << 20;

/// A process's environment is read up to this size when checking the marker.
constexpr std::size_t max_environ_bytes = 1u << 20;

std::mutex registry_mtx;

std::string registry_dir() {
  // Per user: hosts of different users never contend for one directory.
  return runtime_parent() + "/snakepit-runs-" + std::to_string(::geteuid());
}

/// The marker of the run of the host `pid` that started at `start`.
std::string run_id_of(int pid, std::uint64_t start) {
  return std::to_string(pid) + "-" + std::to_string(start);
}

/// Reads a whole /proc file (they report size 0), up to `max` bytes.
std::string read_proc_file(const std::string& path, std::size_t max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return {};
  auto out = detail::read_all(fd, max, false);
  ::close(fd);
  return out;
}

/// What a run file says.
struct run_record {
  int host_pid = 0;
  std::uint64_t host_start = 0;
  std::map<int, std::uint64_t> live;  // workers started and not recorded as ended
  std::vector<std::string> runtime_dirs;
};

bool parse_run_file(const std::string& text, run_record& out) {
  std::istringstream in{text};
  std::string line;
  if (!std::getline(in, line))
    return false;
  {
    std::istringstream head{line};
    if (!(head >> out.host_pid >> out.host_start) || out.host_pid <= 0)
      return false;
  }
  while (std::getline(in, line)) {
    if (line.size() > 2 && line.compare(0, 2, "d ") == 0) {
      out.runtime_dirs.push_back(line.substr(2));
      continue;
    }
    std::istringstream rec{line};
    std::string op;
    int pid = 0;
    std::uint64_t start = 0;
    if (!(rec >> op >> pid))
      continue;
    if (op == "+" && (rec >> start))
      out.live[pid] = start;
    else if (op == "-")
      out.live.erase(pid);
  }
  return true;
}

/// A runtime directory is only removed if its name is one `runtime_dir()`
/// (snakepit-XXXXXX) or `shm_directory()` (snakepit-shm-XXXXXX, or shm
/// inside a runtime directory) makes; `remove_owned_tree` checks that it is ours.
bool looks_like_runtime_dir(const std::string& path) {
  if (path.size() <= 1 || path[0] != '/' || path.find("/../") != std::string::npos)
    return false;
  auto slash = path.rfind('/');
  auto name = path.substr(slash + 1);
  if (name == "shm" && slash > 0)
    return looks_like_runtime_dir(path.substr(0, slash));
  return (name.size() == 15 && name.compare(0, 9, "snakepit-") == 0)
         || (name.size() == 19 && name.compare(0, 13, "snakepit-shm-") == 0);
}

} // namespace

std::uint64_t process_start_time(int pid) {
  if (pid <= 0)
    return 0;
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string text;
  if (!std::getline(in, text))
    return 0;
  // The command name (field 2) may contain spaces: skip past its last ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 > text.size())
    return 0;
  std::istringstream rest{text.substr(close + 2)};
  std::string field;
  // Fields from 3 on; the start time is field 22.
  for (int i = 3; i <= 22; ++i)
    if (!(rest >> field))
      return 0;
  return std::strtoull(field.c_str(), nullptr, 10);
}

namespace {

/// Whether the process carries our run's marker in its environment (as
/// every worker does, and what a worker's own children inherit) and is ours.
bool carries_run_marker(int pid, const std::string& run_id) {
  auto proc = "/proc/" + std::to_string(pid);
  struct stat st {};
  if (::stat(proc.c_str(), &st) != 0 || st.st_uid != ::geteuid())
    return false;
  auto marker = std::string{run_registry::run_id_env} + "=" + run_id;
  auto env = read_proc_file(proc + "/environ", max_environ_bytes);
  for (std::size_t pos = 0; pos < env.size();) {
    auto end = env.find('\0', pos);
    if (end == std::string::npos)
      end = env.size();
    if (env.compare(pos, end - pos, marker) == 0)
      return true;
    pos = end + 1;
  }
  return false;
}

/// A process of the group a dead worker led that is ours: what the worker's
/// adapter started (a subprocess, a server) and outlived it. Linux does not
/// hand out a number still in use as a process group's id, so a live group
/// with that id is the worker's own.
bool group_outlived_its_worker(int pgid, const std::string& run_id) {
  auto* dir = ::opendir("/proc");
  if (dir == nullptr)
    return false;
  bool found = false;
  while (auto* entry = ::readdir(dir)) {
    char* end = nullptr;
    auto pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid <= 1)
      continue;
    if (::getpgid(static_cast<pid_t>(pid)) != pgid || pid == ::getpid())
      continue;
    if (carries_run_marker(static_cast<int>(pid), run_id)) {
      found = true;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

} // namespace

bool is_our_worker(int pid, std::uint64_t start_time, const std::string& run_id) {
  if (pid <= 1 || pid == ::getpid() || start_time == 0 || run_id.empty())
    return false;
  if (process_start_time(pid) != start_time)
    return false;  // gone, or the pid now belongs to someone else
  return carries_run_marker(pid, run_id)
         && process_start_time(pid) == start_time;  // and still the same process
}

std::size_t cleanup_dead_runs(const std::string& dir) {
  auto opened = detail::trusted_dir::open(dir, false);
  if (!opened) {
    if (::access(dir.c_str(), F_OK) == 0 || errno != ENOENT)
      detail::log_warning("snakepit", "orphan cleanup skipped: {}", describe(opened.error()).message);
    return 0;
  }
  auto& reg = *opened;
  std::size_t killed = 0;
  for (auto& path : files_ending_with(dir, ".run")) {
    auto name = path.substr(dir.size() + 1);
    std::string why;
    auto text = reg.read_file(name, max_run_file_bytes, &why);
    if (!text) {
      if (!why.empty())
        detail::log_warning("snakepit", "orphan cleanup: ignoring {}: {}", path, why);
      continue;
    }
    run_record run;
    if (!parse_run_file(*text, run))
      continue;  // being written, or not ours to judge
    if (run.host_pid == ::getpid() || process_start_time(run.host_pid) == run.host_start)
      continue;  // that host is alive (or is us)
    auto run_id = run_id_of(run.host_pid, run.host_start);
    std::size_t here = 0;
    for (auto& [worker, started] : run.live) {
      if (!is_our_worker(worker, started, run_id)) {
        // The worker died with its host (it may linger as a zombie nobody
        // reaps yet), but what its adapter started may live on in its group.
        // A live process of another start time holds a reused pid: the old
        // group is gone then (Linux reuses no pid a group still has).
        auto now = process_start_time(worker);
        if (worker > 1 && (now == 0 || now == started)
            && group_outlived_its_worker(worker, run_id)) {
          ::kill(-worker, SIGKILL);
          ++here;
        }
        continue;
      }
      // Workers lead their own process group (grandchildren too); a process
      // that does not is killed alone: never a group we did not create.
      if (::getpgid(worker) == worker)
        ::kill(-worker, SIGKILL);
      ::kill(worker, SIGKILL);
      ++here;
    }
    killed += here;
    std::size_t dirs_removed = 0;
    for (auto& runtime : run.runtime_dirs)
      if (looks_like_runtime_dir(runtime) && ::access(runtime.c_str(), F_OK) == 0
          && detail::remove_owned_tree(runtime))
        ++dirs_removed;
    if (here > 0 || dirs_removed > 0) {
      detail::log_warning("snakepit", "orphan cleanup: run of dead host pid {} ({}): "
                          "killed {} leftover worker(s), removed {} runtime director{}",
                          run.host_pid, path, here, dirs_removed,
                          dirs_removed == 1 ? "y" : "ies");
      detail::emit([&] {
        return telemetry_event{"snakepit.orphans.cleaned",
                               {{"killed", static_cast<double>(here)},
                                {"runtime_dirs_removed", static_cast<double>(dirs_removed)}},
                               {{"host_pid", std::to_string(run.host_pid)}, {"run_file", path}}};
      });
    }
    reg.remove(name);
  }
  return killed;
}

run_registry& run_registry::instance() {
  // Never destroyed (launcher callbacks may run during exit); its file is
  // removed by an exit handler, after which records are dropped.
  static run_registry* registry = [] {
    auto* r = new run_registry;
    std::atexit([] { instance().close(); });
    return r;
  }();
  return *registry;
}

void run_registry::close() {
  std::lock_guard<std::mutex> guard{registry_mtx};
  closed_ = true;
  if (file_fd_ >= 0) {
    ::close(file_fd_);
    file_fd_ = -1;
    ::unlinkat(fd_, file_.c_str(), 0);
  }
}

const std::string& run_registry::this_run_id() {
  static const std::string id = run_id_of(::getpid(), process_start_time(::getpid()));
  return id;
}

run_registry::run_registry() : dir_(registry_dir()) {
  auto opened = detail::trusted_dir::open(dir_, true);
  if (!opened) {
    detail::log_warning("snakepit", "run registry off: {}; leftover workers of this run "
                        "cannot be cleaned up by a later one, and snakepit inspect will not "
                        "find it", describe(opened.error()).message);
    return;
  }
  cleanup_dead_runs(dir_);
  file_ = this_run_id() + ".run";
  // O_EXCL: a file of this name is a leftover of a pid we reused; it is ours
  // (the directory is) and its host is gone, so replace it.
  opened->remove(file_);
  file_fd_ = opened->create_file(file_, true);
  if (file_fd_ < 0) {
    detail::log_warning("snakepit", "run registry off: cannot create {}/{}: {}", dir_, file_,
                        std::strerror(errno));
    return;
  }
  fd_ = ::dup(opened->fd());
  header_ = std::to_string(::getpid()) + ' ' + std::to_string(process_start_time(::getpid()))
            + '\n';
  append(header_);
}

void run_registry::append(const std::string& line) {
  if (file_fd_ < 0)
    return;
  // One write per record with O_APPEND: a reader sees whole lines.
  auto n = ::write(file_fd_, line.data(), line.size());
  if (n > 0)
    file_bytes_ += static_cast<std::size_t>(n);
  compact_if_large();
}

void run_registry::compact_if_large() {
  if (file_bytes_ < compact_after_bytes || fd_ < 0)
    return;
  std::string text = header_;
  for (auto& dir : runtime_dirs_)
    text += "d " + dir + '\n';
  for (auto& [pid, start] : live_)
    text += "+ " + std::to_string(pid) + ' ' + std::to_string(start) + '\n';
  // A fresh file beside the old one, then an atomic rename over it: a
  // reader sees the old file or the new one, never half of either.
  auto tmp = file_ + ".new";
  ::unlinkat(fd_, tmp.c_str(), 0);
  int fd = ::openat(fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_APPEND,
                    0600);
  if (fd < 0)
    return;  // keep appending to the old one
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())
      || ::renameat(fd_, tmp.c_str(), fd_, file_.c_str()) != 0) {
    ::close(fd);
    ::unlinkat(fd_, tmp.c_str(), 0);
    return;
  }
  ::close(file_fd_);
  file_fd_ = fd;
  file_bytes_ = text.size();
}

void run_registry::record_spawn(int pid) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  if (closed_)
    return;
  auto start = process_start_time(pid);
  live_[pid] = start;
  append("+ " + std::to_string(pid) + ' ' + std::to_string(start) + '\n');
}

void run_registry::record_exit(int pid) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  if (closed_)
    return;
  live_.erase(pid);
  append("- " + std::to_string(pid) + '\n');
}

void run_registry::record_runtime_dir(const std::string& path) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  if (closed_ || path.find('\n') != std::string::npos)
    return;
  runtime_dirs_.push_back(path);
  append("d " + path + '\n');
}

} // namespace snakepit
