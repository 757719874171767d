#pragma once

#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "snakepit/messages/pool_actor.hpp"
#include "snakepit/messages/supervisor_actor.hpp"
#include "snakepit/observability/status_json.hpp"
#include "snakepit/supervision/actor_registry.hpp"
#include "snakepit/supervision/tree_spec.hpp"

namespace snakepit {

/// The current handle of every named node of a running tree, updated on
/// every (re)start. Thread-safe.
class tree_directory;

/// The metrics endpoint of a running tree, when its file enables one.
struct tree_metrics;

/// A supervision tree started with `start_tree`.
class running_tree {
public:
  running_tree() = default;

  /// The root supervisor. A copy: it stays valid after `stop()`, and then
  /// answers every request with `pool_stopped` (as do all handles the tree
  /// gave out).
  [[nodiscard]] supervisor_actor root() const noexcept {
    return root_;
  }

  /// The pool named `name` as it runs now (after a restart, a new handle):
  /// look it up again when a call fails with a dead pool.
  [[nodiscard]] caf::expected<pool_actor> pool(const std::string& name) const;

  /// The supervisor named `name` (the root included).
  [[nodiscard]] caf::expected<supervisor_actor> supervisor(const std::string& name) const;

  /// The user actor named `name`.
  [[nodiscard]] caf::expected<caf::actor> actor(const std::string& name) const;

  /// Makes a child of the dynamic supervisor `supervisor` (`strategy =
  /// "dynamic"`) from its template, named `id` (unique in the tree; then
  /// found by `pool(id)`, `actor(id)` or `supervisor(id)`). For an actor
  /// template, `args` are added to the template's args (and win). Errors:
  /// `bad_arguments` (no such dynamic supervisor, bad id), `already_present`
  /// (the name is taken), `pool_saturated` (`max_children`), or the child's
  /// start failure. Blocking: not from an actor. The registry given to
  /// `start_tree` must still exist.
  caf::expected<caf::actor> start_child(const std::string& supervisor, const std::string& id,
                                        value::map args = {});

  /// Stops the tree: children in reverse start order, each within its
  /// shutdown budget, every worker process gone when it returns. Blocking.
  void stop();

  /// Names of the tree's pools, in declaration order.
  [[nodiscard]] const std::vector<std::string>& pool_names() const noexcept {
    return pool_names_;
  }

  /// A snapshot of every pool (a pool that is restarting, or does not answer
  /// within `timeout`, shows as state "down"). Blocking: not from an actor.
  [[nodiscard]] tree_status status(caf::timespan timeout = std::chrono::seconds{2}) const;

  /// The metrics endpoint's URL (e.g. "http://127.0.0.1:9464/metrics") when
  /// the tree file enables `[metrics]`; empty otherwise.
  [[nodiscard]] std::string metrics_url() const;

  /// The tree's private runtime directory (its workers' sockets).
  [[nodiscard]] const std::string& runtime_dir() const noexcept {
    return runtime_dir_;
  }

private:
  friend caf::expected<running_tree> start_tree(caf::actor_system&, const tree_spec&,
                                                const actor_registry*);

  caf::expected<caf::actor> lookup(const std::string& name, node_kind kind) const;

  caf::actor_system* sys_ = nullptr;
  supervisor_actor root_;
  std::shared_ptr<tree_directory> directory_;
  std::string runtime_dir_;
  std::string name_;
  std::vector<std::string> pool_names_;
  /// Shared by the copies of this handle; emptied by `stop()`.
  std::shared_ptr<tree_metrics> metrics_;
};

/// Starts a tree in `sys`: children in declared order, each started before
/// the next (a pool counts as started when its `min_ready` workers answer).
/// Fails, with every started child stopped again, when a child cannot start
/// (the error names it, with the Python traceback for adapter failures).
/// Blocks the calling thread (also to locate the pools' Pythons): call it
/// from your own thread, not from inside an actor. User actor kinds come
/// from `registry`.
caf::expected<running_tree> start_tree(caf::actor_system& sys, const tree_spec& spec,
                                       const actor_registry* registry = nullptr);

} // namespace snakepit
