#pragma once

// The worker actor's state and its handlers, shared by worker.cpp (process
// lifecycle, health), worker_calls.cpp (calls: unary and batched, deadlines,
// re-dispatch) and worker_streams.cpp (ExecuteStream). Private to the library.

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <caf/all.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "snakepit/actors/detail/batch_lane.hpp"
#include "snakepit/actors/detail/deadline_set.hpp"
#include "snakepit/actors/detail/emit.hpp"
#include "snakepit/actors/detail/log.hpp"
#include "snakepit/actors/detail/pool_protocol.hpp"
#include "snakepit/actors/detail/python_events.hpp"
#include "snakepit/actors/detail/shm_arena.hpp"
#include "snakepit/actors/detail/stderr_tail.hpp"
#include "snakepit/actors/detail/stream_call.hpp"
#include "snakepit/actors/detail/worker_channel.hpp"
#include "snakepit/actors/process_launcher.hpp"
#include "snakepit/actors/python_command.hpp"
#include "snakepit/actors/run_registry.hpp"
#include "snakepit/actors/runtime_paths.hpp"
#include "snakepit/actors/detail/shm_value_proto.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/actors/worker_config.hpp"
#include "snakepit/messages/worker_actor.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(snakepit::detail::rpc_call_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(snakepit::detail::batch_reply_ptr)

namespace snakepit::worker_impl {

using spawned_atom = caf::atom_constant<caf::atom("spawned")>;
using readyline_atom = caf::atom_constant<caf::atom("readyline")>;
using exited_atom = caf::atom_constant<caf::atom("exited")>;
using rpc_done_atom = caf::atom_constant<caf::atom("rpcdone")>;
using deadline_atom = caf::atom_constant<caf::atom("deadline")>;
using grace_atom = caf::atom_constant<caf::atom("grace")>;
using start_tout_atom = caf::atom_constant<caf::atom("starttout")>;
using orphan_atom = caf::atom_constant<caf::atom("orphan")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using health_atom = caf::atom_constant<caf::atom("health")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;
using stream_orphan_atom = caf::atom_constant<caf::atom("sorphan")>;
using batch_flush_atom = caf::atom_constant<caf::atom("bflush")>;

/// The worker as the launcher thread, gRPC threads and its own timers see it.
using worker_actor_impl = worker_actor::extend<
  caf::reacts_to<spawned_atom, std::int32_t, std::string>,
  caf::reacts_to<readyline_atom, std::string>,
  caf::reacts_to<exited_atom, process_exit>,
  caf::reacts_to<rpc_done_atom, detail::rpc_call_ptr>,
  caf::reacts_to<deadline_atom, std::int64_t>,
  caf::reacts_to<grace_atom, std::uint64_t>,
  caf::reacts_to<start_tout_atom>,
  caf::reacts_to<orphan_atom, std::uint64_t>,
  caf::reacts_to<flush_atom>,
  caf::reacts_to<health_atom>,
  caf::reacts_to<pong_atom, std::uint64_t, bool, std::uint64_t, std::int32_t>,
  caf::reacts_to<detail::stream_done_atom, std::uint64_t, bool, std::int64_t, std::int64_t,
                 std::int32_t, std::string, std::uint64_t>,
  caf::reacts_to<stream_orphan_atom, std::uint64_t>,
  caf::reacts_to<batch_flush_atom>,
  caf::reacts_to<detail::batch_written_atom, std::uint64_t, bool>,
  caf::reacts_to<detail::batch_reply_atom, std::uint64_t, detail::batch_reply_ptr>,
  caf::reacts_to<detail::batch_closed_atom, std::uint64_t, std::int32_t, std::string>>;


enum class phase { starting, ready, stopping };

inline const char* to_cstr(phase p) {
  switch (p) {
    case phase::starting: return "starting";
    case phase::ready: return "ready";
    default: return "stopping";
  }
}

/// Shared-memory segments a call's arguments occupy.
using segment_list = std::vector<std::shared_ptr<detail::shm_segment>>;

struct call_state {
  caf::typed_response_promise<execute_reply> promise;
  std::string request_id;
  std::string tool;
  caf::timespan queued{0};
  caf::timestamp deadline{};
  /// Answered already (deadline passed); the process may still be running it.
  bool answered = false;
  /// Went over the batch stream (else unary Execute).
  bool batched = false;
  /// A map request's argument sets (0: a plain call).
  std::size_t items = 0;
  /// A copy of the request, kept for a call queued behind others: if the
  /// process dies before it starts, it goes to another worker.
  std::optional<execute_request> retained;
  /// Its arguments in shared memory: removed when the call ends here.
  segment_list segments;
  /// The pool's marks (execute_request): attempt number, poison-table key,
  /// retry allowed; kept for the reply, a crash report and a re-dispatch.
  std::uint32_t attempt = 0;
  std::uint64_t poison_key = 0;
  bool idempotent = false;
};

/// A stream in flight: it holds a slot until its RPC is over.
struct stream_state {
  detail::stream_call_ptr call;
  std::string request_id;
  std::string tool;
  /// How its RPC failed, when it did without a last message.
  std::int32_t status_code = 0;
  std::string status_message;
  /// Its arguments in shared memory: removed when the stream ends.
  segment_list segments;
};

struct worker_state {
  worker_config cfg;
  /// The adapter's tools, once listed (one ListTools per process), and who
  /// waits for them.
  std::optional<std::vector<tool_spec>> tools;
  std::vector<caf::typed_response_promise<std::vector<tool_spec>>> tools_waiting;
  std::string socket_path;
  std::uint64_t launch_id = 0;
  std::int32_t pid = 0;
  bool process_alive = false;
  phase current = phase::starting;
  std::unique_ptr<detail::worker_channel> channel;
  /// The ExecuteBatches stream (the fast path), when in use.
  detail::batch_lane lane;
  std::unordered_map<std::uint64_t, call_state> calls;
  /// Streams by id; each counts as a call in flight.
  std::unordered_map<std::uint64_t, stream_state> streams;
  std::uint64_t next_seq = 0;
  /// Deadlines of the calls in flight, behind one timer.
  detail::deadline_set deadlines;
  std::uint64_t served = 0;
  std::uint64_t failed = 0;
  std::uint64_t unary_calls = 0;
  /// The process exited after it was ready; calls that still arrive go back
  /// to the pool.
  bool process_gone = false;
  std::string python_version;
  std::string implementation;
  /// Tools the adapter declares idempotent (the ready line's `idempotent_tools`).
  std::vector<std::string> idempotent_tools;
  bool gil_enabled = true;
  bool free_threaded = false;
  std::shared_ptr<detail::stderr_tail> tail = std::make_shared<detail::stderr_tail>();
  /// Set once the actor decided how it ends (crash, replacement, stop).
  caf::error exit_reason;
  /// The process is gone; replies it sent just before may still be on their
  /// way, so the actor waits briefly for them before it ends.
  bool exited = false;
  /// The process is gone and the pool has not yet confirmed it knows: calls
  /// it sent meanwhile still arrive here (and go back to it), so the actor
  /// must not end before.
  bool awaiting_pool = false;
  /// The pool has confirmed it sends nothing more here.
  bool pool_confirmed = false;
  /// `shut_down` ran: the actor ends with `quit_reason` once the pool confirms.
  bool quitting = false;
  caf::error quit_reason;
  /// Health pings: the last one sent, whether it was answered, misses in a row.
  std::uint64_t ping_seq = 0;
  bool ping_answered = true;
  std::uint32_t pings_missed = 0;
  /// Since when pings show Python busy with nothing sent to it (epoch: not).
  caf::timestamp stray_since{};
  /// Events the Python side dropped (its buffer was full), as last reported.
  std::uint64_t python_events_dropped = 0;
  /// Its supervisor asked it to stop.
  bool stopping_requested = false;
  /// Killed for replacement while its pool was gone.
  bool replacing_orphan = false;
  caf::error final_reason;
  caf::error final_call_error;

  static inline const char* name = "snakepit.worker";

  ~worker_state() {
    lane.close();
    // Whatever ends the actor, its process must not outlive it.
    if (process_alive)
      default_process_launcher().terminate(launch_id, std::chrono::milliseconds{0});
  }
};

using worker_pointer = worker_actor_impl::stateful_pointer<worker_state>;

template <class... Ts>
void tell_owner(const worker_state& st, Ts&&... xs) {
  if (auto owner = caf::actor_cast<caf::actor>(st.cfg.owner))
    caf::anon_send(owner, std::forward<Ts>(xs)...);
}

using detail::error_from_wire;

// Handlers and helpers, by file.

// worker.cpp
process_spec make_spec(const worker_state& st, bool forked);
worker_status make_status(worker_pointer self);
void fail_streams(worker_state& st, const caf::error& err);
void shut_down(worker_pointer self, caf::error reason, const caf::error& call_error);
caf::error stopped_error(worker_pointer self);
void begin_stop(worker_pointer self, caf::error reason);
void fail_startup(worker_pointer self, caf::error err);
void on_ready_line(worker_pointer self, const std::string& line);
void announce_ready(worker_pointer self);
bool has_unanswered(const worker_state& st);
void finish_after_exit(worker_pointer self, caf::error reason, caf::error call_error);
void on_exit(worker_pointer self, const process_exit& how);
detail::python_event_source event_source(const worker_state& st);
void note_python_events(worker_pointer self, std::uint64_t dropped_total);
void replace_process(worker_pointer self, const std::string& why);
void check_stray_work(worker_pointer self, std::int32_t python_in_flight);
void on_health_tick(worker_pointer self);

// worker_calls.cpp
void finish_call(worker_pointer self, std::unordered_map<std::uint64_t, call_state>::iterator i,
                 const grpc::Status& status, bridge::v1::ExecuteResponse& resp);
void on_rpc_done(worker_pointer self, detail::rpc_call_ptr call);
void free_unrun_slot(worker_pointer self);
caf::error refuse(worker_pointer self, caf::error err);
caf::error accept(const worker_state& st, execute_request& req,
                  bridge::v1::ExecuteRequest& wire, segment_list& segments,
                  std::uint32_t pipeline = 0, std::int64_t* bytes = nullptr);
caf::result<execute_reply> on_execute(worker_pointer self, execute_request& req);
caf::result<std::vector<tool_spec>> on_list_tools(worker_pointer self);
void on_tools_listed(worker_pointer self, std::vector<tool_spec>& tools, bool ok);
bool redispatch(worker_pointer self, std::unordered_map<std::uint64_t, call_state>::iterator i);
void redispatch_unstarted(worker_pointer self);
/// The process crashed: tells the pool which open calls it may have been
/// running (the poison table counts them, the breaker the crash).
void report_crashed_calls(worker_pointer self);
void on_batch_reply(worker_pointer self, std::uint64_t id, detail::batch_reply_ptr& reply);
void on_batch_closed(worker_pointer self, std::uint64_t id, std::int32_t code,
                     const std::string& message);
void arm_deadline(worker_pointer self, caf::timestamp at, std::uint64_t seq);
void on_deadline_tick(worker_pointer self, std::int64_t tick_ns);
void on_deadline(worker_pointer self, std::uint64_t seq);
void on_grace(worker_pointer self, std::uint64_t seq);

// worker_streams.cpp
std::uint64_t next_stream_id();
caf::result<stream_handle> on_execute_stream(worker_pointer self, execute_request& req,
                                             caf::actor& consumer);
void free_stream(worker_pointer self, std::uint64_t id, bool ok, std::int64_t wall_ns,
                 std::int64_t cpu_ns);
void on_stream_done(worker_pointer self, std::uint64_t id, bool ok, std::int64_t wall_ns,
                    std::int64_t cpu_ns, std::int32_t code, const std::string& message,
                    std::uint64_t events_dropped);
void on_stream_orphan(worker_pointer self, std::uint64_t id);

} // namespace snakepit::worker_impl
