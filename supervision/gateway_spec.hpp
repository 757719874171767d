#pragma once

#include <cstdint>
#include <string>

namespace snakepit {

/// The gateway a tree file asks for (`[gateway]`, see docs/gateway.md): how
/// `snakepit run` serves the tree to other processes. Its own header so that
/// the command line can use it without the rest of a tree.
struct gateway_spec {
  /// On unless the file says `enabled = false`.
  bool enabled = true;
  /// "unix:/path" or "host:port"; empty: a unix socket in the tree's runtime
  /// directory.
  std::string listen;
  /// A non-loopback address without TLS.
  bool insecure = false;
  /// PEM files (relative to the tree file): certificate chain, key, and the CA
  /// that signs client certificates (then required).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  /// Clients must send this file's token (0600, ours) as `authorization:
  /// Bearer <token>`; relative to the tree file.
  std::string token_file;
  std::uint32_t max_calls = 1024;
  std::uint32_t max_calls_per_client = 256;
  std::int64_t max_message_bytes = 64LL * 1024 * 1024;
};

} // namespace snakepit
