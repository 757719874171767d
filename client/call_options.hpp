#pragma once

#include <chrono>
#include <map>
#include <string>

namespace snakepit {

/// How one call through a `snakepit::client` runs.
struct call_options {
  /// The call's deadline, from when it is sent: the pool's `timeout` error
  /// when it passes (in the queue or in a worker). Zero: the pool's bounds.
  std::chrono::milliseconds timeout{0};
  /// A session from `client::open_session`: the call runs on its worker.
  std::string session_id;
  /// Carried into the tree's logs and telemetry.
  std::string correlation_id;
  /// Passed to the tool's context in Python.
  std::map<std::string, std::string> metadata;
  /// The call may run twice: if its worker crashes under it, the pool
  /// retries it (its `retry_max_attempts`, within the deadline).
  bool idempotent = false;
};

} // namespace snakepit
