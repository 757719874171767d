#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/timespan.hpp>

#include "snakepit/actors/session_table.hpp"
#include "snakepit/messages/pool_actor.hpp"
#include "snakepit/supervision/restart_intensity.hpp"

namespace snakepit {

/// How a cluster pool spreads calls (`[clusters.NAME]`, docs/nodes.md).
struct cluster_options {
  std::string name;
  /// Names of its member pools, local or remote (`[remote_pools]`), looked
  /// up through the resolver; at least one.
  std::vector<std::string> members;
  /// Calls waiting for a member with a free slot, at most; then
  /// `pool_saturated`.
  std::uint32_t queue_max = 1000;
  /// Longest wait in the cluster's queue; then `pool_saturated`.
  caf::timespan queue_timeout = std::chrono::seconds{10};
  /// Deadline of a call that comes without one.
  caf::timespan request_timeout = std::chrono::seconds{60};
  /// How a session whose member is lost goes on: `hint` opens it on another
  /// member (its Python state is gone: `session_moved`); the strict modes
  /// fail its calls with `session_lost`.
  affinity_mode affinity = affinity_mode::hint;
  /// How often members are asked their capacity.
  std::chrono::milliseconds status_interval{500};
  /// A lost member is looked up again after a back-off that doubles from
  /// `min` to `max` with each lookup that finds nothing, with ±20 % jitter
  /// (the supervisors' `restart_backoff`).
  restart_backoff rejoin_backoff{std::chrono::milliseconds{50}, std::chrono::seconds{2}};
};

/// Finds a member's current handle by name (a restarted member has a new
/// one); empty while it has none.
using member_resolver = std::function<std::optional<pool_actor>(const std::string&)>;

/// A pool over pools: answers every pool message like a pool and sends each
/// call to the member with the most free slots (its reported capacity minus
/// the calls the cluster has open there). Calls beyond every member's free
/// slots wait in the cluster's own queue (`queue_max`, `queue_timeout`,
/// deadlines), so a lost member takes only the calls it was running:
/// those fail `node_down` (they may have run), queued ones go to the others.
/// A lost member (its actor down: a node lost, a pool stopped) is looked up
/// again with back-off and jitter and rejoins once it reports capacity.
/// Sessions stay on the member that opened them.
pool_actor spawn_cluster_pool(caf::actor_system& sys, cluster_options options,
                              member_resolver resolve);

} // namespace snakepit
