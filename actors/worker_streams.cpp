// The worker actor's generator streams (ExecuteStream).

#include "snakepit/actors/detail/worker_state.hpp"

namespace snakepit::worker_impl {

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
  segment_list segments;
  if (auto err = accept(st, req, wire, segments))
    return refuse(self, std::move(err));
  wire.set_stream_credit(req.stream_window == 0 ? 16 : std::min(req.stream_window, 4096u));
  auto id = next_stream_id();
  auto call = std::make_shared<detail::stream_call>(detail::stream_call::params{
    id, consumer, self->address(), st.cfg.id, event_source(st), st.cfg.shm});
  st.streams.emplace(id, stream_state{call, req.request_id, req.tool, 0, {}, std::move(segments)});
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

} // namespace snakepit::worker_impl
