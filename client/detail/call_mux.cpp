#include "snakepit/client/detail/call_mux.hpp"

#include <algorithm>
#include <condition_variable>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "snakepit/client/detail/gateway_errors.hpp"
#include "snakepit/messages/detail/value_proto.hpp"

namespace snakepit::detail {

namespace gw = snakepit::gateway::v1;

namespace {

/// Whether this thread is running a client callback (then it must not wait
/// for the stream whose reaction called it).
thread_local bool in_callback = false;

result<value> outcome(gw::CallReply&& reply) {
  if (reply.has_failure())
    return from_failure(reply.failure());
  return from_proto(std::move(*reply.mutable_result()));
}

} // namespace

/// One `Calls` stream. Its owner (`call_mux`) destroys it once `done()`.
class call_mux::stream final : public grpc::ClientBidiReactor<gw::CallFrame, gw::ReplyFrame> {
public:
  explicit stream(std::string address) : address_(std::move(address)) {
  }

  void start(gw::Gateway::Stub& stub, const std::string& token) {
    if (!token.empty())
      ctx_.AddMetadata("authorization", "Bearer " + token);
    stub.async()->Calls(&ctx_, this);
    StartRead(&in_);
    StartCall();
  }

  /// Queues a call; false when this stream is over (open a new one).
  bool add(gw::MuxCall&& call, callback& done) {
    std::lock_guard<std::recursive_mutex> guard{mtx_};
    if (over_ || closing_)
      return false;
    open_.emplace(call.id(), std::move(done));
    *pending_.add_calls() = std::move(call);
    if (!writing_ && !corked_)
      flush_locked();
    return true;
  }

  /// No more calls: half-close once the last frame is out, then wait (up to
  /// `grace`) for the answers, and cancel what is left.
  void close(std::chrono::milliseconds grace) {
    std::unique_lock<std::recursive_mutex> guard{mtx_};
    if (!over_) {
      closing_ = true;
      if (!writing_ && !writes_done_) {
        writes_done_ = true;
        StartWritesDone();
      }
    }
    if (!done_cv_.wait_for(guard, grace, [this] { return done_; })) {
      ctx_.TryCancel();
      done_cv_.wait(guard, [this] { return done_; });
    }
  }

  /// Waits until OnDone has let go of this stream.
  void wait_done() {
    std::unique_lock<std::recursive_mutex> guard{mtx_};
    done_cv_.wait(guard, [this] { return done_; });
  }

  bool over() {
    std::lock_guard<std::recursive_mutex> guard{mtx_};
    return over_;
  }

  /// OnDone has let go of this stream: it may be destroyed.
  bool done() {
    std::lock_guard<std::recursive_mutex> guard{mtx_};
    return done_;
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> guard{mtx_};
    writing_ = false;
    if (!ok)
      return; // the stream is broken: OnDone fails the open calls
    if (pending_.calls_size() > 0)
      flush_locked();
    else if (closing_ && !writes_done_) {
      writes_done_ = true;
      StartWritesDone();
    }
  }

  void OnReadDone(bool ok) override {
    if (!ok)
      return; // OnDone follows
    std::vector<std::pair<callback, gw::CallReply*>> ready;
    {
      std::lock_guard<std::recursive_mutex> guard{mtx_};
      ready.reserve(static_cast<std::size_t>(in_.replies_size()));
      for (auto& reply : *in_.mutable_replies()) {
        auto i = open_.find(reply.id());
        if (i == open_.end())
          continue;
        ready.emplace_back(std::move(i->second), reply.mutable_reply());
        open_.erase(i);
      }
    }
    {
      // Calls the callbacks make (the next call of an asynchronous caller)
      // leave together, in one frame after the last callback.
      std::lock_guard<std::recursive_mutex> guard{mtx_};
      corked_ = true;
    }
    in_callback = true;
    for (auto& [done, reply] : ready)
      done(outcome(std::move(*reply)));
    in_callback = false;
    {
      std::lock_guard<std::recursive_mutex> guard{mtx_};
      corked_ = false;
      if (!writing_ && !over_ && pending_.calls_size() > 0)
        flush_locked();
    }
    in_.Clear();
    StartRead(&in_);
  }

  void OnDone(const grpc::Status& status) override {
    std::unordered_map<std::uint64_t, callback> orphans;
    auto why = status.ok()
                 ? error_info::of(errc::unavailable,
                                  "the gateway at " + address_
                                    + " ended the stream before answering (is its tree "
                                      "stopping?)")
                 : from_status(status, address_);
    {
      std::lock_guard<std::recursive_mutex> guard{mtx_};
      over_ = true;
      done_ = true;
      orphans.swap(open_);
      done_cv_.notify_all();
    }
    // From here on this object may be gone: only locals.
    in_callback = true;
    for (auto& entry : orphans)
      entry.second(why);
    in_callback = false;
  }

private:
  void flush_locked() {
    writing_ = true;
    out_.Swap(&pending_);
    pending_.Clear();
    StartWrite(&out_);
  }

  std::string address_;
  grpc::ClientContext ctx_;
  std::recursive_mutex mtx_;
  std::condition_variable_any done_cv_;
  gw::CallFrame out_;
  gw::CallFrame pending_;
  gw::ReplyFrame in_;
  std::unordered_map<std::uint64_t, callback> open_;
  bool writing_ = false;
  /// Callbacks run: queued calls wait for the end of the batch.
  bool corked_ = false;
  bool closing_ = false;
  bool writes_done_ = false;
  bool over_ = false;
  /// Set last by OnDone: nothing of gRPC's uses this object any more.
  bool done_ = false;
};

call_mux::call_mux(std::shared_ptr<gw::Gateway::Stub> stub, std::string token,
                   std::string address, std::chrono::milliseconds close_grace)
  : stub_(std::move(stub)), token_(std::move(token)), address_(std::move(address)),
    close_grace_(close_grace) {
}

call_mux::~call_mux() {
  std::vector<std::shared_ptr<stream>> streams;
  std::shared_ptr<stream> last;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    streams = std::move(streams_);
    last = std::move(current_);
  }
  // The stub goes with the streams: whoever destroys them holds it until then.
  auto finish = [streams = std::move(streams), last = std::move(last), stub = stub_,
                 grace = close_grace_]() mutable {
    if (last)
      last->close(grace);
    for (auto& s : streams)
      s->wait_done();
    last.reset();
    streams.clear();
    stub.reset();
  };
  if (in_callback)
    std::thread{std::move(finish)}.detach(); // its stream waits for this callback
  else
    finish();
}

void call_mux::submit(gw::MuxCall call, callback done) {
  std::lock_guard<std::mutex> guard{mtx_};
  call.set_id(next_id_++);
  // Ended streams go here, on the caller's thread, never on gRPC's.
  if (!in_callback)
    streams_.erase(std::remove_if(streams_.begin(), streams_.end(),
                                  [this](const std::shared_ptr<stream>& s) {
                                    return s != current_ && s->done();
                                  }),
                   streams_.end());
  for (;;) {
    if (!current_ || current_->over()) {
      current_ = std::make_shared<stream>(address_);
      streams_.push_back(current_);
      current_->start(*stub_, token_);
    }
    if (current_->add(std::move(call), done))
      return;
    current_.reset(); // it ended between the check and the add: a new one
  }
}

} // namespace snakepit::detail
