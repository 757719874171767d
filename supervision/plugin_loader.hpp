#pragma once

#include <string>
#include <vector>

#include <caf/error.hpp>

#include "snakepit/supervision/actor_registry.hpp"

namespace snakepit {

/// Loads plugin libraries (`[plugins] libraries` of a tree file, made with
/// `SNAKEPIT_PLUGIN`, see plugin.hpp) and lets each register its actor kinds
/// in `registry`. A library is loaded only if nobody but us (or root) can
/// change it or a directory above it: loading runs its code. Libraries stay
/// loaded for the life of the process. The error names the library and why
/// (unsafe, cannot load, not a plugin, another ABI).
caf::error load_plugins(const std::vector<std::string>& libraries, actor_registry& registry);

/// The `[plugins] libraries` of the tree file `path` (absolute, relative ones
/// anchored at the file's directory); empty without a `[plugins]` table. The
/// error says what is malformed.
caf::expected<std::vector<std::string>> plugin_libraries(const std::string& path);

} // namespace snakepit
