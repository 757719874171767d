#pragma once

#include <caf/atom.hpp>

namespace snakepit {

// Public atoms: what callers send to pools and workers.

/// Run a tool: `(execute_atom, execute_request) -> execute_reply`.
using execute_atom = caf::atom_constant<caf::atom("execute")>;
/// Ask for a status snapshot.
using status_atom = caf::atom_constant<caf::atom("status")>;
/// Wait until a pool is ready (its minimum of workers answer), or its start failed.
using ready_atom = caf::atom_constant<caf::atom("ready")>;

/// Replace a worker on purpose, draining it first:
/// `(recycle_atom, worker id, reason) -> bool` (false: no such worker, or it
/// is already being replaced).
using recycle_atom = caf::atom_constant<caf::atom("recycle")>;

/// Open a session on a pool: `(open_session_atom, id) -> id` (id empty: the
/// pool makes one). Requests carrying its id then go to the same worker.
using open_session_atom = caf::atom_constant<caf::atom("sesopen")>;
/// Close a session: `(close_session_atom, id) -> bool` (false: not open). The
/// Python side's `on_session_closed` hook runs with reason "closed".
using close_session_atom = caf::atom_constant<caf::atom("sesclose")>;

// Streaming (docs/streaming.md, "From C++"): a generator tool's items go
// straight to a consumer actor, paced by the credit the consumer grants.

/// Start a stream: `(execute_stream_atom, execute_request, caf::actor consumer)
/// -> stream_handle`, sent to a pool (or a worker).
using execute_stream_atom = caf::atom_constant<caf::atom("execstream")>;
/// To the consumer: `(stream_item_atom, stream id, std::uint64_t index, value)`.
using stream_item_atom = caf::atom_constant<caf::atom("streamitem")>;
/// To the consumer, last: `(stream_end_atom, stream id, stream_summary)`.
using stream_end_atom = caf::atom_constant<caf::atom("streamend")>;
/// To the consumer, last: `(stream_error_atom, stream id, caf::error)`.
using stream_error_atom = caf::atom_constant<caf::atom("streamerr")>;
/// To the stream's worker: `(stream_ack_atom, stream id, std::uint32_t n)`, the
/// consumer can take `n` more items.
using stream_ack_atom = caf::atom_constant<caf::atom("streamack")>;
/// To the stream's worker: `(stream_cancel_atom, stream id)`; the generator is
/// closed, the consumer gets nothing more.
using stream_cancel_atom = caf::atom_constant<caf::atom("streamcncl")>;

/// `(list_tools_atom) -> std::vector<tool_spec>`: a pool's (a worker's) tools.
using list_tools_atom = caf::atom_constant<caf::atom("listtools")>;

/// To a node: `(lookup_pool_atom, name) -> pool_actor`, an exported pool.
using lookup_pool_atom = caf::atom_constant<caf::atom("lookuppool")>;
/// To a node: `(node_info_atom) -> (name, exports)`.
using node_info_atom = caf::atom_constant<caf::atom("nodeinfo")>;

} // namespace snakepit
