#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "bridge.grpc.pb.h"

namespace snakepit::detail {

/// One unary Execute call in flight. Owns everything gRPC needs until the
/// completion callback has run (context, request, response, status).
struct rpc_call {
  std::uint64_t seq = 0;
  grpc::ClientContext context;
  bridge::v1::ExecuteRequest request;
  bridge::v1::ExecuteResponse response;
  grpc::Status status;
  /// Keeps the channel alive while the call runs.
  std::shared_ptr<grpc::Channel> channel;
};

using rpc_call_ptr = std::shared_ptr<rpc_call>;

/// The gRPC channel to one worker's unix socket. Calls are asynchronous
/// (callback API); the completion runs on a gRPC thread and must only hand
/// the call back to its actor.
class worker_channel {
public:
  /// Connects lazily to `unix:<socket_path>`; message size limits on both
  /// directions are `max_message_bytes`.
  worker_channel(const std::string& socket_path, std::int64_t max_message_bytes);

  /// Starts `call`; `done` runs once on a gRPC thread when it completes.
  void execute(rpc_call_ptr call, std::function<void(rpc_call_ptr)> done);

  const std::shared_ptr<grpc::Channel>& channel() const noexcept {
    return channel_;
  }

private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<bridge::v1::Worker::Stub> stub_;
};

} // namespace snakepit::detail
