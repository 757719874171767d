#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/actor_addr.hpp>

#include "bridge.pb.h"
#include "snakepit/actors/batch_limits.hpp"
#include "snakepit/actors/detail/batch_stream.hpp"

namespace snakepit::detail {

using snakepit::batch_limits;

class worker_channel;

/// The worker actor's side of its ExecuteBatches stream: which calls wait to
/// be written, which were written and are unanswered, and when the next
/// batch may go. Coalescing has no timer: a batch is written when no write
/// is in flight and fewer than `max_unanswered` batches are open, and holds
/// whatever queued up meanwhile (under light load: one call, at once).
///
/// Used from the worker actor only (not thread-safe).
class batch_lane {
public:
  enum class state { closed, opening, open, failed };

  explicit batch_lane(batch_limits limits = {});

  /// Runs after each batch with calls is written: (calls, wire bytes).
  std::function<void(std::uint32_t, std::int64_t)> on_batch;

  /// Opens the stream; calls go in batches once Python's first (empty)
  /// reply arrives (`opened`).
  void open(worker_channel& channel, caf::actor_addr worker);

  state current() const { return state_; }
  bool is_open() const { return state_ == state::open; }
  /// Whose messages are this stream's (batch_*_atom carry it).
  std::uint64_t stream_id() const { return stream_id_; }

  void opened();
  /// The stream is over: nothing more goes in batches.
  void failed();

  /// Whether a call of `bytes` wire bytes may go in a batch.
  bool fits(std::int64_t bytes) const { return is_open() && bytes <= limits_.max_bytes; }

  /// Queues a call for the next batch. True when the actor should schedule
  /// a flush (it sends itself one, so the calls already in its mailbox join
  /// this batch); false when one is scheduled or a write/answer will flush.
  bool push(std::uint64_t seq, bridge::v1::ExecuteRequest&& wire, std::int64_t bytes);

  /// Tells Python to drop a call written already and not started; rides
  /// on the next batch. Same return as `push`.
  bool cancel(std::uint64_t seq);

  /// Removes a call not written yet; true when it was waiting here.
  bool drop_waiting(std::uint64_t seq);

  /// Removes a call not written yet and gives its request back.
  std::optional<bridge::v1::ExecuteRequest> take_waiting(std::uint64_t seq);

  /// Writes nothing more; replies still arrive (the process may have sent
  /// some just before it died).
  void seal();

  /// The scheduled flush: writes a batch when allowed.
  void scheduled_flush();

  /// The last batch left; writes the next if allowed.
  void written();

  /// A result for `seq` arrived; writes the next batch if that opens room.
  void answered(std::uint64_t seq);

  /// Whether `seq` was written and is not answered.
  bool is_sent(std::uint64_t seq) const { return sent_.count(seq) > 0; }

  /// Whether `seq` may have started in Python: Python starts the calls of
  /// the stream in order, at most `capacity` at once, so only the first
  /// `capacity` unanswered ones may have.
  bool may_have_started(std::uint64_t seq, std::uint32_t capacity) const;

  /// Cancels the RPC; calls still waiting are the caller's to fail.
  void close();

  /// Batch messages with calls written so far, and the calls they carried.
  std::uint64_t batches_written() const { return batches_written_; }
  std::uint64_t calls_written() const { return calls_written_; }

  /// Calls written and not answered plus waiting ones, in order.
  std::vector<std::uint64_t> unanswered() const;

private:
  bool can_write() const;
  /// Marks a flush as scheduled when one may write now; true: the caller
  /// sends it (see `push`).
  bool schedule_flush();
  void write_batch();

  /// A call not written yet.
  struct waiting_call {
    std::uint64_t seq;
    bridge::v1::ExecuteRequest wire;
    std::int64_t bytes;
  };

  batch_limits limits_;
  state state_ = state::closed;
  std::uint64_t stream_id_ = 0;
  std::shared_ptr<batch_stream> stream_;
  std::deque<waiting_call> waiting_;
  std::vector<std::uint64_t> cancels_;
  /// Written and unanswered: seq -> number of the batch it went in.
  std::map<std::uint64_t, std::uint64_t> sent_;
  /// Batches with unanswered calls: number -> calls unanswered.
  std::unordered_map<std::uint64_t, std::uint32_t> open_batches_;
  std::uint64_t next_batch_ = 0;
  bool writing_ = false;
  bool flush_scheduled_ = false;
  std::uint64_t batches_written_ = 0;
  std::uint64_t calls_written_ = 0;
};

} // namespace snakepit::detail
