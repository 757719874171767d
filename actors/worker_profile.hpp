#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <cstdint>

namespace snakepit {

/// How a pool's workers run requests.
enum class worker_profile {
  /// One Python process per worker, one request at a time (capacity 1).
  process,
  /// One multi-threaded Python process per worker, `threads_per_worker`
  /// requests at once; the adapter must derive from ThreadSafeAdapter.
  thread,
};

/// The thread profile's run-time check for unsafe sharing between threads.
enum class thread_check_mode {
  off,
  /// Report findings in the worker's log.
  warn,
  /// Report them and fail the offending call.
  strict,
};

/// Everything a profile decides for its workers, in one place.
struct profile_traits {
  /// Calls a worker runs at once; the pool never sends it more.
  std::uint32_t capacity = 1;
  /// What to do with a worker still running a call `deadline_grace` after
  /// its deadline: replace it (process profile), or only keep its slot busy
  /// until the call returns (thread profile: killing the process would fail
  /// unrelated calls).
  bool replace_when_stuck = true;
  /// Extra arguments that start the Python worker in this profile.
  std::vector<std::string> worker_args;
};

/// The traits of `profile` with `threads_per_worker` threads (thread profile).
profile_traits traits_of(worker_profile profile, std::uint32_t threads_per_worker,
                         thread_check_mode check);

std::string to_string(worker_profile x);
std::optional<worker_profile> parse_worker_profile(std::string_view name);
std::string to_string(thread_check_mode x);
std::optional<thread_check_mode> parse_thread_check_mode(std::string_view name);

} // namespace snakepit
