#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/timestamp.hpp>
#include <caf/timespan.hpp>

#include "snakepit/messages/value_inspect.hpp"

namespace snakepit {

/// One call of a Python tool. A struct, not positional arguments, so new
/// capabilities add fields without breaking callers.
struct execute_request {
  /// Unique per pool; the pool assigns one when empty.
  std::string request_id;
  /// Name of the tool on the adapter.
  std::string tool;
  /// Keyword arguments of the tool.
  value::map arguments;
  /// Absolute deadline. A default-constructed (epoch) deadline means "the
  /// pool's `request_timeout` from when the pool receives the request".
  caf::timestamp deadline{};
  /// Time the request waited in the pool's queue (filled by the pool).
  caf::timespan queued{0};
  /// Caller's id for tracing a request across systems.
  std::string correlation_id;
  /// Session the request belongs to (empty: none).
  std::string session_id;
  /// Free-form key/value pairs passed through to Python.
  std::map<std::string, std::string> metadata;
  /// Set by the pool: the session's earlier calls ran on another worker, so
  /// its Python-side state is not where this call runs.
  bool session_moved = false;
  /// Streams only: items the consumer can take before its first ack (the
  /// initial credit). 0: the pool's `stream_window`. At most 4096.
  std::uint32_t stream_window = 0;
  /// A map: the tool runs once per argument set, in order, in one call
  /// (one slot, one deadline for all); `arguments` must then be empty. The
  /// reply's `items` holds each set's result or error.
  std::vector<value::map> items;
  /// The call may run more than once: a call whose worker crashes under it is
  /// retried (the pool's `retry_max_attempts`, back-off, within the
  /// deadline). Also when the tool says so (`@tool(idempotent=True)`).
  bool idempotent = false;
  /// Set by the pool: which attempt this is (1: the first), and the request's
  /// identity in the poison table (a hash of tool and arguments).
  std::uint32_t attempt = 0;
  std::uint64_t poison_key = 0;
};

/// The longest timeout anything accepts (ten years): a deadline of now plus
/// more would overflow `caf::timestamp` and be already past. Config keys and
/// flags refuse more; `make_request` saturates to it.
inline constexpr std::chrono::milliseconds max_timeout{315'360'000'000};

/// Builds a request for `tool` with `arguments`.
inline execute_request make_request(std::string tool, value::map arguments = {}) {
  execute_request r;
  r.tool = std::move(tool);
  r.arguments = std::move(arguments);
  return r;
}

/// Builds a request that must finish within `timeout` from now.
inline execute_request make_request(std::string tool, value::map arguments,
                                    caf::timespan timeout) {
  auto r = make_request(std::move(tool), std::move(arguments));
  r.deadline = caf::make_timestamp() + std::min<caf::timespan>(timeout, max_timeout);
  return r;
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, execute_request& x) {
  return f(caf::meta::type_name("snakepit::execute_request"), x.request_id,
           x.tool, x.arguments, x.deadline, x.queued, x.correlation_id,
           x.session_id, x.metadata, x.session_moved, x.stream_window, x.items,
           x.idempotent, x.attempt, x.poison_key);
}

} // namespace snakepit
