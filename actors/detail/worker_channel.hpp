#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor_addr.hpp>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "bridge.grpc.pb.h"

namespace snakepit::detail {

/// A channel and the number of calls that still use it. gRPC aborts when a
/// channel's last reference is dropped on one of its own callback threads
/// (which happens when a worker actor is gone before its calls complete), so
/// channels are destroyed only by the channel keeper's thread, once retired
/// and no call object refers to them any more.
struct channel_slot {
  std::shared_ptr<grpc::Channel> channel;
  std::atomic<int> calls{0};
  std::atomic<bool> retired{false};
};

/// Counts one call on a channel for as long as it lives.
class call_guard {
public:
  call_guard() = default;
  /// Starts counting this call on `slot` (once).
  void attach(std::shared_ptr<channel_slot> slot);
  call_guard(const call_guard&) = delete;
  call_guard& operator=(const call_guard&) = delete;
  ~call_guard();

private:
  std::shared_ptr<channel_slot> slot_;
};

/// One unary Execute call in flight. Owns everything gRPC needs until the
/// completion callback has run (context, request, response, status).
struct rpc_call {
  /// First member, so destroyed last: after the context has let go of the call.
  call_guard guard;
  std::uint64_t seq = 0;
  grpc::ClientContext context;
  bridge::v1::ExecuteRequest request;
  bridge::v1::ExecuteResponse response;
  /// The wire bytes of both (the reply is parsed by us: worker_channel.cpp).
  grpc::ByteBuffer request_bytes;
  grpc::ByteBuffer response_bytes;
  grpc::Status status;
};

using rpc_call_ptr = std::shared_ptr<rpc_call>;

class stream_call;
class batch_stream;

/// The gRPC channel to one worker's unix socket. Calls are asynchronous
/// (callback API); the completion runs on a gRPC thread and must only hand
/// the call back to its actor.
class worker_channel {
public:
  /// Connects lazily to `unix:<socket_path>`; message size limits on both
  /// directions are `max_message_bytes`.
  worker_channel(const std::string& socket_path, std::int64_t max_message_bytes);

  worker_channel(const worker_channel&) = delete;
  worker_channel& operator=(const worker_channel&) = delete;

  /// Hands the channel to the keeper, which destroys it after its last call.
  ~worker_channel();

  /// Starts `call`; `done` runs once on a gRPC thread when it completes.
  void execute(rpc_call_ptr call, std::function<void(rpc_call_ptr)> done);

  /// Starts an ExecuteStream call with `start` as its first message; `call`
  /// reports to its consumer and worker itself (stream_call.hpp).
  void execute_stream(const std::shared_ptr<stream_call>& call,
                      bridge::v1::ExecuteRequest start,
                      std::chrono::system_clock::time_point deadline);

  /// Opens the worker's ExecuteBatches stream; its replies and its end go
  /// to `worker` tagged with `id` (batch_stream.hpp).
  std::shared_ptr<batch_stream> open_batches(std::uint64_t id, caf::actor_addr worker);

  /// Health ping with a deadline; `done(answered, response)` runs once on a
  /// gRPC thread.
  void ping(std::chrono::milliseconds timeout,
            std::function<void(bool, const bridge::v1::PingResponse&)> done);

  /// The adapter's tools (ListTools) with a deadline; `done(answered,
  /// response)` runs once on a gRPC thread.
  void list_tools(std::chrono::milliseconds timeout,
                  std::function<void(bool, const bridge::v1::ListToolsResponse&)> done);

  /// Tells the Python side a session ended (its `on_session_closed` hook);
  /// `done(ok)` runs once on a gRPC thread.
  void close_session(const std::string& session_id, const std::string& reason,
                     std::chrono::milliseconds timeout, std::function<void(bool)> done);

private:
  std::shared_ptr<channel_slot> slot_;
  std::unique_ptr<bridge::v1::Worker::Stub> stub_;
  /// Unary calls, whose replies we parse ourselves.
  std::unique_ptr<grpc::GenericStub> generic_;
};

} // namespace snakepit::detail
