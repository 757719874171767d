#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace snakepit {

/// Where a running tree's gateway is and how to reach it (see docs/client.md).
struct client_options {
  /// "unix:/path" (what `snakepit run --print-address` prints by default) or
  /// "host:port".
  std::string address;
  /// Sent as `authorization: Bearer <token>` with every call; empty: none.
  std::string token;
  /// A file holding the token (read once by `connect`, surrounding
  /// whitespace dropped); used when `token` is empty.
  std::string token_file;
  /// PEM of the CA that signed the gateway's certificate: TLS. Empty: plain
  /// text (a unix socket, or loopback TCP).
  std::string ca_file;
  /// PEM certificate chain and key of this client, for a gateway that
  /// verifies clients (`tls_client_ca`).
  std::string cert_file;
  std::string key_file;
  /// Largest message either way; over it, a call fails `payload_too_large`
  /// before it leaves (and the gateway has its own `max_message_bytes`).
  std::int64_t max_message_bytes = 64LL * 1024 * 1024;
  /// How long a call waits for its answer beyond its own timeout before the
  /// client gives up on the gateway with `unavailable` (a gateway that stopped
  /// answering but keeps its connection).
  std::chrono::milliseconds answer_grace{5000};
};

} // namespace snakepit
