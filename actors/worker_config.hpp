#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_addr.hpp>
#include <caf/timespan.hpp>

#include "snakepit/actors/batch_limits.hpp"
#include "snakepit/actors/worker_profile.hpp"

namespace snakepit::detail {
class shm_arena;
} // namespace snakepit::detail

namespace snakepit {

class fork_server_handle;

/// Everything one worker actor needs to start and run its Python process.
/// Pools fill it from their `pool_config`; users rarely build one by hand.
struct worker_config {
  /// e.g. "demo/w-2"; names the worker in logs and errors.
  std::string id;
  /// The pool it serves (telemetry metadata).
  std::string pool;
  /// Absolute path of the Python interpreter.
  std::string python;
  /// Dotted path of the adapter class, e.g. "snakepit_bridge.showcase.ShowcaseAdapter".
  std::string adapter;
  /// Extra import directories, searched before the interpreter's own.
  std::vector<std::string> python_path;
  /// Environment variables set on top of the host's.
  std::vector<std::pair<std::string, std::string>> env;
  /// CPUs the process is pinned to (empty: not pinned).
  std::vector<int> cpu_affinity;
  /// Calls the worker may run at once (1 in the process profile).
  std::uint32_t capacity = 1;
  worker_profile profile = worker_profile::process;
  thread_check_mode thread_check = thread_check_mode::off;
  /// Largest request or result, in bytes of wire encoding.
  std::int64_t max_payload_bytes = 64 * 1024 * 1024;
  /// From spawn to the worker's ready signal.
  caf::timespan startup_timeout = std::chrono::seconds{10};
  /// How long after a call's deadline a busy process-profile worker is killed.
  caf::timespan deadline_grace = std::chrono::milliseconds{500};
  /// Process profile: replace a worker still running a call after its
  /// deadline plus `deadline_grace` (else it only fails the caller).
  bool kill_stuck_calls = true;
  /// Health pings (0: off), their timeout, and how many missed in a row mark
  /// the process as wedged (it is then killed and replaced).
  caf::timespan health_interval = std::chrono::seconds{2};
  caf::timespan health_timeout = std::chrono::seconds{1};
  std::uint32_t health_max_missed = 3;
  /// SIGTERM-to-SIGKILL budget when the worker is stopped.
  caf::timespan shutdown_timeout = std::chrono::seconds{5};
  /// Events the Python side buffers between replies and pings; 0 turns
  /// Python events off.
  std::uint32_t python_event_buffer = 1024;
  /// Session states the Python side keeps at most (the pool's
  /// `max_sessions`, so the pool's own bound is always hit first).
  std::uint32_t max_sessions = 10000;
  /// Unix socket of the pool's host tools server; empty: none.
  std::string host_socket;
  /// Directory for the socket; empty: the host's runtime directory.
  std::string runtime_dir;
  /// Calls go over one ExecuteBatches stream (else one unary Execute each).
  bool use_batches = true;
  batch_limits batches;
  /// Calls the pool may send beyond `capacity` (they wait in Python, in
  /// order); only with batches.
  std::uint32_t pipeline_depth = 0;
  /// Where bytes and array payloads above its threshold travel (the pool's,
  /// shared by its workers); null: always inline.
  std::shared_ptr<detail::shm_arena> shm;
  /// A preloaded pool's fork server: the worker is forked from it when it is
  /// ready, else started as a plain process that runs `preload()` itself.
  /// Null: no preload.
  std::shared_ptr<fork_server_handle> fork_server;
  /// Receives readiness, startup failures and free slots (the pool). Weak,
  /// so a pool nobody references can end.
  caf::actor_addr owner;
};

} // namespace snakepit
