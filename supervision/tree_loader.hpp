#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "snakepit/supervision/tree_spec.hpp"

namespace snakepit {

class actor_registry;

/// One thing wrong with a tree file: where, which key, and what was expected.
struct config_problem {
  /// Line and column are 1-based; 0 when the problem has no position (the
  /// file cannot be read).
  source_position where;
  /// Dotted TOML key path, e.g. `pools.ml.size` or `supervisors.app.children[1]`;
  /// empty for problems of the whole file.
  std::string key_path;
  std::string message;

  /// `file:line:col: key.path: message`; the position and the key path are
  /// left out when unknown.
  [[nodiscard]] std::string to_string() const;
};

/// Reads and validates a supervision tree file (schema: docs/configuration.md,
/// "Supervision trees in TOML"). Returns every problem found, sorted by
/// position; empty when the tree is valid. A syntax error stops the check.
/// With a `registry`, actor kinds must be registered in it; without one, any
/// kind is accepted.
[[nodiscard]] std::vector<config_problem>
check_tree_file(const std::string& path, const actor_registry* registry = nullptr);

/// Like `check_tree_file` for TOML text; `source_name` stands for the file
/// name in positions.
[[nodiscard]] std::vector<config_problem>
check_tree_string(std::string_view toml, std::string source_name,
                  const actor_registry* registry = nullptr);

/// Loads a valid tree, or fails with `errc::bad_config` whose message is
/// `N problems in FILE:` followed by one problem per line.
[[nodiscard]] caf::expected<tree_spec>
load_tree_file(const std::string& path, const actor_registry* registry = nullptr);

/// Like `load_tree_file` for TOML text; `source_name` stands for the file name.
[[nodiscard]] caf::expected<tree_spec>
load_tree_string(std::string_view toml, std::string source_name,
                 const actor_registry* registry = nullptr);

/// A readable, indented rendering of a tree, one node per line: kind, name,
/// strategy and intensity, pool size and adapter, or actor kind; then the
/// node's restart type and shutdown. Before the nodes, a `logging:` line when
/// the file sets a level or format, and a `metrics:` line with the endpoint's
/// URL when it is enabled.
[[nodiscard]] std::string describe_tree(const tree_spec& spec);

} // namespace snakepit
