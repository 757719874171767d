#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <caf/timespan.hpp>

namespace snakepit {

/// What the kernel's scheduler says about one process (all its threads):
/// time on a CPU, and time runnable but waiting in a run queue for one. The
/// second is what tells a call starved of CPU (a busy machine) from a call
/// waiting for I/O: both show a low CPU share of their wall time, only the
/// first spends the rest in the run queue.
struct process_cpu {
  caf::timespan run{0};
  caf::timespan run_queue_wait{0};
  /// Each thread's run-queue time, by thread id. A process-profile worker
  /// runs its calls in one thread: its most-waiting thread is the one that
  /// tells, where the sum also holds the gRPC threads' many short waits.
  std::map<std::int32_t, caf::timespan> thread_waits;
  /// In a growth (`cpu_growth`): the largest growth of one thread's wait.
  caf::timespan busiest_thread_wait{0};
};

/// Sums /proc/PID/task/*/schedstat (under `root`, for tests); nullopt when
/// the process is gone or the kernel keeps no such statistics.
std::optional<process_cpu> read_process_cpu(std::int32_t pid, const std::string& root = "");

/// The scheduler's figures of processes over a window: what each of them
/// added between two readings (processes missing from either are left out).
std::map<std::int32_t, process_cpu> cpu_growth(const std::map<std::int32_t, process_cpu>& before,
                                               const std::map<std::int32_t, process_cpu>& after);

/// One worker process over a sampling window: what the scheduler saw, and
/// what its tools took (the growth of its python_wall_total and
/// python_cpu_total) in the same window.
struct worker_window {
  process_cpu sched;
  caf::timespan tools_wall{0};
  caf::timespan tools_cpu{0};
};

/// `read_process_cpu` for each pid that can be read.
std::map<std::int32_t, process_cpu> read_processes_cpu(const std::vector<std::int32_t>& pids,
                                                       const std::string& root = "");

} // namespace snakepit
