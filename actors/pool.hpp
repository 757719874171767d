#pragma once

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "snakepit/actors/pool_config.hpp"
#include "snakepit/messages/pool_actor.hpp"

namespace snakepit {

/// Spawns a pool: a pool actor, its worker supervisor and `cfg.size` worker
/// processes, started concurrently (at most `startup_concurrency` at once).
/// Returns at once; requests sent before the workers are ready wait in the
/// queue. If the pool cannot start (bad interpreter, adapter import error)
/// queued and later requests fail with `errc::startup_failed` and the pool
/// exits with that error.
///
/// `cfg.python` must name a usable interpreter or be empty; an empty one is
/// resolved here with `locate_python` (blocking on first use: call this from
/// your own thread, not from inside an actor).
caf::expected<pool_actor> spawn_pool(caf::actor_system& sys, pool_config cfg);

/// Spawns a pool and waits until it is ready (its `min_ready` workers answer)
/// or its start failed. Blocks the calling thread: not for use inside actors.
caf::expected<pool_actor> start_pool(caf::actor_system& sys, pool_config cfg);

/// Sends one request and waits for its reply or typed error. Blocks the
/// calling thread: from inside an actor use `request(pool, ...).then(...)`.
caf::expected<execute_reply> call(caf::actor_system& sys, const pool_actor& pool,
                                  execute_request req);

/// Stops a pool and waits until it is gone: queued requests are answered
/// `pool_stopped`, calls in flight finish within the pool's
/// `shutdown_timeout` (then their workers are killed), every worker process
/// has exited. Blocks the calling thread. (An untrappable
/// `exit_reason::kill` instead drops queued requests unanswered.)
void stop_pool(caf::actor_system& sys, const pool_actor& pool);

} // namespace snakepit
