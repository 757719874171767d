#include "snakepit/node/connect_pool.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/remote_actor.hpp>
#include <fmt/format.h>

#include "snakepit/messages/error.hpp"
#include "snakepit/messages/node_actor.hpp"
#include "snakepit/node/node_tls.hpp"

namespace snakepit {

void use_distribution(caf::actor_system_config& cfg) {
  cfg.load<caf::io::middleman>();
}

caf::expected<pool_actor> connect_pool(caf::actor_system& sys, const std::string& host,
                                       std::uint16_t port, const std::string& pool,
                                       remote_pool_options watch,
                                       std::chrono::milliseconds timeout) {
  if (!sys.has_middleman())
    return make_error(errc::internal, "connect_pool needs CAF's middleman: call "
                                      "snakepit::use_distribution(cfg) before making the "
                                      "actor system");
  auto node = uses_tls(sys) ? caf::openssl::remote_actor<node_actor>(sys, host, port)
                            : sys.middleman().remote_actor<node_actor>(host, port);
  if (!node) {
    auto why = caf::to_string(node.error());
    // Refused before the TCP connection was made, or during the handshake.
    if (why.find("ip_connect failed") != std::string::npos)
      return make_error(errc::node_down,
                        fmt::format("no node answers at {}:{} ({}): is `snakepit run` with a "
                                    "[node] table running there, and is the port right?",
                                    host, port, why));
    return make_error(errc::node_down,
                      fmt::format("the node at {}:{} closed the connection during the "
                                  "handshake ({}): one side speaks TLS and the other plain "
                                  "text, or one refused the other's certificate (each node's "
                                  "certificate must be signed by the CA in the other's [node] "
                                  "tls_ca); this side {}",
                                  host, port, why,
                                  uses_tls(sys) ? "speaks TLS" : "speaks plain text"));
  }
  caf::expected<pool_actor> out{caf::error{}};
  caf::scoped_actor self{sys};
  self->request(*node, timeout, lookup_pool_atom::value, pool)
    .receive(
      [&](pool_actor& found) {
        watch.node_address = fmt::format("{}:{}", host, port);
        watch.pool = pool;
        out = spawn_remote_pool(sys, *node, std::move(found), std::move(watch));
      },
             [&](caf::error& err) {
               if (err == caf::sec::request_timeout || err == caf::sec::request_receiver_down)
                 out = make_error(errc::node_down,
                                  fmt::format("the node at {}:{} did not answer ({})", host,
                                              port, caf::to_string(err)));
               else
                 out = std::move(err);
             });
  return out;
}

} // namespace snakepit
