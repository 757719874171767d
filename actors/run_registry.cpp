#include "snakepit/actors/run_registry.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "snakepit/actors/detail/emit.hpp"
#include "snakepit/actors/detail/log.hpp"
#include "snakepit/actors/runtime_paths.hpp"

namespace snakepit {

namespace {

std::mutex registry_mtx;

std::string registry_dir() {
  std::string parent = "/tmp";
  if (auto* env = std::getenv("SNAKEPIT_RUNTIME_PARENT"); env && *env)
    parent = env;
  return parent + "/snakepit-runs";
}

} // namespace

std::uint64_t process_start_time(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string text;
  if (!std::getline(in, text))
    return 0;
  // The command name (field 2) may contain spaces: skip past its last ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos)
    return 0;
  std::istringstream rest{text.substr(close + 2)};
  std::string field;
  // Fields from 3 on; the start time is field 22.
  for (int i = 3; i <= 22; ++i)
    if (!(rest >> field))
      return 0;
  return std::strtoull(field.c_str(), nullptr, 10);
}

std::size_t cleanup_dead_runs(const std::string& dir) {
  std::size_t killed = 0;
  for (auto& path : files_ending_with(dir, ".run")) {
    std::ifstream in{path};
    int host_pid = 0;
    std::uint64_t host_start = 0;
    if (!(in >> host_pid >> host_start))
      continue;
    if (host_pid == ::getpid() || process_start_time(host_pid) == host_start)
      continue;  // that host is alive (or is us)
    std::map<int, std::uint64_t> live;
    std::string op;
    int pid = 0;
    std::uint64_t start = 0;
    while (in >> op >> pid) {
      if (op == "+" && (in >> start))
        live[pid] = start;
      else if (op == "-")
        live.erase(pid);
    }
    std::size_t here = 0;
    for (auto& [worker, started] : live) {
      if (started == 0 || process_start_time(worker) != started)
        continue;  // gone, or the pid now belongs to someone else
      ::kill(-worker, SIGKILL);  // its process group: grandchildren too
      ::kill(worker, SIGKILL);
      ++here;
    }
    killed += here;
    if (here > 0) {
      detail::log_warning("snakepit", "orphan cleanup: run of dead host pid {} ({}): "
                          "killed {} leftover worker(s)", host_pid, path, here);
      detail::emit([&] {
        return telemetry_event{"snakepit.orphans.cleaned",
                               {{"killed", static_cast<double>(here)}},
                               {{"host_pid", std::to_string(host_pid)}, {"run_file", path}}};
      });
    }
    ::unlink(path.c_str());
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
  if (!file_.empty())
    ::unlink(file_.c_str());
}

run_registry::run_registry() : dir_(registry_dir()) {
  ::mkdir(dir_.c_str(), 0700);
  cleanup_dead_runs(dir_);
  file_ = dir_ + "/" + std::to_string(::getpid()) + "-"
          + std::to_string(process_start_time(::getpid())) + ".run";
  std::ofstream out{file_, std::ios::trunc};
  out << ::getpid() << ' ' << process_start_time(::getpid()) << '\n';
}

void run_registry::record_spawn(int pid) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  if (closed_)
    return;
  std::ofstream out{file_, std::ios::app};
  out << "+ " << pid << ' ' << process_start_time(pid) << '\n';
}

void run_registry::record_exit(int pid) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  if (closed_)
    return;
  std::ofstream out{file_, std::ios::app};
  out << "- " << pid << '\n';
}

} // namespace snakepit
