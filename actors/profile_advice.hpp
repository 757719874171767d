#pragma once

#include <cstdint>
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
};

/// A recommended profile and why.
struct profile_advice {
  worker_profile recommended = worker_profile::process;
  /// One or two sentences a user can act on.
  std::string reason;
  /// CPU time / wall time of the tools (0..1 per thread).
  double cpu_share = 0;
};

/// Calls shorter than this on average get no profile advice: their CPU share
/// is timer noise, and the transport sets their cost.
constexpr caf::timespan tiny_call = std::chrono::microseconds{100};

/// Collects the observation from a pool's status.
workload_observation observe(const pool_status& status);

/// Recommends a profile from what the calls did:
/// - tools that mostly wait (I/O, sleeps, remote calls: CPU share under 0.5)
///   gain nothing from a process each: the thread profile serves them with
///   far less memory;
/// - CPU-bound tools on a GIL Python do not scale in threads unless they
///   release the GIL (numpy, hashlib, most C extensions): the process profile,
///   unless a thread-profile run shows otherwise (a CPU share per call that
///   stays high with several threads busy means the work runs in parallel;
///   a low share while each process burns about one CPU means the calls
///   queue for the GIL);
/// - on a free-threaded Python (no GIL), threads scale for CPU work too.
profile_advice advise_profile(const workload_observation& w);

} // namespace snakepit
