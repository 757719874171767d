#pragma once

#include <vector>

#include "bridge.pb.h"

#include "snakepit/messages/tool_spec.hpp"

// Conversions between `tool_spec` and the wire's `ToolSpec` (bridge.proto).
// Internal: protobuf stays out of the public headers.

namespace snakepit::detail {

/// The tools a worker's ListTools answered.
[[nodiscard]] std::vector<tool_spec> from_proto(const bridge::v1::ListToolsResponse& x);

/// Reads one tool's spec.
[[nodiscard]] tool_spec from_proto(const bridge::v1::ToolSpec& x);

/// Writes `x` into `out` (appending nothing else).
void to_proto(const tool_spec& x, bridge::v1::ToolSpec* out);

} // namespace snakepit::detail
