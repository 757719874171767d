#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "snakepit/actors/profile_advice.hpp"
#include "snakepit/messages/pool_status.hpp"
#include "snakepit/observability/machine_info.hpp"

namespace snakepit {

/// One finding of `diagnose`, with what to do about it.
struct recommendation {
  enum class severity { info, warning, critical };
  severity level = severity::info;
  /// The finding, e.g. "pool too small".
  std::string what;
  /// The numbers behind it.
  std::string why;
  /// Something concrete to do, e.g. "set size = 6 in [pools.ml]".
  std::string action;
  /// A stable id of the rule that made it, for scripts and tests
  /// (e.g. "pool_too_small"; the list is in the doc comment of `diagnose`).
  std::string rule;
};

std::string to_string(recommendation::severity x);

/// The figures of one pool and the recommendations for it, critical first.
struct pool_diagnosis {
  std::string pool;
  /// "process" or "thread" (from its workers; empty without workers).
  std::string profile;
  /// Configured and ready workers, and calls answered (served + failed).
  std::uint32_t size = 0;
  std::uint32_t ready = 0;
  std::uint64_t calls = 0;
  /// 0..1: the share of the workers' slot time spent in tools since they
  /// (and the pool) were ready: sum of python_wall_total / sum of
  /// (serving time * capacity), where a worker's serving time is its age, but
  /// not longer than the pool has been ready (when the status tells: no worker
  /// replaced or added since).
  double utilisation = 0;
  /// 0..1: busy / capacity, now.
  double busy_now = 0;
  /// 0..1: (queue_full + queue_timeouts) / (served + failed).
  double saturation = 0;
  /// queue_full + queue_timeouts.
  std::uint64_t rejected = 0;
  /// Sum of the workers' RSS, and the median of the known ones (the lower
  /// middle value: what one more worker is likely to cost, unaffected by one
  /// leaking worker). 0 when unknown.
  std::int64_t rss_total_bytes = 0;
  std::int64_t rss_per_worker_bytes = 0;
  std::vector<recommendation> recommendations;
};

/// The whole diagnosis: machine, machine-wide recommendations, and each pool.
struct diagnosis {
  machine_info machine;
  std::vector<recommendation> recommendations;
  std::vector<pool_diagnosis> pools;
};

// Thresholds of the rules (see `diagnose`).

/// Utilisation a resized pool is sized for: room for bursts.
inline constexpr double target_utilisation = 0.7;
/// Above it, with requests queued, a pool is too small.
inline constexpr double busy_utilisation = 0.85;
/// Below it, over a meaningful period, a pool is too large.
inline constexpr double idle_utilisation = 0.2;
/// A meaningful period to call a pool too large: this long and this many calls.
inline constexpr std::int64_t judge_min_uptime_seconds = 60;
inline constexpr std::uint64_t judge_min_calls = 100;
/// Calls needed before the profile advice counts.
inline constexpr std::uint64_t profile_min_calls = 20;
/// CPU time / wall time of the tools from which a pool counts as CPU-bound
/// (the threshold `advise_profile` uses).
inline constexpr double cpu_bound_share = 0.5;
/// Rejected share of the calls from which a too-small pool is critical.
inline constexpr double critical_saturation = 0.05;
/// Memory kept free: resizing leaves this share of the memory limit
/// available, and less headroom than it is a warning.
inline constexpr double memory_reserve = 0.2;
/// Less memory headroom than this is critical.
inline constexpr double memory_critical = 0.05;
/// A worker whose RSS is above this many times the pool's median, and by at
/// least `rss_outlier_min_bytes`, may be leaking.
inline constexpr double rss_outlier_factor = 2.0;
inline constexpr std::int64_t rss_outlier_min_bytes = 32ll << 20;
/// Most threads per worker a profile switch suggests (more slots: more workers).
inline constexpr std::uint32_t max_suggested_threads = 16;
/// From this many deadline kills, they are a warning (below, info).
inline constexpr std::uint64_t many_replacements = 3;

/// What `advise_profile` judges a pool by, from its status on machine `m`:
/// `observe(status)`, observed over the time the workers served since the
/// pool was ready (its start-up is not idle time), with the machine's usable
/// cores and CPU pressure, and the workers' run-queue waits and tools' times
/// over `m`'s sampling window. `diagnose` and `call --repeat` both advise from it.
workload_observation observe(const pool_status& status, const machine_info& m);

/// The pids of the pools' workers.
std::vector<std::int32_t> worker_pids(const std::vector<pool_status>& pools);

/// Fills `m.workers` and `m.worker_window_length` from two looks at the same
/// pools `window` apart: the status before and after, and the scheduler's
/// figures of their workers before and after (`read_processes_cpu`). Workers
/// seen only once are left out.
void add_worker_window(machine_info& m, const std::vector<pool_status>& before,
                       const std::vector<pool_status>& after,
                       const std::map<std::int32_t, process_cpu>& sched_before,
                       const std::map<std::int32_t, process_cpu>& sched_after,
                       caf::timespan window);

/// Diagnoses pools from their status on machine `m`. Pure: same input, same
/// output. The rules (ids in brackets):
///
/// Per pool:
/// - [pool_too_small] rejections (queue_full + queue_timeouts > 0), or
///   utilisation > `busy_utilisation` with requests queued. The new size is
///   ceil(size * demand / `target_utilisation`), at least size + 1, where
///   demand = utilisation * (calls run + rejected) / calls run (the rejected
///   calls would have cost as much as the others). Capped by the cores for a
///   CPU-bound (CPU share >= `cpu_bound_share`) process-profile pool, and by
///   memory: the extra workers, at the median RSS each, must fit in the
///   available memory less `memory_reserve` of the memory limit. Critical
///   when saturation >= `critical_saturation`, else warning.
/// - [pool_too_large] utilisation < `idle_utilisation`, more than 1 worker, no
///   rejections or queue, over at least `judge_min_uptime_seconds` and
///   `judge_min_calls` calls: size ceil(size * utilisation /
///   `target_utilisation`) (at least 1), with the memory it frees. Info.
/// - [not_enough_traffic] a shorter or quieter history: no size advice. Info.
/// - [cpu_starved] `advise_profile(observe(status, m))` finds the calls
///   starved of CPU (their low CPU share is time in the run queue, not waiting
///   for I/O): keep the profile; at most one busy process per core, or more
///   cores. Warning.
/// - [profile] `advise_profile(observe(status, m))` recommends the other profile, with at least
///   `profile_min_calls` calls. Warning, with its reason; the action keeps the
///   pool's slots (at most `max_suggested_threads` threads per worker; to the
///   process profile, which it advises only for CPU-bound calls: at most one
///   process per core).
/// - [rss_outlier] a worker's RSS > `rss_outlier_factor` x the pool's median
///   (and by `rss_outlier_min_bytes`): a possible leak; set
///   `worker_max_rss_bytes` between the two. Warning.
/// - [crashes] crashes > 0: read the workers' logs. Warning.
/// - [replacements] deadline kills: raise `request_timeout` or let the tool
///   return early using `ctx.time_left()`. Warning from `many_replacements`,
///   else info.
/// - [not_ready] ready < size: info while starting, critical when failed or
///   none ready, else warning.
/// - [ok] none of the above: "no change needed". Info.
///
/// Machine-wide:
/// - [memory_headroom] memory available, less what the pools' missing
///   workers will need at their median RSS, as a share of the memory limit
///   (MemTotal, or the cgroup limit when lower; with a cgroup limit, the
///   available memory is at most the limit less the pools' RSS): warning
///   under `memory_reserve`, critical under `memory_critical`.
/// - [cpu_oversubscribed] more busy worker processes than cores (the cgroup
///   CPU limit when lower), not counting pools whose calls mostly wait
///   (CPU share < `cpu_bound_share`, and not starved of CPU). Warning.
/// - [no_pools] no pools to diagnose. Info.
diagnosis diagnose(const machine_info& m, const std::vector<pool_status>& pools);

/// The most severe level in `d` (info when there are no recommendations).
recommendation::severity worst(const diagnosis& d);

/// Human-readable: a machine line, then per pool its figures and
/// recommendations, critical first.
std::string render_text(const diagnosis& d);

/// The same as JSON text: an object with "worst" (the most severe level),
/// "machine", "recommendations" (the machine's) and "pools" (each with its
/// figures and "recommendations"; each recommendation: "level", "what",
/// "why", "action", "rule").
std::string render_json(const diagnosis& d);

} // namespace snakepit
