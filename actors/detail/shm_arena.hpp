#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace snakepit::detail {

/// The shared-memory directory of this host process: a private (0700)
/// directory on /dev/shm (tmpfs; `<runtime dir>/shm` where there is none),
/// created on first use, recorded in the run registry so that a later host
/// removes it if this one is SIGKILLed, and removed at exit. An error says
/// why it cannot be made.
caf::expected<std::string> shm_directory();

class shm_arena;

/// One payload in a file of the arena's directory, written by this host.
/// Destroying the handle removes the file and gives its bytes back to the
/// arena's budget, unless `release` handed the file to the receiver.
class shm_segment {
public:
  shm_segment(std::shared_ptr<shm_arena> arena, std::string name, std::size_t size) noexcept;

  shm_segment(const shm_segment&) = delete;
  shm_segment& operator=(const shm_segment&) = delete;

  ~shm_segment();

  [[nodiscard]] const std::string& name() const noexcept {
    return name_;
  }

  [[nodiscard]] std::size_t size() const noexcept {
    return size_;
  }

  /// The receiver removes the file (results): forget it here.
  void release() noexcept;

private:
  std::shared_ptr<shm_arena> arena_;
  std::string name_;
  std::size_t size_;
};

/// A read-only mapping of a segment, unmapped when the last owner goes.
struct shm_mapping {
  std::shared_ptr<const void> owner;
  const char* data = nullptr;
  std::size_t size = 0;
};

/// The shared-memory payloads of one pool: writes argument segments within
/// a byte budget (`shm_bytes_max`), maps the segments workers send back, and
/// removes what a dead worker left. Thread-safe: the pool's workers share it.
class shm_arena : public std::enable_shared_from_this<shm_arena> {
public:
  /// Longest segment name accepted from the wire.
  static constexpr std::size_t max_name_length = 64;

  /// An arena over `dir` (a private directory from `shm_directory`); an error
  /// when it cannot be opened.
  static caf::expected<std::shared_ptr<shm_arena>>
  make(const std::string& dir, std::size_t threshold, std::size_t bytes_max);

  ~shm_arena();

  /// Payloads above this many bytes go through shared memory.
  [[nodiscard]] std::size_t threshold() const noexcept {
    return threshold_;
  }

  /// Budget of the segments this host holds at once (`shm_bytes_max`).
  [[nodiscard]] std::size_t bytes_max() const noexcept {
    return bytes_max_;
  }

  [[nodiscard]] const std::string& dir() const noexcept {
    return dir_;
  }

  /// Bytes in segments this host holds now.
  [[nodiscard]] std::size_t bytes_in_use() const noexcept {
    return in_use_.load();
  }

  /// Writes `size` bytes at `data` into a new segment; `payload_too_large`
  /// when the budget cannot take them, `internal` on an I/O failure.
  caf::expected<std::shared_ptr<shm_segment>> write(const void* data, std::size_t size);

  /// Maps the segment `name` (sent by a worker) read-only after checking it is
  /// a plain name, a regular file of ours and at least `size` bytes; with
  /// `take` the name is removed at once (a result's receiver owns it).
  /// Errors (`internal`) say what is wrong.
  caf::expected<shm_mapping> map(std::string_view name, std::size_t size, bool take);

  /// Removes the segment `name` (sent by a worker) unread; a name that is not
  /// a plain segment name is ignored.
  void drop(std::string_view name) noexcept;

  /// Removes what the worker process `pid` wrote and nobody took (its files
  /// are named `w<pid>-<n>`); returns how many.
  std::size_t remove_files_of(int pid);

  /// Whether `name` could name a segment: 1-64 of [A-Za-z0-9_-].
  static bool valid_name(std::string_view name) noexcept;

private:
  friend class shm_segment;

  shm_arena(std::string dir, int dir_fd, std::size_t threshold, std::size_t bytes_max) noexcept;

  void forget(const std::string& name, std::size_t size, bool unlink) noexcept;

  std::string dir_;
  int dir_fd_;
  std::size_t threshold_;
  std::size_t bytes_max_;
  std::atomic<std::size_t> in_use_{0};
  std::atomic<std::uint64_t> next_{0};
};

} // namespace snakepit::detail
