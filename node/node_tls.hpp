#pragma once

#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>

namespace snakepit {

/// A node's TLS identity (`[node] tls_cert`, `tls_key`, `tls_ca`;
/// docs/nodes.md). Mutual: a node presents `cert` both when it serves and
/// when it connects, and accepts a peer only when `ca` signed the peer's
/// certificate. CAF checks the chain, not host names: every certificate the
/// CA signs is a member of the cluster.
struct node_tls {
  /// PEM certificate (chain); it must allow TLS server and client use.
  std::string cert;
  /// PEM private key of `cert`, unencrypted, mode 0600, ours.
  std::string key;
  /// PEM certificate(s) of the CA that signs every node of the cluster.
  std::string ca;

  [[nodiscard]] bool enabled() const noexcept {
    return !cert.empty() || !key.empty() || !ca.empty();
  }
};

/// Loads CAF's middleman and, when `tls` is enabled, its OpenSSL module with
/// mutual authentication, into `cfg` (before the actor system is made). The
/// files are checked (safe place, the key private and matching the
/// certificate, purposes, the CA) and copied into a private directory of
/// ours, which CAF then reads for every connection. `bad_config` says which
/// file is wrong and how to fix it. A system with TLS speaks only TLS to
/// other nodes: `node_server` publishes and `connect_pool` connects with it.
caf::error use_distribution(caf::actor_system_config& cfg, const node_tls& tls);

/// True when `sys` was made with TLS (`use_distribution` with a `node_tls`).
bool uses_tls(const caf::actor_system& sys);

} // namespace snakepit
