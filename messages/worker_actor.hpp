#pragma once

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "snakepit/messages/atoms.hpp"
#include "snakepit/messages/execute_reply.hpp"
#include "snakepit/messages/execute_request.hpp"
#include "snakepit/messages/stream.hpp"
#include "snakepit/messages/tool_spec_inspect.hpp"
#include "snakepit/messages/worker_status.hpp"

namespace snakepit {

/// The interface of one worker: one Python process (process profile, capacity
/// 1) or one multi-threaded Python server (thread profile, capacity N).
/// Pools send to workers; users normally talk to pools.
using worker_actor = caf::typed_actor<
  caf::replies_to<execute_atom, execute_request>::with<execute_reply>,
  caf::replies_to<status_atom>::with<worker_status>,
  // (close_session_atom, session id, reason): tells the Python side.
  caf::reacts_to<close_session_atom, std::string, std::string>,
  // Streams: see `stream_handle` (pool_actor.hpp for the routing).
  caf::replies_to<execute_stream_atom, execute_request, caf::actor>::with<stream_handle>,
  caf::reacts_to<stream_ack_atom, std::uint64_t, std::uint32_t>,
  caf::reacts_to<stream_cancel_atom, std::uint64_t>,
  caf::replies_to<list_tools_atom>::with<std::vector<tool_spec>>,
  caf::reacts_to<list_tools_atom, std::vector<tool_spec>, bool>>;

} // namespace snakepit
