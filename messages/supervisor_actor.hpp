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
/// Stop a child for good: `(terminate_child_atom, id) -> bool` (false: no such child).
using terminate_child_atom = caf::atom_constant<caf::atom("termchild")>;
/// Inspect: `(which_children_atom) -> std::vector<child_info>`.
using which_children_atom = caf::atom_constant<caf::atom("children")>;
/// A child with `await_ready` reports: `(child_ready_atom, child, error)`.
using child_ready_atom = caf::atom_constant<caf::atom("childready")>;

/// One child as a supervisor sees it.
struct child_info {
  std::string id;
  /// "starting" (waiting until ready), "running", "restarting" (dead,
  /// waiting out a back-off or its turn), "stopping".
  std::string state;
  /// Restarts of this child since the supervisor started.
  std::uint64_t restarts = 0;
  /// Deliberate replacements (not counted toward restart intensity).
  std::uint64_t replacements = 0;
  caf::actor handle;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_info& x) {
  return f(caf::meta::type_name("snakepit::child_info"), x.id, x.state, x.restarts,
           x.replacements, x.handle);
}

/// The interface of a supervisor actor.
///
/// - `(start_child_atom, spec) -> actor`: adds and starts a child at run time.
/// - `(terminate_child_atom, id) -> bool`: stops a child for good, answering
///   once it is down (false: no such child).
/// - `(which_children_atom) -> vector<child_info>`: inspection.
/// - `(ready_atom) -> bool`: answers once every declared child has started
///   (and, for children with `await_ready`, is ready), or with the error
///   that stopped the start.
/// - `(child_ready_atom, child, error)`: how children report readiness.
using supervisor_actor = caf::typed_actor<
  caf::replies_to<start_child_atom, child_spec>::with<caf::actor>,
  caf::replies_to<terminate_child_atom, std::string>::with<bool>,
  caf::replies_to<which_children_atom>::with<std::vector<child_info>>,
  caf::replies_to<ready_atom>::with<bool>,
  caf::reacts_to<child_ready_atom, caf::actor_addr, caf::error>>;

} // namespace snakepit
