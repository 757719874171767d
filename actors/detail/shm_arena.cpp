#include "snakepit/actors/detail/shm_arena.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "snakepit/actors/detail/trusted_files.hpp"
#include "snakepit/actors/run_registry.hpp"
#include "snakepit/actors/runtime_paths.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit::detail {

namespace {

constexpr long tmpfs_magic = 0x01021994;

/// Owns the shared-memory directory; removes it (and what is left in it) at exit.
struct shm_directory_holder {
  std::string path;
  std::string error;

  shm_directory_holder() {
    // tmpfs keeps payloads in memory; a disk-backed directory would write
    // them back to disk under memory pressure.
    struct statfs fs {};
    if (::statfs("/dev/shm", &fs) == 0 && fs.f_type == tmpfs_magic
        && unsafe_path_reason("/dev/shm", true).empty()) {
      std::string templ = "/dev/shm/snakepit-shm-XXXXXX";
      std::vector<char> buf(templ.begin(), templ.end());
      buf.push_back('\0');
      if (::mkdtemp(buf.data()) != nullptr)
        path = buf.data();
    }
    if (path.empty()) {
      if (auto err = ensure_runtime_dir()) {
        error = "cannot make a shared-memory directory: no usable /dev/shm and no runtime "
                "directory";
        return;
      }
      auto dir = runtime_dir() + "/shm";
      if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        error = fmt::format("cannot create {}: {}", dir, std::strerror(errno));
        return;
      }
      path = dir;
    }
    // A later host removes it if this one dies without doing so.
    run_registry::instance().record_runtime_dir(path);
  }

  ~shm_directory_holder() {
    if (!path.empty())
      remove_owned_tree(path);
  }
};

std::atomic<std::uint64_t> next_segment{0};

} // namespace

caf::expected<std::string> shm_directory() {
  static shm_directory_holder holder;
  if (holder.path.empty())
    return make_error(errc::internal, holder.error);
  return holder.path;
}

// -- shm_segment --------------------------------------------------------------

shm_segment::shm_segment(std::shared_ptr<shm_arena> arena, shm_file file,
                         std::size_t size) noexcept
  : arena_(std::move(arena)), file_(std::move(file)), size_(size) {
  // nop
}

shm_segment::~shm_segment() {
  if (arena_)
    arena_->give_back(std::move(file_), size_, !handed_over_);
}

// -- shm_arena ----------------------------------------------------------------

namespace {

constexpr std::size_t file_granule = 64 * 1024;

std::size_t round_up(std::size_t n) {
  return (n + file_granule - 1) / file_granule * file_granule;
}

} // namespace

caf::expected<std::shared_ptr<shm_arena>>
shm_arena::make(const std::string& dir, std::size_t threshold, std::size_t bytes_max,
                std::size_t cache_bytes) {
  auto opened = trusted_dir::open(dir, false);
  if (!opened)
    return std::move(opened.error());
  int fd = ::fcntl(opened->fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0)
    return make_error(errc::internal,
                      fmt::format("cannot open {}: {}", dir, std::strerror(errno)));
  return std::shared_ptr<shm_arena>{new shm_arena(dir, fd, threshold, bytes_max, cache_bytes)};
}

shm_arena::shm_arena(std::string dir, int dir_fd, std::size_t threshold, std::size_t bytes_max,
                     std::size_t cache_bytes) noexcept
  : dir_(std::move(dir)), dir_fd_(dir_fd), threshold_(threshold), bytes_max_(bytes_max),
    cache_max_(cache_bytes) {
  // nop
}

shm_arena::~shm_arena() {
  for (auto& file : idle_) {
    ::unlinkat(dir_fd_, file.public_name.c_str(), 0);
    destroy(file);
  }
  ::close(dir_fd_);
}

bool shm_arena::valid_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > max_name_length || name.front() == 'p')
    return false;
  for (auto c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
          || c == '_' || c == '-'))
      return false;
  return true;
}

void shm_arena::destroy(shm_file& file) noexcept {
  if (file.map != nullptr)
    ::munmap(file.map, file.capacity);
  if (!file.private_name.empty())
    ::unlinkat(dir_fd_, file.private_name.c_str(), 0);
  if (file.fd >= 0)
    ::close(file.fd);
  file = shm_file{};
}

std::optional<shm_file> shm_arena::reuse(std::size_t size) {
  std::lock_guard<std::mutex> guard{mtx_};
  // Smallest idle file that fits and does not waste more than it holds.
  std::vector<std::size_t> fits;
  for (std::size_t i = 0; i < idle_.size(); ++i)
    if (idle_[i].capacity >= size && idle_[i].capacity <= std::max(2 * size, round_up(size)))
      fits.push_back(i);
  std::sort(fits.begin(), fits.end(),
            [this](auto a, auto b) { return idle_[a].capacity < idle_[b].capacity; });
  for (auto i : fits) {
    auto& file = idle_[i];
    struct stat st {};
    // Its public name gone (only the private one left) and no reader's lock.
    if (::fstat(file.fd, &st) != 0 || st.st_nlink != 1
        || ::flock(file.fd, LOCK_EX | LOCK_NB) != 0)
      continue;
    auto result = std::move(file);
    idle_bytes_ -= result.capacity;
    idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
    return result;
  }
  return std::nullopt;
}

caf::expected<shm_file> shm_arena::create(std::size_t size) {
  shm_file file;
  file.capacity = round_up(size);
  file.private_name = fmt::format("ph{}-{}", ::getpid(), next_segment.fetch_add(1));
  auto fail = [&](const char* what, int err) -> caf::expected<shm_file> {
    destroy(file);
    if (err == ENOSPC)
      return make_error(errc::payload_too_large,
                        fmt::format("no room for a shared-memory segment of {} bytes in {} "
                                    "(the file system is full); send less or free memory",
                                    size, dir_));
    return make_error(errc::internal, fmt::format("cannot {} a shared-memory segment in {}: {}",
                                                  what, dir_, std::strerror(err)));
  };
  file.fd = ::openat(dir_fd_, file.private_name.c_str(),
                     O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (file.fd < 0) {
    auto err = errno;
    file.private_name.clear();
    return fail("create", err);
  }
  // Pages allocated now: a full tmpfs is an error here, never a SIGBUS in
  // the middle of a memcpy into the mapping.
  if (auto err = ::posix_fallocate(file.fd, 0, static_cast<off_t>(file.capacity)); err != 0)
    return fail("allocate", err);
  void* addr = ::mmap(nullptr, file.capacity, PROT_READ | PROT_WRITE, MAP_SHARED, file.fd, 0);
  if (addr == MAP_FAILED)
    return fail("map", errno);
  file.map = static_cast<char*>(addr);
  created_.fetch_add(1);
  return file;
}

caf::expected<std::shared_ptr<shm_segment>> shm_arena::write(const void* data,
                                                             std::size_t size) {
  if (size > bytes_max_)
    return make_error(errc::payload_too_large,
                      fmt::format("a payload of {} bytes is over the shared-memory limit of {} "
                                  "bytes (shm_bytes_max); send less or raise shm_bytes_max",
                                  size, bytes_max_));
  auto used = in_use_.fetch_add(size) + size;
  if (used > bytes_max_) {
    in_use_.fetch_sub(size);
    return make_error(errc::payload_too_large,
                      fmt::format("shared memory is full: a payload of {} bytes does not fit "
                                  "beside the {} bytes in flight (shm_bytes_max {}); retry "
                                  "later or raise shm_bytes_max",
                                  size, used - size, bytes_max_));
  }
  shm_file file;
  if (auto idle = reuse(size)) {
    file = std::move(*idle);
    reused_.fetch_add(1);
  } else if (auto fresh = create(size)) {
    file = std::move(*fresh);
  } else {
    in_use_.fetch_sub(size);
    return std::move(fresh.error());
  }
  std::memcpy(file.map, data, size);
  ::flock(file.fd, LOCK_UN);
  file.public_name = fmt::format("h{}-{}", ::getpid(), next_segment.fetch_add(1));
  if (::linkat(dir_fd_, file.private_name.c_str(), dir_fd_, file.public_name.c_str(), 0) != 0) {
    auto err = errno;
    file.public_name.clear();
    destroy(file);
    in_use_.fetch_sub(size);
    return make_error(errc::internal, fmt::format("cannot name a shared-memory segment in {}: {}",
                                                  dir_, std::strerror(err)));
  }
  return std::make_shared<shm_segment>(shared_from_this(), std::move(file), size);
}

void shm_arena::give_back(shm_file file, std::size_t size, bool withdraw) noexcept {
  in_use_.fetch_sub(size);
  if (withdraw)
    ::unlinkat(dir_fd_, file.public_name.c_str(), 0);
  std::lock_guard<std::mutex> guard{mtx_};
  if (idle_bytes_ + file.capacity > cache_max_) {
    destroy(file);
    return;
  }
  idle_bytes_ += file.capacity;
  idle_.push_back(std::move(file));
}

caf::expected<shm_mapping> shm_arena::map(std::string_view name, std::size_t size, bool take) {
  std::string file{name};
  if (!valid_name(name))
    return make_error(errc::internal,
                      fmt::format("a worker named the shared-memory segment \"{}\", which is not "
                                  "a public segment name", file.substr(0, max_name_length)));
  if (size > bytes_max_) {
    if (take)
      ::unlinkat(dir_fd_, file.c_str(), 0);
    return make_error(errc::payload_too_large,
                      fmt::format("a shared-memory payload of {} bytes is over the limit of {} "
                                  "bytes (shm_bytes_max)", size, bytes_max_));
  }
  // O_NONBLOCK: a FIFO planted under the name must not block us.
  int fd = ::openat(dir_fd_, file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return make_error(errc::internal, fmt::format("cannot open shared-memory segment {}/{}: {}",
                                                  dir_, file, std::strerror(errno)));
  struct stat st {};
  struct stat named {};
  std::string problem;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0)
    problem = "its writer is rewriting it (the segment was withdrawn)";
  else if (::fstat(fd, &st) != 0)
    problem = std::strerror(errno);
  else if (::fstatat(dir_fd_, file.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0
           || named.st_ino != st.st_ino || named.st_dev != st.st_dev)
    problem = "the name no longer names it (the segment was withdrawn)";
  else if (!S_ISREG(st.st_mode))
    problem = "not a regular file";
  else if (st.st_uid != ::geteuid())
    problem = "owned by another user";
  else if (static_cast<std::size_t>(st.st_size) < size)
    problem = fmt::format("{} bytes, fewer than the {} announced", st.st_size, size);
  if (take)
    ::unlinkat(dir_fd_, file.c_str(), 0);
  if (!problem.empty()) {
    ::close(fd);
    return make_error(errc::internal,
                      fmt::format("shared-memory segment {}/{}: {}", dir_, file, problem));
  }
  shm_mapping result;
  result.size = size;
  if (size == 0) {
    ::close(fd);
    return result;
  }
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (addr == MAP_FAILED) {
    auto err = errno;
    ::close(fd);
    return make_error(errc::internal, fmt::format("cannot map shared-memory segment {}/{}: {}",
                                                  dir_, file, std::strerror(err)));
  }
  result.data = static_cast<const char*>(addr);
  // The descriptor (and its shared lock) lives as long as the mapping.
  result.owner = std::shared_ptr<const void>{addr, [size, fd](const void* p) {
                                               ::munmap(const_cast<void*>(p), size);
                                               ::close(fd);
                                             }};
  return result;
}

void shm_arena::drop(std::string_view name) noexcept {
  if (valid_name(name))
    ::unlinkat(dir_fd_, std::string{name}.c_str(), 0);
}

std::size_t shm_arena::remove_files_of(int pid) {
  auto public_prefix = fmt::format("w{}-", pid);
  auto private_prefix = fmt::format("pw{}-", pid);
  int fd = ::openat(dir_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  auto* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return 0;
  }
  std::vector<std::string> names;
  while (auto* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name.substr(0, public_prefix.size()) == public_prefix
        || name.substr(0, private_prefix.size()) == private_prefix)
      names.emplace_back(name);
  }
  ::closedir(dir);
  std::size_t removed = 0;
  for (auto& name : names)
    if (::unlinkat(dir_fd_, name.c_str(), 0) == 0)
      ++removed;
  return removed;
}

} // namespace snakepit::detail
