#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "snakepit/messages/node_actor.hpp"
#include "snakepit/messages/pool_actor.hpp"

namespace snakepit {

/// How a node listens and what it exports (`[node]`, docs/nodes.md).
struct node_options {
  std::string name;
  /// "host:port"; port 0: any free one (`node_server::port` says which).
  std::string listen = "127.0.0.1:0";
  std::vector<std::string> exports;
  /// Allow a non-loopback address in plain text (a system with TLS,
  /// `use_distribution` with `node_tls`, serves any address).
  bool insecure = false;
};

/// Publishes a node actor (`node_actor`) through CAF's middleman so that
/// other nodes use this process's exported pools as their own
/// (`connect_pool`). The actor system needs the middleman
/// (`use_distribution`); made with TLS, the node speaks only TLS with mutual
/// authentication.
class node_server {
public:
  /// Publishes; `bad_config` for an address that is not loopback without
  /// TLS or `insecure`, `startup_failed` when it cannot listen.
  static caf::expected<std::unique_ptr<node_server>>
  start(caf::actor_system& sys, node_options options,
        std::function<caf::expected<pool_actor>(const std::string&)> pool);

  /// Unpublishes and stops the node actor (handles other nodes hold to the
  /// pools stay valid until the pools stop).
  ~node_server();

  node_server(const node_server&) = delete;
  node_server& operator=(const node_server&) = delete;

  /// The port it listens on.
  [[nodiscard]] std::uint16_t port() const noexcept {
    return port_;
  }

  /// "host:port" with the bound port.
  [[nodiscard]] std::string address() const;

  [[nodiscard]] const node_actor& handle() const noexcept {
    return actor_;
  }

private:
  node_server(caf::actor_system& sys, node_actor actor, std::string host, std::uint16_t port)
    : sys_(sys), actor_(std::move(actor)), host_(std::move(host)), port_(port) {
  }

  caf::actor_system& sys_;
  node_actor actor_;
  std::string host_;
  std::uint16_t port_;
};

} // namespace snakepit
