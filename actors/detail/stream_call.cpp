#include "snakepit/actors/detail/stream_call.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "snakepit/messages/atoms.hpp"
#include "snakepit/actors/detail/shm_value_proto.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/messages/stream.hpp"

namespace snakepit::detail {

caf::error error_from_wire(const bridge::v1::Error& e) {
  errc code = errc::internal;
  switch (e.kind()) {
    case bridge::v1::UNKNOWN_TOOL: code = errc::unknown_tool; break;
    case bridge::v1::BAD_ARGUMENTS: code = errc::bad_arguments; break;
    case bridge::v1::PYTHON_EXCEPTION: code = errc::python_exception; break;
    case bridge::v1::ENCODE_FAILED: code = errc::encode_failed; break;
    case bridge::v1::PAYLOAD_TOO_LARGE: code = errc::payload_too_large; break;
    case bridge::v1::TIMEOUT: code = errc::timeout; break;
    default: break;
  }
  return make_error(code, e.message(), e.python_type(), e.traceback());
}

stream_call::stream_call(params p) : p_(std::move(p)) {
}

void stream_call::start(bridge::v1::Worker::Stub& stub, std::shared_ptr<channel_slot> slot,
                        bridge::v1::ExecuteRequest start,
                        std::chrono::system_clock::time_point deadline) {
  guard_.attach(std::move(slot));
  self_ = shared_from_this();
  context_.set_deadline(deadline);
  stub.async()->ExecuteStream(&context_, this);
  bridge::v1::StreamRequest first;
  *first.mutable_start() = std::move(start);
  {
    std::lock_guard<std::mutex> guard{mtx_};
    credit_ = std::max<std::uint64_t>(1, first.start().stream_credit());  // 0 counts as 1
    write_locked(std::move(first));
    started_ = true;
  }
  StartRead(&reply_);
  // Credit and cancel are written from the worker actor, outside reactions:
  // the hold keeps the RPC open for them until no more writes can come.
  AddHold();
  StartCall();
}

void stream_call::write_locked(bridge::v1::StreamRequest msg) {
  if (writes_closed_)
    return;
  writes_.push_back(std::move(msg));
  if (!writing_) {
    writing_ = true;
    StartWrite(&writes_.front());  // a deque keeps the element in place
  }
}

void stream_call::close_writes_locked(bool drop) {
  writes_closed_ = true;
  if (drop && writing_)
    writes_.erase(writes_.begin() + 1, writes_.end());  // the first is being written
  else if (drop)
    writes_.clear();
  if (!writing_ && !hold_released_ && started_) {
    hold_released_ = true;
    RemoveHold();  // never runs OnDone inline: safe under the mutex
  }
}

void stream_call::credit(std::uint32_t n) {
  if (n == 0)
    return;
  std::lock_guard<std::mutex> guard{mtx_};
  credit_ += n;
  bridge::v1::StreamRequest msg;
  msg.set_credit(n);
  write_locked(std::move(msg));
}

void stream_call::cancel() {
  std::lock_guard<std::mutex> guard{mtx_};
  finished_ = true;
  last_ = caf::message{};  // nothing after a cancel, not even a last message due
  bridge::v1::StreamRequest msg;
  msg.set_cancel(true);
  write_locked(std::move(msg));
  close_writes_locked(false);
}

void stream_call::fail(const caf::error& err) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    finish_locked(stream_error_atom::value, p_.id, err);
    flush_locked();
    close_writes_locked(true);
  }
  context_.TryCancel();
}

void stream_call::flush() {
  std::lock_guard<std::mutex> guard{mtx_};
  flush_locked();
}

void stream_call::flush_locked() {
  if (!last_.empty())
    caf::anon_send(p_.consumer, std::move(last_));
  last_ = caf::message{};
}

bool stream_call::finished() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return finished_;
}

template <class... Ts>
bool stream_call::finish_locked(Ts&&... xs) {
  if (finished_)
    return false;
  finished_ = true;
  last_ = caf::make_message(std::forward<Ts>(xs)...);
  return true;
}

void stream_call::OnReadDone(bool ok) {
  if (!ok) {  // the RPC is over: OnDone follows
    std::lock_guard<std::mutex> guard{mtx_};
    close_writes_locked(true);
    return;
  }
  if (reply_.has_telemetry())
    events_dropped_ = publish_python_events(reply_.telemetry(), p_.events);
  switch (reply_.kind_case()) {
    case bridge::v1::StreamReply::kItem: {
      // Items are results: their segments are ours once mapped.
      shm_reader shm;
      shm.arena = p_.shm.get();
      shm.take = true;
      auto item = from_proto(std::move(*reply_.mutable_item()), shm);
      std::lock_guard<std::mutex> guard{mtx_};
      if (shm.error) {
        finish_locked(stream_error_atom::value, p_.id, std::move(shm.error));
        close_writes_locked(true);
        break;
      }
      if (!finished_ && credit_ == 0) {
        // Python ignores the back-pressure: the consumer never asked for this.
        finish_locked(stream_error_atom::value, p_.id,
                      make_error(errc::internal,
                                 fmt::format("worker {} sent stream item {} beyond the "
                                             "consumer's credit: the stream is cancelled",
                                             p_.worker_id, next_index_)));
        close_writes_locked(true);
        context_.TryCancel();
        break;
      }
      if (credit_ > 0)
        --credit_;
      // From this one thread at a time to one actor: the order holds.
      if (!finished_)
        caf::anon_send(p_.consumer, stream_item_atom::value, p_.id, next_index_++,
                       std::move(item));
      break;
    }
    case bridge::v1::StreamReply::kEnd: {
      auto& end = reply_.end();
      stream_summary summary;
      summary.items = end.items();
      summary.python_wall = caf::timespan{end.wall_ns()};
      summary.python_cpu = caf::timespan{end.cpu_ns()};
      summary.worker_id = p_.worker_id;
      std::lock_guard<std::mutex> guard{mtx_};
      wall_ns_ = end.wall_ns();
      cpu_ns_ = end.cpu_ns();
      ended_ok_ = finish_locked(stream_end_atom::value, p_.id, std::move(summary));
      close_writes_locked(true);
      break;
    }
    case bridge::v1::StreamReply::kError: {
      std::lock_guard<std::mutex> guard{mtx_};
      finish_locked(stream_error_atom::value, p_.id, error_from_wire(reply_.error()));
      close_writes_locked(true);
      break;
    }
    default:
      break;  // a reply with telemetry only
  }
  reply_.Clear();
  // Read on to the end of the RPC even after the last message.
  StartRead(&reply_);
}

void stream_call::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> guard{mtx_};
  writing_ = false;
  if (!writes_.empty())
    writes_.pop_front();
  if (!ok) {  // the RPC is ending: nothing more can be written
    writes_.clear();
    writes_closed_ = true;
  }
  if (!writes_.empty()) {
    writing_ = true;
    StartWrite(&writes_.front());
    return;
  }
  if (writes_closed_ && !hold_released_) {
    hold_released_ = true;
    RemoveHold();
  }
}

void stream_call::OnDone(const grpc::Status& status) {
  // The last reaction: this object may go with `keep` at the end. Its channel
  // does not (the call guard leaves that to the channel keeper).
  auto keep = std::move(self_);
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!finished_) {
      switch (status.error_code()) {
        case grpc::StatusCode::DEADLINE_EXCEEDED:
          finish_locked(stream_error_atom::value, p_.id,
                        make_error(errc::timeout,
                                   fmt::format("the stream did not finish within its "
                                               "deadline in worker {}",
                                               p_.worker_id)));
          break;
        case grpc::StatusCode::RESOURCE_EXHAUSTED:
          finish_locked(stream_error_atom::value, p_.id,
                        make_error(errc::payload_too_large,
                                   fmt::format("an item from worker {} is over the payload "
                                               "limit: {}",
                                               p_.worker_id, status.error_message())));
          break;
        default:
          // Ended without a last message: the worker is stopping (OK), or
          // most likely the process died; the worker actor knows which and
          // fails the stream with the real cause.
          break;
      }
    }
  }
  // The worker frees the slot, then flushes the last message.
  if (auto worker = caf::actor_cast<caf::actor>(p_.worker))
    caf::anon_send(worker, stream_done_atom::value, p_.id, ended_ok_, wall_ns_, cpu_ns_,
                   static_cast<std::int32_t>(status.error_code()), status.error_message(),
                   events_dropped_);
  else
    flush();
}

} // namespace snakepit::detail
