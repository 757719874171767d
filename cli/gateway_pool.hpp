#pragma once

#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "snakepit/messages/pool_actor.hpp"

namespace grpc {
class Channel;
} // namespace grpc

namespace snakepit::cli {

/// Where a running tree's gateway is and how to reach it.
struct gateway_address {
  /// "unix:/path" or "host:port".
  std::string address;
  std::string pool;
  /// Sent as `authorization: Bearer <token>` when not empty.
  std::string token;
  /// PEM of the CA that signed the gateway's certificate: TLS.
  std::string ca_file;
};

/// A channel to the gateway at `where.address`: TLS when `where.ca_file`
/// names the CA to trust, no message size limit of its own (the gateway has
/// one). `bad_arguments` when the CA file cannot be read.
caf::expected<std::shared_ptr<grpc::Channel>> open_gateway_channel(const gateway_address& where);

/// An actor that answers `(execute_atom, execute_request)` like a pool by
/// calling the pool of a running tree through its gateway (a map request
/// through `Map`, anything else through `Call`), so the command line drives a
/// remote pool with the same code as its own. Other pool messages are refused.
caf::expected<pool_actor> connect_gateway_pool(caf::actor_system& sys,
                                               const gateway_address& where);

} // namespace snakepit::cli
