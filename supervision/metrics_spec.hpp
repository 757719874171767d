#pragma once

#include <cstdint>
#include <string>

namespace snakepit {

/// The Prometheus metrics endpoint a tree file asks for (`[metrics]`, see
/// docs/configuration.md). Its own header so that the HTTP side can use it
/// without the rest of a tree.
struct metrics_spec {
  /// Off unless the file says `enabled = true`: an open port is opt-in.
  bool enabled = false;
  /// An IPv4 or IPv6 literal (no brackets), or "localhost".
  std::string bind = "127.0.0.1";
  /// 0: any free port, chosen when the endpoint starts.
  std::uint16_t port = 9464;
  /// Starts with '/'.
  std::string path = "/metrics";
  /// When set, every request needs `Authorization: Bearer <token>` with the
  /// token read from this file (0600, ours); relative to the tree file.
  std::string token_file;
  /// Bounds against slow or greedy clients (see http_endpoint::options).
  std::uint32_t max_connections = 64;
  std::uint32_t max_connections_per_client = 8;
  std::uint32_t request_timeout_ms = 5000;
  std::uint32_t write_timeout_ms = 5000;
};

} // namespace snakepit
