#pragma once

#include <string>
#include <vector>

#include <caf/actor_addr.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>

#include "snakepit/messages/pool_actor.hpp"
#include "snakepit/messages/worker_actor.hpp"
#include "snakepit/messages/worker_status.hpp"

namespace snakepit::detail {

// What workers tell the pool that owns them.

/// (worker_ready_atom, worker, status): the worker's process answers calls.
using worker_ready_atom = caf::atom_constant<caf::atom("wready")>;
/// (worker_failed_atom, worker id, error): the worker could not start.
using worker_failed_atom = caf::atom_constant<caf::atom("wfailed")>;
/// (slot_free_atom, worker address, ok, python wall ns, python cpu ns, tool):
/// a call finished and its slot is free; `tool` is empty when it did not run
/// (its wall time says nothing about the tool).
using slot_free_atom = caf::atom_constant<caf::atom("slotfree")>;
/// (replace_atom, worker address, why): the worker cannot serve any more (e.g.
/// killed after a deadline); the pool starts a replacement, then has the
/// supervisor terminate the old one.
using replace_atom = caf::atom_constant<caf::atom("replace")>;
/// (drained_atom, worker id): a recycled worker's drain time is up.
using drained_atom = caf::atom_constant<caf::atom("drained")>;
/// (events_dropped_atom, worker address, total): the worker's Python side
/// has dropped `total` telemetry events since it started.
using events_dropped_atom = caf::atom_constant<caf::atom("evdropped")>;
/// (session_sweep_atom): time to close expired sessions.
using session_sweep_atom = caf::atom_constant<caf::atom("sesssweep")>;
/// (worker_exited_atom, worker address): the worker's process is gone; the
/// actor ends once its last replies are in. The pool sends it nothing more.
using worker_exited_atom = caf::atom_constant<caf::atom("wexited")>;
/// (redispatch_atom, worker address, request): a call queued on that worker
/// never started there (its process died); the pool routes it again. Sent
/// by the worker as a delegation, so the reply goes to the original caller.
using redispatch_atom = caf::atom_constant<caf::atom("redisp")>;
/// (calls_crashed_atom, worker address, calls): the worker's process died
/// on its own (a crash, not a kill); `calls` are those it had open and may
/// have started (the poison table counts them, the breaker the crash).
using calls_crashed_atom = caf::atom_constant<caf::atom("crashed")>;
/// (retry_atom, id): a crashed idempotent call's back-off is over.
using retry_atom = caf::atom_constant<caf::atom("retry")>;
/// (attempt_atom, request): one attempt of a call the pool follows (retried
/// or the breaker's probe), sent to itself: routed like any call, its reply
/// comes back to the pool.
using attempt_atom = caf::atom_constant<caf::atom("attempt")>;
/// (autoscale_atom): time for the autoscaling policy to look at the pool.
using autoscale_atom = caf::atom_constant<caf::atom("autoscale")>;
/// (expire_atom, time the timer was armed for, in ns): the queue's timer.
using expire_atom = caf::atom_constant<caf::atom("expire")>;

/// The name under which the pipelining policy learns a call's wall time: a
/// map request takes as long as its items together, so it has its own.
inline std::string pipeline_key(const std::string& tool, bool map) {
  return map ? tool + " (map)" : tool;
}

inline std::string pipeline_key(const execute_request& req) {
  return pipeline_key(req.tool, !req.items.empty());
}

/// A call open on a worker whose process crashed.
struct crashed_call {
  std::string tool;
  std::uint64_t poison_key = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, crashed_call& x) {
  return f(caf::meta::type_name("snakepit::detail::crashed_call"), x.tool, x.poison_key);
}

/// The pool as its workers and timers see it.
using pool_actor_impl = pool_actor::extend<
  caf::reacts_to<worker_ready_atom, worker_actor, worker_status>,
  caf::reacts_to<worker_failed_atom, std::string, caf::error>,
  caf::reacts_to<slot_free_atom, caf::actor_addr, bool, std::int64_t, std::int64_t, std::string>,
  caf::replies_to<worker_exited_atom, caf::actor_addr>::with<bool>,
  caf::replies_to<redispatch_atom, caf::actor_addr, execute_request>::with<execute_reply>,
  caf::reacts_to<replace_atom, caf::actor_addr, std::string>,
  caf::reacts_to<drained_atom, std::string>,
  caf::reacts_to<events_dropped_atom, caf::actor_addr, std::uint64_t>,
  caf::reacts_to<session_sweep_atom>,
  caf::reacts_to<calls_crashed_atom, caf::actor_addr, std::vector<crashed_call>>,
  caf::reacts_to<retry_atom, std::uint64_t>,
  caf::replies_to<attempt_atom, execute_request>::with<execute_reply>,
  caf::reacts_to<autoscale_atom>,
  caf::reacts_to<expire_atom, std::int64_t>>;

} // namespace snakepit::detail
