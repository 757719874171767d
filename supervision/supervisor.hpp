#pragma once

#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "snakepit/messages/supervisor_actor.hpp"
#include "snakepit/supervision/child_spec.hpp"
#include "snakepit/supervision/restart_intensity.hpp"

namespace snakepit {

/// How a supervisor reacts to a child's failure.
enum class supervision_strategy {
  /// Restart only the failed child.
  one_for_one,
  /// Stop all other children, then restart all (in start order).
  one_for_all,
  /// Stop the children started after the failed one, then restart it and them.
  rest_for_one,
  /// Many instances of child specs added at run time; stopped in parallel.
  dynamic,
};

/// OTP's auto_shutdown: whether significant children ending on their own
/// end the supervisor (with reason `user_shutdown`, OTP's `shutdown`).
enum class auto_shutdown {
  /// Never (the default).
  never,
  /// When any significant child ends on its own.
  any_significant,
  /// When every significant child has ended on its own.
  all_significant,
};

/// A supervisor: its children and how it restarts them.
struct supervisor_config {
  /// Names the supervisor in logs and errors.
  std::string name = "supervisor";
  supervision_strategy strategy = supervision_strategy::one_for_one;
  restart_intensity intensity;
  restart_backoff backoff;
  /// Started in order at spawn; stopped in reverse order.
  std::vector<child_spec> children;
  auto_shutdown shutdown_when = auto_shutdown::never;
  /// Children at most (running or kept specs); `start_child` past it is
  /// `pool_saturated` naming the bound. 0: no bound (declared children
  /// only; set one for dynamic supervisors that grow at run time).
  std::uint32_t max_children = 0;
};

/// Spawns an OTP-style supervisor. It traps exits and monitors its children
/// (they end with it: it stops them when it ends, even when killed) and is
/// the only one that starts, restarts and stops them:
/// - a child ending abnormally is restarted (per its restart type), after a
///   back-off when it keeps failing;
/// - an exit reason `errc::worker_replaced` is a deliberate replacement: the
///   child is restarted at once and it does not count toward the intensity;
/// - more restarts than the intensity allows stops all children (reverse
///   order) and then the supervisor with `errc::restart_intensity_exceeded`,
///   which its parent sees (as the DOWN reason, or an exit message if linked);
/// - an exit message from a non-child (its parent) stops the children, then
///   the supervisor with the same reason.
/// If a static child fails to start, the ones already started are stopped and
/// the supervisor exits with an error naming the child.
supervisor_actor spawn_supervisor(caf::actor_system& sys, supervisor_config cfg);

} // namespace snakepit
