#include "snakepit/client/client.hpp"

#include <fstream>
#include <sstream>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "gateway.grpc.pb.h"
#include "snakepit/client/detail/call_mux.hpp"
#include "snakepit/client/detail/gateway_errors.hpp"
#include "snakepit/messages/detail/tool_spec_proto.hpp"
#include "snakepit/messages/detail/value_proto.hpp"

namespace snakepit {

namespace gw = snakepit::gateway::v1;

struct client::impl {
  client_options options;
  std::shared_ptr<gw::Gateway::Stub> stub;
  std::unique_ptr<detail::call_mux> mux;

  /// A context for one unary or server-streamed RPC.
  void prepare(grpc::ClientContext& ctx, const call_options& opts) const {
    if (!options.token.empty())
      ctx.AddMetadata("authorization", "Bearer " + options.token);
    if (opts.timeout.count() > 0)
      ctx.set_deadline(std::chrono::system_clock::now() + opts.timeout);
  }

  error_info failed(const grpc::Status& status) const {
    return detail::from_status(status, options.address);
  }

  /// One unary RPC of the stub (`&Stub::Map`, ...): its reply, or what the
  /// gRPC status means.
  template <class Reply, class Request>
  result<Reply> unary(grpc::Status (gw::Gateway::Stub::*rpc)(grpc::ClientContext*,
                                                             const Request&, Reply*),
                      const Request& req, const call_options& opts = {}) const {
    grpc::ClientContext ctx;
    prepare(ctx, opts);
    Reply reply;
    auto status = (stub.get()->*rpc)(&ctx, req, &reply);
    if (!status.ok())
      return failed(status);
    return reply;
  }

  /// A call of `tool` on `pool` as the wire carries it.
  static void fill(gw::CallRequest* req, const std::string& pool, const std::string& tool,
                   value::map&& arguments, const call_options& opts) {
    req->set_pool(pool);
    req->set_tool(tool);
    detail::to_proto(std::move(arguments), req->mutable_arguments());
    req->set_session_id(opts.session_id);
    req->set_correlation_id(opts.correlation_id);
    req->set_idempotent(opts.idempotent);
    for (auto& [k, v] : opts.metadata)
      (*req->mutable_metadata())[k] = v;
  }

  /// The call as the wire carries it, or why it cannot leave.
  result<gw::MuxCall> make_call(const std::string& pool, const std::string& tool,
                                value::map&& arguments, const call_options& opts) const {
    gw::MuxCall out;
    fill(out.mutable_call(), pool, tool, std::move(arguments), opts);
    if (opts.timeout.count() > 0)
      out.set_timeout_us(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(opts.timeout).count()));
    if (auto size = out.ByteSizeLong();
        static_cast<std::int64_t>(size) > options.max_message_bytes)
      return error_info::of(errc::payload_too_large,
                            "the call's arguments are " + std::to_string(size)
                              + " bytes, over the client's max_message_bytes of "
                              + std::to_string(options.max_message_bytes)
                              + "; send less, or raise it (and [gateway] max_message_bytes)");
    return out;
  }
};

namespace {

result<std::string> read_file(const std::string& path, const char* what) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return error_info::of(errc::bad_arguments,
                          std::string{"cannot read the "} + what + " file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string trimmed(std::string text) {
  auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos)
    return {};
  auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

} // namespace

result<client> client::connect(std::string address) {
  client_options options;
  options.address = std::move(address);
  return connect(std::move(options));
}

result<client> client::connect(client_options options) {
  if (options.address.empty())
    return error_info::of(errc::bad_arguments,
                          "no gateway address: give \"unix:/path\" or \"host:port\" (`snakepit "
                          "run --print-address` prints it)");
  if (options.token.empty() && !options.token_file.empty()) {
    auto token = read_file(options.token_file, "token");
    if (!token)
      return std::move(token.error());
    options.token = trimmed(std::move(*token));
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!options.ca_file.empty() || !options.cert_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_file.empty()) {
      auto ca = read_file(options.ca_file, "CA");
      if (!ca)
        return std::move(ca.error());
      ssl.pem_root_certs = std::move(*ca);
    }
    if (!options.cert_file.empty() || !options.key_file.empty()) {
      auto cert = read_file(options.cert_file, "certificate");
      if (!cert)
        return std::move(cert.error());
      auto key = read_file(options.key_file, "key");
      if (!key)
        return std::move(key.error());
      ssl.pem_cert_chain = std::move(*cert);
      ssl.pem_private_key = std::move(*key);
    }
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  auto limit = static_cast<int>(std::min<std::int64_t>(options.max_message_bytes, INT32_MAX));
  args.SetMaxReceiveMessageSize(limit);
  args.SetMaxSendMessageSize(limit);
  auto state = std::make_shared<impl>();
  state->stub = std::shared_ptr<gw::Gateway::Stub>{
    gw::Gateway::NewStub(grpc::CreateCustomChannel(options.address, creds, args))};
  state->mux = std::make_unique<detail::call_mux>(state->stub, options.token, options.address,
                                                  options.answer_grace);
  state->options = std::move(options);
  return client{std::move(state)};
}

client::client(std::shared_ptr<impl> state) : impl_(std::move(state)) {
}

client::client(client&&) noexcept = default;

client& client::operator=(client&&) noexcept = default;

client::~client() = default;

const std::string& client::address() const noexcept {
  return impl_->options.address;
}

void client::call_async(const std::string& pool, const std::string& tool, value::map arguments,
                        const call_options& options,
                        std::function<void(result<value>)> done) {
  auto call = impl_->make_call(pool, tool, std::move(arguments), options);
  if (!call) {
    done(std::move(call.error()));
    return;
  }
  impl_->mux->submit(std::move(*call), std::move(done));
}

std::future<result<value>> client::call_future(const std::string& pool, const std::string& tool,
                                               value::map arguments,
                                               const call_options& options) {
  auto promise = std::make_shared<std::promise<result<value>>>();
  auto future = promise->get_future();
  call_async(pool, tool, std::move(arguments), options,
             [promise](result<value> outcome) { promise->set_value(std::move(outcome)); });
  return future;
}

result<value> client::call(const std::string& pool, const std::string& tool,
                           value::map arguments, const call_options& options) {
  auto future = call_future(pool, tool, std::move(arguments), options);
  if (options.timeout.count() > 0) {
    // The pool answers `timeout` at the deadline; a gateway that says nothing
    // by then plus the grace is gone (or frozen): do not wait forever.
    auto limit = options.timeout + impl_->options.answer_grace;
    if (future.wait_for(limit) != std::future_status::ready)
      return error_info::of(errc::unavailable,
                            "the gateway at " + impl_->options.address
                              + " did not answer within the call's timeout and "
                              + std::to_string(impl_->options.answer_grace.count())
                              + " ms more; the call may or may not have run");
  }
  return future.get();
}

result<std::vector<result<value>>> client::map(const std::string& pool,
                                               const std::string& tool,
                                               std::vector<value::map> items, unsigned chunk,
                                               const call_options& options) {
  gw::MapRequest req;
  req.set_pool(pool);
  req.set_tool(tool);
  req.set_chunk(chunk);
  req.set_correlation_id(options.correlation_id);
  for (auto& item : items)
    detail::to_proto(std::move(item), req.add_items());
  auto reply = impl_->unary(&gw::Gateway::Stub::Map, req, options);
  if (!reply)
    return std::move(reply.error());
  std::vector<result<value>> out;
  out.reserve(static_cast<std::size_t>(reply->items_size()));
  for (auto& item : *reply->mutable_items()) {
    if (item.has_failure())
      out.emplace_back(detail::from_failure(item.failure()));
    else
      out.emplace_back(detail::from_proto(std::move(*item.mutable_result())));
  }
  return out;
}

result<stream_totals> client::stream(const std::string& pool, const std::string& tool,
                                     value::map arguments,
                                     const std::function<bool(value&&)>& on_item,
                                     const call_options& options) {
  gw::CallRequest req;
  impl::fill(&req, pool, tool, std::move(arguments), options);
  grpc::ClientContext ctx;
  impl_->prepare(ctx, options);
  auto reader = impl_->stub->Stream(&ctx, req);
  stream_totals totals;
  std::optional<error_info> failure;
  bool ended = false;
  gw::StreamReply msg;
  while (reader->Read(&msg)) {
    if (msg.has_item()) {
      ++totals.items;
      if (!on_item(detail::from_proto(std::move(*msg.mutable_item())))) {
        totals.stopped = true;
        ctx.TryCancel(); // closes the generator in Python
        break;
      }
    } else if (msg.has_end()) {
      totals.python_wall = std::chrono::nanoseconds{msg.end().python_wall_ns()};
      totals.worker_id = msg.end().worker_id();
      ended = true;
    } else if (msg.has_failure()) {
      failure = detail::from_failure(msg.failure());
    }
    msg.Clear();
  }
  auto status = reader->Finish();
  if (totals.stopped)
    return totals;
  if (failure)
    return std::move(*failure);
  if (!status.ok())
    return impl_->failed(status);
  if (!ended)
    return error_info::of(errc::internal, "the gateway ended the stream without its end");
  return totals;
}

result<std::string> client::open_session(const std::string& pool, std::string id) {
  gw::SessionRequest req;
  req.set_pool(pool);
  req.set_session_id(std::move(id));
  auto reply = impl_->unary(&gw::Gateway::Stub::OpenSession, req);
  if (!reply)
    return std::move(reply.error());
  if (reply->has_failure())
    return detail::from_failure(reply->failure());
  return reply->session_id();
}

result<bool> client::close_session(const std::string& pool, const std::string& id) {
  gw::SessionRequest req;
  req.set_pool(pool);
  req.set_session_id(id);
  auto reply = impl_->unary(&gw::Gateway::Stub::CloseSession, req);
  if (!reply)
    return std::move(reply.error());
  if (reply->has_failure())
    return detail::from_failure(reply->failure());
  return reply->closed();
}

result<std::vector<pool_info>> client::list_pools() {
  auto reply = impl_->unary(&gw::Gateway::Stub::ListPools, gw::ListPoolsRequest{});
  if (!reply)
    return std::move(reply.error());
  std::vector<pool_info> out;
  for (auto& p : reply->pools()) {
    pool_info info;
    info.name = p.name();
    info.state = p.state();
    info.size = p.size();
    info.ready = p.ready();
    info.busy = p.busy();
    info.queued = p.queued();
    info.profile = p.profile();
    info.adapter = p.adapter();
    for (auto& t : p.tools())
      info.tools.push_back(detail::from_proto(t));
    out.push_back(std::move(info));
  }
  return out;
}

result<std::string> client::status(const std::string& pool) {
  gw::StatusRequest req;
  req.set_pool(pool);
  auto reply = impl_->unary(&gw::Gateway::Stub::Status, req);
  if (!reply)
    return std::move(reply.error());
  if (reply->has_failure())
    return detail::from_failure(reply->failure());
  return reply->json();
}

} // namespace snakepit
