#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

#include <caf/error.hpp>

#include "gateway.pb.h"
#include "snakepit/messages/execute_reply.hpp"
#include "snakepit/messages/execute_request.hpp"

// The gateway's translations between its wire (messages/gateway.proto) and
// the pool's typed messages, shared by its unary and streamed RPCs.

namespace snakepit::detail {

/// `payload_too_large` for a reply of `size` bytes over the gateway's
/// `max_message_bytes`.
caf::error gateway_reply_too_large(std::size_t size, std::size_t limit);

/// Writes `err` as the wire's `Failure` (its kind, message, Python details).
void fill(snakepit::gateway::v1::Failure* out, const caf::error& err);

/// The request a gateway call becomes; `deadline`, when there is one, is the
/// request's deadline.
execute_request to_request(const snakepit::gateway::v1::CallRequest& req,
                           std::optional<std::chrono::system_clock::time_point> deadline);

/// Writes a pool's answer into `out`; a result over `max_bytes` becomes a
/// `payload_too_large` failure.
void fill(snakepit::gateway::v1::CallReply* out, execute_reply&& x, std::size_t max_bytes);

} // namespace snakepit::detail
