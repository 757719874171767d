#pragma once

#include "snakepit/supervision/actor_registry.hpp"

/// The plugin ABI version `snakepit run` expects; a library built against
/// another is refused with both numbers.
#define SNAKEPIT_PLUGIN_ABI 1

/// Defines the entry points of a plugin library that `snakepit run` loads from
/// a tree file's `[plugins] libraries = [...]` (docs/plugins.md). The body
/// registers actor kinds:
///
/// ```cpp
/// #include <snakepit/supervision/plugin.hpp>
///
/// SNAKEPIT_PLUGIN(registry) {
///   registry.add("counter", [](caf::actor_system& sys, const snakepit::value::map& args)
///                  -> caf::expected<caf::actor> { return sys.spawn(counter, args); });
/// }
/// ```
///
/// Build it as a shared library (CMake: `add_library(x MODULE ...)`, linked to
/// `snakepit::snakepit`) with the same snakepit and CAF as the `snakepit` binary.
#define SNAKEPIT_PLUGIN(registry_name)                                                   \
  extern "C" __attribute__((visibility("default"))) int snakepit_plugin_abi() {         \
    return SNAKEPIT_PLUGIN_ABI;                                                          \
  }                                                                                      \
  extern "C" __attribute__((visibility("default"))) void snakepit_register_actors(      \
    snakepit::actor_registry& registry_name)
