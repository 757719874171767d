#include "snakepit/actors/detail/host_tool_server.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "bridge.grpc.pb.h"
#include "snakepit/actors/detail/log.hpp"
#include "snakepit/actors/detail/shm_value_proto.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

namespace v1 = bridge::v1;

/// What a call needs until it is answered: the RPC's reactor and response.
struct host_call::state {
  std::string tool;
  value::map arguments;
  caf::timestamp deadline{};
  std::string worker_id;
  std::string request_id;
  std::string session_id;
  grpc::ServerUnaryReactor* reactor = nullptr;
  v1::HostToolResponse* response = nullptr;
  /// Large results go to the worker through it (null: inline).
  std::shared_ptr<detail::shm_arena> shm;
  std::atomic<bool> answered{false};

  void finish_error(v1::ErrorKind kind, const std::string& message) {
    if (answered.exchange(true))
      return;
    auto* e = response->mutable_error();
    e->set_kind(kind);
    e->set_message(message);
    reactor->Finish(grpc::Status::OK);
  }
};

host_call::host_call(std::shared_ptr<state> s) : state_(std::move(s)) {
}

host_call::host_call(host_call&&) noexcept = default;
host_call& host_call::operator=(host_call&&) noexcept = default;

host_call::~host_call() {
  if (state_ && !state_->answered)
    state_->finish_error(v1::INTERNAL,
                         fmt::format("host tool '{}' dropped the call without an answer",
                                     state_->tool));
}

const std::string& host_call::tool() const noexcept {
  return state_->tool;
}

const value::map& host_call::arguments() const noexcept {
  return state_->arguments;
}

caf::timestamp host_call::deadline() const noexcept {
  return state_->deadline;
}

const std::string& host_call::worker_id() const noexcept {
  return state_->worker_id;
}

const std::string& host_call::request_id() const noexcept {
  return state_->request_id;
}

const std::string& host_call::session_id() const noexcept {
  return state_->session_id;
}

void host_call::reply(value result) {
  if (state_->answered)
    return;
  detail::shm_writer shm;
  shm.arena = state_->shm.get();
  v1::Value encoded;
  detail::to_proto(std::move(result), &encoded, shm);
  if (shm.error) {
    fail(shm.error);
    return;
  }
  if (state_->answered.exchange(true))
    return;  // its segments go with `shm`
  // A result's segments belong to its receiver, the worker, from here on.
  for (auto& segment : shm.segments)
    segment->release();
  *state_->response->mutable_result() = std::move(encoded);
  state_->reactor->Finish(grpc::Status::OK);
}

void host_call::fail(const caf::error& err) {
  auto info = describe(err);
  v1::ErrorKind kind = v1::INTERNAL;
  if (info.kind == "unknown_tool")
    kind = v1::UNKNOWN_TOOL;
  else if (info.kind == "bad_arguments")
    kind = v1::BAD_ARGUMENTS;
  else if (info.kind == "timeout")
    kind = v1::TIMEOUT;
  else if (info.kind == "payload_too_large")
    kind = v1::PAYLOAD_TOO_LARGE;
  // The host's own kind travels in the message, so Python sees e.g. that a
  // pool was saturated, not only "internal".
  state_->finish_error(kind, kind == v1::INTERNAL ? info.kind + ": " + info.message
                                                  : info.message);
}

namespace detail {

namespace {

class host_service final : public v1::Host::CallbackService {
public:
  host_service(std::vector<host_tool> tools, std::shared_ptr<shm_arena> shm)
    : shm_(std::move(shm)) {
    for (auto& t : tools)
      tools_.emplace(t.name, std::move(t));
  }

  grpc::ServerUnaryReactor* ListHostTools(grpc::CallbackServerContext* ctx,
                                          const v1::ListHostToolsRequest*,
                                          v1::ListHostToolsResponse* response) override {
    for (auto& [name, t] : tools_) {
      auto* spec = response->add_tools();
      spec->set_name(name);
      spec->set_description(t.description);
      spec->set_returns(t.returns);
      for (auto& p : t.parameters) {
        auto* param = spec->add_parameters();
        param->set_name(p.name);
        param->set_type(p.type);
        param->set_required(p.required);
        param->set_description(p.description);
      }
    }
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* CallHostTool(grpc::CallbackServerContext* ctx,
                                         const v1::HostToolRequest* request,
                                         v1::HostToolResponse* response) override {
    auto s = std::make_shared<host_call::state>();
    s->reactor = ctx->DefaultReactor();
    s->response = response;
    s->tool = request->tool();
    s->worker_id = request->worker_id();
    s->request_id = request->request_id();
    s->session_id = request->session_id();
    if (request->timeout_ms() > 0)
      s->deadline = caf::make_timestamp() + std::chrono::milliseconds{request->timeout_ms()};
    auto i = tools_.find(request->tool());
    if (i == tools_.end()) {
      std::string known;
      for (auto& [name, t] : tools_)
        known += (known.empty() ? "" : ", ") + name;
      s->finish_error(v1::UNKNOWN_TOOL,
                      fmt::format("no host tool '{}'; this pool has: {}", request->tool(),
                                  known.empty() ? std::string{"none"} : known));
      return s->reactor;
    }
    s->shm = shm_;
    // The worker sent the arguments and removes their segments after the call.
    shm_reader reader;
    reader.arena = shm_.get();
    s->arguments = detail::from_proto(v1::MapValue{request->arguments()}, reader);
    if (reader.error) {
      s->finish_error(v1::BAD_ARGUMENTS, fmt::format("arguments of host tool '{}': {}",
                                                     request->tool(),
                                                     describe(reader.error).message));
      return s->reactor;
    }
    auto* reactor = s->reactor;
    auto name = request->tool();  // the request may be gone once the call is answered
    try {
      i->second.handler(host_call{std::move(s)});
    } catch (const std::exception& e) {
      // An exception never leaves the handler: the call, dropped unanswered,
      // fails with `internal`.
      detail::log_warning("host-tools", "host tool '{}' threw: {}", name, e.what());
    }
    return reactor;
  }

private:
  std::map<std::string, host_tool> tools_;
  std::shared_ptr<shm_arena> shm_;
};

} // namespace

struct host_tool_server::impl {
  std::unique_ptr<host_service> service;
  std::unique_ptr<grpc::Server> server;
};

caf::expected<std::unique_ptr<host_tool_server>>
host_tool_server::start(const std::string& socket_path, std::vector<host_tool> tools,
                        std::int64_t max_message_bytes, std::shared_ptr<shm_arena> shm) {
  std::unique_ptr<host_tool_server> out{new host_tool_server};
  out->impl_ = std::make_unique<impl>();
  out->socket_path_ = socket_path;
  out->impl_->service = std::make_unique<host_service>(std::move(tools), std::move(shm));
  ::unlink(socket_path.c_str());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path, grpc::InsecureServerCredentials());
  auto limit = static_cast<int>(std::min<std::int64_t>(max_message_bytes + 65536, INT32_MAX));
  builder.SetMaxReceiveMessageSize(limit);
  builder.SetMaxSendMessageSize(limit);
  builder.RegisterService(out->impl_->service.get());
  out->impl_->server = builder.BuildAndStart();
  if (!out->impl_->server)
    return make_error(errc::startup_failed,
                      fmt::format("cannot serve host tools on {}", socket_path));
  return out;
}

host_tool_server::~host_tool_server() {
  if (impl_ && impl_->server) {
    // Calls still open are cancelled at once: their Python callers get an
    // error, and nothing here waits for a handler.
    impl_->server->Shutdown(std::chrono::system_clock::now());
    impl_->server->Wait();
  }
  ::unlink(socket_path_.c_str());
}

} // namespace detail

} // namespace snakepit
