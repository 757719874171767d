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

/// What a factory learns about the tree node it starts.
struct actor_context {
  /// The node's name in the tree (unique; `running_tree::actor(name)`).
  std::string name;
  /// The node's `args` table from the TOML file.
  value::map args;
};

/// When an actor of a kind counts as started.
enum class actor_readiness {
  /// As soon as its factory returns it.
  immediate,
  /// Once it answers `(ready_atom) -> bool`, like pools and supervisors: the
  /// next sibling starts only then, and an error answer (or the actor dying
  /// first) is a start failure of that node, not a crash.
  await_ready,
};

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

  /// A factory that is told the node's name and config (`actor_context`).
  using context_factory = std::function<caf::expected<caf::actor>(caf::actor_system&,
                                                                  const actor_context&)>;

  /// One kind: how to make its actors and when they count as started.
  struct registration {
    context_factory make;
    actor_readiness readiness = actor_readiness::immediate;
  };

  /// Registers `f` under `kind`, replacing an earlier factory of that kind.
  /// Preconditions: `kind` is not empty and `f` is callable.
  void add(std::string kind, factory f);

  /// Registers a factory that receives the node's name and args, and whose
  /// actors may report readiness (`actor_readiness::await_ready`).
  void add(std::string kind, context_factory f,
           actor_readiness readiness = actor_readiness::immediate);

  /// The registration of `kind`, or `nullptr`.
  [[nodiscard]] const registration* find(std::string_view kind) const;

  /// Every registered kind, sorted.
  [[nodiscard]] std::vector<std::string> kinds() const;

private:
  std::map<std::string, registration, std::less<>> factories_;
};

} // namespace snakepit
