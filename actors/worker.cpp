#include "snakepit/actors/worker.hpp"

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
#include "snakepit/actors/detail/stream_call.hpp"
#include "snakepit/actors/detail/worker_channel.hpp"
#include "snakepit/actors/process_launcher.hpp"
#include "snakepit/actors/python_command.hpp"
#include "snakepit/actors/run_registry.hpp"
#include "snakepit/actors/runtime_paths.hpp"
#include "snakepit/messages/detail/value_proto.hpp"
#include "snakepit/messages/error.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(snakepit::detail::rpc_call_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(snakepit::process_exit)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(snakepit::detail::batch_reply_ptr)

namespace snakepit {

namespace {

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

/// The last lines a worker wrote to stderr, kept for startup errors.
class stderr_tail {
public:
  void push(std::string_view line) {
    std::lock_guard<std::mutex> guard{mtx_};
    lines_.emplace_back(line.substr(0, 2000));
    if (lines_.size() > max_lines)
      lines_.pop_front();
  }

  std::string joined() const {
    std::lock_guard<std::mutex> guard{mtx_};
    std::string out;
    for (auto& l : lines_) {
      out += l;
      out += '\n';
    }
    return out;
  }

private:
  static constexpr size_t max_lines = 30;
  mutable std::mutex mtx_;
  std::deque<std::string> lines_;
};

enum class phase { starting, ready, stopping };

const char* to_cstr(phase p) {
  switch (p) {
    case phase::starting: return "starting";
    case phase::ready: return "ready";
    default: return "stopping";
  }
}

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
  /// A copy of the request, kept for a call queued behind others: if the
  /// process dies before it starts, it goes to another worker.
  std::optional<execute_request> retained;
};

/// A stream in flight: it holds a slot until its RPC is over.
struct stream_state {
  detail::stream_call_ptr call;
  std::string request_id;
  std::string tool;
  /// How its RPC failed, when it did without a last message.
  std::int32_t status_code = 0;
  std::string status_message;
};

struct worker_state {
  worker_config cfg;
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
  bool gil_enabled = true;
  bool free_threaded = false;
  std::shared_ptr<stderr_tail> tail = std::make_shared<stderr_tail>();
  /// Set once the actor decided how it ends (crash, replacement, stop).
  caf::error exit_reason;
  /// The process is gone; replies it sent just before may still be on their
  /// way, so the actor waits briefly for them before it ends.
  bool exited = false;
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

process_spec make_spec(const worker_state& st) {
  const auto& cfg = st.cfg;
  process_spec spec;
  spec.executable = cfg.python;
  spec.tag = cfg.id;
  std::vector<std::string> args{"--adapter",    cfg.adapter,
                                "--socket",     st.socket_path,
                                "--concurrency", std::to_string(cfg.capacity),
                                "--max-message-bytes", std::to_string(cfg.max_payload_bytes),
                                "--ready-fd",   "3",
                                "--lifeline-fd", "4",
                                "--parent-pid", std::to_string(::getpid()),
                                "--worker-id",  cfg.id,
                                "--event-buffer", std::to_string(cfg.python_event_buffer),
                                "--max-sessions", std::to_string(cfg.max_sessions)};
  if (!cfg.host_socket.empty()) {
    args.emplace_back("--host-socket");
    args.emplace_back(cfg.host_socket);
  }
  for (auto& arg : traits_of(cfg.profile, cfg.capacity, cfg.thread_check).worker_args)
    args.push_back(arg);
  for (auto& dir : cfg.python_path) {
    args.emplace_back("--python-path");
    args.emplace_back(absolute_path(dir));
  }
  // Nothing is imported from the host's working directory (see python_command.hpp).
  spec.args = python_module_argv("snakepit_bridge.worker", args);
  spec.working_dir = python_working_dir;
  std::string pythonpath = python_package_dir();
  if (auto* existing = std::getenv("PYTHONPATH"); existing && *existing)
    pythonpath += std::string{":"} + existing;
  // Native thread pools sized for the profile: one thread per request slot,
  // so N workers (or N threads of one worker) do not each start a BLAS pool
  // as large as the machine. Users may override these in `env`.
  std::string threads = "1";
  spec.env = {{"PYTHONPATH", pythonpath},
              {run_registry::run_id_env, run_registry::this_run_id()},
              {"PYTHONUNBUFFERED", "1"},
              {"OMP_NUM_THREADS", threads},
              {"OPENBLAS_NUM_THREADS", threads},
              {"MKL_NUM_THREADS", threads},
              {"NUMEXPR_NUM_THREADS", threads}};
  for (auto& kv : cfg.env)
    spec.env.push_back(kv);
  return spec;
}

template <class... Ts>
void tell_owner(const worker_state& st, Ts&&... xs) {
  if (auto owner = caf::actor_cast<caf::actor>(st.cfg.owner))
    caf::anon_send(owner, std::forward<Ts>(xs)...);
}

worker_status make_status(worker_pointer self) {
  auto& st = self->state;
  worker_status out;
  out.id = st.cfg.id;
  out.pid = st.pid;
  out.state = to_cstr(st.current);
  out.capacity = st.cfg.capacity;
  out.in_flight = static_cast<std::uint32_t>(st.calls.size() + st.streams.size());
  out.served = st.served;
  out.failed = st.failed;
  out.python_version = st.python_version;
  out.implementation = st.implementation;
  out.gil_enabled = st.gil_enabled;
  out.free_threaded = st.free_threaded;
  out.profile = to_string(st.cfg.profile);
  out.python_events_dropped = st.python_events_dropped;
  out.transport = st.lane.is_open() ? "batches" : "unary";
  out.pipeline_depth = st.lane.is_open() ? st.cfg.pipeline_depth : 0;
  out.batched_calls = st.lane.calls_written();
  out.batches = st.lane.batches_written();
  out.unary_calls = st.unary_calls;
  return out;
}

/// Ends every stream with `err` as its consumer's last message (no-op for
/// those that got one already); their slots go with the worker.
void fail_streams(worker_state& st, const caf::error& err) {
  for (auto& [id, stream] : st.streams)
    stream.call->fail(err);
  st.streams.clear();
}

/// Ends the actor: fails calls still waiting for an answer, stops the process.
void shut_down(worker_pointer self, caf::error reason, const caf::error& call_error) {
  auto& st = self->state;
  detail::emit([&] {
    return telemetry_event{"snakepit.worker.stopped",
                           {{"served", static_cast<double>(st.served)},
                            {"failed", static_cast<double>(st.failed)}},
                           {{"pool", st.cfg.pool}, {"worker", st.cfg.id}, {"reason", describe(reason).message.empty()
                                                                 ? caf::to_string(reason)
                                                                 : describe(reason).message}}};
  });
  for (auto& [seq, call] : st.calls)
    if (!call.answered)
      call.promise.deliver(call_error);
  st.calls.clear();
  fail_streams(st, call_error);
  st.lane.close();
  st.current = phase::stopping;
  if (st.process_alive) {
    auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(
      st.cfg.shutdown_timeout);
    default_process_launcher().terminate(st.launch_id, grace);
    st.process_alive = false;  // the launcher finishes the job
  }
  self->quit(std::move(reason));
}

caf::error stopped_error(worker_pointer self) {
  return make_error(errc::pool_stopped,
                    fmt::format("worker {} stopped before the call finished",
                                self->state.cfg.id));
}

/// Asked to stop (by its supervisor): SIGTERM lets Python finish the calls in
/// flight (their replies still reach the callers), SIGKILL follows after
/// `shutdown_timeout`; the actor ends when the process is gone.
void begin_stop(worker_pointer self, caf::error reason) {
  auto& st = self->state;
  if (st.stopping_requested)
    return;
  st.stopping_requested = true;
  st.exit_reason = reason ? std::move(reason) : caf::error{caf::exit_reason::user_shutdown};
  st.current = phase::stopping;
  if (!st.process_alive) {
    shut_down(self, st.exit_reason, stopped_error(self));
    return;
  }
  auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(st.cfg.shutdown_timeout);
  detail::log_debug(st.cfg.id, "stopping: SIGTERM, SIGKILL after {} ms", grace.count());
  default_process_launcher().terminate(st.launch_id, grace);
}

void fail_startup(worker_pointer self, caf::error err) {
  auto& st = self->state;
  detail::log_warning(st.cfg.id, "could not start: {}", describe(err).message);
  tell_owner(st, detail::worker_failed_atom::value, st.cfg.id, err);
  shut_down(self, err, err);
}

void announce_ready(worker_pointer self);

/// The ready line: `{"status": "ready", ...}` or `{"status": "error", ...}`.
void on_ready_line(worker_pointer self, const std::string& line) {
  auto& st = self->state;
  if (st.current != phase::starting)
    return;
  auto doc = nlohmann::json::parse(line, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    fail_startup(self, make_error(errc::startup_failed,
                                  fmt::format("worker {} sent an unreadable ready line: {}",
                                              st.cfg.id, line.substr(0, 500))));
    return;
  }
  auto status = doc.value("status", std::string{});
  if (status != "ready") {
    auto message = doc.value("message", std::string{"unknown startup error"});
    fail_startup(self, make_error(errc::startup_failed,
                                  fmt::format("worker {} could not start adapter '{}': {}",
                                              st.cfg.id, st.cfg.adapter, message),
                                  doc.value("python_type", std::string{}),
                                  doc.value("traceback", std::string{})));
    return;
  }
  st.python_version = doc.value("python_version", std::string{});
  st.implementation = doc.value("implementation", std::string{});
  st.gil_enabled = doc.value("gil_enabled", true);
  st.free_threaded = doc.value("free_threaded", false);
  if (auto w = doc.find("warnings"); w != doc.end() && w->is_array())
    for (auto& item : *w)
      if (item.is_string())
        detail::log_warning(st.cfg.id, "{}", item.get<std::string>());
  st.channel = std::make_unique<detail::worker_channel>(
    st.socket_path, st.cfg.max_payload_bytes + 65536);
  if (st.cfg.use_batches) {
    // Ready once the stream answers (or turns out to be missing: unary).
    st.lane = detail::batch_lane{st.cfg.batches};
    st.lane.on_batch = [self](std::uint32_t calls, std::int64_t bytes) {
      auto& ws = self->state;
      detail::emit([&] {
        return telemetry_event{"snakepit.worker.batch",
                               {{"calls", static_cast<double>(calls)},
                                {"bytes", static_cast<double>(bytes)}},
                               {{"pool", ws.cfg.pool}, {"worker", ws.cfg.id}}};
      });
    };
    st.lane.open(*st.channel, self->address());
    return;
  }
  announce_ready(self);
}

/// The process serves calls: start health checks, tell the pool.
void announce_ready(worker_pointer self) {
  auto& st = self->state;
  st.current = phase::ready;
  detail::log_debug(st.cfg.id, "ready (pid {}, {} calls)", st.pid,
                    st.lane.is_open() ? "batched" : "unary");
  if (st.cfg.health_interval.count() > 0)
    self->delayed_send(self, st.cfg.health_interval, health_atom::value);
  detail::emit([&] {
    return telemetry_event{"snakepit.worker.started",
                           {{"pid", static_cast<double>(st.pid)}},
                           {{"pool", st.cfg.pool}, {"worker", st.cfg.id}, {"python_version", st.python_version},
                            {"profile", to_string(st.cfg.profile)}}};
  });
  tell_owner(st, detail::worker_ready_atom::value,
                 caf::actor_cast<worker_actor>(self), make_status(self));
}

bool has_unanswered(const worker_state& st) {
  for (auto& [seq, call] : st.calls)
    if (!call.answered)
      return true;
  return false;
}

/// The process is gone: ends the actor once the replies the process sent
/// before it went have arrived (they are delivered normally), or after a
/// short wait; calls still open then fail with `call_error`.
void finish_after_exit(worker_pointer self, caf::error reason, caf::error call_error) {
  auto& st = self->state;
  if (!has_unanswered(st)) {
    shut_down(self, std::move(reason), call_error);
    return;
  }
  st.exited = true;
  st.final_reason = std::move(reason);
  st.final_call_error = std::move(call_error);
  self->delayed_send(self, std::chrono::milliseconds{200}, flush_atom::value);
}

void redispatch_unstarted(worker_pointer self);

void on_exit(worker_pointer self, const process_exit& how) {
  auto& st = self->state;
  detail::log_debug(st.cfg.id, "process {} {}", how.pid, how.describe());
  st.process_alive = false;
  if (st.current == phase::starting) {
    auto tail = st.tail->joined();
    fail_startup(self, make_error(errc::startup_failed,
                                  fmt::format("worker {} (pid {}) {} before it was ready{}{}",
                                              st.cfg.id, how.pid, how.describe(),
                                              tail.empty() ? "" : "; its last output:\n",
                                              tail)));
    return;
  }
  // The pool sends nothing more here; calls queued behind the one running
  // never started: other workers take them.
  st.process_gone = true;
  tell_owner(st, detail::worker_exited_atom::value, self->address());
  st.lane.seal();
  redispatch_unstarted(self);
  if (st.current == phase::stopping) {  // asked to stop
    finish_after_exit(self, st.exit_reason, stopped_error(self));
    return;
  }
  if (st.exit_reason) {  // killed on purpose, to be replaced
    if (st.replacing_orphan) {  // no pool to replace it: the supervisor restarts it
      finish_after_exit(self, st.exit_reason, st.exit_reason);
      return;
    }
    // Wait for the supervisor to terminate this worker (the pool asked it to).
    for (auto& [seq, call] : st.calls)
      if (!call.answered)
        call.promise.deliver(st.exit_reason);
    st.calls.clear();
    fail_streams(st, st.exit_reason);
    st.current = phase::stopping;
    return;
  }
  auto err = make_error(errc::worker_crashed,
                        fmt::format("worker {} (pid {}) {} while serving the call; its "
                                    "supervisor restarts it unless that exceeds the pool's "
                                    "restart intensity, in which case the pool stops",
                                    st.cfg.id, how.pid, how.describe()));
  detail::log_warning(st.cfg.id, "{}", describe(err).message);
  // Items the process sent before it died have reached their consumers
  // already (they go straight from gRPC's threads): the error is last.
  fail_streams(st, err);
  detail::emit([&] {
    return telemetry_event{"snakepit.worker.crashed",
                           {{"pid", static_cast<double>(how.pid)},
                            {"in_flight", static_cast<double>(st.calls.size())}},
                           {{"pool", st.cfg.pool}, {"worker", st.cfg.id}, {"reason", how.describe()}}};
  });
  finish_after_exit(self, err, err);
}

using detail::error_from_wire;

detail::python_event_source event_source(const worker_state& st) {
  return {st.cfg.pool, st.cfg.id, st.pid};
}

/// The Python side reported `dropped_total` lost events: make a growth
/// visible (an event, and the pool's status).
void note_python_events(worker_pointer self, std::uint64_t dropped_total) {
  auto& st = self->state;
  if (dropped_total <= st.python_events_dropped)
    return;
  auto delta = dropped_total - st.python_events_dropped;
  st.python_events_dropped = dropped_total;
  detail::log_warning(st.cfg.id, "the Python side dropped {} telemetry events (buffer full; "
                      "raise python_event_buffer or emit less)", delta);
  detail::emit([&] {
    return telemetry_event{"snakepit.python.events_dropped",
                           {{"dropped", static_cast<double>(delta)},
                            {"dropped_total", static_cast<double>(dropped_total)}},
                           {{"pool", st.cfg.pool}, {"worker", st.cfg.id}}};
  });
  tell_owner(st, detail::events_dropped_atom::value, self->address(), dropped_total);
}

/// Python answered call `i` (unary or batched; `status` is the transport's):
/// the pool gets the slot back, then the caller its reply.
void finish_call(worker_pointer self, std::unordered_map<std::uint64_t, call_state>::iterator i,
                 const grpc::Status& status, bridge::v1::ExecuteResponse& resp) {
  auto& st = self->state;
  auto seq = i->first;
  auto& entry = i->second;
  // The call's events go on the bus before its caller hears back.
  if (resp.has_telemetry())
    note_python_events(self, detail::publish_python_events(resp.telemetry(), event_source(st)));
  bool ok = !entry.answered && status.ok() && !resp.has_error();
  // The pool hears the slot is free before the caller hears back: a caller's
  // next request never finds this worker still busy (sessions rely on it).
  // Python's own times also for calls answered early (deadline) or failed.
  tell_owner(st, detail::slot_free_atom::value, self->address(), ok,
             static_cast<std::int64_t>(resp.wall_ns()), static_cast<std::int64_t>(resp.cpu_ns()),
             entry.tool);
  if (!entry.answered) {
    if (status.ok()) {
      if (resp.has_error()) {
        entry.promise.deliver(error_from_wire(resp.error()));
      } else {
        execute_reply reply;
        reply.result = detail::from_proto(std::move(*resp.mutable_result()));
        reply.python_wall = caf::timespan{resp.wall_ns()};
        reply.python_cpu = caf::timespan{resp.cpu_ns()};
        reply.queued = entry.queued;
        reply.request_id = entry.request_id;
        reply.worker_id = st.cfg.id;
        entry.promise.deliver(std::move(reply));
      }
    } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      entry.promise.deliver(make_error(
        errc::timeout, fmt::format("tool '{}' passed its deadline in worker {}",
                                   entry.tool, st.cfg.id)));
    } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      entry.promise.deliver(make_error(
        errc::payload_too_large,
        fmt::format("a message of tool '{}' is over the payload limit of {} bytes "
                    "(max_payload_bytes): {}",
                    entry.tool, st.cfg.max_payload_bytes, status.error_message())));
    } else {
      entry.promise.deliver(make_error(
        errc::internal, fmt::format("gRPC call to worker {} failed ({}): {}", st.cfg.id,
                                    static_cast<int>(status.error_code()),
                                    status.error_message())));
    }
  }
  ok ? ++st.served : ++st.failed;
  detail::emit([&] {
    telemetry_event e;
    e.name = "snakepit.request.executed";
    e.measurements = {{"queue_us", detail::micros(entry.queued)},
                      {"python_wall_us", resp.wall_ns() / 1000.0},
                      {"python_cpu_us", resp.cpu_ns() / 1000.0}};
    e.metadata = {{"pool", st.cfg.pool},
                  {"worker", st.cfg.id},
                  {"tool", entry.tool},
                  {"request_id", entry.request_id},
                  {"outcome", ok ? std::string{"ok"}
                                 : resp.has_error()
                                     ? bridge::v1::ErrorKind_Name(resp.error().kind())
                                     : std::string{"failed"}}};
    return e;
  });
  st.deadlines.remove(entry.deadline, seq);
  st.calls.erase(i);
  if (st.exited && !has_unanswered(st))
    shut_down(self, st.final_reason, st.final_call_error);
}

void on_rpc_done(worker_pointer self, detail::rpc_call_ptr call) {
  auto& st = self->state;
  auto i = st.calls.find(call->seq);
  if (i == st.calls.end())
    return;
  auto& entry = i->second;
  const auto& status = call->status;
  if (st.exited && !status.ok()) {
    if (!entry.answered)
      entry.promise.deliver(st.final_call_error);
    ++st.failed;
    st.deadlines.remove(entry.deadline, call->seq);
    st.calls.erase(i);
    if (!has_unanswered(st))
      shut_down(self, st.final_reason, st.final_call_error);
    return;
  }
  if (!status.ok()
      && (status.error_code() == grpc::StatusCode::UNAVAILABLE
          || status.error_code() == grpc::StatusCode::CANCELLED
          || status.error_code() == grpc::StatusCode::INTERNAL)) {
    // Most likely the process died: its exit (with code or signal) is about
    // to arrive from the launcher and fails the call with the real cause. If
    // the process is in fact alive, the transport is broken: replace it.
    self->delayed_send(self, std::chrono::seconds{2}, orphan_atom::value, call->seq);
    return;
  }
  finish_call(self, i, status, call->response);
}

/// Refuses a call before it reaches Python; the pool gets its slot back.
caf::error refuse(worker_pointer self, caf::error err) {
  auto& st = self->state;
  ++st.failed;
  tell_owner(st, detail::slot_free_atom::value, self->address(), false, std::int64_t{0},
             std::int64_t{0}, std::string{});
  return err;
}

void arm_deadline(worker_pointer self, caf::timestamp at, std::uint64_t seq);

/// The wire form of `req` (its arguments are moved out), with the time left
/// until its deadline; an error when this worker cannot take it now.
caf::error accept(const worker_state& st, execute_request& req,
                  bridge::v1::ExecuteRequest& wire, std::uint32_t pipeline = 0,
                  std::int64_t* bytes = nullptr) {
  if (st.current != phase::ready)
    return make_error(errc::worker_crashed,
                      fmt::format("worker {} is {}, not ready", st.cfg.id, to_cstr(st.current)));
  if (st.calls.size() + st.streams.size() >= st.cfg.capacity + pipeline)
    return make_error(errc::internal, fmt::format("worker {} is at its capacity of {} calls "
                                                  "(+{} queued)",
                                                  st.cfg.id, st.cfg.capacity, pipeline));
  bool has_deadline = req.deadline.time_since_epoch().count() != 0;
  auto left = req.deadline - caf::make_timestamp();
  if (has_deadline && left <= caf::timespan{0})
    return make_error(errc::timeout,
                      fmt::format("request {} for tool '{}' passed its deadline before "
                                  "it reached worker {}",
                                  req.request_id, req.tool, st.cfg.id));
  wire.set_request_id(req.request_id);
  wire.set_tool(req.tool);
  detail::to_proto(std::move(req.arguments), wire.mutable_arguments());
  wire.set_correlation_id(req.correlation_id);
  wire.set_session_id(req.session_id);
  wire.set_session_moved(req.session_moved);
  for (auto& [k, v] : req.metadata)
    (*wire.mutable_metadata())[k] = v;
  auto size = static_cast<std::int64_t>(wire.ByteSizeLong());
  if (size > st.cfg.max_payload_bytes)
    return make_error(errc::payload_too_large,
                      fmt::format("request for tool '{}' is {} bytes, over the payload "
                                  "limit of {} bytes (max_payload_bytes); send less or "
                                  "raise the pool's max_payload_bytes",
                                  req.tool, size, st.cfg.max_payload_bytes));
  if (has_deadline) {
    auto left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(left).count();
    wire.set_timeout_ms(std::max<std::int64_t>(1, left_ms));
  }
  if (bytes != nullptr)
    *bytes = size;
  return {};
}

caf::result<execute_reply> on_execute(worker_pointer self, execute_request& req) {
  auto& st = self->state;
  if (st.process_gone) {
    // Sent before the pool heard the process is gone: it never started here.
    if (auto owner = caf::actor_cast<caf::actor>(st.cfg.owner)) {
      auto promise = self->make_response_promise<execute_reply>();
      promise.delegate(owner, detail::redispatch_atom::value, self->address(), std::move(req));
      return promise;
    }
  }
  // A call behind others (pipelined) keeps a copy of its request: should the
  // process die before it starts, it goes to another worker.
  std::optional<execute_request> retained;
  if (st.lane.is_open() && st.calls.size() + st.streams.size() >= st.cfg.capacity)
    retained = req;
  auto pipeline = st.lane.is_open() ? st.cfg.pipeline_depth : 0;
  bridge::v1::ExecuteRequest wire;
  std::int64_t bytes = 0;
  if (auto err = accept(st, req, wire, pipeline, &bytes))
    return refuse(self, std::move(err));
  auto seq = ++st.next_seq;
  if (req.deadline.time_since_epoch().count() != 0) {
    // No gRPC deadline: our own timer answers the caller at the deadline and
    // kills a process still busy after the grace, which bounds the call.
    arm_deadline(self, req.deadline, seq);
  }
  auto promise = self->make_response_promise<execute_reply>();
  call_state entry;
  entry.promise = promise;
  entry.request_id = std::move(req.request_id);
  entry.tool = std::move(req.tool);
  entry.queued = req.queued;
  entry.deadline = req.deadline;
  if (st.lane.fits(bytes)) {
    entry.batched = true;
    entry.retained = std::move(retained);
    st.calls.emplace(seq, std::move(entry));
    if (st.lane.push(seq, std::move(wire), bytes))
      self->send(self, batch_flush_atom::value);  // after the calls already in the mailbox
    return promise;
  }
  // Unary: no stream, or too large for a batch (it goes alone).
  ++st.unary_calls;
  st.calls.emplace(seq, std::move(entry));
  auto call = std::make_shared<detail::rpc_call>();
  call->seq = seq;
  call->request = std::move(wire);
  auto handle = caf::actor_cast<caf::actor>(self);
  st.channel->execute(std::move(call), [handle](detail::rpc_call_ptr done) {
    caf::anon_send(handle, rpc_done_atom::value, std::move(done));
  });
  return promise;
}

/// Sends a call that never started in Python back to the pool, which
/// routes it again (deadline and queue clock unchanged); true when it went.
/// Its source: the retained copy, or the wire request still waiting here.
bool redispatch(worker_pointer self, std::unordered_map<std::uint64_t, call_state>::iterator i) {
  auto& st = self->state;
  auto& entry = i->second;
  auto owner = caf::actor_cast<caf::actor>(st.cfg.owner);
  if (entry.answered || !owner)
    return false;
  std::optional<execute_request> req = std::move(entry.retained);
  if (!req) {
    auto wire = st.lane.take_waiting(i->first);
    if (!wire)
      return false;
    req.emplace();
    req->request_id = entry.request_id;
    req->tool = entry.tool;
    req->arguments = detail::from_proto(std::move(*wire->mutable_arguments()));
    req->correlation_id = wire->correlation_id();
    req->session_id = wire->session_id();
    req->session_moved = wire->session_moved();
    for (auto& [k, v] : wire->metadata())
      req->metadata.emplace(k, v);
  }
  req->deadline = entry.deadline;
  req->queued = entry.queued;
  detail::log_debug(st.cfg.id, "request {} for tool '{}' never started here: sent back to "
                    "the pool", entry.request_id, entry.tool);
  entry.promise.delegate(owner, detail::redispatch_atom::value, self->address(),
                         std::move(*req));
  st.deadlines.remove(entry.deadline, i->first);
  st.calls.erase(i);
  return true;
}

/// The process is gone: calls that never started (queued behind the one
/// running, or never written) go to other workers.
void redispatch_unstarted(worker_pointer self) {
  auto& st = self->state;
  for (auto seq : st.lane.unanswered()) {
    auto i = st.calls.find(seq);
    if (i != st.calls.end() && i->second.batched
        && !st.lane.may_have_started(seq, st.cfg.capacity)) {
      st.lane.answered(seq);
      redispatch(self, i);
    }
  }
}

/// Results from the batch stream (or its first, empty reply: the stream
/// works, the worker is ready).
void on_batch_reply(worker_pointer self, std::uint64_t id, detail::batch_reply_ptr& reply) {
  auto& st = self->state;
  if (id != st.lane.stream_id())
    return;
  if (st.lane.current() == detail::batch_lane::state::opening) {
    st.lane.opened();
    if (st.current == phase::starting)
      announce_ready(self);
  }
  if (reply->has_telemetry())
    note_python_events(self, detail::publish_python_events(reply->telemetry(), event_source(st)));
  for (auto& result : *reply->mutable_results()) {
    auto seq = result.seq();
    st.lane.answered(seq);
    auto i = st.calls.find(seq);
    if (i == st.calls.end())
      continue;
    if (result.skipped() == bridge::v1::STOPPING && !st.exited && redispatch(self, i))
      continue;
    if (result.skipped() != bridge::v1::NOT_SKIPPED) {
      // Dropped before it started (its caller had its answer), or refused
      // by a stopping worker: it never ran.
      auto& entry = i->second;
      if (!entry.answered)
        entry.promise.deliver(stopped_error(self));
      tell_owner(st, detail::slot_free_atom::value, self->address(), false, std::int64_t{0},
                 std::int64_t{0}, std::string{});
      st.deadlines.remove(entry.deadline, seq);
      st.calls.erase(i);
      if (st.exited && !has_unanswered(st))
        shut_down(self, st.final_reason, st.final_call_error);
      continue;
    }
    finish_call(self, i, grpc::Status::OK, *result.mutable_response());
  }
}

/// The batch stream ended. While opening: the worker has no such RPC (or
/// it failed at once), so calls go unary. Later: the transport broke; the
/// process's exit, if it died, says why, else the worker is replaced.
void on_batch_closed(worker_pointer self, std::uint64_t id, std::int32_t code,
                     const std::string& message) {
  auto& st = self->state;
  if (id != st.lane.stream_id())
    return;
  bool opening = st.lane.current() == detail::batch_lane::state::opening;
  st.lane.failed();
  if (opening) {
    if (code != static_cast<std::int32_t>(grpc::StatusCode::UNIMPLEMENTED))
      detail::log_warning(st.cfg.id, "the batch stream failed to open ({}: {}); calls go "
                          "one gRPC call each", code, message);
    else
      detail::log_debug(st.cfg.id, "worker has no ExecuteBatches: calls go one gRPC call each");
    if (st.current == phase::starting && st.process_alive)
      announce_ready(self);
    return;
  }
  if (st.exited) {
    // No more replies can come: the calls still open fail now.
    for (auto i = st.calls.begin(); i != st.calls.end();) {
      if (!i->second.batched) {
        ++i;
        continue;
      }
      if (!i->second.answered)
        i->second.promise.deliver(st.final_call_error);
      ++st.failed;
      st.deadlines.remove(i->second.deadline, i->first);
      i = st.calls.erase(i);
    }
    if (!has_unanswered(st))
      shut_down(self, st.final_reason, st.final_call_error);
    return;
  }
  if (st.current != phase::ready)
    return;
  for (auto& [seq, call] : st.calls)
    if (call.batched) {
      self->delayed_send(self, std::chrono::seconds{2}, orphan_atom::value, seq);
      break;
    }
}

/// Streams get their ids here: unique in the process, so a consumer of
/// several streams (on several workers) tells them apart.
std::uint64_t next_stream_id() {
  static std::atomic<std::uint64_t> next{0};
  return ++next;
}

caf::result<stream_handle> on_execute_stream(worker_pointer self, execute_request& req,
                                             caf::actor& consumer) {
  auto& st = self->state;
  if (!consumer)
    return refuse(self, make_error(errc::bad_arguments, "execute_stream needs a consumer actor"));
  bridge::v1::ExecuteRequest wire;
  if (auto err = accept(st, req, wire))
    return refuse(self, std::move(err));
  wire.set_stream_credit(req.stream_window == 0 ? 16 : std::min(req.stream_window, 4096u));
  auto id = next_stream_id();
  auto call = std::make_shared<detail::stream_call>(detail::stream_call::params{
    id, consumer, self->address(), st.cfg.id, event_source(st)});
  st.streams.emplace(id, stream_state{call, req.request_id, req.tool, 0, {}});
  // Answered before the RPC starts, so the reply reaches the requester before
  // any item reaches the consumer.
  auto promise = self->make_response_promise<stream_handle>();
  promise.deliver(stream_handle{id, caf::actor_cast<caf::actor>(self), req.request_id});
  // Python ends the stream at its deadline (timeout_ms); the gRPC deadline,
  // a grace later, bounds a generator stuck in one step.
  auto deadline = std::chrono::system_clock::time_point::max();
  if (req.deadline.time_since_epoch().count() != 0)
    deadline = std::chrono::time_point_cast<std::chrono::system_clock::duration>(
      req.deadline + st.cfg.deadline_grace);
  st.channel->execute_stream(call, std::move(wire), deadline);
  return promise;
}

/// A stream's RPC is over and its consumer has had its last message: the
/// pool gets the slot back.
void free_stream(worker_pointer self, std::uint64_t id, bool ok, std::int64_t wall_ns,
                 std::int64_t cpu_ns) {
  auto& st = self->state;
  auto i = st.streams.find(id);
  if (i == st.streams.end())
    return;
  ok ? ++st.served : ++st.failed;
  detail::emit([&] {
    telemetry_event e;
    e.name = "snakepit.request.executed";
    e.measurements = {{"python_wall_us", wall_ns / 1000.0}, {"python_cpu_us", cpu_ns / 1000.0}};
    e.metadata = {{"pool", st.cfg.pool},          {"worker", st.cfg.id},
                  {"tool", i->second.tool},       {"request_id", i->second.request_id},
                  {"outcome", ok ? "ok" : "failed"}, {"stream", "true"}};
    return e;
  });
  auto call = std::move(i->second.call);
  st.streams.erase(i);
  tell_owner(st, detail::slot_free_atom::value, self->address(), ok, wall_ns, cpu_ns,
             std::string{});
  call->flush();  // after the pool has heard of the slot
}

void on_stream_done(worker_pointer self, std::uint64_t id, bool ok, std::int64_t wall_ns,
                    std::int64_t cpu_ns, std::int32_t code, const std::string& message,
                    std::uint64_t events_dropped) {
  auto& st = self->state;
  note_python_events(self, events_dropped);
  auto i = st.streams.find(id);
  if (i == st.streams.end())
    return;
  if (!i->second.call->finished() && (code == 0 || st.current == phase::stopping)) {
    // Python cancels the streams still open at the end of a stop's grace.
    i->second.call->fail(st.current == phase::stopping
                           ? stopped_error(self)
                           : make_error(errc::internal,
                                        fmt::format("worker {} ended the stream of tool '{}' "
                                                    "without an end marker or an error",
                                                    st.cfg.id, i->second.tool)));
  } else if (!i->second.call->finished()) {
    // The transport failed: most likely the process died, and its exit (with
    // code or signal) is about to fail the stream with the real cause.
    i->second.status_code = code;
    i->second.status_message = message;
    self->delayed_send(self, std::chrono::seconds{2}, stream_orphan_atom::value, id);
    return;
  }
  free_stream(self, id, ok, wall_ns, cpu_ns);
}

void on_stream_orphan(worker_pointer self, std::uint64_t id) {
  auto& st = self->state;
  auto i = st.streams.find(id);
  if (i == st.streams.end())
    return;
  i->second.call->fail(make_error(
    errc::internal, fmt::format("the stream of tool '{}' to worker {} failed ({}): {}",
                                i->second.tool, st.cfg.id, i->second.status_code,
                                i->second.status_message)));
  free_stream(self, id, false, 0, 0);
}

void arm_deadline(worker_pointer self, caf::timestamp at, std::uint64_t seq) {
  if (auto when = self->state.deadlines.add(at, seq)) {
    auto delay = std::max(caf::timespan{0}, *when - caf::make_timestamp());
    self->delayed_send(self, delay, deadline_atom::value, when->time_since_epoch().count());
  }
}

void on_deadline(worker_pointer self, std::uint64_t seq);

/// The deadline timer fired: time out every call that is due, re-arm.
void on_deadline_tick(worker_pointer self, std::int64_t tick_ns) {
  auto& st = self->state;
  std::optional<caf::timestamp> rearm;
  auto due = st.deadlines.on_tick(caf::timestamp{caf::timespan{tick_ns}}, caf::make_timestamp(),
                                  rearm);
  if (rearm) {
    auto delay = std::max(caf::timespan{0}, *rearm - caf::make_timestamp());
    self->delayed_send(self, delay, deadline_atom::value, rearm->time_since_epoch().count());
  }
  for (auto seq : due)
    on_deadline(self, seq);
}

void on_deadline(worker_pointer self, std::uint64_t seq) {
  auto& st = self->state;
  auto i = st.calls.find(seq);
  if (i == st.calls.end() || i->second.answered)
    return;
  auto& entry = i->second;
  entry.answered = true;
  ++st.failed;
  if (entry.batched && st.lane.drop_waiting(seq)) {
    // Never written: it never reaches Python.
    entry.promise.deliver(make_error(
      errc::timeout, fmt::format("tool '{}' (request {}) did not start before its deadline: "
                                 "it waited behind other calls on worker {}",
                                 entry.tool, entry.request_id, st.cfg.id)));
    tell_owner(st, detail::slot_free_atom::value, self->address(), false, std::int64_t{0},
               std::int64_t{0}, std::string{});
    st.calls.erase(i);
    return;
  }
  if (entry.batched && !st.lane.may_have_started(seq, st.cfg.capacity)) {
    // Queued in Python behind others: dropped there, it never starts.
    entry.promise.deliver(make_error(
      errc::timeout, fmt::format("tool '{}' (request {}) did not start before its deadline: "
                                 "it waited behind other calls on worker {}",
                                 entry.tool, entry.request_id, st.cfg.id)));
    if (st.lane.cancel(seq))
      self->send(self, batch_flush_atom::value);
    return;
  }
  entry.promise.deliver(make_error(
    errc::timeout, fmt::format("tool '{}' (request {}) did not finish before its "
                               "deadline in worker {}",
                               entry.tool, entry.request_id, st.cfg.id)));
  // The process is still busy with it and cannot take another call: give it a
  // short grace, then replace it.
  self->delayed_send(self, st.cfg.deadline_grace, grace_atom::value, seq);
}

/// Kills the process on purpose and has the pool replace this worker
/// (start new, then terminate old through the supervisor).
void replace_process(worker_pointer self, const std::string& why) {
  auto& st = self->state;
  detail::emit([&] {
    auto health = why.find("health") != std::string::npos;
    return telemetry_event{health ? "snakepit.worker.health_kill"
                                  : "snakepit.worker.deadline_kill",
                           {{"pid", static_cast<double>(st.pid)}},
                           {{"pool", st.cfg.pool}, {"worker", st.cfg.id}, {"reason", why}}};
  });
  st.exit_reason = make_error(errc::worker_replaced, why);
  detail::log_warning(st.cfg.id, "{}", why);
  default_process_launcher().signal(st.launch_id, SIGKILL);
  if (auto owner = caf::actor_cast<caf::actor>(st.cfg.owner))
    caf::anon_send(owner, detail::replace_atom::value, self->address(), why);
  else
    st.replacing_orphan = true;
}

void on_grace(worker_pointer self, std::uint64_t seq) {
  auto& st = self->state;
  auto i = st.calls.find(seq);
  if (i == st.calls.end() || !st.process_alive || st.exit_reason)
    return;
  if (!traits_of(st.cfg.profile, st.cfg.capacity, st.cfg.thread_check).replace_when_stuck
      || !st.cfg.kill_stuck_calls) {
    // Thread profile (killing the process would fail unrelated calls) or the
    // "wait" policy: the slot stays taken until Python finishes the call.
    detail::log_warning(st.cfg.id, "tool '{}' (request {}) is still running past its "
                        "deadline; its slot stays busy until it returns",
                        i->second.tool, i->second.request_id);
    return;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(st.cfg.deadline_grace);
  replace_process(self, fmt::format("worker {} was still running tool '{}' {} ms after its "
                                    "deadline and was killed",
                                    st.cfg.id, i->second.tool, ms.count()));
}

/// Python still runs work although every call and stream the host sent has
/// ended (e.g. a generator stuck in one step past its stream's deadline: the
/// consumer already got `timeout`, yet the step holds the process). Seen on
/// two pings at least `deadline_grace` apart, a process-profile worker is
/// replaced, as for a stuck call; otherwise its slot would look free while
/// Python cannot serve it.
void check_stray_work(worker_pointer self, std::int32_t python_in_flight) {
  auto& st = self->state;
  if (python_in_flight <= 0 || !st.calls.empty() || !st.streams.empty()) {
    st.stray_since = caf::timestamp{};
    return;
  }
  auto now = caf::make_timestamp();
  if (st.stray_since.time_since_epoch().count() == 0) {
    st.stray_since = now;
    return;
  }
  if (now - st.stray_since < st.cfg.deadline_grace || !st.process_alive || st.exit_reason)
    return;
  if (!traits_of(st.cfg.profile, st.cfg.capacity, st.cfg.thread_check).replace_when_stuck
      || !st.cfg.kill_stuck_calls)
    return;  // thread profile or "wait": the slot is Python's until it returns
  replace_process(self, fmt::format("worker {} (pid {}) was still running {} tool call(s) "
                                    "after every call and stream sent to it had ended (a "
                                    "generator stuck past its deadline?) and was killed",
                                    st.cfg.id, st.pid, python_in_flight));
}

/// Health: one ping per interval; a ping still unanswered at the next tick
/// is a miss; too many misses in a row mean the process is wedged.
void on_health_tick(worker_pointer self) {
  auto& st = self->state;
  if (st.current != phase::ready || st.exit_reason || !st.process_alive || !st.channel)
    return;
  if (!st.ping_answered) {
    if (++st.pings_missed >= st.cfg.health_max_missed) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(st.cfg.health_interval);
      replace_process(self, fmt::format("worker {} (pid {}) missed {} health pings in a row "
                                        "({} ms apart): wedged, killed",
                                        st.cfg.id, st.pid, st.pings_missed, ms.count()));
      return;
    }
  }
  st.ping_answered = false;
  auto seq = ++st.ping_seq;
  auto handle = caf::actor_cast<caf::actor>(self);
  // Events come back with the pong: published right on the gRPC thread (the
  // bus is thread-safe), only the drop count goes through the mailbox.
  st.channel->ping(std::chrono::duration_cast<std::chrono::milliseconds>(st.cfg.health_timeout),
                   [handle, seq, source = event_source(st)](
                     bool ok, const bridge::v1::PingResponse& response) {
                     std::uint64_t dropped = 0;
                     if (ok && response.has_telemetry())
                       dropped = detail::publish_python_events(response.telemetry(), source);
                     caf::anon_send(handle, pong_atom::value, seq, ok, dropped,
                                    ok ? response.in_flight() : std::int32_t{-1});
                   });
  self->delayed_send(self, st.cfg.health_interval, health_atom::value);
}

} // namespace

worker_actor spawn_worker(caf::actor_system& sys, worker_config cfg) {
  auto impl = sys.spawn([cfg = std::move(cfg)](worker_pointer self) mutable
                        -> worker_actor_impl::behavior_type {
    auto& init = self->state;
    init.cfg = std::move(cfg);
    init.socket_path = next_socket_path(init.cfg.runtime_dir);
    self->set_exit_handler([self](caf::exit_msg& msg) { begin_stop(self, msg.reason); });
    // Callbacks run on the launcher thread: they only send messages.
    auto handle = caf::actor_cast<caf::actor>(self);
    auto weak = self->address();
    auto tail = init.tail;
    auto tag = init.cfg.id;
    process_events events;
    events.on_spawned = [weak](caf::expected<int> pid) {
      if (pid)  // on the launcher thread: the registry's file I/O never blocks an actor
        run_registry::instance().record_spawn(*pid);
      if (auto h = caf::actor_cast<caf::actor>(weak))
        caf::anon_send(h, spawned_atom::value, pid ? static_cast<std::int32_t>(*pid) : 0,
                       pid ? std::string{} : caf::to_string(pid.error()));
    };
    events.on_ready_line = [weak](std::string line) {
      if (auto h = caf::actor_cast<caf::actor>(weak))
        caf::anon_send(h, readyline_atom::value, std::move(line));
    };
    events.on_output = [tail, tag](bool is_stderr, std::string_view line) {
      if (is_stderr)
        tail->push(line);
      detail::log_worker_output(tag, is_stderr, line);
    };
    events.on_exit = [weak, socket = init.socket_path](process_exit how) {
      run_registry::instance().record_exit(how.pid);
      // A killed worker cannot remove its socket; each incarnation has a
      // path of its own, so nobody else uses this one.
      ::unlink(socket.c_str());
      if (auto h = caf::actor_cast<caf::actor>(weak))
        caf::anon_send(h, exited_atom::value, how);
    };
    init.launch_id = default_process_launcher().spawn(make_spec(init), std::move(events));
    init.process_alive = true;
    self->delayed_send(self, init.cfg.startup_timeout, start_tout_atom::value);
    return {
      [self](execute_atom, execute_request& req) { return on_execute(self, req); },
      [self](status_atom) { return make_status(self); },
      [self](execute_stream_atom, execute_request& req, caf::actor& consumer) {
        return on_execute_stream(self, req, consumer);
      },
      [self](stream_ack_atom, std::uint64_t id, std::uint32_t n) {
        if (auto i = self->state.streams.find(id); i != self->state.streams.end())
          i->second.call->credit(n);
      },
      [self](stream_cancel_atom, std::uint64_t id) {
        if (auto i = self->state.streams.find(id); i != self->state.streams.end())
          i->second.call->cancel();
      },
      [self](detail::stream_done_atom, std::uint64_t id, bool ok, std::int64_t wall_ns,
             std::int64_t cpu_ns, std::int32_t code, const std::string& message,
             std::uint64_t dropped) {
        on_stream_done(self, id, ok, wall_ns, cpu_ns, code, message, dropped);
      },
      [self](stream_orphan_atom, std::uint64_t id) { on_stream_orphan(self, id); },
      [self](close_session_atom, const std::string& id, const std::string& reason) {
        auto& st = self->state;
        if (!st.channel || st.current != phase::ready)
          return;  // its process (and the session's state) is gone anyway
        auto worker = st.cfg.id;
        st.channel->close_session(id, reason, std::chrono::seconds{10},
                                  [worker, id, reason](bool ok) {
                                    if (!ok)
                                      detail::log_debug(worker, "could not tell Python that "
                                                        "session {} ended ({})", id, reason);
                                  });
      },
      [self](spawned_atom, std::int32_t pid, const std::string& err) {
        if (pid > 0) {
          self->state.pid = pid;
          return;
        }
        self->state.process_alive = false;
        fail_startup(self, make_error(errc::startup_failed,
                                      fmt::format("cannot start {}: {}",
                                                  self->state.cfg.python, err)));
      },
      [self](readyline_atom, const std::string& line) { on_ready_line(self, line); },
      [self](exited_atom, const process_exit& how) { on_exit(self, how); },
      [self](rpc_done_atom, detail::rpc_call_ptr& call) {
        on_rpc_done(self, std::move(call));
      },
      [self](deadline_atom, std::int64_t tick_ns) { on_deadline_tick(self, tick_ns); },
      [self](grace_atom, std::uint64_t seq) { on_grace(self, seq); },
      [self](start_tout_atom) {
        auto& st = self->state;
        if (st.current != phase::starting)
          return;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
          st.cfg.startup_timeout);
        fail_startup(self, make_error(errc::startup_failed,
                                      fmt::format("worker {} did not become ready within "
                                                  "{} ms (startup_timeout_ms)",
                                                  st.cfg.id, ms.count())));
      },
      [self](health_atom) { on_health_tick(self); },
      [self](batch_flush_atom) { self->state.lane.scheduled_flush(); },
      [self](detail::batch_written_atom, std::uint64_t id, bool) {
        if (id == self->state.lane.stream_id())
          self->state.lane.written();
      },
      [self](detail::batch_reply_atom, std::uint64_t id, detail::batch_reply_ptr& reply) {
        on_batch_reply(self, id, reply);
      },
      [self](detail::batch_closed_atom, std::uint64_t id, std::int32_t code,
             const std::string& message) { on_batch_closed(self, id, code, message); },
      [self](pong_atom, std::uint64_t seq, bool ok, std::uint64_t events_dropped,
             std::int32_t python_in_flight) {
        auto& st = self->state;
        if (seq == st.ping_seq && ok) {
          st.ping_answered = true;
          st.pings_missed = 0;
        }
        note_python_events(self, events_dropped);
        if (ok)
          check_stray_work(self, python_in_flight);
      },
      [self](flush_atom) {
        auto& st = self->state;
        shut_down(self, st.final_reason, st.final_call_error);
      },
      [self](orphan_atom, std::uint64_t seq) {
        // A call failed in transport and no process exit followed: the
        // worker is unusable.
        auto& st = self->state;
        if (st.calls.count(seq) == 0 || !st.process_alive)
          return;
        auto err = make_error(errc::worker_crashed,
                              fmt::format("worker {} (pid {}) stopped answering on its "
                                          "socket; it is being replaced",
                                          st.cfg.id, st.pid));
        shut_down(self, err, err);
      },
    };
  });
  return caf::actor_cast<worker_actor>(impl);
}

} // namespace snakepit
