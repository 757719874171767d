#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>

#include "snakepit/messages/pool_actor.hpp"
#include "snakepit/node/remote_pool.hpp"

namespace snakepit {

/// Loads CAF's middleman into `cfg` (before the actor system is made): what
/// publishing a node and `connect_pool` need.
void use_distribution(caf::actor_system_config& cfg);

/// The pool `pool` of the node at `host:port` (`snakepit run` with `[node]`
/// exporting it), used exactly like a local pool: the same messages, errors,
/// deadlines, sessions and streams. The handle is a local stand-in
/// (`spawn_remote_pool`) that watches the node with heartbeats (`watch`):
/// when the node goes away, calls open there fail `node_down` and the
/// stand-in exits with `node_down`. Blocks while it connects (at most
/// `timeout`): call it outside actors, or from a detached one. `node_down`
/// when nothing answers there, `bad_arguments` when the node does not export
/// that pool.
caf::expected<pool_actor> connect_pool(caf::actor_system& sys, const std::string& host,
                                       std::uint16_t port, const std::string& pool,
                                       remote_pool_options watch = {},
                                       std::chrono::milliseconds timeout
                                       = std::chrono::seconds{10});

} // namespace snakepit
