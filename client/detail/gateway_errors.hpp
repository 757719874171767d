#pragma once

#include <string>

#include <grpcpp/grpcpp.h>

#include "gateway.pb.h"
#include "snakepit/messages/errc.hpp"

namespace snakepit::detail {

/// A call's failure as the gateway sent it.
error_info from_failure(const snakepit::gateway::v1::Failure& failure);

/// What a gRPC status other than OK from the gateway at `address` means to a
/// caller: `unavailable` (no gateway, or it went away), `timeout`,
/// `unauthenticated`, `pool_saturated` (a gateway limit), `payload_too_large`
/// (a message over a size limit), else `internal`.
error_info from_status(const grpc::Status& status, const std::string& address);

} // namespace snakepit::detail
