#include "snakepit/observability/process_cpu.hpp"

#include <dirent.h>

#include <cstdlib>
#include <fstream>

namespace snakepit {

std::optional<process_cpu> read_process_cpu(std::int32_t pid, const std::string& root) {
  if (pid <= 0)
    return std::nullopt;
  auto dir = root + "/proc/" + std::to_string(pid) + "/task";
  auto* tasks = ::opendir(dir.c_str());
  if (tasks == nullptr)
    return std::nullopt;
  process_cpu out;
  bool any = false;
  // Bounded: a process has at most as many threads as the kernel allows,
  // and each line is three numbers.
  while (auto* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.')
      continue;
    std::ifstream in{dir + "/" + entry->d_name + "/schedstat"};
    long long run_ns = 0, wait_ns = 0;
    if (in >> run_ns >> wait_ns && run_ns >= 0 && wait_ns >= 0) {
      out.run += caf::timespan{run_ns};
      out.run_queue_wait += caf::timespan{wait_ns};
      out.thread_waits[std::atoi(entry->d_name)] = caf::timespan{wait_ns};
      any = true;
    }
  }
  ::closedir(tasks);
  if (!any)
    return std::nullopt;
  return out;
}

std::map<std::int32_t, process_cpu> cpu_growth(const std::map<std::int32_t, process_cpu>& before,
                                               const std::map<std::int32_t, process_cpu>& after) {
  std::map<std::int32_t, process_cpu> out;
  for (auto& [pid, now] : after) {
    auto then = before.find(pid);
    if (then == before.end())
      continue;
    // Threads that ended between the readings take their time with them: a
    // sum can shrink. Never report negative time.
    process_cpu grew;
    grew.run = std::max(caf::timespan{0}, now.run - then->second.run);
    grew.run_queue_wait = std::max(caf::timespan{0},
                                   now.run_queue_wait - then->second.run_queue_wait);
    for (auto& [tid, wait] : now.thread_waits) {
      auto before_wait = then->second.thread_waits.find(tid);
      if (before_wait != then->second.thread_waits.end())
        grew.busiest_thread_wait = std::max(grew.busiest_thread_wait,
                                            wait - before_wait->second);
    }
    out[pid] = grew;
  }
  return out;
}

std::map<std::int32_t, process_cpu> read_processes_cpu(const std::vector<std::int32_t>& pids,
                                                       const std::string& root) {
  std::map<std::int32_t, process_cpu> out;
  for (auto pid : pids)
    if (auto cpu = read_process_cpu(pid, root))
      out[pid] = *cpu;
  return out;
}

} // namespace snakepit
