#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <caf/timespan.hpp>

#include "snakepit/actors/worker_profile.hpp"
#include "snakepit/messages/pool_status.hpp"

namespace snakepit {

/// What a pool's calls did, as far as choosing a profile goes.
struct workload_observation {
  worker_profile profile = worker_profile::process;
  std::uint32_t threads_per_worker = 1;
  /// The workers' interpreter runs with the GIL.
  bool gil_enabled = true;
  std::uint64_t calls = 0;
  /// Sums over the calls of the time spent in the tools.
  caf::timespan python_wall{0};
  caf::timespan python_cpu{0};
  /// Workers and how long they were observed (0: unknown). With them, a
  /// thread-profile pool whose calls wait for the GIL (low CPU share per
  /// call, yet about one full CPU per process) is told apart from one whose
  /// calls wait for I/O.
  std::uint32_t workers = 1;
  caf::timespan elapsed{0};
  /// The cores the workers may use (0: unknown), and the machine's CPU
  /// pressure over the observation (0..1: the share of time some runnable
  /// task waited for a CPU; unknown without PSI).
  double usable_cores = 0;
  std::optional<double> cpu_pressure;
  /// Over a window of `window` (0: unknown), summed over the workers: the
  /// time their tool threads waited in the run queue for a CPU (the kernel
  /// scheduler's figure: a process worker's most-waiting thread, all of a
  /// thread worker's threads), and the tools' wall and CPU time. With them, calls
  /// starved of CPU are told apart from calls waiting for I/O (both show a low
  /// CPU share of their wall time; only the first spend it in the run queue).
  caf::timespan window{0};
  caf::timespan window_run_queue_wait{0};
  caf::timespan window_tools_wall{0};
  caf::timespan window_tools_cpu{0};
};

/// A recommended profile and why.
struct profile_advice {
  worker_profile recommended = worker_profile::process;
  /// One or two sentences a user can act on.
  std::string reason;
  /// CPU time / wall time of the tools (0..1 per thread).
  double cpu_share = 0;
  /// The calls' low CPU share comes from waiting for a CPU (the machine's
  /// cores are oversubscribed), not for I/O: neither profile fixes that;
  /// fewer busy processes or more cores do.
  bool cpu_starved = false;
};

/// Starved of CPU (see `advise_profile`): the run queue holds at least this
/// share of the time the calls spent off a CPU...
constexpr double starved_off_cpu_share = 0.5;
/// ... or, without the scheduler's figures, the tools used at least this
/// share of the usable cores.
constexpr double starved_core_share = 0.8;
/// Without the scheduler's figures, from this CPU pressure a low CPU share
/// cannot be told from starving: no switch to the thread profile is advised.
constexpr double uncertain_pressure = 0.5;

/// Calls shorter than this on average get no profile advice: their CPU share
/// is timer noise, and the transport sets their cost.
constexpr caf::timespan tiny_call = std::chrono::microseconds{100};

/// Collects the observation from a pool's status.
workload_observation observe(const pool_status& status);

/// Recommends a profile from what the calls did:
/// - tools with a CPU share under 0.5 are either waiting (I/O, sleeps, remote
///   calls) or starving (runnable, but the machine's cores are all busy). The
///   scheduler's figures tell which: starving when the workers' time in the
///   run queue is at least `starved_off_cpu_share` of the calls' time off a
///   CPU (wall - CPU) in the same window; without them, when the tools use
///   `starved_core_share` of the usable cores. Starving calls
///   keep the current profile (threads would add GIL contention to the same
///   shortage); under `uncertain_pressure` without the scheduler's figures,
///   neither is claimed and the current profile is kept;
/// - tools that mostly wait gain nothing from a process each: the thread
///   profile serves them with far less memory;
/// - CPU-bound tools on a GIL Python do not scale in threads unless they
///   release the GIL (numpy, hashlib, most C extensions): the process profile,
///   unless a thread-profile run shows otherwise (a CPU share per call that
///   stays high with several threads busy means the work runs in parallel;
///   a low share while each process burns about one CPU means the calls
///   queue for the GIL);
/// - on a free-threaded Python (no GIL), threads scale for CPU work too.
profile_advice advise_profile(const workload_observation& w);

} // namespace snakepit
