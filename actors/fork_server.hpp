#pragma once

// A preloaded pool's fork server (`preload = true`): one Python process that imports the
// adapter and runs its `preload()` once, and forks the pool's workers
// (python/snakepit_bridge/fork_server.py). The actor here starts it, restarts it when it
// is lost, and tells the workers which server process to fork from.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/timespan.hpp>

#include "snakepit/supervision/restart_intensity.hpp"

namespace snakepit {

/// Shared by a pool's fork server actor and its workers: the launcher id of the fork
/// server process that is ready to fork, or 0 when there is none (it starts, restarts or
/// gave up; a worker then starts as a plain process and runs `preload()` itself).
class fork_server_handle {
public:
  [[nodiscard]] std::uint64_t ready_server() const noexcept {
    return id_.load(std::memory_order_acquire);
  }
  void set_ready_server(std::uint64_t id) noexcept {
    id_.store(id, std::memory_order_release);
  }

private:
  std::atomic<std::uint64_t> id_{0};
};

/// What the fork server of a pool runs with.
struct fork_server_config {
  /// The pool's name (logs, events).
  std::string pool;
  /// Absolute path of the interpreter, the adapter and its import directories.
  std::string python;
  std::string adapter;
  std::vector<std::string> python_path;
  /// On top of `base_python_env()`: the pool's `env` without per-worker placeholders.
  std::vector<std::pair<std::string, std::string>> env;
  /// From spawn to its ready line (imports plus `preload()`).
  caf::timespan startup_timeout = std::chrono::seconds{20};
  /// Delay before restarting a server that failed at start (a lost one restarts at once).
  restart_backoff backoff;
  /// Failures at start in a row after which it is not restarted any more (workers then
  /// start as plain processes).
  std::uint32_t max_start_failures = 5;
  std::shared_ptr<fork_server_handle> handle;
};

/// Spawns the actor that runs a pool's fork server. It answers `(caf::get_atom)` with the
/// server's launcher id once it is ready, or with `startup_failed` (the reason, a
/// `preload()` traceback included) when its first start fails; then it quits with that
/// error. After the first ready, losing the server is logged and reported as the event
/// `snakepit.pool.fork_server_lost`, and it restarts; running workers keep serving.
/// Exiting stops the server process.
[[nodiscard]] caf::actor spawn_fork_server(caf::actor_system& sys, fork_server_config cfg);

} // namespace snakepit
