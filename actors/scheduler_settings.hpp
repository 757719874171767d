#pragma once

#include <caf/actor_system_config.hpp>

namespace snakepit {

/// Applies the scheduler settings measured best for pools on small machines:
/// `scheduler.policy = sharing` and `scheduler.max-threads` = the CPUs this
/// process may use. CAF's default (work stealing, 4 threads) adds about
/// 100 us to every call through an actor (docs/benchmarks.md). The scheduler
/// belongs to whoever owns the actor system: call this on your config, or set
/// the same keys in your caf-application.ini / command line.
void use_recommended_scheduler(caf::actor_system_config& cfg);

/// CPUs this process may run on (its affinity mask), at least 1.
unsigned available_cpus();

} // namespace snakepit
