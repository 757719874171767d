#include "snakepit/actors/detail/batch_stream.hpp"

#include <caf/all.hpp>

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(snakepit::detail::batch_reply_ptr)

namespace snakepit::detail {

batch_stream::batch_stream(std::uint64_t id, caf::actor_addr worker)
  : id_(id), worker_(std::move(worker)) {
}

template <class... Ts>
void batch_stream::tell(Ts&&... xs) {
  if (auto worker = caf::actor_cast<caf::actor>(worker_))
    caf::anon_send(worker, std::forward<Ts>(xs)...);
}

void batch_stream::start(bridge::v1::Worker::Stub& stub, std::shared_ptr<channel_slot> slot) {
  guard_.attach(std::move(slot));
  self_ = shared_from_this();
  stub.async()->ExecuteBatches(&context_, this);
  reply_ = std::make_shared<bridge::v1::BatchReply>();
  StartRead(reply_.get());
  // Batches are written from the worker actor, outside reactions: the hold
  // keeps the RPC open for them until `close`.
  AddHold();
  StartCall();
}

bool batch_stream::write(std::unique_ptr<bridge::v1::BatchRequest> batch) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (closed_ || writing_)
    return false;
  writing_ = std::move(batch);
  StartWrite(writing_.get());
  return true;
}

void batch_stream::close() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (closed_)
    return;
  closed_ = true;
  context_.TryCancel();
  if (!writing_ && !hold_released_) {
    hold_released_ = true;
    RemoveHold();
  }
}

void batch_stream::OnWriteDone(bool ok) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    writing_.reset();
    if (closed_ && !hold_released_) {
      hold_released_ = true;
      RemoveHold();
    }
  }
  tell(batch_written_atom::value, id_, ok);
}

void batch_stream::OnReadDone(bool ok) {
  if (!ok) {
    // The RPC is ending: no more writes either. A reply that does not parse fails the read
    // too but leaves the RPC open (it would hang until the process dies): cancel it, so its
    // end reaches the worker now (a no-op when the RPC has its status already).
    std::lock_guard<std::mutex> guard{mtx_};
    closed_ = true;
    context_.TryCancel();
    if (!writing_ && !hold_released_) {
      hold_released_ = true;
      RemoveHold();
    }
    return;
  }
  tell(batch_reply_atom::value, id_, std::move(reply_));
  reply_ = std::make_shared<bridge::v1::BatchReply>();
  StartRead(reply_.get());
}

void batch_stream::OnDone(const grpc::Status& status) {
  tell(batch_closed_atom::value, id_,
                 static_cast<std::int32_t>(status.error_code()), status.error_message());
  auto keep = std::move(self_);  // may destroy this object when it goes
}

} // namespace snakepit::detail
