#include "snakepit/node/node_server.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/publish.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "snakepit/gateway/gateway_server.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/node/host_port.hpp"
#include "snakepit/node/node_tls.hpp"

namespace snakepit {

namespace {

struct node_state {
  std::string name;
  std::vector<std::string> exports;
  std::function<caf::expected<pool_actor>(const std::string&)> pool;
};

node_actor::behavior_type node_behavior(node_actor::stateful_pointer<node_state> self,
                                        node_state init) {
  self->state = std::move(init);
  return {
    [self](lookup_pool_atom, const std::string& name) -> caf::result<pool_actor> {
      auto& st = self->state;
      if (std::find(st.exports.begin(), st.exports.end(), name) == st.exports.end())
        return make_error(errc::bad_arguments,
                          fmt::format("node '{}' exports no pool '{}'; it exports: {} (export "
                                      "in its [node] table)",
                                      st.name, name, fmt::join(st.exports, ", ")));
      auto pool = st.pool(name);
      if (!pool)
        return std::move(pool.error());
      return *pool;
    },
    [self](node_info_atom) -> caf::result<std::string, std::vector<std::string>> {
      return {self->state.name, self->state.exports};
    },
  };
}

} // namespace

caf::expected<std::unique_ptr<node_server>>
node_server::start(caf::actor_system& sys, node_options options,
                   std::function<caf::expected<pool_actor>(const std::string&)> pool) {
  auto bad = [](std::string what) { return make_error(errc::bad_config, std::move(what)); };
  auto address = split_host_port(options.listen);
  if (!address)
    return bad(fmt::format("[node] listen = \"{}\" is not \"host:port\" with a port of 0 to "
                           "65535",
                           options.listen));
  auto& [host, port] = *address;
  if (!sys.has_middleman())
    return make_error(errc::internal, "a node needs CAF's middleman: call "
                                      "snakepit::use_distribution(cfg) before making the "
                                      "actor system");
  bool tls = uses_tls(sys);
  if (!gateway_server::is_loopback(host) && !tls && !options.insecure)
    return bad(fmt::format("[node] listen = \"{}\" is not a loopback address: give the node "
                           "tls_cert, tls_key and tls_ca, or set insecure = true to serve it in "
                           "plain text (anyone on that network can then call the exported "
                           "pools)",
                           options.listen));
  auto actor = sys.spawn(node_behavior,
                         node_state{options.name, options.exports, std::move(pool)});
  auto bound = tls ? caf::openssl::publish(actor, port, host.c_str(), true)
                   : sys.middleman().publish(actor, port, host.c_str(), true);
  if (!bound) {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    return make_error(errc::startup_failed,
                      fmt::format("node '{}' cannot listen on {}: {}", options.name,
                                  options.listen, caf::to_string(bound.error())));
  }
  return std::unique_ptr<node_server>{new node_server(sys, actor, host, *bound)};
}

node_server::~node_server() {
  // TLS or not, the port belongs to the one BASP broker (caf::openssl's own
  // unpublish does not compile in 0.17).
  sys_.middleman().unpublish(actor_, port_);
  caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
}

std::string node_server::address() const {
  return host_ + ":" + std::to_string(port_);
}

} // namespace snakepit
