#pragma once

#include <optional>
#include <string>

#include <caf/expected.hpp>

namespace snakepit::detail {

/// File operations in directories that another local user might have planted
/// or tampered with (everything under a shared, sticky parent like /tmp).
/// A directory or file is trusted only when it is what it claims to be (not a
/// symlink), belongs to this process's effective uid, and nobody else can
/// write it. Everything here works on descriptors opened with O_NOFOLLOW, so
/// a symlink swapped in between a check and a use is never followed.
class trusted_dir {
public:
  trusted_dir() = default;
  trusted_dir(trusted_dir&& other) noexcept;
  trusted_dir& operator=(trusted_dir&& other) noexcept;
  trusted_dir(const trusted_dir&) = delete;
  trusted_dir& operator=(const trusted_dir&) = delete;
  ~trusted_dir();

  /// Opens `path` as a trusted directory, creating it (mode 0700) when
  /// `create` and it does not exist. Fails with `bad_config` saying what is
  /// wrong (a symlink, another owner, writable by group or others) and what
  /// to do.
  static caf::expected<trusted_dir> open(const std::string& path, bool create);

  [[nodiscard]] bool valid() const noexcept {
    return fd_ >= 0;
  }

  [[nodiscard]] int fd() const noexcept {
    return fd_;
  }

  [[nodiscard]] const std::string& path() const noexcept {
    return path_;
  }

  /// Creates `name` here for writing (O_EXCL | O_NOFOLLOW, mode 0600); with
  /// `append`, writes append. Returns the descriptor or -1 (errno set).
  [[nodiscard]] int create_file(const std::string& name, bool append = false) const;

  /// The contents of `name` if it is a regular file of ours that nobody
  /// else can write, at most `max_bytes` long; otherwise nothing (and `why`,
  /// when given, says which rule it broke, empty when the file is gone).
  [[nodiscard]] std::optional<std::string> read_file(const std::string& name,
                                                     std::size_t max_bytes,
                                                     std::string* why = nullptr) const;

  /// Removes the entry `name` (never following it).
  void remove(const std::string& name) const;

private:
  trusted_dir(int fd, std::string path) : fd_(fd), path_(std::move(path)) {
  }

  int fd_ = -1;
  std::string path_;
};

/// Why `path` (a file or directory, absolute) could be replaced by another
/// local user, or empty when it cannot: it and every directory above it must
/// belong to us or root, and any that others may write must be sticky (like
/// /tmp, where only an entry's owner may rename or remove it). Symlinks are
/// followed, and their targets checked the same way.
/// With `sticky_dir_ok`, `path` itself may be such a sticky directory (to
/// create a private entry in, like /tmp).
std::string unsafe_path_reason(const std::string& path, bool sticky_dir_ok = false);

/// Removes the directory `path` and what is in it (down to a few levels),
/// never following a symlink, if it is one of ours (owned by us, not writable
/// by group or others).
/// Returns whether it is gone.
bool remove_owned_tree(const std::string& path);

} // namespace snakepit::detail
