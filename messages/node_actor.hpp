#pragma once

#include <string>
#include <vector>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "snakepit/messages/atoms.hpp"
#include "snakepit/messages/pool_actor.hpp"

namespace snakepit {

/// The interface a node (`snakepit run` with `[node]`, docs/nodes.md)
/// publishes through CAF's middleman.
///
/// - `(lookup_pool_atom, name) -> pool_actor`: the pool `name` as it runs
///   now, if the node exports it (else `bad_arguments` listing the exports).
///   The handle is used like a local pool's: same messages, errors,
///   deadlines, sessions and streams.
/// - `(node_info_atom) -> (name, exports)`: the node's name and the pools it
///   exports; also what a heartbeat asks.
using node_actor = caf::typed_actor<
  caf::replies_to<lookup_pool_atom, std::string>::with<pool_actor>,
  caf::replies_to<node_info_atom>::with<std::string, std::vector<std::string>>>;

} // namespace snakepit
