#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include <caf/actor_addr.hpp>
#include <caf/atom.hpp>
#include <grpcpp/grpcpp.h>

#include "bridge.grpc.pb.h"
#include "snakepit/actors/detail/worker_channel.hpp"

namespace snakepit::detail {

using batch_reply_ptr = std::shared_ptr<bridge::v1::BatchReply>;

/// (batch_reply_atom, stream id, reply): results Python sent on the stream.
using batch_reply_atom = caf::atom_constant<caf::atom("breply")>;
/// (batch_written_atom, stream id, ok): the last batch left for the socket.
using batch_written_atom = caf::atom_constant<caf::atom("bwritten")>;
/// (batch_closed_atom, stream id, gRPC status code, message): the RPC is over.
using batch_closed_atom = caf::atom_constant<caf::atom("bclosed")>;

/// The client end of one ExecuteBatches RPC: a bidi reactor that writes the
/// batches its worker actor hands it (one at a time: the actor waits for
/// `batch_written_atom` before the next) and sends every reply it reads to
/// the actor. Nothing here decides what goes in a batch; that is the actor's
/// (`batch_lane`).
///
/// The object keeps itself alive until `OnDone`; its `call_guard` keeps the
/// channel from being destroyed on a gRPC thread.
class batch_stream : public grpc::ClientBidiReactor<bridge::v1::BatchRequest,
                                                    bridge::v1::BatchReply>,
                     public std::enable_shared_from_this<batch_stream> {
public:
  batch_stream(std::uint64_t id, caf::actor_addr worker);

  /// Opens the RPC. Call once, on an object owned by a shared_ptr.
  void start(bridge::v1::Worker::Stub& stub, std::shared_ptr<channel_slot> slot);

  /// Writes `batch`; at most one write at a time. False once closed.
  bool write(std::unique_ptr<bridge::v1::BatchRequest> batch);

  /// Cancels the RPC (the worker is going away); replies stop.
  void close();

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

private:
  call_guard guard_;  // first: destroyed last
  std::uint64_t id_;
  /// Weak: a stream never keeps its worker alive.
  caf::actor_addr worker_;
  template <class... Ts>
  void tell(Ts&&... xs);
  grpc::ClientContext context_;
  batch_reply_ptr reply_;
  std::unique_ptr<bridge::v1::BatchRequest> writing_;
  std::mutex mtx_;
  bool closed_ = false;
  bool hold_released_ = false;
  std::shared_ptr<batch_stream> self_;
};

} // namespace snakepit::detail
