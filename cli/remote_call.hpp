#pragma once

#include <cstdint>
#include <string>

#include "snakepit/messages/value.hpp"

namespace snakepit::cli {

/// A call through a running tree's gateway (`snakepit call --connect`).
struct remote_call {
  /// "unix:/path" or "host:port".
  std::string address;
  std::string pool;
  std::string tool;
  value::map arguments;
  std::int64_t timeout_ms = 60000;
  /// Sent as `authorization: Bearer <token>` when not empty.
  std::string token;
  /// A PEM file of the CA that signed the gateway's certificate: TLS.
  std::string ca_file;
  bool stream = false;
  bool timings = false;
  /// May run twice: the pool retries it after a worker crash.
  bool idempotent = false;
};

/// Makes the call and prints its result (or items, one per line) on stdout,
/// or the error on stderr as `snakepit call` does; returns the exit code.
int run_remote_call(const remote_call& call);

} // namespace snakepit::cli
