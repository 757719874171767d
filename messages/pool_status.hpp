#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include "snakepit/messages/cluster_member_status.hpp"
#include "snakepit/messages/worker_status.hpp"

namespace snakepit {

/// A snapshot of a pool: its workers, load and counters.
struct pool_status {
  std::string name;
  /// "starting", "ready", "failed", "stopping".
  std::string state;
  /// Workers it aims at: the configured size, or where autoscaling put it.
  std::uint32_t size = 0;
  /// Autoscaling's bounds (both 0: a fixed size) and the steps it took.
  std::uint32_t min_size = 0;
  std::uint32_t max_size = 0;
  std::uint64_t scale_ups = 0;
  std::uint64_t scale_downs = 0;
  /// Workers ready to take calls.
  std::uint32_t ready = 0;
  /// Sum of the ready workers' capacities.
  std::uint32_t capacity = 0;
  /// Calls running in workers now.
  std::uint32_t busy = 0;
  /// Requests waiting for a free worker.
  std::uint32_t queued = 0;
  /// Bound of the queue (`queue_max`).
  std::uint32_t queue_max = 0;
  /// Requests answered successfully.
  std::uint64_t served = 0;
  /// Requests answered with an error (any cause, including queue rejections).
  std::uint64_t failed = 0;
  /// Worker processes that died unexpectedly.
  std::uint64_t crashes = 0;
  /// Requests refused because the queue was full (`queue_max`).
  std::uint64_t queue_full = 0;
  /// Requests that waited `queue_timeout` without a free worker.
  std::uint64_t queue_timeouts = 0;
  /// Calls queued on a worker whose process died before they started, sent
  /// to another worker instead of failing.
  std::uint64_t redispatched = 0;
  /// Sessions open now.
  std::uint32_t sessions = 0;
  /// Time since the pool was spawned.
  caf::timespan uptime{0};
  /// Workers killed on purpose (deadline kills).
  std::uint64_t replacements = 0;
  /// Workers recycled (drained, then replaced), by reason ("ttl", "requests",
  /// "memory", or a caller's reason).
  std::map<std::string, std::uint64_t> recycles;
  std::vector<worker_status> workers;
  /// Where the pool runs when another node runs it ("host:port", a
  /// `[remote_pools]` child or `connect_pool`); empty: in this process.
  std::string node;
  /// A cluster pool's members (`spawn_cluster_pool`); empty for a pool.
  std::vector<cluster_member_status> members;
  /// Crash barrier (docs/architecture.md#crash-barrier): the circuit
  /// breaker's state ("closed", "open", "half_open"), the times it opened and
  /// the calls it refused; calls retried after a crash; requests tainted now
  /// and calls refused as `poison_request`.
  std::string breaker = "closed";
  std::uint64_t breaker_opened = 0;
  std::uint64_t breaker_refused = 0;
  std::uint64_t retries = 0;
  std::uint32_t poisoned = 0;
  std::uint64_t poison_refused = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pool_status& x) {
  return f(caf::meta::type_name("snakepit::pool_status"), x.name, x.state,
           x.size, x.ready, x.capacity, x.busy, x.queued, x.queue_max, x.served,
           x.failed, x.queue_full, x.queue_timeouts, x.sessions, x.uptime, x.crashes, x.replacements, x.recycles, x.workers,
           x.redispatched, x.node, x.members, x.min_size, x.max_size, x.scale_ups,
           x.scale_downs, x.breaker, x.breaker_opened, x.breaker_refused, x.retries,
           x.poisoned, x.poison_refused);
}

} // namespace snakepit
