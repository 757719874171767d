#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

namespace snakepit {

/// A small HTTP/1.1 server for read-only endpoints (metrics, status,
/// control): GET only, one request per connection. One thread reads and
/// writes every connection without blocking; bodies are made on
/// `http_threads` threads of its own (never an actor's). Stops and joins in
/// its destructor.
///
/// A slow or hostile client cannot hold it: a request's head must arrive
/// whole within `request_timeout` (not per read: trickling a header line
/// every second does not extend it), a response must be taken within
/// `write_timeout`, and connections are capped in total and per client
/// address (answered 503 / 429 and closed past the caps).
class http_endpoint {
public:
  /// Threads making response bodies: a scrape or an inspect at a time is the norm.
  static constexpr int http_threads = 2;
  /// Bytes a request head may have (they are all GETs): 431 past it.
  static constexpr std::size_t max_request_bytes = 8 * 1024;

  struct route {
    std::string path;
    std::string content_type;
    /// Makes the body; may block briefly (it asks actors for their status).
    std::function<std::string()> body;
  };

  struct options {
    /// Address to bind: an IP literal or "localhost". Not 0.0.0.0 unless you
    /// mean every interface.
    std::string bind = "127.0.0.1";
    /// 0: any free port (see `port()`).
    std::uint16_t port = 0;
    /// When set, every request must carry `Authorization: Bearer <token>`.
    std::string token;
    /// Open connections at once; more are answered 503 and closed.
    std::size_t max_connections = 64;
    /// Open connections from one client address; more get 429.
    std::size_t max_connections_per_client = 8;
    /// Time for a request's whole head to arrive, from accept; then 408.
    std::chrono::milliseconds request_timeout{5000};
    /// Time for a client to take the whole response; then it is dropped.
    std::chrono::milliseconds write_timeout{5000};
  };

  /// Binds and starts serving; fails with a clear error when the address
  /// cannot be bound (in use, not local, no permission).
  static caf::expected<std::unique_ptr<http_endpoint>> start(options opts,
                                                             std::vector<route> routes);

  ~http_endpoint();

  http_endpoint(const http_endpoint&) = delete;
  http_endpoint& operator=(const http_endpoint&) = delete;

  /// The port actually bound.
  [[nodiscard]] std::uint16_t port() const noexcept;

  /// e.g. "http://127.0.0.1:9464".
  [[nodiscard]] std::string base_url() const;

private:
  struct impl;
  explicit http_endpoint(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace snakepit
