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

} // namespace snakepit
