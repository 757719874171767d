#include "snakepit/gateway/detail/calls_stream.hpp"

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "snakepit/gateway/detail/gateway_state.hpp"
#include "snakepit/gateway/detail/gateway_wire.hpp"
#include "snakepit/messages/atoms.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit::detail {

/// One call of a frame, admitted and on its way to its pool.
struct calls_stream_call {
  std::uint64_t id = 0;
  pool_actor pool;
  execute_request request;
  gateway_server::impl::ticket_ptr ticket;
};

/// The calls of one frame, from the reactor to the stream's actor (never
/// leaves the process).
using calls_stream_batch = std::shared_ptr<std::vector<calls_stream_call>>;

} // namespace snakepit::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(snakepit::detail::calls_stream_batch)

namespace snakepit::detail {

namespace {

namespace gw = snakepit::gateway::v1;

using reactor_t = grpc::ServerBidiReactor<gw::CallFrame, gw::ReplyFrame>;

/// Room a reply needs in a frame beyond its own bytes (id, tags, lengths).
constexpr std::size_t frame_overhead = 32;

/// What the reactor and the stream's actor share; the reactor may be gone
/// (OnDone) while answers are still on their way.
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

using calls_flush_atom = caf::atom_constant<caf::atom("gwflush")>;

/// The stream's actor state: answers taken from the mailbox, not yet queued.
struct calls_actor_state {
  std::vector<gw::MuxReply> ready;
  bool flush_scheduled = false;
};

/// The stream's actor: sends each call to its pool and queues the answers,
/// all those already in its mailbox at once (it sends itself a flush behind
/// them), so that answers arriving together leave in one frame.
caf::behavior calls_actor(caf::stateful_actor<calls_actor_state>* self,
                          std::shared_ptr<calls_link> link) {
  auto answer = [self](gw::MuxReply reply) {
    self->state.ready.push_back(std::move(reply));
    if (!self->state.flush_scheduled) {
      self->state.flush_scheduled = true;
      self->send(self, calls_flush_atom::value);
    }
  };
  return {
    [self, link, answer](const calls_stream_batch& batch) {
      for (auto& call : *batch) {
        auto id = call.id;
        auto ticket = std::move(call.ticket);
        self->request(call.pool, caf::infinite, execute_atom::value, std::move(call.request))
          .then(
            [link, id, ticket, answer](execute_reply& x) {
              gw::MuxReply out;
              out.set_id(id);
              fill(out.mutable_reply(), std::move(x), link->reply_limit());
              ticket->release();
              answer(std::move(out));
            },
            [id, ticket, answer](caf::error& err) {
              ticket->release();
              answer(failed_reply(id, err));
            });
      }
    },
    [self, link](calls_flush_atom) {
      self->state.flush_scheduled = false;
      link->push_all(self->state.ready);
      self->state.ready.clear();
    },
  };
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
    actor_ = owner.sys->spawn(calls_actor, link_);
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) { // the client sent its last frame (or is gone)
      std::lock_guard<std::recursive_mutex> guard{link_->mtx};
      link_->read_done = true;
      link_->pump_locked();
      return;
    }
    auto batch = std::make_shared<std::vector<calls_stream_call>>();
    std::vector<gw::MuxReply> refused;
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
        deadline = now + std::chrono::microseconds{call.timeout_us()};
      batch->push_back(calls_stream_call{call.id(), std::move(*pool),
                                         to_request(call.call(), deadline), std::move(ticket)});
    }
    {
      std::lock_guard<std::recursive_mutex> guard{link_->mtx};
      link_->open_calls += batch->size() + refused.size();
    }
    if (!refused.empty())
      link_->push_all(refused);
    if (!batch->empty())
      caf::anon_send(actor_, std::move(batch));
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
    {
      std::lock_guard<std::recursive_mutex> guard{link_->mtx};
      link_->reactor = nullptr;
      link_->frames.clear();
    }
    // Calls still in pools finish there; their answers go nowhere.
    if (actor_)
      caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
    delete this;
  }

private:
  gateway_server::impl& owner_;
  std::shared_ptr<calls_link> link_;
  std::string peer_;
  caf::actor actor_;
  gw::CallFrame in_;
};

} // namespace

reactor_t* make_calls_stream(gateway_server::impl& owner, grpc::CallbackServerContext* ctx) {
  return new calls_stream(owner, ctx);
}

} // namespace snakepit::detail
