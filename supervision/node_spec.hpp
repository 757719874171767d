#pragma once

#include <string>
#include <vector>

namespace snakepit {

/// What a tree file says with `[node]` (docs/nodes.md): `snakepit run` then
/// publishes the exported pools to other nodes through CAF's middleman.
struct node_spec {
  /// A `[node]` table is present.
  bool enabled = false;
  /// The node's name in logs and for other nodes; default: the tree's.
  std::string name;
  /// "host:port" (port 0: any free one, logged). Loopback unless `insecure`.
  std::string listen = "127.0.0.1:0";
  /// Pools other nodes may use. A node that exports nothing does not listen:
  /// its table only gives the tree's remote pools their TLS identity.
  std::vector<std::string> exports;
  /// Allow a non-loopback address in plain text (anyone on that network can
  /// then call the exported pools).
  bool insecure = false;
  /// TLS with mutual authentication (`node_tls`): this node's certificate,
  /// its key and the cluster's CA; all three or none.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
};

} // namespace snakepit
