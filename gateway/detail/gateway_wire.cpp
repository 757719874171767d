#include "snakepit/gateway/detail/gateway_wire.hpp"

#include <fmt/format.h>

#include "snakepit/messages/detail/value_proto.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit::detail {

namespace gw = snakepit::gateway::v1;

caf::error gateway_reply_too_large(std::size_t size, std::size_t limit) {
  return make_error(errc::payload_too_large,
                    fmt::format("the reply is {} bytes, over the gateway's limit of {} "
                                "(max_message_bytes in [gateway]); return less, or raise it",
                                size, limit));
}

void fill(gw::Failure* out, const caf::error& err) {
  auto info = describe(err);
  // The gateway finds pools by name on every call: a pool that stopped
  // before it took the call is one its tree is restarting (or a remote pool
  // reconnecting), and the next call by the same name may well work.
  if (err == caf::sec::request_receiver_down) {
    info.kind = "unavailable";
    info.message = "the pool stopped before it took the call, which did not run; its tree "
                   "restarts it (a remote pool reconnects to its node): retry shortly";
  }
  out->set_kind(info.kind);
  out->set_message(info.message);
  out->set_python_type(info.python_type);
  out->set_traceback(info.traceback);
}

execute_request to_request(const gw::CallRequest& req,
                           std::optional<std::chrono::system_clock::time_point> deadline) {
  execute_request r;
  r.tool = req.tool();
  r.arguments = from_proto(req.arguments());
  r.session_id = req.session_id();
  r.correlation_id = req.correlation_id();
  for (auto& [k, v] : req.metadata())
    r.metadata.emplace(k, v);
  r.stream_window = req.stream_window();
  r.idempotent = req.idempotent();
  if (deadline)
    r.deadline = caf::timestamp{
      std::chrono::duration_cast<caf::timestamp::duration>(deadline->time_since_epoch())};
  return r;
}

void fill(gw::CallReply* out, execute_reply&& x, std::size_t max_bytes) {
  to_proto(std::move(x.result), out->mutable_result());
  if (auto size = out->ByteSizeLong(); size > max_bytes) {
    out->Clear();
    fill(out->mutable_failure(), gateway_reply_too_large(size, max_bytes));
  }
  out->set_request_id(x.request_id);
  out->set_worker_id(x.worker_id);
  out->set_python_wall_ns(x.python_wall.count());
  out->set_queued_ns(x.queued.count());
  out->set_attempts(x.attempts);
}

} // namespace snakepit::detail
