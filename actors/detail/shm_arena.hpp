#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

/// A file this host writes payloads into: a private name it keeps
/// (`ph<pid>-<n>`), a public name per payload (`h<pid>-<n>`), and a
/// writable mapping of its whole capacity. Reused for later payloads once its
/// reader has let go (see `shm_arena`).
struct shm_file {
  int fd = -1;
  char* map = nullptr;
  std::size_t capacity = 0;
  std::string private_name;
  std::string public_name;
};

/// One payload in a segment written by this host. Destroying the handle
/// withdraws its public name (a reader that has not opened it by then never
/// will) and gives the file back to the arena for reuse, unless `release`
/// handed the name to the receiver, which removes it.
class shm_segment {
public:
  shm_segment(std::shared_ptr<shm_arena> arena, shm_file file, std::size_t size) noexcept;

  shm_segment(const shm_segment&) = delete;
  shm_segment& operator=(const shm_segment&) = delete;

  ~shm_segment();

  [[nodiscard]] const std::string& name() const noexcept {
    return file_.public_name;
  }

  [[nodiscard]] std::size_t size() const noexcept {
    return size_;
  }

  /// The receiver takes the name (results): leave it to them.
  void release() noexcept {
    handed_over_ = true;
  }

private:
  std::shared_ptr<shm_arena> arena_;
  shm_file file_;
  std::size_t size_;
  bool handed_over_ = false;
};

/// A read-only mapping of a segment, unmapped when the last owner goes. While
/// it lives, the reader holds a shared lock on the file, so its writer does
/// not reuse it.
struct shm_mapping {
  std::shared_ptr<const void> owner;
  const char* data = nullptr;
  std::size_t size = 0;
};

/// The shared-memory payloads of one pool, on both sides of the protocol in
/// bridge.proto (`SharedSegment`): it writes argument segments within a byte
/// budget (`shm_bytes_max`) into files it reuses (`shm_cache_bytes` of idle
/// files kept), maps the segments workers send, and removes what a dead
/// worker left. Thread-safe: the pool's workers share it.
///
/// Reuse without a message back: a reader holds a shared `flock` on a file
/// while it maps it, and removes (takes) or the writer withdraws the public
/// name once the call is over. A writer reuses a file only when its public
/// name is gone (link count 1: the private name) and it gets an exclusive
/// lock without waiting; a reader checks after locking that the name it
/// opened still names the file, so it never reads a file being rewritten.
class shm_arena : public std::enable_shared_from_this<shm_arena> {
public:
  /// Longest segment name accepted from the wire.
  static constexpr std::size_t max_name_length = 64;

  /// An arena over `dir` (a private directory from `shm_directory`); an error
  /// when it cannot be opened.
  static caf::expected<std::shared_ptr<shm_arena>>
  make(const std::string& dir, std::size_t threshold, std::size_t bytes_max,
       std::size_t cache_bytes = 256u << 20);

  ~shm_arena();

  /// Payloads above this many bytes go through shared memory.
  [[nodiscard]] std::size_t threshold() const noexcept {
    return threshold_;
  }

  /// Budget of the segments this host holds at once (`shm_bytes_max`).
  [[nodiscard]] std::size_t bytes_max() const noexcept {
    return bytes_max_;
  }

  /// Bytes of idle files kept for reuse, at most (`shm_cache_bytes`).
  [[nodiscard]] std::size_t cache_bytes() const noexcept {
    return cache_max_;
  }

  [[nodiscard]] const std::string& dir() const noexcept {
    return dir_;
  }

  /// Bytes in segments this host holds now.
  [[nodiscard]] std::size_t bytes_in_use() const noexcept {
    return in_use_.load();
  }

  /// Files written and files reused so far (reuse saves the kernel's page
  /// allocation, which costs more than the copy).
  [[nodiscard]] std::uint64_t files_created() const noexcept {
    return created_.load();
  }

  [[nodiscard]] std::uint64_t files_reused() const noexcept {
    return reused_.load();
  }

  /// Writes `size` bytes at `data` into a segment; `payload_too_large`
  /// when the budget cannot take them, `internal` on an I/O failure.
  caf::expected<std::shared_ptr<shm_segment>> write(const void* data, std::size_t size);

  /// Maps the segment `name` (sent by a worker) read-only after checking it is
  /// a public segment name, still names the file opened, a regular file of
  /// ours and at least `size` bytes; with `take` the name is removed (a
  /// result's receiver owns it). Errors say what is wrong.
  caf::expected<shm_mapping> map(std::string_view name, std::size_t size, bool take);

  /// Removes the segment name `name` (sent by a worker) unread; a name that
  /// is not a public segment name is ignored.
  void drop(std::string_view name) noexcept;

  /// Removes what the worker process `pid` left (`w<pid>-<n>` and its
  /// private `pw<pid>-<n>` files); returns how many names.
  std::size_t remove_files_of(int pid);

  /// Whether `name` could name a segment on the wire: 1-64 of [A-Za-z0-9_-],
  /// not a private name (those start with 'p').
  static bool valid_name(std::string_view name) noexcept;

private:
  friend class shm_segment;

  shm_arena(std::string dir, int dir_fd, std::size_t threshold, std::size_t bytes_max,
            std::size_t cache_bytes) noexcept;

  /// A reusable idle file of at least `size` bytes, locked exclusively.
  std::optional<shm_file> reuse(std::size_t size);

  /// A new file of at least `size` bytes, or why not.
  caf::expected<shm_file> create(std::size_t size);

  /// Back from a finished segment: kept for reuse or destroyed.
  void give_back(shm_file file, std::size_t size, bool withdraw) noexcept;

  void destroy(shm_file& file) noexcept;

  std::string dir_;
  int dir_fd_;
  std::size_t threshold_;
  std::size_t bytes_max_;
  std::size_t cache_max_;
  std::atomic<std::size_t> in_use_{0};
  std::atomic<std::uint64_t> created_{0};
  std::atomic<std::uint64_t> reused_{0};
  std::mutex mtx_;
  std::vector<shm_file> idle_;
  std::size_t idle_bytes_ = 0;
};

} // namespace snakepit::detail
