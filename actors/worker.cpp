#include "snakepit/actors/worker.hpp"

#include "snakepit/actors/detail/ready_line.hpp"
#include "snakepit/actors/detail/worker_state.hpp"
#include "snakepit/actors/fork_server.hpp"
#include "snakepit/actors/worker_env.hpp"

namespace snakepit::worker_impl {

/// `forked`: the spec a fork server runs (the worker's own arguments only).
process_spec make_spec(const worker_state& st, bool forked) {
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
                                "--worker-id",  cfg.id,
                                "--event-buffer", std::to_string(cfg.python_event_buffer),
                                "--max-sessions", std::to_string(cfg.max_sessions)};
  if (!forked) {  // a forked worker's parent is its fork server
    args.emplace_back("--parent-pid");
    args.emplace_back(std::to_string(::getpid()));
  }
  if (cfg.fork_server && !forked)
    args.emplace_back("--preload");  // no fork server to have run it
  if (!cfg.host_socket.empty()) {
    args.emplace_back("--host-socket");
    args.emplace_back(cfg.host_socket);
  }
  if (cfg.shm) {
    args.insert(args.end(), {"--shm-dir", cfg.shm->dir(), "--shm-threshold",
                             std::to_string(cfg.shm->threshold()), "--shm-bytes-max",
                             std::to_string(cfg.shm->bytes_max()), "--shm-cache-bytes",
                             std::to_string(cfg.shm->cache_bytes())});
  }
  if (!cfg.cpu_affinity.empty()) {
    std::string cpus;
    for (int cpu : cfg.cpu_affinity)
      cpus += (cpus.empty() ? "" : ",") + std::to_string(cpu);
    args.emplace_back("--cpu-affinity");
    args.emplace_back(cpus);
  }
  for (auto& arg : traits_of(cfg.profile, cfg.capacity, cfg.thread_check).worker_args)
    args.push_back(arg);
  for (auto& dir : cfg.python_path) {
    args.emplace_back("--python-path");
    args.emplace_back(absolute_path(dir));
  }
  // Nothing is imported from the host's working directory (see python_command.hpp).
  spec.args = forked ? std::move(args) : python_module_argv("snakepit_bridge.worker", args);
  spec.working_dir = python_working_dir;
  spec.env = base_python_env();
  for (auto& kv : cfg.env)
    spec.env.push_back(kv);
  return spec;
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
  out.idempotent_tools = st.idempotent_tools;
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
  // Results of the dead process that nobody took (the replies it sent
  // before it went were delivered first).
  if (st.cfg.shm && st.pid > 0 && !st.process_alive)
    st.cfg.shm->remove_files_of(st.pid);
  st.current = phase::stopping;
  if (st.process_alive) {
    auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(
      st.cfg.shutdown_timeout);
    default_process_launcher().terminate(st.launch_id, grace);
    st.process_alive = false;  // the launcher finishes the job
  }
  if (st.quitting)
    return;
  st.quitting = true;
  auto owner = caf::actor_cast<caf::actor>(st.cfg.owner);
  if (st.pool_confirmed || !owner) {
    self->quit(std::move(reason));
    return;
  }
  // Calls the pool sent before it hears of this go back to it (on_execute),
  // so none meets an actor that is gone (CAF would answer the caller
  // request_receiver_down, which reads as a stopped pool).
  st.process_gone = true;
  st.quit_reason = std::move(reason);
  if (st.awaiting_pool)
    return;  // the pool's answer to worker_exited ends the actor
  st.awaiting_pool = true;
  self->request(owner, std::chrono::seconds{10}, detail::worker_exited_atom::value,
                self->address())
    .then([self](bool) { self->quit(self->state.quit_reason); },
          [self](caf::error&) { self->quit(self->state.quit_reason); });
}

caf::error stopped_error(worker_pointer self) {
  return make_error(errc::pool_stopped,
                    fmt::format("worker {} stopped before the call finished",
                                self->state.cfg.id));
}

/// What the calls still open get when the worker ends: why it was replaced,
/// if it was, else that it stopped.
caf::error calls_error(worker_pointer self) {
  auto& st = self->state;
  return is(st.exit_reason, errc::worker_replaced) ? st.exit_reason : stopped_error(self);
}

/// Asked to stop (by its supervisor): SIGTERM lets Python finish the calls in
/// flight (their replies still reach the callers), SIGKILL follows after
/// `shutdown_timeout`; the actor ends when the process is gone.
void begin_stop(worker_pointer self, caf::error reason) {
  auto& st = self->state;
  if (st.stopping_requested)
    return;
  st.stopping_requested = true;
  // Killed on purpose first (health, deadline): the supervisor's terminate
  // that follows must not turn its callers' worker_replaced into
  // pool_stopped.
  if (!is(st.exit_reason, errc::worker_replaced))
    st.exit_reason = reason ? std::move(reason) : caf::error{caf::exit_reason::user_shutdown};
  st.current = phase::stopping;
  if (!st.process_alive) {  // once the pool knows (calls it sent meanwhile go back to it)
    finish_after_exit(self, st.exit_reason, calls_error(self));
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

/// The ready line: `{"status": "ready", ...}` or `{"status": "error", ...}`.
void on_ready_line(worker_pointer self, const std::string& line) {
  auto& st = self->state;
  if (st.current != phase::starting)
    return;
  std::string why;
  auto doc = detail::parse_ready_line(line, why);
  if (!doc) {
    fail_startup(self, make_error(errc::startup_failed,
                                  fmt::format("worker {} sent an unreadable ready line ({}): {}",
                                              st.cfg.id, why, line.substr(0, 500))));
    return;
  }
  if (!doc->ready) {
    fail_startup(self, make_error(errc::startup_failed,
                                  fmt::format("worker {} could not start adapter '{}': {}",
                                              st.cfg.id, st.cfg.adapter, doc->message),
                                  doc->python_type, doc->traceback));
    return;
  }
  st.python_version = std::move(doc->python_version);
  st.implementation = std::move(doc->implementation);
  st.gil_enabled = doc->gil_enabled;
  st.free_threaded = doc->free_threaded;
  st.idempotent_tools = std::move(doc->idempotent_tools);
  for (auto& warning : doc->warnings)
    detail::log_warning(st.cfg.id, "{}", warning);
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
  if (!has_unanswered(st) && !st.awaiting_pool) {
    shut_down(self, std::move(reason), call_error);
    return;
  }
  st.exited = true;
  st.final_reason = std::move(reason);
  st.final_call_error = std::move(call_error);
  if (has_unanswered(st))
    self->delayed_send(self, std::chrono::milliseconds{200}, flush_atom::value);
}

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
  if (auto owner = caf::actor_cast<caf::actor>(st.cfg.owner)) {
    st.awaiting_pool = true;
    auto confirmed = [self] {
      auto& ws = self->state;
      ws.awaiting_pool = false;
      ws.pool_confirmed = true;
      if (ws.quitting)
        self->quit(ws.quit_reason);
      else if (ws.exited && !has_unanswered(ws))
        shut_down(self, ws.final_reason, ws.final_call_error);
    };
    self->request(owner, std::chrono::seconds{10}, detail::worker_exited_atom::value,
                  self->address())
      .then([confirmed](bool) { confirmed(); }, [confirmed](caf::error&) { confirmed(); });
  }
  st.lane.seal();
  redispatch_unstarted(self);
  if (st.current == phase::stopping) {  // asked to stop
    finish_after_exit(self, st.exit_reason, calls_error(self));
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
  report_crashed_calls(self);
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

} // namespace snakepit::worker_impl

namespace snakepit {

using namespace worker_impl;

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
    events.on_exit = [weak, socket = init.socket_path, shm = init.cfg.shm](process_exit how) {
      run_registry::instance().record_exit(how.pid);
      // A killed worker cannot remove its socket; each incarnation has a
      // path of its own, so nobody else uses this one.
      ::unlink(socket.c_str());
      if (auto h = caf::actor_cast<caf::actor>(weak))
        caf::anon_send(h, exited_atom::value, how);
      else if (shm)  // the actor is gone: nobody takes what the process wrote
        shm->remove_files_of(how.pid);
    };
    auto& launcher = default_process_launcher();
    auto server = init.cfg.fork_server ? init.cfg.fork_server->ready_server() : 0;
    init.launch_id = server != 0
                       ? launcher.spawn_from(server, make_spec(init, true), std::move(events))
                       : launcher.spawn(make_spec(init, false), std::move(events));
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
      [self](list_tools_atom) { return on_list_tools(self); },
      [self](list_tools_atom, std::vector<tool_spec>& tools, bool ok) {
        on_tools_listed(self, tools, ok);
      },
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
        if (st.awaiting_pool) {  // calls the pool sent meanwhile must still find us
          self->delayed_send(self, std::chrono::milliseconds{50}, flush_atom::value);
          return;
        }
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
