#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "snakepit/observability/process_cpu.hpp"

namespace snakepit {

/// What the machine (or container) offers the pools: the input of
/// `diagnose` besides the pools' status.
struct machine_info {
  /// CPUs this process may run on (its affinity mask); 0 if unknown.
  unsigned cores = 0;
  /// From /proc/meminfo (MemTotal, MemAvailable); 0 if unknown.
  std::uint64_t memory_total_bytes = 0;
  std::uint64_t memory_available_bytes = 0;
  /// The cgroup's memory limit, when one below the machine's memory applies
  /// (the lowest along the cgroup path: limits nest).
  std::optional<std::uint64_t> cgroup_memory_limit_bytes;
  /// The cgroup's CPU quota in CPUs (e.g. 1.5), when one below `cores` applies.
  std::optional<double> cgroup_cpu_limit;
  /// e.g. "Linux 6.1.0-18-amd64"; empty if unknown.
  std::string kernel;
  /// CPU pressure (/proc/pressure/cpu, "some"): the share of the last 10 and
  /// 60 s in which some runnable task waited for a CPU (0..1). High: the
  /// machine's CPUs are oversubscribed, and a call's wall time includes time
  /// spent waiting to run. Unknown without PSI (kernels before 4.20, or off).
  std::optional<double> cpu_pressure_10s;
  std::optional<double> cpu_pressure_60s;
  /// /proc/loadavg: the 1-minute load average and the tasks runnable now.
  std::optional<double> load_1m;
  std::optional<std::uint32_t> runnable;
  /// The worker processes over a window of `worker_window_length`, by pid:
  /// filled by whoever samples them (`diagnose` over a short window, `call
  /// --repeat` over its run). Empty: unknown (e.g. a tree on another machine).
  std::map<std::int32_t, worker_window> workers;
  caf::timespan worker_window_length{0};
};

/// Reads this machine's figures from /proc/meminfo, /proc/pressure/cpu,
/// /proc/loadavg, the affinity mask, the cgroup (v2 `memory.max` and `cpu.max`; v1 `memory.limit_in_bytes` and
/// `cpu.cfs_quota_us` as a fallback) and uname. Never throws: what cannot be
/// read stays 0 / nullopt / empty.
machine_info read_machine_info();

/// The same with every /proc and /sys path under `root` (e.g. a test's fake
/// tree); cores and kernel still come from this process.
machine_info read_machine_info(const std::string& root);

} // namespace snakepit
