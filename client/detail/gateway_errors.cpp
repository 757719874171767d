#include "snakepit/client/detail/gateway_errors.hpp"

namespace snakepit::detail {

error_info from_failure(const snakepit::gateway::v1::Failure& failure) {
  error_info out;
  out.code = errc_from_string(failure.kind());
  out.kind = failure.kind().empty() ? to_string(out.code) : failure.kind();
  out.message = failure.message();
  out.python_type = failure.python_type();
  out.traceback = failure.traceback();
  return out;
}

error_info from_status(const grpc::Status& status, const std::string& address) {
  auto text = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return error_info::of(errc::unavailable,
                            "no gateway answers at " + address
                              + " (is the tree still running? `snakepit ls` lists the "
                                "running trees): "
                              + text);
    case grpc::StatusCode::CANCELLED:
      return error_info::of(errc::unavailable, "the gateway at " + address
                                                 + " ended the call (is its tree stopping?): "
                                                 + text);
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return error_info::of(errc::timeout, "the call passed its deadline: " + text);
    case grpc::StatusCode::UNAUTHENTICATED:
      return error_info::of(errc::unauthenticated,
                            text + " (give the tree's token: client_options::token or "
                                   "token_file, --token-file on the command line)");
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      // gRPC's own message size check says "larger than max".
      if (text.find("larger than max") != std::string::npos)
        return error_info::of(errc::payload_too_large,
                              text + " (max_message_bytes of the client or of [gateway])");
      return error_info::of(errc::pool_saturated, text);
    default:
      return error_info::of(errc::internal, "the gateway call failed (gRPC status "
                                              + std::to_string(status.error_code())
                                              + "): " + text);
  }
}

} // namespace snakepit::detail
