#include "snakepit/actors/detail/batch_lane.hpp"

#include <algorithm>
#include <atomic>

#include "snakepit/actors/detail/worker_channel.hpp"

namespace snakepit::detail {

namespace {

std::uint64_t next_stream_id() {
  static std::atomic<std::uint64_t> next{0};
  return ++next;
}

} // namespace

batch_lane::batch_lane(batch_limits limits) : limits_(limits) {
}

void batch_lane::open(worker_channel& channel, caf::actor_addr worker) {
  stream_id_ = next_stream_id();
  stream_ = channel.open_batches(stream_id_, std::move(worker));
  state_ = state::opening;
}

void batch_lane::opened() {
  if (state_ == state::opening)
    state_ = state::open;
}

void batch_lane::failed() {
  state_ = state::failed;
  writing_ = false;
  stream_.reset();
}

bool batch_lane::push(std::uint64_t seq, bridge::v1::ExecuteRequest&& wire, std::int64_t bytes) {
  waiting_.push_back({seq, std::move(wire), bytes});
  return schedule_flush();
}

bool batch_lane::cancel(std::uint64_t seq) {
  if (!is_open())
    return false;
  cancels_.push_back(seq);
  return schedule_flush();
}

bool batch_lane::schedule_flush() {
  if (flush_scheduled_ || !can_write())
    return false;
  flush_scheduled_ = true;
  return true;
}

bool batch_lane::drop_waiting(std::uint64_t seq) {
  return take_waiting(seq).has_value();
}

std::optional<bridge::v1::ExecuteRequest> batch_lane::take_waiting(std::uint64_t seq) {
  auto i = std::find_if(waiting_.begin(), waiting_.end(),
                        [seq](const waiting_call& w) { return w.seq == seq; });
  if (i == waiting_.end())
    return std::nullopt;
  auto out = std::move(i->wire);
  waiting_.erase(i);
  return out;
}

void batch_lane::seal() {
  if (state_ == state::open || state_ == state::opening)
    state_ = state::failed;
}

bool batch_lane::can_write() const {
  if (!is_open() || writing_)
    return false;
  if (!cancels_.empty())
    return true;  // a cancel never waits for room
  return !waiting_.empty() && open_batches_.size() < limits_.max_unanswered;
}

void batch_lane::scheduled_flush() {
  flush_scheduled_ = false;
  if (can_write())
    write_batch();
}

void batch_lane::written() {
  writing_ = false;
  if (!flush_scheduled_ && can_write())
    write_batch();
}

void batch_lane::answered(std::uint64_t seq) {
  auto i = sent_.find(seq);
  if (i == sent_.end())
    return;
  auto batch = open_batches_.find(i->second);
  if (batch != open_batches_.end() && --batch->second == 0)
    open_batches_.erase(batch);
  sent_.erase(i);
  if (!flush_scheduled_ && can_write())
    write_batch();
}

void batch_lane::write_batch() {
  auto batch = std::make_unique<bridge::v1::BatchRequest>();
  for (auto seq : cancels_)
    batch->add_cancel(seq);
  cancels_.clear();
  auto number = ++next_batch_;
  std::uint32_t calls = 0;
  std::int64_t bytes = 0;
  if (open_batches_.size() < limits_.max_unanswered) {
    while (!waiting_.empty() && calls < limits_.max_calls
           && (calls == 0 || bytes + waiting_.front().bytes <= limits_.max_bytes)) {
      auto& next = waiting_.front();
      auto* call = batch->add_calls();
      call->set_seq(next.seq);
      *call->mutable_request() = std::move(next.wire);
      sent_.emplace(next.seq, number);
      bytes += next.bytes;
      ++calls;
      waiting_.pop_front();
    }
  }
  if (calls > 0) {
    open_batches_.emplace(number, calls);
    ++batches_written_;
    calls_written_ += calls;
  }
  writing_ = stream_ && stream_->write(std::move(batch));
  if (calls > 0 && on_batch)
    on_batch(calls, bytes);
}

bool batch_lane::may_have_started(std::uint64_t seq, std::uint32_t capacity) const {
  std::uint32_t n = 0;
  for (auto& [sent_seq, batch] : sent_) {
    if (n++ >= capacity)
      return false;
    if (sent_seq == seq)
      return true;
  }
  return false;
}

std::vector<std::uint64_t> batch_lane::unanswered() const {
  std::vector<std::uint64_t> out;
  for (auto& [seq, batch] : sent_)
    out.push_back(seq);
  for (auto& w : waiting_)
    out.push_back(w.seq);
  return out;
}

void batch_lane::close() {
  if (stream_)
    stream_->close();
  stream_.reset();
  if (state_ != state::closed)
    state_ = state::failed;
}

} // namespace snakepit::detail
