#include "snakepit/messages/errc.hpp"

#include <nlohmann/json.hpp>

namespace snakepit {

namespace {

constexpr const char* errc_names[] = {
  "none",           "unknown_tool",     "bad_arguments",    "python_exception",
  "encode_failed",  "worker_crashed",   "timeout",          "pool_saturated",
  "payload_too_large", "startup_failed", "bad_config",      "pool_stopped",
  "restart_intensity_exceeded", "worker_replaced", "internal",
  "session_unknown", "session_lost", "session_busy",
  "already_started", "already_present", "child_running", "child_unknown", "ignored",
  "unavailable", "unauthenticated", "node_down",
  "poison_request", "circuit_open",
};

constexpr auto errc_count = sizeof(errc_names) / sizeof(errc_names[0]);

static_assert(errc_count == static_cast<std::size_t>(errc::circuit_open) + 1,
              "every errc needs a name");

} // namespace

std::string to_string(errc x) {
  auto i = static_cast<std::size_t>(x);
  return i < errc_count ? errc_names[i] : "internal";
}

errc errc_from_string(const std::string& name) {
  for (std::size_t i = 1; i < errc_count; ++i)
    if (name == errc_names[i])
      return static_cast<errc>(i);
  return errc::internal;
}

error_info error_info::of(errc code, std::string message) {
  error_info out;
  out.kind = to_string(code);
  out.message = std::move(message);
  out.code = code;
  return out;
}

std::string error_info::to_json() const {
  nlohmann::json inner = {{"kind", kind}, {"message", message}};
  if (!python_type.empty())
    inner["python_type"] = python_type;
  if (!traceback.empty())
    inner["traceback"] = traceback;
  return nlohmann::json{{"error", inner}}.dump(-1, ' ', false,
                                              nlohmann::json::error_handler_t::replace);
}

std::string to_string(const error_info& x) {
  auto out = x.kind + ": " + x.message;
  if (!x.python_type.empty())
    out += " (" + x.python_type + ")";
  return out;
}

} // namespace snakepit
