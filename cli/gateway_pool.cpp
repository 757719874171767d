#include "gateway_pool.hpp"

#include <fstream>
#include <sstream>
#include <unordered_map>

#include <caf/all.hpp>
#include <grpcpp/grpcpp.h>

#include "gateway.grpc.pb.h"
#include "snakepit/client/detail/gateway_errors.hpp"
#include "snakepit/messages/detail/value_proto.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit::cli {

namespace gw = snakepit::gateway::v1;

namespace {

using done_atom = caf::atom_constant<caf::atom("gwdone")>;

caf::error from_failure(const gw::Failure& f) {
  return make_error(detail::from_failure(f));
}

caf::error from_status(const grpc::Status& status, const std::string& address) {
  return make_error(detail::from_status(status, address));
}

/// One RPC in flight: what gRPC needs until its callback has run.
template <class Request, class Reply>
struct rpc {
  grpc::ClientContext context;
  Request request;
  Reply reply;
};

struct proxy_state {
  std::shared_ptr<gw::Gateway::Stub> stub;
  gateway_address where;
  std::uint64_t next = 0;
  std::unordered_map<std::uint64_t, caf::response_promise> pending;
};

void prepare(grpc::ClientContext& ctx, const execute_request& req, const std::string& token) {
  if (req.deadline.time_since_epoch().count() != 0)
    ctx.set_deadline(std::chrono::time_point_cast<std::chrono::system_clock::duration>(
      std::chrono::system_clock::time_point{req.deadline.time_since_epoch()}));
  if (!token.empty())
    ctx.AddMetadata("authorization", "Bearer " + token);
}

caf::behavior proxy(caf::stateful_actor<proxy_state>* self, std::shared_ptr<gw::Gateway::Stub> stub,
                    gateway_address where) {
  self->state.stub = std::move(stub);
  self->state.where = std::move(where);
  return {
    [self](execute_atom, execute_request& req) -> caf::result<execute_reply> {
      auto& st = self->state;
      auto id = ++st.next;
      auto rp = self->make_response_promise();
      st.pending.emplace(id, rp);
      auto handle = caf::actor_cast<caf::actor>(self);
      auto address = st.where.address;
      if (req.items.empty()) {
        auto call = std::make_shared<rpc<gw::CallRequest, gw::CallReply>>();
        prepare(call->context, req, st.where.token);
        call->request.set_pool(st.where.pool);
        call->request.set_tool(req.tool);
        call->request.set_session_id(req.session_id);
        call->request.set_correlation_id(req.correlation_id);
        call->request.set_idempotent(req.idempotent);
        detail::to_proto(std::move(req.arguments), call->request.mutable_arguments());
        st.stub->async()->Call(&call->context, &call->request, &call->reply,
                               [handle, id, call, address](grpc::Status status) {
                                 if (!status.ok())
                                   return caf::anon_send(handle, done_atom::value, id,
                                                         from_status(status, address));
                                 auto& r = call->reply;
                                 if (r.has_failure())
                                   return caf::anon_send(handle, done_atom::value, id,
                                                         from_failure(r.failure()));
                                 execute_reply out;
                                 out.result = detail::from_proto(r.result());
                                 out.request_id = r.request_id();
                                 out.worker_id = r.worker_id();
                                 out.python_wall = caf::timespan{r.python_wall_ns()};
                                 out.queued = caf::timespan{r.queued_ns()};
                                 out.attempts = std::max<std::uint32_t>(r.attempts(), 1);
                                 caf::anon_send(handle, done_atom::value, id, std::move(out));
                               });
      } else {
        auto call = std::make_shared<rpc<gw::MapRequest, gw::MapReply>>();
        prepare(call->context, req, st.where.token);
        call->request.set_pool(st.where.pool);
        call->request.set_tool(req.tool);
        call->request.set_chunk(static_cast<std::uint32_t>(req.items.size()));
        call->request.set_correlation_id(req.correlation_id);
        for (auto& item : req.items)
          detail::to_proto(std::move(item), call->request.add_items());
        st.stub->async()->Map(&call->context, &call->request, &call->reply,
                              [handle, id, call, address](grpc::Status status) {
                                if (!status.ok())
                                  return caf::anon_send(handle, done_atom::value, id,
                                                        from_status(status, address));
                                execute_reply out;
                                for (auto& item : call->reply.items()) {
                                  item_outcome o;
                                  if (item.has_failure())
                                    o.error = from_failure(item.failure());
                                  else
                                    o.result = detail::from_proto(item.result());
                                  out.items.push_back(std::move(o));
                                }
                                caf::anon_send(handle, done_atom::value, id, std::move(out));
                              });
      }
      return rp;
    },
    [self](done_atom, std::uint64_t id, execute_reply& reply) {
      if (auto i = self->state.pending.find(id); i != self->state.pending.end()) {
        i->second.deliver(std::move(reply));
        self->state.pending.erase(i);
      }
    },
    [self](done_atom, std::uint64_t id, caf::error& err) {
      if (auto i = self->state.pending.find(id); i != self->state.pending.end()) {
        i->second.deliver(std::move(err));
        self->state.pending.erase(i);
      }
    },
    [](status_atom) -> caf::result<pool_status> {
      return make_error(errc::bad_arguments, "a pool behind a gateway has no status here: "
                                             "use `snakepit inspect` on its host");
    },
  };
}

} // namespace

caf::expected<std::shared_ptr<grpc::Channel>> open_gateway_channel(const gateway_address& where) {
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!where.ca_file.empty()) {
    std::ifstream in{where.ca_file};
    if (!in)
      return make_error(errc::bad_arguments, "--ca-file: cannot read " + where.ca_file);
    std::ostringstream pem;
    pem << in.rdbuf();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.str();
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return grpc::CreateCustomChannel(where.address, creds, args);
}

caf::expected<pool_actor> connect_gateway_pool(caf::actor_system& sys,
                                               const gateway_address& where) {
  auto channel = open_gateway_channel(where);
  if (!channel)
    return std::move(channel.error());
  auto stub = std::shared_ptr<gw::Gateway::Stub>{gw::Gateway::NewStub(*channel)};
  // Untyped inside (its completion messages are private); the interface it
  // offers is the pool's execute.
  return caf::actor_cast<pool_actor>(sys.spawn(proxy, std::move(stub), where));
}

} // namespace snakepit::cli
