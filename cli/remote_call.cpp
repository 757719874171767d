#include "remote_call.hpp"

#include <chrono>
#include <iostream>

#include <grpcpp/grpcpp.h>

#include "gateway.grpc.pb.h"
#include "gateway_pool.hpp"
#include "output.hpp"
#include "snakepit/client/detail/gateway_errors.hpp"
#include "snakepit/messages/detail/value_proto.hpp"

namespace snakepit::cli {

namespace gw = snakepit::gateway::v1;

namespace {

int fail(std::string kind, std::string message, std::string python_type = {},
         std::string traceback = {}) {
  error_info info;
  info.kind = std::move(kind);
  info.message = std::move(message);
  info.python_type = std::move(python_type);
  info.traceback = std::move(traceback);
  print_error(info);
  return exit_failed;
}

int fail(const gw::Failure& f) {
  print_error(detail::from_failure(f));
  return exit_failed;
}

/// A refusal or failure of the gateway itself (not of the call).
int fail(const grpc::Status& status, const std::string& address) {
  print_error(detail::from_status(status, address));
  return exit_failed;
}

} // namespace

int run_remote_call(const remote_call& call) {
  auto channel = open_gateway_channel(gateway_address{call.address, call.pool, {}, call.ca_file});
  if (!channel)
    return fail("bad_arguments", describe(channel.error()).message);
  auto stub = gw::Gateway::NewStub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now()
                   + std::chrono::milliseconds{std::max<std::int64_t>(1, call.timeout_ms)});
  if (!call.token.empty())
    ctx.AddMetadata("authorization", "Bearer " + call.token);
  gw::CallRequest req;
  req.set_pool(call.pool);
  req.set_tool(call.tool);
  req.set_idempotent(call.idempotent);
  detail::to_proto(call.arguments, req.mutable_arguments());
  if (call.stream) {
    auto reader = stub->Stream(&ctx, req);
    gw::StreamReply msg;
    int code = exit_ok;
    while (reader->Read(&msg)) {
      if (msg.has_item()) {
        std::cout << detail::from_proto(msg.item()).to_json() << std::endl;
      } else if (msg.has_end()) {
        if (call.timings)
          log_line(std::to_string(msg.end().items()) + " items from " + msg.end().worker_id());
      } else if (msg.has_failure()) {
        code = fail(msg.failure());
      }
    }
    auto status = reader->Finish();
    if (!status.ok())
      return fail(status, call.address);
    return code;
  }
  gw::CallReply reply;
  auto status = stub->Call(&ctx, req, &reply);
  if (!status.ok())
    return fail(status, call.address);
  if (reply.has_failure())
    return fail(reply.failure());
  auto result = detail::from_proto(reply.result());
  if (call.timings)
    std::cout << value::make_map({{"result", result},
                                  {"python_wall_us", reply.python_wall_ns() / 1000},
                                  {"worker", reply.worker_id()},
                                  {"attempts", std::max<std::uint32_t>(reply.attempts(), 1)}})
                   .to_json()
              << std::endl;
  else
    std::cout << result.to_json() << std::endl;
  return exit_ok;
}

} // namespace snakepit::cli
