// The worker actor's calls: unary and batched, their answers, deadlines, re-dispatch.

#include "snakepit/actors/detail/worker_state.hpp"

namespace snakepit::worker_impl {

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
  // A map is answered with one outcome per argument set; a worker that does
  // not know map requests (an older snakepit_bridge) answers otherwise.
  bool outcomes_match = resp.has_error()
                        || static_cast<std::size_t>(resp.items_size()) == entry.items;
  bool ok = !entry.answered && status.ok() && !resp.has_error() && outcomes_match;
  // The pool hears the slot is free before the caller hears back: a caller's
  // next request never finds this worker still busy (sessions rely on it).
  // Python's own times also for calls answered early (deadline) or failed.
  tell_owner(st, detail::slot_free_atom::value, self->address(), ok,
             static_cast<std::int64_t>(resp.wall_ns()), static_cast<std::int64_t>(resp.cpu_ns()),
             detail::pipeline_key(entry.tool, entry.items > 0));
  if (!entry.answered) {
    if (status.ok()) {
      if (resp.has_error()) {
        entry.promise.deliver(error_from_wire(resp.error()));
      } else if (!outcomes_match) {
        entry.promise.deliver(make_error(
          errc::internal, fmt::format("worker {} answered a map of {} argument sets of tool "
                                      "'{}' with {} outcomes (is its snakepit_bridge older?)",
                                      st.cfg.id, entry.items, entry.tool, resp.items_size())));
      } else {
        // Results' segments are ours once mapped: taken (their names removed).
        detail::shm_reader shm;
        shm.arena = st.cfg.shm.get();
        shm.take = true;
        execute_reply reply;
        reply.result = detail::from_proto(std::move(*resp.mutable_result()), shm);
        reply.python_wall = caf::timespan{resp.wall_ns()};
        reply.python_cpu = caf::timespan{resp.cpu_ns()};
        reply.queued = entry.queued;
        reply.request_id = entry.request_id;
        reply.worker_id = st.cfg.id;
        reply.attempts = std::max<std::uint32_t>(entry.attempt, 1);
        reply.items.reserve(static_cast<std::size_t>(resp.items_size()));
        for (auto& item : *resp.mutable_items()) {
          item_outcome out;
          if (item.has_error())
            out.error = error_from_wire(item.error());
          else
            out.result = detail::from_proto(std::move(*item.mutable_result()), shm);
          out.python_wall = caf::timespan{item.wall_ns()};
          reply.items.push_back(std::move(out));
        }
        if (shm.error)
          entry.promise.deliver(std::move(shm.error));
        else
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
  } else if (st.cfg.shm) {
    // Nobody reads this result any more: remove its segments now.
    detail::drop_segments(resp.result(), *st.cfg.shm);
    for (auto& item : resp.items())
      detail::drop_segments(item.result(), *st.cfg.shm);
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

/// The pool gets back the slot of a call that never ran (no wall time to
/// learn from).
void free_unrun_slot(worker_pointer self) {
  tell_owner(self->state, detail::slot_free_atom::value, self->address(), false,
             std::int64_t{0}, std::int64_t{0}, std::string{});
}

/// Refuses a call before it reaches Python; the pool gets its slot back.
caf::error refuse(worker_pointer self, caf::error err) {
  ++self->state.failed;
  free_unrun_slot(self);
  return err;
}

/// The wire form of `req` (its arguments are moved out), with the time left
/// until its deadline; an error when this worker cannot take it now.
caf::error accept(const worker_state& st, execute_request& req,
                  bridge::v1::ExecuteRequest& wire, segment_list& segments,
                  std::uint32_t pipeline, std::int64_t* bytes) {
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
  // Large payloads go into shared memory; the call holds their segments.
  detail::shm_writer shm;
  shm.arena = st.cfg.shm.get();
  detail::to_proto(std::move(req.arguments), wire.mutable_arguments(), shm);
  for (auto& item : req.items)
    detail::to_proto(std::move(item), wire.add_items(), shm);
  if (shm.error)
    return std::move(shm.error);
  segments = std::move(shm.segments);
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
  auto pipeline_room = st.lane.is_open() ? st.cfg.pipeline_depth : 0;
  // Sent before the pool heard the process is gone, or pipelined by the pool
  // while this worker's batch stream had just closed (its process dying: the
  // stream's end can come before the exit): it never started here, so
  // another worker takes it.
  if (st.process_gone
      || (st.current == phase::ready
          && st.calls.size() + st.streams.size() >= st.cfg.capacity + pipeline_room)) {
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
  auto pipeline = pipeline_room;
  auto items = req.items.size();
  bridge::v1::ExecuteRequest wire;
  std::int64_t bytes = 0;
  segment_list segments;
  if (auto err = accept(st, req, wire, segments, pipeline, &bytes))
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
  entry.items = items;
  entry.segments = std::move(segments);
  entry.attempt = req.attempt;
  entry.poison_key = req.poison_key;
  entry.idempotent = req.idempotent;
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
    // Its own segments: mapped (the data outlives their names), not taken.
    detail::shm_reader shm;
    shm.arena = st.cfg.shm.get();
    req->arguments = detail::from_proto(std::move(*wire->mutable_arguments()), shm);
    for (auto& item : *wire->mutable_items())
      req->items.push_back(detail::from_proto(std::move(item), shm));
    if (shm.error) {
      entry.promise.deliver(std::move(shm.error));
      entry.answered = true;
      return false;
    }
    req->correlation_id = wire->correlation_id();
    req->session_id = wire->session_id();
    req->session_moved = wire->session_moved();
    for (auto& [k, v] : wire->metadata())
      req->metadata.emplace(k, v);
  }
  req->deadline = entry.deadline;
  req->queued = entry.queued;
  req->attempt = entry.attempt;
  req->poison_key = entry.poison_key;
  req->idempotent = entry.idempotent;
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

void report_crashed_calls(worker_pointer self) {
  auto& st = self->state;
  std::vector<detail::crashed_call> calls;
  for (auto& [seq, call] : st.calls)
    if (!call.answered)
      calls.push_back({call.tool, call.poison_key});
  tell_owner(st, detail::calls_crashed_atom::value, self->address(), std::move(calls));
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
      free_unrun_slot(self);
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

void arm_deadline(worker_pointer self, caf::timestamp at, std::uint64_t seq) {
  if (auto when = self->state.deadlines.add(at, seq)) {
    auto delay = std::max(caf::timespan{0}, *when - caf::make_timestamp());
    self->delayed_send(self, delay, deadline_atom::value, when->time_since_epoch().count());
  }
}

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
  // Its caller is gone: so are the names of its argument segments (Python
  // keeps reading what it has mapped already).
  entry.segments.clear();
  // A call queued behind others has not started: it never will.
  bool unwritten = entry.batched && st.lane.drop_waiting(seq);
  if (unwritten || (entry.batched && !st.lane.may_have_started(seq, st.cfg.capacity))) {
    entry.promise.deliver(make_error(
      errc::timeout, fmt::format("tool '{}' (request {}) did not start before its deadline: "
                                 "it waited behind other calls on worker {}",
                                 entry.tool, entry.request_id, st.cfg.id)));
    if (unwritten) {  // it never reaches Python
      free_unrun_slot(self);
      st.calls.erase(i);
    } else if (st.lane.cancel(seq)) {  // queued in Python: dropped there
      self->send(self, batch_flush_atom::value);
    }
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

} // namespace snakepit::worker_impl
