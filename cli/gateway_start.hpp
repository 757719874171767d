#pragma once

#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "snakepit/gateway/gateway_server.hpp"
#include "snakepit/supervision/gateway_spec.hpp"
#include "snakepit/supervision/tree.hpp"
#include "snakepit/supervision/tree_spec.hpp"

namespace snakepit::cli {

/// Starts the gateway a tree file asks for (`[gateway]`; by default a unix
/// socket in the tree's runtime directory); null when `enabled = false`. The
/// token file is read with the same ownership checks as the metrics token.
caf::expected<std::unique_ptr<gateway_server>>
start_gateway(caf::actor_system& sys, const tree_spec& spec, const running_tree& tree);

} // namespace snakepit::cli
