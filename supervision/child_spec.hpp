#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

namespace snakepit {

/// When a supervisor restarts a child (OTP's meaning).
enum class restart_type {
  /// Always restarted.
  permanent,
  /// Restarted only after an abnormal exit.
  transient,
  /// Never restarted, not even when a sibling's failure stops it.
  temporary,
};

/// How a supervisor stops a child.
struct shutdown_policy {
  enum class kind { brutal_kill, timeout, infinity };
  kind mode = kind::timeout;
  /// For `kind::timeout`: ask, wait this long, then kill.
  caf::timespan timeout = std::chrono::seconds{5};

  static shutdown_policy brutal_kill() { return {kind::brutal_kill, caf::timespan{0}}; }
  static shutdown_policy after(caf::timespan t) { return {kind::timeout, t}; }
  /// Wait as long as it takes (the rule for supervisor children).
  static shutdown_policy infinity() { return {kind::infinity, caf::timespan{0}}; }
};

/// Whether a child is a worker or a supervisor of its own.
enum class child_kind { worker, supervisor };

/// How to start, restart and stop one child.
struct child_spec {
  /// Unique among the supervisor's children.
  std::string id;
  /// Spawns the child (without linking it: the supervisor links and monitors).
  std::function<caf::expected<caf::actor>(caf::actor_system&)> start;
  restart_type restart = restart_type::permanent;
  shutdown_policy shutdown;
  child_kind kind = child_kind::worker;
  /// Above zero (the default: 30 s): the start function runs on a thread of
  /// its own (never the supervisor's, nor a scheduler thread), and a start
  /// that takes longer is a start failure (the actor it makes after all is
  /// killed). Meanwhile the supervisor answers requests as usual. Zero: the
  /// start function runs inline on the supervisor, saving a thread start;
  /// only for start functions that just spawn an actor.
  caf::timespan start_timeout = std::chrono::seconds{30};
  /// OTP's significant flag: with the supervisor's `auto_shutdown`, this
  /// child ending on its own (not stopped by its supervisor) may end the
  /// supervisor. Only for transient and temporary children.
  bool significant = false;
  /// Optional: makes the supervisor wait, after starting the child and before
  /// starting the next one, until the child is ready. Called with the child
  /// and the supervisor; it must arrange for exactly one
  /// `(child_ready_atom, child address, error)` to reach the supervisor
  /// (an empty error: ready). If the child dies first, its DOWN decides.
  std::function<void(caf::actor_system&, const caf::actor& child,
                     const caf::actor& supervisor)>
    await_ready;
};

/// What a start function returns to say "ignore" (OTP's `ignore`): the
/// supervisor keeps the spec without running anything and starts the next
/// child.
caf::error ignore_child();

} // namespace snakepit

// Child specs hold a start function: they travel between local actors only.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(snakepit::child_spec)
