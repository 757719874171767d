#include "snakepit/actors/detail/trusted_files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "snakepit/actors/detail/read_all.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit::detail {

namespace {

/// How deep `remove_owned_tree` goes: a runtime directory holds tree
/// directories holding sockets; anything deeper is not ours to guess at.
constexpr int max_remove_depth = 4;

/// Why an fstat'ed entry is not ours alone: another owner, or others may write it.
std::string ownership_problem(const struct stat& st) {
  if (st.st_uid != ::geteuid())
    return fmt::format("owned by uid {}, not by this process's uid {}", st.st_uid, ::geteuid());
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return fmt::format("writable by group or others (mode {:o})", st.st_mode & 07777);
  return {};
}

/// Why an fstat'ed directory may not be trusted, or empty.
std::string dir_problem(const struct stat& st) {
  return S_ISDIR(st.st_mode) ? ownership_problem(st) : "not a directory";
}

/// Why an fstat'ed file may not be trusted, or empty.
std::string file_problem(const struct stat& st) {
  if (!S_ISREG(st.st_mode))
    return "not a regular file";
  if (auto why = ownership_problem(st); !why.empty())
    return why;
  return st.st_nlink == 1 ? std::string{} : "has other hard links";
}

/// Opens a directory without following a final symlink; -1 with errno.
int open_dir_nofollow(int at, const char* name) {
  return ::openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/// Empties the directory open at `fd` (depth-limited), never following links.
bool empty_dir(int fd, int depth) {
  int dup = ::dup(fd);
  if (dup < 0)
    return false;
  DIR* d = ::fdopendir(dup);
  if (d == nullptr) {
    ::close(dup);
    return false;
  }
  bool ok = true;
  while (auto* entry = ::readdir(d)) {
    const char* name = entry->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0)
      continue;
    struct stat st {};
    if (::fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      int sub = open_dir_nofollow(fd, name);
      if (sub < 0 || depth >= max_remove_depth || st.st_uid != ::geteuid()) {
        if (sub >= 0)
          ::close(sub);
        ok = false;
        continue;
      }
      ok = empty_dir(sub, depth + 1) && ok;
      ::close(sub);
      if (::unlinkat(fd, name, AT_REMOVEDIR) != 0)
        ok = false;
    } else if (::unlinkat(fd, name, 0) != 0) {
      ok = false;
    }
  }
  ::closedir(d);
  return ok;
}

} // namespace

trusted_dir::trusted_dir(trusted_dir&& other) noexcept
  : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

trusted_dir& trusted_dir::operator=(trusted_dir&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

trusted_dir::~trusted_dir() {
  if (fd_ >= 0)
    ::close(fd_);
}

caf::expected<trusted_dir> trusted_dir::open(const std::string& path, bool create) {
  auto refuse = [&](const std::string& why) {
    return make_error(errc::bad_config,
                      fmt::format("refusing to use {}: {}; another local user may have "
                                  "planted it. Remove it, or set SNAKEPIT_RUNTIME_PARENT to "
                                  "a directory of your own",
                                  path, why));
  };
  if (create && ::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return make_error(errc::bad_config, fmt::format("cannot create {}: {}; set "
                                                    "SNAKEPIT_RUNTIME_PARENT to a writable "
                                                    "directory",
                                                    path, std::strerror(errno)));
  int fd = open_dir_nofollow(AT_FDCWD, path.c_str());
  if (fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR)
      return refuse("it is a symlink or not a directory");
    return make_error(errc::bad_config,
                      fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return refuse(std::strerror(errno));
  }
  if (auto why = dir_problem(st); !why.empty()) {
    ::close(fd);
    return refuse(why);
  }
  return trusted_dir{fd, path};
}

int trusted_dir::create_file(const std::string& name, bool append) const {
  int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  if (append)
    flags |= O_APPEND;
  return ::openat(fd_, name.c_str(), flags, 0600);
}

std::optional<std::string> trusted_dir::read_file(const std::string& name,
                                                  std::size_t max_bytes,
                                                  std::string* why) const {
  auto fail = [&](std::string reason) -> std::optional<std::string> {
    if (why != nullptr)
      *why = std::move(reason);
    return std::nullopt;
  };
  // O_NONBLOCK: a planted FIFO must not hang us before the type check.
  int fd = ::openat(fd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return fail(errno == ENOENT ? std::string{} : std::string{"a symlink or unreadable"});
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return fail(std::strerror(errno));
  }
  if (auto problem = file_problem(st); !problem.empty()) {
    ::close(fd);
    return fail(problem);
  }
  if (static_cast<std::size_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return fail(fmt::format("larger than {} bytes", max_bytes));
  }
  bool over = false;
  auto text = read_all(fd, max_bytes, false, &over);
  ::close(fd);
  if (over)
    return fail(fmt::format("larger than {} bytes", max_bytes));
  return text;
}

void trusted_dir::remove(const std::string& name) const {
  ::unlinkat(fd_, name.c_str(), 0);
}

std::string unsafe_path_reason(const std::string& path, bool sticky_dir_ok) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr)
    return fmt::format("{}: {}", path, std::strerror(errno));
  std::string current = resolved;
  bool leaf = true;
  for (;;) {
    struct stat st {};
    if (::stat(current.c_str(), &st) != 0)
      return fmt::format("{}: {}", current, std::strerror(errno));
    if (st.st_uid != 0 && st.st_uid != ::geteuid())
      return fmt::format("{} belongs to uid {}", current, st.st_uid);
    bool others_write = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
    // A sticky directory protects its entries, not a file inside it.
    bool sticky = (st.st_mode & S_ISVTX) != 0 && S_ISDIR(st.st_mode);
    if (others_write && (!sticky || (leaf && !sticky_dir_ok)))
      return fmt::format("{} is writable by group or others (mode {:o})", current,
                         st.st_mode & 07777);
    if (current == "/")
      return {};
    auto slash = current.rfind('/');
    current = slash == 0 ? std::string{"/"} : current.substr(0, slash);
    leaf = false;
  }
}

bool remove_owned_tree(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos || slash + 1 == path.size())
    return false;
  auto parent = slash == 0 ? std::string{"/"} : path.substr(0, slash);
  auto name = path.substr(slash + 1);
  int parent_fd = open_dir_nofollow(AT_FDCWD, parent.c_str());
  if (parent_fd < 0)
    return errno == ENOENT;
  int fd = open_dir_nofollow(parent_fd, name.c_str());
  if (fd < 0) {
    bool gone = errno == ENOENT;
    ::close(parent_fd);
    return gone;
  }
  struct stat st {};
  bool ours = ::fstat(fd, &st) == 0 && dir_problem(st).empty();
  bool ok = ours && empty_dir(fd, 1);
  ::close(fd);
  if (ok)
    ok = ::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) == 0;
  ::close(parent_fd);
  return ok;
}

} // namespace snakepit::detail
