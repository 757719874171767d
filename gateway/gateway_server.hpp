#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "snakepit/messages/pool_actor.hpp"
#include "snakepit/observability/status_json.hpp"

namespace snakepit {

/// How a gateway listens and what it allows (`[gateway]` in a tree file).
struct gateway_options {
  /// "unix:/path" or "host:port". Loopback or a unix socket unless `tls_*`
  /// or `insecure` say otherwise.
  std::string listen;
  /// Allow a non-loopback address without TLS.
  bool insecure = false;
  /// PEM files: the server's certificate chain and key; with `tls_client_ca`,
  /// clients must present a certificate it signed.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  /// Clients must send `authorization: Bearer <token>`; empty: no token.
  std::string token;
  /// Calls (of any kind) in flight through the gateway at once
  /// (`max_calls`); over it: RESOURCE_EXHAUSTED naming the key.
  std::uint32_t max_calls = 1024;
  /// Calls in flight from one client connection (`max_calls_per_client`).
  std::uint32_t max_calls_per_client = 256;
  /// Largest message either way (`max_message_bytes`).
  std::int64_t max_message_bytes = 64LL * 1024 * 1024;
};

/// What the gateway serves: a running tree's pools.
struct gateway_backend {
  std::string tree;
  /// The pool named `name` as it runs now.
  std::function<caf::expected<pool_actor>(const std::string& name)> pool;
  /// The names of the tree's pools (for the error naming an unknown one).
  std::vector<std::string> pool_names;
  /// Each pool's adapter (dotted path), for ListPools.
  std::map<std::string, std::string> adapters;
  /// A snapshot of every pool. Blocking: the gateway calls it on a thread of
  /// its own.
  std::function<tree_status()> status;
};

/// Serves `snakepit.gateway.v1.Gateway` (messages/gateway.proto): clients in
/// other processes call a running tree's pools with the same typed errors,
/// deadlines, queueing and sessions as in-process callers. Callback API: no
/// gRPC thread waits on a pool; each call is a short-lived actor.
class gateway_server {
public:
  /// Starts serving; the error says why it cannot (bad address, TLS files,
  /// a non-loopback address without TLS or `insecure`).
  static caf::expected<std::unique_ptr<gateway_server>>
  start(caf::actor_system& sys, gateway_options options, gateway_backend backend);

  /// Stops serving: new calls get UNAVAILABLE; calls still open end with
  /// their pool's answer (`pool_stopped` when the tree is stopping), waited
  /// for here.
  ~gateway_server();

  /// Where clients connect: "unix:/..." or "host:port" (the bound port).
  [[nodiscard]] const std::string& address() const noexcept {
    return address_;
  }

  /// Whether `host` (of "host:port") is a loopback address or name.
  static bool is_loopback(const std::string& host);

  struct impl;

private:
  gateway_server() = default;

  std::unique_ptr<impl> impl_;
  std::string address_;
};

} // namespace snakepit
