#pragma once

#include <optional>
#include <string>
#include <string_view>

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

std::string to_string(worker_profile x);
std::optional<worker_profile> parse_worker_profile(std::string_view name);
std::string to_string(thread_check_mode x);
std::optional<thread_check_mode> parse_thread_check_mode(std::string_view name);

} // namespace snakepit
