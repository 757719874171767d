#pragma once

#include <caf/actor_system.hpp>

#include "snakepit/actors/worker_config.hpp"
#include "snakepit/messages/worker_actor.hpp"

namespace snakepit {

/// Spawns a worker actor that owns one Python process.
///
/// The actor starts its process at once (through the process launcher thread),
/// tells `cfg.owner` `(worker_ready_atom, worker, status)` when the process
/// answers, or `(worker_failed_atom, id, error)` when it cannot start, and
/// `(slot_free_atom, address, ok)` after each call. When the process dies the
/// actor fails its calls in flight with `errc::worker_crashed` and exits with
/// that error; when the actor exits for any reason the process is stopped
/// (SIGTERM to its process group, SIGKILL after `shutdown_timeout`).
worker_actor spawn_worker(caf::actor_system& sys, worker_config cfg);

} // namespace snakepit
