#include "snakepit/actors/scheduler_settings.hpp"

#include <sched.h>

#include <thread>

#include <caf/all.hpp>

namespace snakepit {

unsigned available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    auto n = CPU_COUNT(&set);
    if (n > 0)
      return static_cast<unsigned>(n);
  }
  auto hw = std::thread::hardware_concurrency();
  return hw > 0 ? hw : 1;
}

void use_recommended_scheduler(caf::actor_system_config& cfg) {
  caf::put(cfg.content, "scheduler.policy", caf::atom("sharing"));
  caf::put(cfg.content, "scheduler.max-threads", static_cast<size_t>(available_cpus()));
}

} // namespace snakepit
