#pragma once

#include <optional>
#include <string>
#include <vector>

#include "snakepit/actors/log.hpp"
#include "snakepit/actors/pool_config.hpp"
#include "snakepit/node/cluster_pool.hpp"
#include "snakepit/messages/value.hpp"
#include "snakepit/supervision/child_spec.hpp"
#include "snakepit/supervision/gateway_spec.hpp"
#include "snakepit/supervision/metrics_spec.hpp"
#include "snakepit/supervision/node_spec.hpp"
#include "snakepit/supervision/restart_intensity.hpp"
#include "snakepit/supervision/supervisor.hpp"

namespace snakepit {

/// What a node of a supervision tree is.
enum class node_kind { supervisor, pool, actor };

/// Where a node (or a problem) comes from in its TOML file.
struct source_position {
  std::string file;
  int line = 0;
  int column = 0;
};

/// One node of a declared supervision tree: a supervisor with children, a
/// pool of Python workers, or a user actor made by a registered factory.
struct tree_node {
  node_kind kind = node_kind::supervisor;
  /// Unique in the whole tree; how C++ code looks the node up.
  std::string name;
  /// Key path in the TOML file, e.g. "pools.ml".
  std::string key_path;
  source_position where;
  /// As a child of its supervisor.
  restart_type restart = restart_type::permanent;
  /// Default: `infinity` for supervisors, 5000 ms otherwise.
  shutdown_policy shutdown;
  /// OTP's significant flag (transient or temporary nodes only).
  bool significant = false;

  // -- supervisor ------------------------------------------------------------
  supervision_strategy strategy = supervision_strategy::one_for_one;
  restart_intensity intensity;
  restart_backoff backoff;
  /// In start order; may be empty.
  std::vector<tree_node> children;
  /// `strategy = "dynamic"`: the node its children are made from at run
  /// time (`running_tree::start_child`), one element; nothing starts at boot.
  std::vector<tree_node> child_template;
  /// `strategy = "dynamic"`: children at most.
  std::uint32_t max_children = 0;
  auto_shutdown shutdown_when = auto_shutdown::never;

  // -- pool --------------------------------------------------------------------
  pool_config pool;
  /// `[remote_pools.NAME]`: the pool runs on another node ("host:port",
  /// docs/nodes.md); this child is a stand-in connected to it, restarted
  /// (reconnected) by its supervisor when the node is lost. Empty: local.
  std::string remote_node;
  /// The pool's name on that node.
  std::string remote_pool;
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds heartbeat_timeout{3000};
  /// `[clusters.NAME]`: a cluster pool over the tree's pools named in
  /// `cluster.members` (docs/nodes.md); no members: not a cluster.
  cluster_options cluster;

  /// A pool child whose workers run in this process's own pool actor.
  [[nodiscard]] bool is_local_pool() const noexcept {
    return kind == node_kind::pool && remote_node.empty() && cluster.members.empty();
  }

  // -- actor -------------------------------------------------------------------
  /// Name the factory was registered under.
  std::string actor_kind;
  /// Arguments for the factory.
  value::map args;
  /// How long the factory may take (it runs off the supervisor's thread).
  caf::timespan start_timeout = std::chrono::seconds{30};
};

/// How the file asks the runtime to log (`[logging]`). A field is empty when
/// the file leaves it out, so that a command-line flag, then the environment
/// ($SNAKEPIT_LOG_LEVEL, $SNAKEPIT_LOG_FORMAT), can decide; the defaults are
/// info and text.
struct logging_spec {
  std::optional<log_level> level;
  std::optional<log_format> format;
};

/// A validated tree, ready to start.
struct tree_spec {
  /// The file it came from (or a name given to a string).
  std::string source;
  tree_node root;
  logging_spec logging;
  metrics_spec metrics;
  /// How `snakepit run` serves the tree to other processes (`[gateway]`).
  gateway_spec gateway;
  /// Whether `snakepit run` is a node that other nodes use (`[node]`).
  node_spec node;
};

/// The names of the pools under `node` (itself included), depth first.
std::vector<std::string> pool_names(const tree_node& node);

/// Whether running `spec` needs CAF's middleman (`use_distribution`): it is
/// a node, or it has `[remote_pools]`.
bool needs_distribution(const tree_spec& spec);

} // namespace snakepit
