#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "snakepit/messages/atoms.hpp"
#include "snakepit/supervision/child_spec.hpp"

namespace snakepit {

/// Start a child at run time: `(start_child_atom, child_spec) -> caf::actor`.
using start_child_atom = caf::atom_constant<caf::atom("startchild")>;
/// Stop a child, keeping its spec: `(terminate_child_atom, id) -> bool`
/// (false: no such child); `(terminate_child_atom, handle) -> bool` stops and
/// forgets the child with that handle.
using terminate_child_atom = caf::atom_constant<caf::atom("termchild")>;
/// Start a kept, not running child again: `(restart_child_atom, id) -> caf::actor`.
using restart_child_atom = caf::atom_constant<caf::atom("restartch")>;
/// Forget a kept, not running child: `(delete_child_atom, id) -> bool`.
using delete_child_atom = caf::atom_constant<caf::atom("deletech")>;
/// `(count_children_atom) -> child_counts`.
using count_children_atom = caf::atom_constant<caf::atom("countch")>;
/// `(get_childspec_atom, id) -> child_spec`.
using get_childspec_atom = caf::atom_constant<caf::atom("childspec")>;
/// Inspect: `(which_children_atom) -> std::vector<child_info>`.
using which_children_atom = caf::atom_constant<caf::atom("children")>;
/// A child with `await_ready` reports: `(child_ready_atom, child, error)`.
using child_ready_atom = caf::atom_constant<caf::atom("childready")>;

/// One child as a supervisor sees it (OTP's which_children).
struct child_info {
  std::string id;
  /// "starting" (waiting until ready), "running", "restarting" (dead,
  /// waiting out a back-off or its turn), "stopping", "not running" (kept
  /// spec: terminated, or a transient child that exited normally).
  std::string state;
  /// Restarts of this child since the supervisor started.
  std::uint64_t restarts = 0;
  /// Deliberate replacements (not counted toward restart intensity).
  std::uint64_t replacements = 0;
  caf::actor handle;
  /// "worker" or "supervisor".
  std::string type;
  /// Why it last ended ("normal", or the error's message); empty while it
  /// never did. For a child supervisor that gave up, the cause.
  std::string last_exit;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_info& x) {
  return f(caf::meta::type_name("snakepit::child_info"), x.id, x.state, x.restarts,
           x.replacements, x.handle, x.type, x.last_exit);
}

/// OTP's count_children.
struct child_counts {
  /// Child specs, running or not.
  std::uint32_t specs = 0;
  /// Children that run.
  std::uint32_t active = 0;
  /// Specs of supervisor / worker children.
  std::uint32_t supervisors = 0;
  std::uint32_t workers = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_counts& x) {
  return f(caf::meta::type_name("snakepit::child_counts"), x.specs, x.active, x.supervisors,
           x.workers);
}

/// The running child's handle carried by an `already_started` error, or
/// an empty handle.
caf::actor started_child(const caf::error& err);

/// The interface of a supervisor actor.
///
/// - `(start_child_atom, spec) -> actor`: adds and starts a child at run time;
///   a duplicate id is `already_started` (the handle: `started_child(err)`)
///   or `already_present` (kept, not running).
/// - `(terminate_child_atom, id) -> bool`: stops a child and keeps its spec
///   (temporary children and children of dynamic supervisors are forgotten),
///   answering once it is down (false: no such child).
/// - `(terminate_child_atom, handle) -> bool`: stops and forgets that child.
/// - `(restart_child_atom, id) -> actor`: starts a kept, not running child
///   (`child_running` while it runs, `child_unknown` without such a child).
/// - `(delete_child_atom, id) -> bool`: forgets a kept, not running child.
/// - `(count_children_atom) -> child_counts`, `(get_childspec_atom, id) -> child_spec`.
/// - `(which_children_atom) -> vector<child_info>`: inspection.
/// - `(ready_atom) -> bool`: answers once every declared child has started
///   (and, for children with `await_ready`, is ready), or with the error
///   that stopped the start.
/// - `(child_ready_atom, child, error)`: how children report readiness.
using supervisor_actor = caf::typed_actor<
  caf::replies_to<start_child_atom, child_spec>::with<caf::actor>,
  caf::replies_to<terminate_child_atom, std::string>::with<bool>,
  caf::replies_to<terminate_child_atom, caf::actor>::with<bool>,
  caf::replies_to<restart_child_atom, std::string>::with<caf::actor>,
  caf::replies_to<delete_child_atom, std::string>::with<bool>,
  caf::replies_to<count_children_atom>::with<child_counts>,
  caf::replies_to<get_childspec_atom, std::string>::with<child_spec>,
  caf::replies_to<which_children_atom>::with<std::vector<child_info>>,
  caf::replies_to<ready_atom>::with<bool>,
  caf::reacts_to<child_ready_atom, caf::actor_addr, caf::error>>;

} // namespace snakepit
