#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "snakepit/actors/autoscale_policy.hpp"
#include "snakepit/actors/host_tool.hpp"
#include "snakepit/actors/session_table.hpp"
#include "snakepit/actors/batch_limits.hpp"
#include "snakepit/actors/circuit_breaker.hpp"
#include "snakepit/actors/poison_table.hpp"
#include "snakepit/actors/retry_policy.hpp"
#include "snakepit/actors/worker_env.hpp"
#include "snakepit/actors/worker_profile.hpp"
#include "snakepit/supervision/restart_intensity.hpp"

namespace snakepit {

/// Everything a pool needs. Every bound has a default here and a TOML key of
/// the same name (times in the TOML carry a `_ms` suffix).
struct pool_config {
  /// Names the pool in logs, errors and worker ids ("<name>/w-<n>").
  std::string name = "default";
  /// Dotted path of the adapter class, e.g. "snakepit_bridge.showcase.ShowcaseAdapter".
  std::string adapter;
  /// Extra Python import directories.
  std::vector<std::string> python_path;
  /// Interpreter; empty: $SNAKEPIT_PYTHON, else the first that can import grpc.
  std::string python;
  /// Environment variables for the workers, on top of the host's; values
  /// may hold `{index}`, `{count}`, `{index % N}` (`expand_worker_env`).
  std::vector<std::pair<std::string, std::string>> env;
  /// Pins each worker process to CPUs (none: not pinned).
  cpu_affinity_spec cpu_affinity;
  /// Number of worker processes (at the start, when autoscaling).
  std::uint32_t size = 2;
  /// Autoscaling (`min_size` < `max_size`; both 0: a fixed `size`): when
  /// the pool grows and shrinks between them (docs/configuration.md).
  autoscale_settings autoscale;
  /// `process`: one request at a time per process; `thread`: one process
  /// serving `threads_per_worker` requests at once.
  worker_profile profile = worker_profile::process;
  /// Capacity of each worker in the thread profile (ignored otherwise).
  std::uint32_t threads_per_worker = 4;
  /// Thread profile: run-time check for unsafe sharing between threads.
  thread_check_mode thread_check = thread_check_mode::off;
  /// Process profile: one fork server imports the adapter and runs its
  /// `preload()` once; workers are forked from it (docs/preload.md).
  bool preload = false;
  /// Workers that must be ready before the pool counts as started; 0 = all.
  std::uint32_t min_ready = 0;
  /// Workers starting at the same time; 0 = twice the CPUs this process may use.
  std::uint32_t startup_concurrency = 0;
  /// From spawn to a worker's ready signal.
  caf::timespan startup_timeout = std::chrono::seconds{20};
  /// Requests waiting for a free worker, at most; beyond: `pool_saturated`.
  std::uint32_t queue_max = 1024;
  /// Longest wait in the queue; then `pool_saturated`.
  caf::timespan queue_timeout = std::chrono::seconds{10};
  /// How a session's requests stick to its worker (docs/sessions.md).
  affinity_mode affinity = affinity_mode::hint;
  /// A session unused this long is closed ("expired").
  caf::timespan session_ttl = std::chrono::minutes{30};
  /// Sessions open at once, at most; opening more fails with `pool_saturated`.
  std::uint32_t max_sessions = 10000;
  /// C++ functions the pool's Python tools may call (`ctx.call_host`); see
  /// docs/host-tools.md. Not in TOML: handlers are code.
  std::vector<host_tool> host_tools;
  /// Deadline of a request that comes without one.
  caf::timespan request_timeout = std::chrono::seconds{60};
  /// A process-profile worker still busy this long after a call's deadline
  /// is killed and replaced. (In the thread profile a deadline fails only its
  /// caller: killing the process would fail unrelated calls.)
  caf::timespan deadline_grace = std::chrono::milliseconds{500};
  /// Process profile: `true` (TOML `deadline_policy = "kill"`) replaces a
  /// worker still running a call `deadline_grace` after its deadline; `false`
  /// (`"wait"`) lets the call finish, the worker serving nobody meanwhile.
  bool kill_stuck_calls = true;
  /// The host pings each worker this often (0: off); a worker that misses
  /// `health_max_missed` pings in a row (each within `health_timeout`) is
  /// wedged: killed and replaced. Separate from `startup_timeout`.
  caf::timespan health_interval = std::chrono::seconds{2};
  caf::timespan health_timeout = std::chrono::seconds{1};
  std::uint32_t health_max_missed = 3;
  /// Largest request or result, in bytes of wire encoding.
  std::int64_t max_payload_bytes = 64LL * 1024 * 1024;
  /// Bytes and array payloads larger than `shm_threshold` travel through
  /// shared memory (a private /dev/shm directory) instead of the message;
  /// `shared_memory = false` keeps everything inline.
  bool shared_memory = true;
  std::int64_t shm_threshold = 192 * 1024;
  /// Bytes of argument segments the pool holds at once, and the largest
  /// payload either side puts in shared memory; over it: `payload_too_large`.
  std::int64_t shm_bytes_max = 1LL << 30;
  /// Bytes of idle segment files each side (the host for the pool, each
  /// worker for itself) keeps for reuse: writing into a reused file skips
  /// the kernel's page allocation, which costs more than the copy.
  std::int64_t shm_cache_bytes = 256LL << 20;
  /// Telemetry events each worker's Python side buffers between replies and
  /// pings (`snakepit_bridge.emit`); beyond it events are dropped and
  /// counted. 0 turns Python events off.
  std::uint32_t python_event_buffer = 1024;
  /// Streams: the initial credit (items a consumer can take before its first
  /// ack) of a request whose `stream_window` is 0. 1..4096.
  std::uint32_t stream_window = 16;
  /// SIGTERM-to-SIGKILL budget for each worker process when stopping.
  caf::timespan shutdown_timeout = std::chrono::seconds{5};
  /// Restart intensity of the pool's worker supervisor. The default allows a
  /// restart per worker and then some, within 10 s.
  restart_intensity intensity{0, std::chrono::seconds{10}};
  /// Back-off between restarts of a worker that keeps failing.
  restart_backoff backoff;
  /// Recycling (all off by default): replace a worker after this age...
  caf::timespan worker_ttl{0};
  /// ... or after this many calls (plus a per-worker random 0..jitter, so
  /// workers do not recycle together) ...
  std::uint64_t worker_max_requests = 0;
  std::uint64_t worker_max_requests_jitter = 0;
  /// ... or when its Python process's RSS stays above this for two checks.
  std::int64_t worker_max_rss_bytes = 0;
  /// How often the lifecycle actor checks the workers.
  caf::timespan lifecycle_interval = std::chrono::seconds{1};
  /// Recycles in progress at once, at most.
  std::uint32_t max_concurrent_recycles = 1;
  /// How long a recycled worker may take to finish its calls before it is
  /// stopped anyway (its remaining calls then fail with `pool_stopped`).
  caf::timespan drain_timeout = std::chrono::seconds{30};
  /// Calls travel in batches over one stream per worker (`transport =
  /// "batches"`); false: one unary gRPC call each (`"unary"`), the path of
  /// releases before 0.13.
  bool use_batches = true;
  /// Bounds of one batch (`batch_max_calls`, `batch_max_bytes`,
  /// `batch_max_unanswered`).
  batch_limits batches;
  /// Calls the pool may queue on a busy process-profile worker beyond the one
  /// it runs (0: off). Only for tools whose observed wall time keeps the
  /// expected work queued on the worker within `pipeline_budget`.
  std::uint32_t pipeline_depth = 8;
  caf::timespan pipeline_budget = std::chrono::milliseconds{2};
  /// Directory for the workers' sockets; empty: the host's private runtime
  /// directory. Trees give each running tree its own.
  std::string runtime_dir;
  /// Crash barrier (docs/architecture.md#crash-barrier): retries of
  /// idempotent calls whose worker crashed (`retry_*`), requests refused
  /// after crashing workers repeatedly (`poison_*`), and the circuit breaker
  /// over the pool's worker crashes (`breaker_*`).
  retry_settings retry;
  poison_settings poison;
  breaker_settings breaker;
};

/// Checks a configuration; the error (`errc::bad_config`) lists every problem.
caf::expected<pool_config> validate(pool_config cfg);

} // namespace snakepit
