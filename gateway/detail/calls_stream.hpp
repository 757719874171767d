#pragma once

#include <grpcpp/grpcpp.h>

#include "gateway.grpc.pb.h"
#include "snakepit/gateway/gateway_server.hpp"

namespace snakepit::detail {

/// The reactor of one `Calls` stream (messages/gateway.proto): it reads frames
/// of calls, admits each one (the limits of `[gateway]`), sends it to its
/// pool, and writes the answers back in frames, every answer that is ready
/// per write. A client that goes away ends its stream's calls' answers, not
/// the calls. Deletes itself when gRPC is done with it.
grpc::ServerBidiReactor<snakepit::gateway::v1::CallFrame, snakepit::gateway::v1::ReplyFrame>*
make_calls_stream(gateway_server::impl& owner, grpc::CallbackServerContext* ctx);

} // namespace snakepit::detail
