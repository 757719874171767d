#pragma once

#include <caf/actor_system_config.hpp>

namespace snakepit {

/// Registers snakepit's message types (requests, replies, statuses, values)
/// and its error category (so `to_string` of an error reads well). Call it
/// on every node's config before creating the actor system: an unregistered
/// type works locally but fails at run time when sent to another node.
void add_message_types(caf::actor_system_config& cfg);

} // namespace snakepit
