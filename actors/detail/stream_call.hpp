#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/error.hpp>
#include <caf/message.hpp>
#include <grpcpp/grpcpp.h>

#include "snakepit/actors/detail/shm_arena.hpp"

#include "bridge.grpc.pb.h"
#include "snakepit/actors/detail/python_events.hpp"
#include "snakepit/actors/detail/worker_channel.hpp"

namespace snakepit::detail {

/// (stream_done_atom, stream id, ok, python wall ns, python cpu ns, gRPC
/// status code, status message, Python events dropped): a stream's RPC is
/// over (sent by `stream_call` to its worker, from a gRPC thread).
using stream_done_atom = caf::atom_constant<caf::atom("sdone")>;

/// A typed error from a worker's wire error.
caf::error error_from_wire(const bridge::v1::Error& e);

/// One ExecuteStream call in flight: a bidi reactor that forwards items to
/// the consumer actor straight from gRPC's threads (one thread at a time, so
/// their order holds) and sends the consumer's credit and cancel to Python.
///
/// Every message to the consumer goes out under one mutex, so whoever ends
/// the stream (the end or error from Python, the worker actor on a crash,
/// a cancel) ends it exactly once and nothing follows the last message.
/// The last message waits until the RPC is over and the worker has told the
/// pool the slot is free (`flush`): as with unary calls, a consumer's next
/// request never finds the worker still busy with this stream.
/// The object keeps itself alive until `OnDone`; the channel it uses is
/// counted by its `call_guard`, so it is never destroyed on a gRPC thread.
class stream_call : public grpc::ClientBidiReactor<bridge::v1::StreamRequest,
                                                   bridge::v1::StreamReply>,
                    public std::enable_shared_from_this<stream_call> {
public:
  struct params {
    std::uint64_t id = 0;
    caf::actor consumer;
    caf::actor_addr worker;
    std::string worker_id;
    python_event_source events;
    /// Where items' large payloads arrive (null: inline only).
    std::shared_ptr<shm_arena> shm;
  };

  explicit stream_call(params p);

  /// Starts the RPC with `start` as its first message and a gRPC deadline at
  /// `deadline`. Call once, from the worker actor, on an object owned by a
  /// shared_ptr (it keeps itself alive until `OnDone`).
  void start(bridge::v1::Worker::Stub& stub, std::shared_ptr<channel_slot> slot,
             bridge::v1::ExecuteRequest start, std::chrono::system_clock::time_point deadline);

  /// The consumer can take `n` more items.
  void credit(std::uint32_t n);

  /// Closes the generator; the consumer gets nothing more.
  void cancel();

  /// Ends the stream with `err` as the consumer's last message (unless it has
  /// one already: then that one) and cancels the RPC.
  void fail(const caf::error& err);

  /// Sends the last message, if it is known and not sent yet.
  void flush();

  /// The consumer got its last message (or the stream was cancelled).
  bool finished() const;

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

private:
  void write_locked(bridge::v1::StreamRequest msg);
  /// No more writes are accepted; `drop` also discards those not yet sent.
  /// Releases the hold once nothing is being written.
  void close_writes_locked(bool drop);
  /// Decides the last message (sent by `flush`) unless one was; false then.
  template <class... Ts>
  bool finish_locked(Ts&&... xs);
  void flush_locked();

  call_guard guard_;  // first: destroyed last
  params p_;
  grpc::ClientContext context_;
  bridge::v1::StreamReply reply_;
  mutable std::mutex mtx_;
  std::deque<bridge::v1::StreamRequest> writes_;
  bool writing_ = false;
  bool writes_closed_ = false;
  bool hold_released_ = false;
  bool started_ = false;
  bool finished_ = false;
  /// The last message, until sent.
  caf::message last_;
  std::uint64_t next_index_ = 0;
  /// Items Python may still send: the start's credit plus every `credit`,
  /// less the items received. An item beyond it fails the stream (a worker
  /// ignoring the back-pressure would otherwise fill the consumer's mailbox).
  std::uint64_t credit_ = 0;
  std::int64_t wall_ns_ = 0;
  std::int64_t cpu_ns_ = 0;
  std::uint64_t events_dropped_ = 0;
  bool ended_ok_ = false;
  /// Itself, from `start` until OnDone.
  std::shared_ptr<stream_call> self_;
};

using stream_call_ptr = std::shared_ptr<stream_call>;

} // namespace snakepit::detail
