#pragma once

#include <cstdint>

namespace snakepit {

/// Bounds of the batches a worker writes on its ExecuteBatches stream (pool
/// keys `batch_max_calls`, `batch_max_bytes`, `batch_max_unanswered`).
struct batch_limits {
  /// Calls in one batch, at most.
  std::uint32_t max_calls = 64;
  /// Wire bytes of the calls in one batch, at most; a call larger than this
  /// goes alone over unary Execute.
  std::int64_t max_bytes = 1024 * 1024;
  /// Batches written whose calls are not all answered yet, at most: more
  /// calls wait and go together in the next batch.
  std::uint32_t max_unanswered = 2;
};

} // namespace snakepit
