#pragma once

#include <chrono>
#include <functional>

#include <caf/expected.hpp>
#include <caf/scoped_actor.hpp>

#include "snakepit/messages/execute_request.hpp"
#include "snakepit/messages/pool_actor.hpp"
#include "snakepit/messages/stream.hpp"
#include "snakepit/messages/value.hpp"

namespace snakepit {

/// Runs a generator tool on `pool` and hands each item to `on_item`, in
/// order, from the calling thread: the typed, blocking way to consume a
/// stream. It acks every item (so the worker runs only a window ahead),
/// checks that items arrive in order, and ends cleanly:
/// - the generator finished: its `stream_summary`;
/// - `on_item` returned false: the stream is cancelled (the generator is
///   closed in Python) and the summary counts the items consumed;
/// - the tool failed, the worker died, the deadline passed: that error;
/// - no message for `idle_timeout` (when above zero): cancelled, `timeout`.
/// An exception from `on_item` cancels the stream and is rethrown.
/// `self` must be a `caf::scoped_actor` of the pool's actor system; the raw
/// messages of `stream.hpp` stay available for actors that stream without
/// blocking.
caf::expected<stream_summary>
for_each_item(caf::scoped_actor& self, const pool_actor& pool, execute_request req,
              const std::function<bool(const value& item)>& on_item,
              std::chrono::milliseconds idle_timeout = std::chrono::milliseconds{0});

} // namespace snakepit
