#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

namespace snakepit {

/// A small HTTP server for read-only endpoints (metrics, status, control):
/// GET only, answered by handlers on a pool of `http_threads` threads of its
/// own (never an actor's). Stops and joins in its destructor.
class http_endpoint {
public:
  /// Threads answering requests: a scrape or an inspect at a time is the norm.
  static constexpr int http_threads = 2;
  /// Bytes a request may carry (they are all GETs).
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
