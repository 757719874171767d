#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "snakepit/messages/pool_status.hpp"

namespace snakepit {

/// A running tree as `/status` and `snakepit inspect --json` show it.
struct tree_status {
  /// The root supervisor's name (empty for pools outside a tree).
  std::string tree;
  /// The host process.
  std::int32_t pid = 0;
  std::vector<pool_status> pools;
};

/// JSON text of a status document; durations in seconds, sizes in bytes.
std::string to_json(const tree_status& status);

/// Reads a document written by `to_json` (e.g. by `snakepit inspect`).
caf::expected<tree_status> tree_status_from_json(std::string_view text);

} // namespace snakepit
