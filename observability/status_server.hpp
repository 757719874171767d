#pragma once

#include <functional>
#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "snakepit/observability/http_endpoint.hpp"
#include "snakepit/observability/metrics_registry.hpp"
#include "snakepit/observability/status_json.hpp"

namespace snakepit {

/// The HTTP face of a running tree (or of any set of pools):
/// - `metrics_path` (default `/metrics`): Prometheus text;
/// - `/status`: the JSON status document (`status_json.hpp`);
/// - `/diagnosis`: the machine, each pool's utilisation and saturation, and
///   recommendations, as JSON (`diagnosis.hpp`).
/// It owns a `metrics_registry` on the global telemetry bus, so counters
/// start when the server does.
class status_server {
public:
  struct options {
    http_endpoint::options http;
    std::string metrics_path = "/metrics";
  };

  /// Takes a fresh snapshot of the pools; called on the server's threads.
  using status_source = std::function<tree_status()>;

  static caf::expected<std::unique_ptr<status_server>> start(options opts, status_source source);

  [[nodiscard]] std::uint16_t port() const noexcept {
    return http_->port();
  }

  [[nodiscard]] std::string base_url() const {
    return http_->base_url();
  }

private:
  status_server() = default;

  // Declared first, destroyed last: the endpoint's handlers use it.
  std::unique_ptr<metrics_registry> metrics_;
  std::unique_ptr<http_endpoint> http_;
};

} // namespace snakepit
