#include "snakepit/messages/error.hpp"

#include <caf/exit_reason.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace snakepit {

caf::error make_error(errc code) {
  return caf::error{static_cast<uint8_t>(code), error_category};
}

caf::error make_error(errc code, std::string message) {
  return caf::error{static_cast<uint8_t>(code), error_category,
                    caf::make_message(std::move(message))};
}

caf::error make_error(errc code, std::string message, std::string python_type,
                      std::string traceback) {
  return caf::error{static_cast<uint8_t>(code), error_category,
                    caf::make_message(std::move(message), std::move(python_type),
                                      std::move(traceback))};
}

caf::error make_error(const error_info& info) {
  return make_error(info.code, info.message, info.python_type, info.traceback);
}

bool is(const caf::error& err, errc code) {
  return err && err.category() == error_category
         && err.code() == static_cast<uint8_t>(code);
}

error_info describe(const caf::error& err) {
  error_info out;
  if (!err) {
    out.kind = "none";
    return out;
  }
  if (err.category() == error_category) {
    out.code = static_cast<errc>(err.code());
    out.kind = to_string(out.code);
    const auto& ctx = err.context();
    if (ctx.size() >= 1 && ctx.match_element<std::string>(0))
      out.message = ctx.get_as<std::string>(0);
    if (ctx.size() >= 3 && ctx.match_element<std::string>(1)
        && ctx.match_element<std::string>(2)) {
      out.python_type = ctx.get_as<std::string>(1);
      out.traceback = ctx.get_as<std::string>(2);
    }
    return out;
  }
  if (err == caf::sec::request_timeout) {
    out.code = errc::timeout;
    out.kind = "timeout";
    out.message = "the request timed out in CAF before any reply";
    return out;
  }
  if (err == caf::sec::request_receiver_down
      || err == caf::exit_reason::user_shutdown) {
    // The actor a caller holds is a pool (or a supervisor): once it is gone
    // it is stopped, by its tree or because it gave up. A worker dying under
    // a call is reported by its pool as worker_crashed, never like this.
    out.code = errc::pool_stopped;
    out.kind = "pool_stopped";
    out.message = "the pool (or supervisor) is no longer running (" + caf::to_string(err)
                  + "): it was stopped or gave up after too many restarts; do not retry on "
                    "this handle, get a new one once its tree has restarted it";
    return out;
  }
  out.code = errc::internal;
  out.kind = "internal";
  // CAF's own errors carry their text as the first context element.
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    out.message = ctx.get_as<std::string>(0);
  else
    out.message = caf::to_string(err);
  return out;
}

} // namespace snakepit
