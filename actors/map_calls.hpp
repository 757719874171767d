#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "snakepit/messages/execute_reply.hpp"
#include "snakepit/messages/pool_actor.hpp"
#include "snakepit/messages/value.hpp"

namespace snakepit {

/// How `map_calls` runs.
struct map_settings {
  /// Calls in flight at once (at least 1). Twice the pool's capacity keeps
  /// every worker busy.
  std::uint32_t in_flight = 16;
  /// Each call's deadline, from when it is sent.
  caf::timespan timeout = std::chrono::seconds{60};
  /// Argument sets per call. 1: one call per item. More: each call is a map
  /// request (`execute_request::items`) carrying up to `chunk` items, which
  /// costs far less per item for short tools; the items of a chunk share
  /// one slot and one deadline (`timeout`), and a failure of the whole call
  /// (a crash, the deadline) is every one of its items' error.
  std::uint32_t chunk = 1;
};

/// What a `map_calls` run did.
struct map_summary {
  std::uint64_t items = 0;
  std::uint64_t failed = 0;
  /// Failed items by error kind (`describe(err).kind`).
  std::map<std::string, std::uint64_t> failures;
};

/// Calls `tool` on `pool` once for every argument set `next()` yields (until
/// it yields nothing), with at most `settings.in_flight` calls at once, and
/// hands each outcome to `on_result` in input order: the reply, or that
/// item's error (the other items go on). Memory stays bounded whatever the
/// number of items: no more than `in_flight` arguments and replies are held.
/// `next` and `on_result` run on the calling thread, which blocks until the
/// last item is done: call it from a thread of your own, not an actor.
map_summary map_calls(caf::actor_system& sys, const pool_actor& pool, const std::string& tool,
                      const std::function<std::optional<value::map>()>& next,
                      const std::function<void(std::uint64_t index,
                                               caf::expected<execute_reply>& outcome)>& on_result,
                      map_settings settings = {});

} // namespace snakepit
