#pragma once

#include <chrono>
#include <string>

#include <caf/actor_system.hpp>

#include "snakepit/messages/node_actor.hpp"
#include "snakepit/messages/pool_actor.hpp"

namespace snakepit {

/// How a remote pool's stand-in watches its node.
struct remote_pool_options {
  /// "host:port" of the node, for messages.
  std::string node_address;
  /// The pool's name on its node.
  std::string pool;
  /// Its name here (a tree's child), in its status; empty: the node's name.
  std::string local_name;
  /// How often the node is asked whether it is alive.
  std::chrono::milliseconds heartbeat_interval{1000};
  /// A node that answers no heartbeat for this long is down, even when its
  /// TCP connection stays open (a frozen or partitioned node).
  std::chrono::milliseconds heartbeat_timeout{3000};
};

/// A local stand-in for a pool of another node: it answers every pool message
/// by asking the remote pool, so callers use it like a local pool. When the
/// node goes away (its connection drops, or it misses heartbeats), every call
/// still open there fails `node_down` (it may or may not have run) and the
/// stand-in exits with `node_down`, which a supervisor sees as its child's
/// failure. Started by `connect_pool`.
pool_actor spawn_remote_pool(caf::actor_system& sys, node_actor node, pool_actor pool,
                             remote_pool_options options);

} // namespace snakepit
