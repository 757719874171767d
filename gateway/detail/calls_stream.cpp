#include "snakepit/gateway/detail/calls_stream.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_companion.hpp>
#include <caf/all.hpp>

#include "snakepit/gateway/detail/gateway_state.hpp"
#include "snakepit/gateway/detail/gateway_wire.hpp"
#include "snakepit/messages/atoms.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit::detail {

namespace {

namespace gw = snakepit::gateway::v1;

using reactor_t = grpc::ServerBidiReactor<gw::CallFrame, gw::ReplyFrame>;

/// Longest `timeout_us` taken as given: beyond it the deadline would
/// overflow the clock's range (2^64 - 1 µs read as -1 µs, a deadline already
/// past), and ten years is as good as no deadline.
constexpr std::uint64_t max_timeout_us = 10ULL * 365 * 24 * 3600 * 1'000'000;

/// Room a reply needs in a frame beyond its own bytes (id, tags, lengths).
constexpr std::size_t frame_overhead = 32;

/// A call sent to its pool, until its answer.
struct open_call {
  std::uint64_t id = 0; // the client's
  gateway_server::impl::ticket_ptr ticket;
};

/// What the reactor and the answers share; the reactor may be gone (OnDone)
/// while answers are still on their way.
struct calls_link {
  // Recursive: gRPC may run OnWriteDone inline from StartWrite on the thread
  // that holds it.
  std::recursive_mutex mtx;
  reactor_t* reactor = nullptr;
  /// Frames to write; the front one is being written while `writing`, the
  /// back one takes answers until it is full.
  std::deque<gw::ReplyFrame> frames;
  std::size_t back_bytes = 0;
  /// Calls read and not answered yet (answered: queued in a frame).
  std::size_t open_calls = 0;
  std::size_t max_bytes = 0;
  /// Calls in pools by the request id they were sent with.
  std::unordered_map<std::uint64_t, open_call> in_pools;
  std::uint64_t last_request_id = 0;
  bool writing = false;
  bool read_done = false;
  bool finished = false;

  /// Largest answer that fits a frame.
  std::size_t reply_limit() const {
    return max_bytes > 2 * frame_overhead ? max_bytes - frame_overhead : max_bytes;
  }

  void finish_locked(const grpc::Status& status) {
    if (finished || reactor == nullptr)
      return;
    finished = true;
    reactor->Finish(status);
  }

  /// Writes the next frame, or finishes once the client is done sending and
  /// every call is answered and written.
  void pump_locked() {
    if (reactor == nullptr || writing || finished)
      return;
    if (!frames.empty() && frames.front().replies_size() > 0) {
      writing = true;
      if (frames.size() == 1)
        back_bytes = 0;
      reactor->StartWrite(&frames.front());
      return;
    }
    if (read_done && open_calls == 0)
      finish_locked(grpc::Status::OK);
  }

  /// Queues answers (from any thread).
  void push_all(std::vector<gw::MuxReply>& replies) {
    std::lock_guard<std::recursive_mutex> guard{mtx};
    open_calls -= std::min(open_calls, replies.size());
    if (reactor == nullptr || finished)
      return;
    for (auto& reply : replies) {
      auto size = reply.ByteSizeLong() + frame_overhead;
      // The front frame is being written: answers go to a new one behind it.
      bool need_new = frames.empty() || (writing && frames.size() == 1)
                      || (back_bytes > 0 && back_bytes + size > max_bytes);
      if (need_new) {
        frames.emplace_back();
        back_bytes = 0;
      }
      *frames.back().add_replies() = std::move(reply);
      back_bytes += size;
    }
    pump_locked();
  }

  void written(bool ok) {
    std::lock_guard<std::recursive_mutex> guard{mtx};
    writing = false;
    if (!frames.empty())
      frames.pop_front();
    if (!ok) { // the client is gone: nobody reads the rest
      frames.clear();
      finish_locked(grpc::Status::CANCELLED);
      return;
    }
    pump_locked();
  }
};

gw::MuxReply failed_reply(std::uint64_t id, const caf::error& err) {
  gw::MuxReply out;
  out.set_id(id);
  fill(out.mutable_reply()->mutable_failure(), err);
  return out;
}

/// Turns a pool's answer (a response to the stream's companion) into a
/// reply for the client, on the thread that answered.
void on_answer(calls_link& link, caf::mailbox_element& answer) {
  if (!answer.mid.is_response())
    return; // nothing else is addressed to the companion
  open_call call;
  {
    std::lock_guard<std::recursive_mutex> guard{link.mtx};
    auto i = link.in_pools.find(answer.mid.request_id().integer_value());
    if (i == link.in_pools.end())
      return;
    call = std::move(i->second);
    link.in_pools.erase(i);
  }
  call.ticket->release();
  std::vector<gw::MuxReply> reply(1);
  auto& content = answer.content();
  if (content.match_elements<execute_reply>()) {
    reply[0].set_id(call.id);
    fill(reply[0].mutable_reply(), std::move(content.get_mutable_as<execute_reply>(0)),
         link.reply_limit());
  } else if (content.match_elements<caf::error>()) {
    reply[0] = failed_reply(call.id, content.get_as<caf::error>(0));
  } else {
    reply[0] = failed_reply(call.id, make_error(errc::internal, "the pool answered a gateway "
                                                                "call with an unexpected message"));
  }
  link.push_all(reply);
}

class calls_stream final : public reactor_t {
public:
  calls_stream(gateway_server::impl& owner, grpc::CallbackServerContext* ctx)
    : owner_(owner), link_(std::make_shared<calls_link>()) {
    link_->reactor = this;
    link_->max_bytes = static_cast<std::size_t>(owner.options.max_message_bytes);
    if (auto status = owner.authorize(ctx); !status.ok()) {
      link_->finished = true;
      Finish(status);
      return;
    }
    // A stream is one client: it has its own share of max_calls_per_client
    // (unix-socket peers all look alike to gRPC).
    static std::atomic<std::uint64_t> streams{0};
    peer_ = ctx->peer() + "/calls-" + std::to_string(++streams);
    // Pools answer the companion, which hands each answer over on the
    // answering thread: no actor of the stream's own to schedule each way.
    // Hidden: it never terminates on its own (nothing schedules it), so the
    // actor system must not wait for it; it goes with its last reference.
    companion_ = owner.sys->spawn<caf::actor_companion, caf::hidden>();
    companion()->on_enqueue([link = link_](caf::mailbox_element_ptr answer) {
      if (answer)
        on_answer(*link, *answer);
    });
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) { // the client sent its last frame (or is gone)
      std::lock_guard<std::recursive_mutex> guard{link_->mtx};
      link_->read_done = true;
      link_->pump_locked();
      return;
    }
    std::vector<gw::MuxReply> refused;
    struct admitted {
      std::uint64_t request_id;
      pool_actor pool;
      execute_request request;
    };
    std::vector<admitted> sends;
    auto now = std::chrono::system_clock::now();
    for (auto& call : *in_.mutable_calls()) {
      std::string why;
      auto ticket = owner_.take_slot(peer_, why);
      if (!ticket) {
        refused.push_back(failed_reply(call.id(), make_error(errc::pool_saturated, why)));
        continue;
      }
      auto pool = owner_.find_pool(call.call().pool());
      if (!pool) {
        refused.push_back(failed_reply(call.id(), pool.error()));
        continue;
      }
      std::optional<std::chrono::system_clock::time_point> deadline;
      if (call.timeout_us() > 0)
        deadline = now + std::chrono::microseconds{
                           static_cast<std::int64_t>(std::min(call.timeout_us(), max_timeout_us))};
      std::lock_guard<std::recursive_mutex> guard{link_->mtx};
      auto request_id = ++link_->last_request_id;
      link_->in_pools.emplace(request_id, open_call{call.id(), std::move(ticket)});
      sends.push_back(admitted{request_id, std::move(*pool), to_request(call.call(), deadline)});
    }
    {
      std::lock_guard<std::recursive_mutex> guard{link_->mtx};
      link_->open_calls += sends.size() + refused.size();
    }
    if (!refused.empty())
      link_->push_all(refused);
    // A request from the companion, as `request` would send it: the pool's
    // answer comes back with the matching response id.
    auto sender = caf::actor_cast<caf::strong_actor_ptr>(companion_);
    for (auto& s : sends)
      caf::actor_cast<caf::abstract_actor*>(s.pool)->enqueue(
        caf::make_mailbox_element(sender, caf::make_message_id(s.request_id), {},
                                  execute_atom::value, std::move(s.request)),
        nullptr);
    in_.Clear();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    link_->written(ok);
  }

  void OnCancel() override {
    std::lock_guard<std::recursive_mutex> guard{link_->mtx};
    // A write in flight ends with ok = false, which finishes the stream.
    if (!link_->writing)
      link_->finish_locked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    std::unordered_map<std::uint64_t, open_call> orphans;
    {
      std::lock_guard<std::recursive_mutex> guard{link_->mtx};
      link_->reactor = nullptr;
      link_->frames.clear();
      orphans.swap(link_->in_pools); // their tickets go with them
    }
    // Calls still in pools finish there; their answers go nowhere.
    if (companion_)
      companion()->on_enqueue({}); // late answers are dropped

    delete this;
  }

private:
  caf::actor_companion* companion() const {
    return static_cast<caf::actor_companion*>(caf::actor_cast<caf::abstract_actor*>(companion_));
  }

  gateway_server::impl& owner_;
  std::shared_ptr<calls_link> link_;
  std::string peer_;
  caf::actor companion_;
  gw::CallFrame in_;
};

} // namespace

reactor_t* make_calls_stream(gateway_server::impl& owner, grpc::CallbackServerContext* ctx) {
  return new calls_stream(owner, ctx);
}

} // namespace snakepit::detail
