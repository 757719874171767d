#pragma once

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>

namespace snakepit {

/// One member of a cluster pool (`spawn_cluster_pool`), as the cluster sees
/// it: per-node figures for `inspect` and metrics.
struct cluster_member_status {
  /// The member's name in the tree (a pool or a `[remote_pools]` child).
  std::string name;
  /// "host:port" of its node; empty: in this process.
  std::string node;
  /// The cluster can send it calls now.
  bool connected = false;
  /// Its capacity as it last reported (0 while not connected).
  std::uint32_t capacity = 0;
  /// Calls the cluster sent it that have not been answered.
  std::uint32_t in_flight = 0;
  /// Calls it answered, with a result or an error.
  std::uint64_t served = 0;
  std::uint64_t failed = 0;
  /// Times it was lost (monitor down, `node_down`).
  std::uint64_t lost = 0;
  /// Times it joined or rejoined after a loss.
  std::uint64_t joins = 0;
  /// Moving average of its answered calls' latency, in microseconds.
  std::uint64_t latency_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_member_status& x) {
  return f(caf::meta::type_name("snakepit::cluster_member_status"), x.name, x.node,
           x.connected, x.capacity, x.in_flight, x.served, x.failed, x.lost, x.joins,
           x.latency_us);
}

} // namespace snakepit
