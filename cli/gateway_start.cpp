#include "gateway_start.hpp"

#include "snakepit/observability/token_file.hpp"

namespace snakepit::cli {

namespace {

void collect_adapters(const tree_node& node, std::map<std::string, std::string>& out) {
  if (node.kind == node_kind::pool)
    out.emplace(node.name, node.pool.adapter);
  for (auto& child : node.children)
    collect_adapters(child, out);
}

} // namespace

caf::expected<std::unique_ptr<gateway_server>>
start_gateway(caf::actor_system& sys, const tree_spec& tree_file, const running_tree& tree) {
  const auto& spec = tree_file.gateway;
  const auto& tree_name = tree_file.root.name;
  if (!spec.enabled)
    return std::unique_ptr<gateway_server>{};
  gateway_options opts;
  // The tree's runtime directory is private (0700): only this user can
  // connect to a socket in it.
  opts.listen = spec.listen.empty() ? "unix:" + tree.runtime_dir() + "/gateway.sock"
                                    : spec.listen;
  opts.insecure = spec.insecure;
  opts.tls_cert = spec.tls_cert;
  opts.tls_key = spec.tls_key;
  opts.tls_client_ca = spec.tls_client_ca;
  opts.max_calls = spec.max_calls;
  opts.max_calls_per_client = spec.max_calls_per_client;
  opts.max_message_bytes = spec.max_message_bytes;
  if (!spec.token_file.empty()) {
    auto token = read_token_file(spec.token_file, "[gateway] token_file");
    if (!token)
      return std::move(token.error());
    opts.token = std::move(*token);
  }
  gateway_backend backend;
  backend.tree = tree_name;
  backend.pool_names = tree.pool_names();
  collect_adapters(tree_file.root, backend.adapters);
  backend.pool = [tree](const std::string& name) { return tree.pool(name); };
  backend.status = [tree] { return tree.status(); };
  return gateway_server::start(sys, std::move(opts), std::move(backend));
}

} // namespace snakepit::cli
