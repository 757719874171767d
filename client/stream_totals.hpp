#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace snakepit {

/// How a generator tool's stream through `client::stream` ended.
struct stream_totals {
  /// Items delivered to the callback.
  std::uint64_t items = 0;
  /// The callback asked to stop: the generator was closed in Python.
  bool stopped = false;
  /// Time spent in the generator (0 when stopped early).
  std::chrono::nanoseconds python_wall{0};
  /// The worker that ran it.
  std::string worker_id;
};

} // namespace snakepit
