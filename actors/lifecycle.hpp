#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "snakepit/actors/pool_config.hpp"
#include "snakepit/messages/pool_actor.hpp"

namespace snakepit {

/// Spawns the lifecycle actor of a pool: every `lifecycle_interval` it reads
/// the pool's status and each worker's Python RSS (from /proc), and asks the
/// pool to recycle a worker that passed `worker_ttl`, `worker_max_requests`
/// (plus a per-worker random jitter up to `worker_max_requests_jitter`), or
/// `worker_max_rss_bytes` on two checks in a row (hysteresis: one spike does
/// not recycle). It never kills anything itself. It ends with the pool.
caf::actor spawn_lifecycle(caf::actor_system& sys, const pool_actor& pool,
                           const pool_config& cfg);

/// Whether any recycling knob of `cfg` is on.
bool lifecycle_enabled(const pool_config& cfg);

/// Calls the worker `worker_id` serves before it is recycled:
/// `worker_max_requests` plus its stable jitter (0: no limit). The pool
/// sends it no more than that, pipelined calls included.
std::uint64_t request_limit(const pool_config& cfg, const std::string& worker_id);

/// Resident set size of a process in bytes, from /proc/PID/statm; 0 when it
/// cannot be read.
std::int64_t process_rss_bytes(int pid);

} // namespace snakepit
