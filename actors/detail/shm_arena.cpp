#include "snakepit/actors/detail/shm_arena.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

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

shm_segment::shm_segment(std::shared_ptr<shm_arena> arena, std::string name,
                         std::size_t size) noexcept
  : arena_(std::move(arena)), name_(std::move(name)), size_(size) {
  // nop
}

shm_segment::~shm_segment() {
  if (arena_)
    arena_->forget(name_, size_, true);
}

void shm_segment::release() noexcept {
  if (arena_)
    arena_->forget(name_, size_, false);
  arena_.reset();
}

// -- shm_arena ----------------------------------------------------------------

caf::expected<std::shared_ptr<shm_arena>>
shm_arena::make(const std::string& dir, std::size_t threshold, std::size_t bytes_max) {
  auto opened = trusted_dir::open(dir, false);
  if (!opened)
    return std::move(opened.error());
  int fd = ::fcntl(opened->fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0)
    return make_error(errc::internal,
                      fmt::format("cannot open {}: {}", dir, std::strerror(errno)));
  return std::shared_ptr<shm_arena>{new shm_arena(dir, fd, threshold, bytes_max)};
}

shm_arena::shm_arena(std::string dir, int dir_fd, std::size_t threshold,
                     std::size_t bytes_max) noexcept
  : dir_(std::move(dir)), dir_fd_(dir_fd), threshold_(threshold), bytes_max_(bytes_max) {
  // nop
}

shm_arena::~shm_arena() {
  ::close(dir_fd_);
}

bool shm_arena::valid_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > max_name_length)
    return false;
  for (auto c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
          || c == '_' || c == '-'))
      return false;
  return true;
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
  auto name = fmt::format("h{}-{}", ::getpid(), next_segment.fetch_add(1));
  auto fail = [&](const char* what) -> caf::expected<std::shared_ptr<shm_segment>> {
    auto err = errno;
    ::unlinkat(dir_fd_, name.c_str(), 0);
    in_use_.fetch_sub(size);
    return make_error(errc::internal, fmt::format("cannot {} shared-memory segment {}/{}: {}",
                                                  what, dir_, name, std::strerror(err)));
  };
  int fd = ::openat(dir_fd_, name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                    0600);
  if (fd < 0)
    return fail("create");
  // pwrite, not a writable mapping: a full tmpfs is an error here, never a
  // SIGBUS in the middle of a memcpy.
  auto* bytes = static_cast<const char*>(data);
  std::size_t done = 0;
  while (done < size) {
    auto n = ::pwrite(fd, bytes + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = ENOSPC;
      ::close(fd);
      return fail("write");
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return std::make_shared<shm_segment>(shared_from_this(), std::move(name), size);
}

caf::expected<shm_mapping> shm_arena::map(std::string_view name, std::size_t size, bool take) {
  std::string file{name};
  if (!valid_name(name))
    return make_error(errc::internal,
                      fmt::format("a worker named the shared-memory segment \"{}\", which is not "
                                  "a plain segment name", file.substr(0, max_name_length)));
  if (size > bytes_max_) {
    if (take)
      ::unlinkat(dir_fd_, file.c_str(), 0);
    return make_error(errc::payload_too_large,
                      fmt::format("a shared-memory payload of {} bytes is over the limit of {} "
                                  "bytes (shm_bytes_max)", size, bytes_max_));
  }
  int fd = ::openat(dir_fd_, file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return make_error(errc::internal, fmt::format("cannot open shared-memory segment {}/{}: {}",
                                                  dir_, file, std::strerror(errno)));
  if (take)
    ::unlinkat(dir_fd_, file.c_str(), 0);
  struct stat st {};
  std::string problem;
  if (::fstat(fd, &st) != 0)
    problem = std::strerror(errno);
  else if (!S_ISREG(st.st_mode))
    problem = "not a regular file";
  else if (st.st_uid != ::geteuid())
    problem = "owned by another user";
  else if (static_cast<std::size_t>(st.st_size) < size)
    problem = fmt::format("{} bytes, fewer than the {} announced", st.st_size, size);
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
  auto err = errno;
  ::close(fd);
  if (addr == MAP_FAILED)
    return make_error(errc::internal, fmt::format("cannot map shared-memory segment {}/{}: {}",
                                                  dir_, file, std::strerror(err)));
  result.data = static_cast<const char*>(addr);
  result.owner = std::shared_ptr<const void>{addr, [size](const void* p) {
                                               ::munmap(const_cast<void*>(p), size);
                                             }};
  return result;
}

void shm_arena::drop(std::string_view name) noexcept {
  if (valid_name(name))
    ::unlinkat(dir_fd_, std::string{name}.c_str(), 0);
}

std::size_t shm_arena::remove_files_of(int pid) {
  auto prefix = fmt::format("w{}-", pid);
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
    if (name.substr(0, prefix.size()) == prefix)
      names.emplace_back(name);
  }
  ::closedir(dir);
  std::size_t removed = 0;
  for (auto& name : names)
    if (::unlinkat(dir_fd_, name.c_str(), 0) == 0)
      ++removed;
  return removed;
}

void shm_arena::forget(const std::string& name, std::size_t size, bool unlink) noexcept {
  if (unlink)
    ::unlinkat(dir_fd_, name.c_str(), 0);
  in_use_.fetch_sub(size);
}

} // namespace snakepit::detail
