#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "snakepit/messages/value.hpp"

namespace snakepit {

/// The user actor kinds a supervision tree may name in `[actors.NAME] kind = ...`.
/// C++ code registers a factory per kind before loading a tree; the loader
/// rejects kinds that are not registered, and starting a tree calls the factory
/// with the actor's `args` table.
///
/// Fill it before loading; after that, the const members may be called from
/// several threads at once.
class actor_registry {
public:
  /// Spawns one actor of a kind (without linking it: its supervisor links and
  /// monitors). `args` is the actor's `args` table from the TOML file.
  using factory = std::function<caf::expected<caf::actor>(caf::actor_system&,
                                                          const value::map& args)>;

  /// Registers `f` under `kind`, replacing an earlier factory of that kind.
  /// Preconditions: `kind` is not empty and `f` is callable.
  void add(std::string kind, factory f);

  /// The factory registered under `kind`, or `nullptr`.
  [[nodiscard]] const factory* find(std::string_view kind) const;

  /// Every registered kind, sorted.
  [[nodiscard]] std::vector<std::string> kinds() const;

private:
  std::map<std::string, factory, std::less<>> factories_;
};

} // namespace snakepit
