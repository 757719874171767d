#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <grpcpp/grpcpp.h>

#include "gateway.grpc.pb.h"
#include "snakepit/gateway/gateway_server.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

/// What the gateway's RPCs share: the tree they serve and the admission of
/// calls (the token, `max_calls`, `max_calls_per_client`).
struct gateway_server::impl {
  caf::actor_system* sys = nullptr;
  gateway_options options;
  gateway_backend backend;
  std::unique_ptr<snakepit::gateway::v1::Gateway::CallbackService> service;
  std::unique_ptr<grpc::Server> server;
  std::atomic<std::uint32_t> in_flight{0};
  std::mutex peers_mtx;
  std::map<std::string, std::uint32_t> per_peer;

  /// A call admitted: `release` (at the latest its destruction) gives its
  /// slots back. Released when the call is answered: closures that hold a
  /// copy may live a little longer (an actor's initial function).
  struct ticket {
    impl* owner;
    std::string peer;
    std::atomic<bool> released{false};

    ticket(impl* o, std::string p) : owner(o), peer(std::move(p)) {
    }

    ticket(const ticket&) = delete;
    ticket& operator=(const ticket&) = delete;

    ~ticket() {
      release();
    }

    void release() {
      if (released.exchange(true))
        return;
      owner->in_flight.fetch_sub(1);
      std::lock_guard<std::mutex> guard{owner->peers_mtx};
      auto i = owner->per_peer.find(peer);
      if (i != owner->per_peer.end() && --i->second == 0)
        owner->per_peer.erase(i);
    }
  };

  using ticket_ptr = std::shared_ptr<ticket>;

  /// The pool `name`; an unknown name is `bad_arguments` listing the pools.
  caf::expected<pool_actor> find_pool(const std::string& name) const {
    auto& names = backend.pool_names;
    if (std::find(names.begin(), names.end(), name) == names.end())
      return make_error(errc::bad_arguments,
                        fmt::format("this tree has no pool '{}'; its pools: {}", name,
                                    fmt::join(names, ", ")));
    return backend.pool(name);
  }

  /// Checks the client's token: OK, or UNAUTHENTICATED saying why.
  grpc::Status authorize(grpc::CallbackServerContext* ctx) const {
    if (options.token.empty())
      return grpc::Status::OK;
    auto& md = ctx->client_metadata();
    auto i = md.find("authorization");
    std::string given = i == md.end() ? std::string{}
                                      : std::string{i->second.data(), i->second.size()};
    auto expected = "Bearer " + options.token;
    // Compared in constant time: how long a refusal takes says nothing.
    bool same = given.size() == expected.size();
    unsigned char diff = 0;
    for (std::size_t k = 0; k < expected.size(); ++k)
      diff |= static_cast<unsigned char>(expected[k] ^ (k < given.size() ? given[k] : 0));
    if (same && diff == 0)
      return grpc::Status::OK;
    return grpc::Status{grpc::StatusCode::UNAUTHENTICATED,
                        i == md.end() ? "this gateway needs a token: send the metadata "
                                        "'authorization: Bearer <token>'"
                                      : "wrong token"};
  }

  /// Takes a slot of `max_calls` and one of `max_calls_per_client` for
  /// `peer`: a ticket, or nothing with `why` naming the limit hit.
  ticket_ptr take_slot(const std::string& peer, std::string& why) {
    if (in_flight.fetch_add(1) >= options.max_calls) {
      in_flight.fetch_sub(1);
      why = fmt::format("the gateway has {} calls in flight, its limit (max_calls in "
                        "[gateway]); retry later",
                        options.max_calls);
      return nullptr;
    }
    {
      std::lock_guard<std::mutex> guard{peers_mtx};
      auto& n = per_peer[peer];
      if (n >= options.max_calls_per_client) {
        if (n == 0)
          per_peer.erase(peer);
        in_flight.fetch_sub(1);
        why = fmt::format("this client has {} calls in flight, its limit "
                          "(max_calls_per_client in [gateway]); retry later",
                          options.max_calls_per_client);
        return nullptr;
      }
      ++n;
    }
    return std::make_shared<ticket>(this, peer);
  }

  /// Checks the token and the limits for one call: a ticket, or nothing with
  /// `refusal` (UNAUTHENTICATED or RESOURCE_EXHAUSTED) saying why.
  ticket_ptr admit(grpc::CallbackServerContext* ctx, grpc::Status& refusal) {
    if (auto status = authorize(ctx); !status.ok()) {
      refusal = std::move(status);
      return nullptr;
    }
    std::string why;
    auto result = take_slot(ctx->peer(), why);
    if (!result)
      refusal = grpc::Status{grpc::StatusCode::RESOURCE_EXHAUSTED, std::move(why)};
    return result;
  }
};

} // namespace snakepit
