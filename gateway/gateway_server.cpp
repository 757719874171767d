#include "snakepit/gateway/gateway_server.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <thread>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <grpcpp/grpcpp.h>

#include "gateway.grpc.pb.h"
#include "snakepit/gateway/detail/gateway_wire.hpp"
#include "snakepit/gateway/detail/calls_stream.hpp"
#include "snakepit/gateway/detail/gateway_state.hpp"
#include "snakepit/messages/atoms.hpp"
#include "snakepit/messages/detail/tool_spec_proto.hpp"
#include "snakepit/messages/detail/value_proto.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/messages/stream.hpp"
#include "snakepit/observability/token_file.hpp"

namespace snakepit {

namespace gw = snakepit::gateway::v1;

namespace {

using detail::fill;

constexpr std::uint32_t default_map_chunk = 64;
constexpr std::size_t map_chunks_in_flight = 8;
constexpr std::size_t unix_path_max = 107;

/// The request a gateway call becomes: the gRPC deadline is its deadline.
execute_request to_request(const gw::CallRequest& req, const grpc::CallbackServerContext& ctx) {
  auto deadline = ctx.deadline();
  if (deadline == std::chrono::system_clock::time_point::max())
    return detail::to_request(req, std::nullopt);
  return detail::to_request(req, deadline);
}

void fill(gw::PoolInfo* info, const std::vector<tool_spec>& tools) {
  for (auto& t : tools)
    detail::to_proto(t, info->add_tools());
}

/// The state of the actor driving one Map call: the function that sends the next chunk lives
/// here, not in a shared_ptr its own lambdas capture (that cycle kept every Map's driver, its
/// chunks and the pool alive for good: LeakSanitizer, cli tests).
struct map_driver {
  std::function<void()> send_next;
};

} // namespace

namespace {

using impl_t = gateway_server::impl;

// -- streams --------------------------------------------------------------------

/// What a stream's reactor and its consumer actor share; the reactor may be
/// gone (OnDone) while the actor still has messages in its mailbox.
struct stream_link {
  // Recursive: gRPC may run a reaction (OnWriteDone) inline from StartWrite
  // on the thread that holds it.
  std::recursive_mutex mtx;
  grpc::ServerWriteReactor<gw::StreamReply>* reactor = nullptr;
  std::deque<gw::StreamReply> queue;
  std::deque<bool> is_item;
  bool writing = false;
  bool ending = false;
  bool finished = false;
  bool cancelled = false;
  caf::actor worker;
  std::uint64_t id = 0;
  impl_t::ticket_ptr ticket;

  void start_next_locked() {
    if (reactor == nullptr || writing || finished)
      return;
    if (!queue.empty()) {
      writing = true;
      reactor->StartWrite(&queue.front());
    } else if (ending) {
      finished = true;
      if (ticket)
        ticket->release();
      reactor->Finish(grpc::Status::OK);
    }
  }

  void push(gw::StreamReply msg, bool item, bool last) {
    std::lock_guard<std::recursive_mutex> guard{mtx};
    if (reactor == nullptr || ending)
      return;
    queue.push_back(std::move(msg));
    is_item.push_back(item);
    ending = last;
    start_next_locked();
  }

  /// The worker and id arrived; a client that cancelled already gets its
  /// generator closed now.
  void attach(caf::actor w, std::uint64_t stream_id) {
    std::lock_guard<std::recursive_mutex> guard{mtx};
    worker = std::move(w);
    id = stream_id;
    if (cancelled)
      caf::anon_send(worker, stream_cancel_atom::value, id);
  }
};

class stream_writer final : public grpc::ServerWriteReactor<gw::StreamReply> {
public:
  explicit stream_writer(std::shared_ptr<stream_link> link) : link_(std::move(link)) {
    link_->reactor = this;
  }

  void set_consumer(caf::actor consumer) {
    consumer_ = std::move(consumer);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> guard{link_->mtx};
    auto& l = *link_;
    l.writing = false;
    bool item = l.is_item.front();
    l.queue.pop_front();
    l.is_item.pop_front();
    if (!ok) {  // the client is gone: OnDone follows
      cancel_locked();
      return;
    }
    // One credit per item the client has taken: back-pressure end to end.
    if (item && l.worker)
      caf::anon_send(l.worker, stream_ack_atom::value, l.id, std::uint32_t{1});
    l.start_next_locked();
  }

  void OnCancel() override {
    std::lock_guard<std::recursive_mutex> guard{link_->mtx};
    cancel_locked();
  }

  void OnDone() override {
    {
      std::lock_guard<std::recursive_mutex> guard{link_->mtx};
      link_->reactor = nullptr;
      link_->ticket.reset();
    }
    if (consumer_)
      caf::anon_send_exit(consumer_, caf::exit_reason::user_shutdown);
    delete this;
  }

private:
  void cancel_locked() {
    auto& l = *link_;
    if (!l.ending && !l.cancelled) {
      l.cancelled = true;
      if (l.worker)
        caf::anon_send(l.worker, stream_cancel_atom::value, l.id);
    }
    l.ending = true;
    if (!l.finished) {
      l.finished = true;
      if (l.ticket)
        l.ticket->release();
      Finish(grpc::Status::CANCELLED);
    }
  }

  std::shared_ptr<stream_link> link_;
  caf::actor consumer_;
};

// -- the service ------------------------------------------------------------------

class gateway_service final : public gw::Gateway::CallbackService {
public:
  explicit gateway_service(impl_t* owner) : owner_(owner) {
  }

  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* ctx, const gw::CallRequest* req,
                                 gw::CallReply* reply) override {
    auto* reactor = ctx->DefaultReactor();
    auto admitted = admit_call(ctx, reactor, req->pool(), reply);
    if (!admitted)
      return reactor;
    auto& [ticket, pool] = *admitted;
    auto max_bytes = static_cast<std::size_t>(owner_->options.max_message_bytes);
    owner_->sys->spawn([reactor, reply, ticket = ticket, pool = pool, max_bytes,
                        r = to_request(*req, *ctx)](caf::event_based_actor* self) mutable {
      self->request(pool, caf::infinite, execute_atom::value, std::move(r))
        .then(
          [=](execute_reply& x) mutable {
            fill(reply, std::move(x), max_bytes);
            ticket->release();
            reactor->Finish(grpc::Status::OK);
            self->quit();
          },
          [=](caf::error& e) mutable {
            fill(reply->mutable_failure(), e);
            ticket->release();
            reactor->Finish(grpc::Status::OK);
            self->quit();
          });
    });
    return reactor;
  }

  grpc::ServerBidiReactor<gw::CallFrame, gw::ReplyFrame>*
  Calls(grpc::CallbackServerContext* ctx) override {
    return detail::make_calls_stream(*owner_, ctx);
  }

  grpc::ServerUnaryReactor* Map(grpc::CallbackServerContext* ctx, const gw::MapRequest* req,
                                gw::MapReply* reply) override {
    auto* reactor = ctx->DefaultReactor();
    auto ticket = admit_unary(ctx, reactor);
    if (!ticket)
      return reactor;
    auto pool = owner_->find_pool(req->pool());
    auto n = static_cast<std::size_t>(req->items_size());
    for (std::size_t i = 0; i < n; ++i)
      reply->add_items();
    if (!pool) {
      for (auto& item : *reply->mutable_items())
        fill(item.mutable_failure(), pool.error());
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
    // Chunks of argument sets, each one map request to a worker; a few in
    // flight at once, outcomes written into their places.
    auto chunk = req->chunk() == 0 ? default_map_chunk : req->chunk();
    std::vector<execute_request> chunks;
    gw::CallRequest shape;
    shape.set_tool(req->tool());
    shape.set_correlation_id(req->correlation_id());
    for (std::size_t first = 0; first < n; first += chunk) {
      auto r = to_request(shape, *ctx);
      for (std::size_t i = first; i < std::min(n, first + chunk); ++i)
        r.items.push_back(detail::from_proto(req->items(static_cast<int>(i))));
      chunks.push_back(std::move(r));
    }
    struct map_state {
      std::vector<execute_request> chunks;
      std::size_t next = 0;
      std::size_t done = 0;
      std::uint32_t chunk = 0;
      std::size_t max_bytes = 0;
    };
    auto st = std::make_shared<map_state>();
    st->chunks = std::move(chunks);
    st->chunk = chunk;
    st->max_bytes = static_cast<std::size_t>(owner_->options.max_message_bytes);
    if (st->chunks.empty()) {
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
    owner_->sys->spawn([reactor, reply, ticket, st,
                        pool = *pool](caf::stateful_actor<map_driver>* self) {
      // Sends the next chunk, if any; finishes once every chunk is back.
      self->state.send_next = [=]() mutable {
        if (st->next >= st->chunks.size())
          return;
        auto index = st->next++;
        auto first = index * st->chunk;
        auto count = st->chunks[index].items.size();
        auto finished_one = [=]() mutable {
          if (++st->done == st->chunks.size()) {
            if (auto size = reply->ByteSizeLong(); size > st->max_bytes) {
              auto items = reply->items_size();
              reply->Clear();
              for (int k = 0; k < items; ++k)
                fill(reply->add_items()->mutable_failure(),
                     detail::gateway_reply_too_large(size, st->max_bytes));
            }
            ticket->release();
            reactor->Finish(grpc::Status::OK);
            self->quit();
            return;
          }
          self->state.send_next();
        };
        self->request(pool, caf::infinite, execute_atom::value, std::move(st->chunks[index]))
          .then(
            [=](execute_reply& x) mutable {
              for (std::size_t k = 0; k < count; ++k) {
                auto* out = reply->mutable_items(static_cast<int>(first + k));
                if (k >= x.items.size())
                  fill(out->mutable_failure(),
                       make_error(errc::internal, "the worker answered fewer items"));
                else if (x.items[k].error)
                  fill(out->mutable_failure(), x.items[k].error);
                else
                  detail::to_proto(std::move(x.items[k].result), out->mutable_result());
              }
              finished_one();
            },
            [=](caf::error& e) mutable {
              for (std::size_t k = 0; k < count; ++k)
                fill(reply->mutable_items(static_cast<int>(first + k))->mutable_failure(), e);
              finished_one();
            });
      };
      for (std::size_t k = 0; k < map_chunks_in_flight; ++k)
        self->state.send_next();
    });
    return reactor;
  }

  grpc::ServerWriteReactor<gw::StreamReply>* Stream(grpc::CallbackServerContext* ctx,
                                                    const gw::CallRequest* req) override {
    auto link = std::make_shared<stream_link>();
    auto* writer = new stream_writer(link);
    grpc::Status refusal;
    auto ticket = owner_->admit(ctx, refusal);
    if (!ticket) {
      link->finished = true;
      writer->Finish(refusal);
      return writer;
    }
    link->ticket = ticket;
    auto pool = owner_->find_pool(req->pool());
    if (!pool) {
      gw::StreamReply msg;
      fill(msg.mutable_failure(), pool.error());
      link->push(std::move(msg), false, true);
      return writer;
    }
    auto max_bytes = static_cast<std::size_t>(owner_->options.max_message_bytes);
    auto consumer = owner_->sys->spawn(
      [link, max_bytes, pool = *pool, r = to_request(*req, *ctx)](caf::event_based_actor* self) mutable
      -> caf::behavior {
        self->request(pool, caf::infinite, execute_stream_atom::value, std::move(r),
                      caf::actor_cast<caf::actor>(self))
          .then([link](stream_handle& h) { link->attach(h.worker, h.id); },
                [link, self](caf::error& e) {
                  gw::StreamReply msg;
                  fill(msg.mutable_failure(), e);
                  link->push(std::move(msg), false, true);
                  self->quit();
                });
        return {
          [link, max_bytes, self](stream_item_atom, std::uint64_t, std::uint64_t, value& v) {
            gw::StreamReply msg;
            detail::to_proto(std::move(v), msg.mutable_item());
            if (auto size = msg.ByteSizeLong(); size > max_bytes) {
              // The client cannot take it: end the stream with why, and the generator.
              msg.Clear();
              fill(msg.mutable_failure(), detail::gateway_reply_too_large(size, max_bytes));
              {
                std::lock_guard<std::recursive_mutex> guard{link->mtx};
                if (link->worker)
                  caf::anon_send(link->worker, stream_cancel_atom::value, link->id);
              }
              link->push(std::move(msg), false, true);
              self->quit();
              return;
            }
            link->push(std::move(msg), true, false);
          },
          [link, self](stream_end_atom, std::uint64_t, stream_summary& s) {
            gw::StreamReply msg;
            auto* end = msg.mutable_end();
            end->set_items(s.items);
            end->set_python_wall_ns(s.python_wall.count());
            end->set_worker_id(s.worker_id);
            link->push(std::move(msg), false, true);
            self->quit();
          },
          [link, self](stream_error_atom, std::uint64_t, caf::error& e) {
            gw::StreamReply msg;
            fill(msg.mutable_failure(), e);
            link->push(std::move(msg), false, true);
            self->quit();
          },
        };
      });
    writer->set_consumer(consumer);
    return writer;
  }

  grpc::ServerUnaryReactor* OpenSession(grpc::CallbackServerContext* ctx,
                                        const gw::SessionRequest* req,
                                        gw::SessionReply* reply) override {
    return session_call(ctx, req, reply, true);
  }

  grpc::ServerUnaryReactor* CloseSession(grpc::CallbackServerContext* ctx,
                                         const gw::SessionRequest* req,
                                         gw::SessionReply* reply) override {
    return session_call(ctx, req, reply, false);
  }

  grpc::ServerUnaryReactor* ListPools(grpc::CallbackServerContext* ctx,
                                      const gw::ListPoolsRequest*,
                                      gw::ListPoolsReply* reply) override {
    return on_status_thread(ctx, [this, reply](const tree_status& st) {
      reply->set_tree(owner_->backend.tree);
      for (auto& p : st.pools) {
        auto* info = reply->add_pools();
        info->set_name(p.name);
        info->set_state(p.state);
        info->set_size(p.size);
        info->set_ready(p.ready);
        info->set_busy(p.busy);
        info->set_queued(p.queued);
        if (!p.workers.empty())
          info->set_profile(p.workers.front().profile);
        if (auto i = owner_->backend.adapters.find(p.name); i != owner_->backend.adapters.end())
          info->set_adapter(i->second);
        // This is the status thread: waiting here blocks no gRPC or CAF thread.
        if (auto pool = owner_->backend.pool(p.name)) {
          caf::scoped_actor self{*owner_->sys};
          self->request(*pool, std::chrono::seconds{5}, list_tools_atom::value)
            .receive([info](std::vector<tool_spec>& tools) { fill(info, tools); },
                     [](caf::error&) { /* no ready worker: no tools listed */ });
        }
      }
    });
  }

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx,
                                   const gw::StatusRequest* req,
                                   gw::StatusReply* reply) override {
    auto pool = req->pool();
    return on_status_thread(ctx, [reply, pool](const tree_status& st) {
      if (pool.empty()) {
        reply->set_json(to_json(st));
        return;
      }
      tree_status one;
      one.tree = st.tree;
      for (auto& p : st.pools)
        if (p.name == pool)
          one.pools.push_back(p);
      if (one.pools.empty())
        fill(reply->mutable_failure(),
             make_error(errc::bad_arguments, fmt::format("this tree has no pool '{}'", pool)));
      else
        reply->set_json(to_json(one));
    });
  }

private:
  /// Admits a unary RPC (token, limits): its ticket, or nothing after
  /// finishing `reactor` with the refusal.
  impl_t::ticket_ptr admit_unary(grpc::CallbackServerContext* ctx,
                                 grpc::ServerUnaryReactor* reactor) {
    grpc::Status refusal;
    auto ticket = owner_->admit(ctx, refusal);
    if (!ticket)
      reactor->Finish(refusal);
    return ticket;
  }

  /// Admits a unary call to the pool `name`: its ticket and pool, or nothing
  /// after answering it (a refusal status, or `reply`'s failure naming an
  /// unknown pool).
  template <class Reply>
  std::optional<std::pair<impl_t::ticket_ptr, pool_actor>>
  admit_call(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
             const std::string& name, Reply* reply) {
    auto ticket = admit_unary(ctx, reactor);
    if (!ticket)
      return std::nullopt;
    auto pool = owner_->find_pool(name);
    if (!pool) {
      fill(reply->mutable_failure(), pool.error());
      reactor->Finish(grpc::Status::OK);
      return std::nullopt;
    }
    return std::make_pair(std::move(ticket), std::move(*pool));
  }

  grpc::ServerUnaryReactor* session_call(grpc::CallbackServerContext* ctx,
                                         const gw::SessionRequest* req,
                                         gw::SessionReply* reply, bool open) {
    auto* reactor = ctx->DefaultReactor();
    auto admitted = admit_call(ctx, reactor, req->pool(), reply);
    if (!admitted)
      return reactor;
    auto& [ticket, pool] = *admitted;
    owner_->sys->spawn([=, ticket = ticket, pool = pool,
                        id = req->session_id()](caf::event_based_actor* self) {
      auto fail = [=](caf::error& e) mutable {
        fill(reply->mutable_failure(), e);
        ticket->release();
        reactor->Finish(grpc::Status::OK);
        self->quit();
      };
      if (open)
        self->request(pool, caf::infinite, open_session_atom::value, id)
          .then(
            [=](std::string& opened) mutable {
              reply->set_session_id(opened);
              ticket->release();
              reactor->Finish(grpc::Status::OK);
              self->quit();
            },
            fail);
      else
        self->request(pool, caf::infinite, close_session_atom::value, id)
          .then(
            [=](bool closed) mutable {
              reply->set_session_id(id);
              reply->set_closed(closed);
              ticket->release();
              reactor->Finish(grpc::Status::OK);
              self->quit();
            },
            fail);
    });
    return reactor;
  }

  /// Runs `f` with the tree's status on a thread of its own (taking the
  /// status blocks), then answers.
  template <class F>
  grpc::ServerUnaryReactor* on_status_thread(grpc::CallbackServerContext* ctx, F f) {
    auto* reactor = ctx->DefaultReactor();
    auto ticket = admit_unary(ctx, reactor);
    if (!ticket)
      return reactor;
    std::thread{[reactor, ticket, f, status = owner_->backend.status]() mutable {
      f(status());
      ticket->release();
      reactor->Finish(grpc::Status::OK);
    }}.detach();
    return reactor;
  }

  impl_t* owner_;
};

} // namespace

// -- gateway_server -----------------------------------------------------------------

bool gateway_server::is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

caf::expected<std::unique_ptr<gateway_server>>
gateway_server::start(caf::actor_system& sys, gateway_options options, gateway_backend backend) {
  auto bad = [](std::string what) { return make_error(errc::bad_config, std::move(what)); };
  auto& listen = options.listen;
  if (listen.empty())
    return bad("[gateway] listen is empty: give \"unix:/path\" or \"127.0.0.1:PORT\"");
  bool is_unix = listen.rfind("unix:", 0) == 0;
  bool tls = !options.tls_cert.empty() || !options.tls_key.empty();
  if (is_unix) {
    auto path = listen.substr(5);
    if (path.empty() || path.front() != '/' || path.size() > unix_path_max)
      return bad(fmt::format("[gateway] listen = \"{}\": a unix socket needs an absolute path "
                             "of at most {} bytes",
                             listen, unix_path_max));
    ::unlink(path.c_str());  // ours: the tree's private runtime directory
  } else {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size())
      return bad(fmt::format("[gateway] listen = \"{}\" is not \"unix:/path\" or "
                             "\"host:port\"",
                             listen));
    auto host = listen.substr(0, colon);
    if (!is_loopback(host) && !tls && !options.insecure)
      return bad(fmt::format("[gateway] listen = \"{}\" is not a loopback address: give "
                             "tls_cert and tls_key, or set insecure = true to serve it in "
                             "plain text (anyone on that network can then call the tree)",
                             listen));
  }
  if (tls && (options.tls_cert.empty() || options.tls_key.empty()))
    return bad("[gateway] TLS needs both tls_cert and tls_key");
  if (options.max_calls == 0 || options.max_calls_per_client == 0)
    return bad("[gateway] max_calls and max_calls_per_client must be at least 1");
  std::unique_ptr<gateway_server> out{new gateway_server};
  out->impl_ = std::make_unique<impl>();
  auto& im = *out->impl_;
  im.sys = &sys;
  im.options = options;
  im.backend = std::move(backend);
  im.service = std::make_unique<gateway_service>(&im);
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (tls) {
    // The key is a secret; the certificate and above all the client CA decide
    // whom we trust: none may be replaceable by another user.
    constexpr std::size_t max_pem_bytes = 1 << 20;
    auto cert = read_trusted_file(options.tls_cert, "[gateway] tls_cert", max_pem_bytes);
    if (!cert)
      return std::move(cert.error());
    auto key = read_secret_file(options.tls_key, "[gateway] tls_key", max_pem_bytes);
    if (!key)
      return std::move(key.error());
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    pair.cert_chain = std::move(*cert);
    pair.private_key = std::move(*key);
    if (!options.tls_client_ca.empty()) {
      auto ca = read_trusted_file(options.tls_client_ca, "[gateway] tls_client_ca",
                                  max_pem_bytes);
      if (!ca)
        return std::move(ca.error());
      ssl.pem_root_certs = std::move(*ca);
      ssl.client_certificate_request
        = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    ssl.pem_key_cert_pairs.push_back(std::move(pair));
    creds = grpc::SslServerCredentials(ssl);
  }
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, creds, is_unix ? nullptr : &port);
  auto limit = static_cast<int>(std::min<std::int64_t>(options.max_message_bytes, INT32_MAX));
  builder.SetMaxReceiveMessageSize(limit);
  builder.SetMaxSendMessageSize(limit);
  builder.RegisterService(im.service.get());
  im.server = builder.BuildAndStart();
  if (!im.server || (!is_unix && port == 0))
    return make_error(errc::startup_failed,
                      fmt::format("the gateway cannot listen on {} (in use, or not an address "
                                  "of this machine)",
                                  listen));
  out->address_ = is_unix ? listen : listen.substr(0, listen.rfind(':') + 1) + std::to_string(port);
  return out;
}

gateway_server::~gateway_server() {
  if (impl_ && impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds{1});
    impl_->server->Wait();
  }
  if (address_.rfind("unix:", 0) == 0)
    ::unlink(address_.substr(5).c_str());
}

} // namespace snakepit
