#pragma once

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "snakepit/messages/atoms.hpp"
#include "snakepit/messages/execute_reply.hpp"
#include "snakepit/messages/execute_request.hpp"
#include "snakepit/messages/pool_status.hpp"
#include "snakepit/messages/stream.hpp"
#include "snakepit/messages/tool_spec_inspect.hpp"

namespace snakepit {

/// The interface of a pool of Python workers.
///
/// - `(execute_atom, execute_request) -> execute_reply`: runs a tool on a free
///   worker, or queues the request; errors are `snakepit::errc` values.
/// - `(status_atom) -> pool_status`: a snapshot.
/// - `(ready_atom) -> pool_status`: answers once the pool's minimum of workers
///   is ready, or with `errc::startup_failed` when its start failed.
/// - `(recycle_atom, worker id, reason) -> bool`: replaces a worker without
///   dropping a call: no new calls go to it, its replacement starts, its calls
///   in flight finish (within `drain_timeout`), then it stops.
/// - `(open_session_atom, id) -> id` / `(close_session_atom, id) -> bool`:
///   sessions, see docs/sessions.md.
/// - `(execute_stream_atom, execute_request, consumer) -> stream_handle`: runs a
///   streaming (generator) tool on a free worker; its items go to `consumer`
///   (see `stream_handle`). Routed and queued like `execute`, sessions
///   included; the handle comes once it starts. The stream holds its slot until
///   the worker's RPC ends.
/// - `(list_tools_atom) -> std::vector<tool_spec>`: the adapter's tools with
///   their schemas, as a ready worker lists them (cached per worker process).
using pool_actor = caf::typed_actor<
  caf::replies_to<execute_atom, execute_request>::with<execute_reply>,
  caf::replies_to<status_atom>::with<pool_status>,
  caf::replies_to<ready_atom>::with<pool_status>,
  caf::replies_to<recycle_atom, std::string, std::string>::with<bool>,
  caf::replies_to<open_session_atom, std::string>::with<std::string>,
  caf::replies_to<close_session_atom, std::string>::with<bool>,
  caf::replies_to<execute_stream_atom, execute_request, caf::actor>::with<stream_handle>,
  caf::replies_to<list_tools_atom>::with<std::vector<tool_spec>>>;

} // namespace snakepit
