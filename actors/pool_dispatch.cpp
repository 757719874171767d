// The pool actor's routing: free workers, the queue, pipelining, re-dispatch.

#include "snakepit/actors/detail/pool_state.hpp"

namespace snakepit::pool_impl {

void send_to(pool_pointer self, worker_slot& w, execute_request& req) {
  if (!req.session_id.empty())
    bind_session(self, req, w);
  ++w.in_flight;
  auto expected = self->state.pipelining.estimate(detail::pipeline_key(req))
                    .value_or(caf::timespan{0});
  w.expected.push_back(expected);
  w.expected_work += expected;
  note_dispatch(self->state);
}

/// A call on `w` is over (or went elsewhere): its expected time goes.
void release_slot(worker_slot& w) {
  if (w.in_flight > 0)
    --w.in_flight;
  if (w.in_flight == 0)
    w.idle_since = std::chrono::steady_clock::now();
  if (!w.expected.empty()) {
    w.expected_work -= w.expected.front();
    w.expected.pop_front();
  }
}

void dispatch_queue(pool_pointer self) {
  auto& st = self->state;
  bool any_free = true;  // for requests without a session
  std::vector<std::string> refused;  // tools no busy worker may queue now
  // Workers a waiting session call needs idle: nothing is queued on them.
  std::vector<const worker_slot*> reserved;
  for (auto i = st.queue.begin(); i != st.queue.end();) {
    worker_slot* w = nullptr;
    caf::error err;
    if (i->req.session_id.empty()) {
      w = any_free ? st.pick() : nullptr;
      any_free = w != nullptr;
      auto key = detail::pipeline_key(i->req);
      if (w == nullptr && !i->is_stream && st.pipelining.enabled()
          && std::find(refused.begin(), refused.end(), key) == refused.end()) {
        w = st.pick_pipelined(key, reserved);
        if (w == nullptr)
          refused.push_back(std::move(key));
      }
    } else if (auto* s = st.sessions.find(i->req.session_id)) {
      auto r = route_session(st, *s);
      w = r.worker;
      err = std::move(r.error);
    } else {
      err = make_error(errc::session_unknown,
                       fmt::format("session '{}' was closed or expired while request {} "
                                   "waited in the queue of pool '{}'",
                                   i->req.session_id, i->req.request_id, st.cfg.name));
    }
    if (w == nullptr && !err) {
      if (!i->req.session_id.empty())
        if (auto* s = st.sessions.find(i->req.session_id))
          if (auto* bound = s->worker.empty() ? nullptr : st.find_instance(s->worker))
            reserved.push_back(bound);
      ++i;
      continue;
    }
    auto q = std::move(*i);
    i = st.queue.erase(i);
    st.expiries.remove(q.expires_at, q.seq);
    if (err) {
      ++st.failed;
      q.fail(std::move(err));
      continue;
    }
    q.req.queued = caf::make_timestamp() - q.enqueued_at;
    send_to(self, *w, q.req);
    if (q.is_stream)
      q.stream_promise.delegate(w->handle, execute_stream_atom::value, std::move(q.req),
                                std::move(q.consumer));
    else
      q.promise.delegate(w->handle, execute_atom::value, std::move(q.req));
  }
}

/// Checks common to calls and streams: the pool takes requests, the request
/// has an id and a deadline not yet passed.
caf::error closed_error(const pool_state& st) {
  if (st.current == phase::failed)
    return st.failure;
  if (st.current == phase::stopping)
    return make_error(errc::pool_stopped,
                      fmt::format("pool '{}' is stopping", st.cfg.name));
  return {};
}

caf::error admit(pool_pointer self, execute_request& req) {
  auto& st = self->state;
  if (auto err = closed_error(st))
    return err;
  if (req.request_id.empty())
    req.request_id = st.cfg.name + "-" + std::to_string(++st.next_request);
  auto now = caf::make_timestamp();
  if (req.deadline.time_since_epoch().count() == 0)
    req.deadline = now + st.cfg.request_timeout;
  if (req.deadline <= now)
    return make_error(errc::timeout,
                      fmt::format("request {} for tool '{}' arrived at pool '{}' after "
                                  "its deadline",
                                  req.request_id, req.tool, st.cfg.name));
  // The wire's strings must be UTF-8: say so here, naming the argument,
  // rather than let the encoder fail as an internal error.
  if (!req.items.empty() && !req.arguments.empty())
    return make_error(errc::bad_arguments,
                      fmt::format("a map request of tool '{}' carries its argument sets in "
                                  "`items`; leave `arguments` empty",
                                  req.tool));
  for (std::size_t i = 0; i < req.items.size(); ++i)
    if (auto bad = find_invalid_utf8(req.items[i]); !bad.empty())
      return make_error(errc::bad_arguments,
                        fmt::format("item {}: argument {} of tool '{}' is a string that is not "
                                    "valid UTF-8; send binary data as bytes",
                                    i, bad, req.tool));
  if (auto bad = find_invalid_utf8(req.arguments); !bad.empty())
    return make_error(errc::bad_arguments,
                      fmt::format("argument {} of tool '{}' is a string that is not valid "
                                  "UTF-8; send binary data as bytes",
                                  bad, req.tool));
  if (!is_valid_utf8(req.tool))
    return make_error(errc::bad_arguments, "the tool name is not valid UTF-8");
  // Deeper than both sides' decoders accept: refused here, named, instead of
  // an `internal` DecodeError from Python.
  auto too_deep = [&](const value::map& args, const std::string& what) -> caf::error {
    if (auto at = find_too_deep(args, value::max_wire_depth); !at.empty())
      return make_error(errc::bad_arguments,
                        fmt::format("{}argument {} of tool '{}' nests lists and maps more than "
                                    "{} levels deep (the wire's limit); flatten it, or send it "
                                    "as bytes",
                                    what, at, req.tool, value::max_wire_depth));
    return {};
  };
  for (std::size_t i = 0; i < req.items.size(); ++i)
    if (auto err = too_deep(req.items[i], fmt::format("item {}: ", i)))
      return err;
  return too_deep(req.arguments, "");
}

/// Where an admitted request goes now: a worker, an error, or neither (wait
/// in the queue).
route route_request(pool_state& st, const execute_request& req, bool may_pipeline) {
  if (req.session_id.empty()) {
    // A free worker means nothing queued could use it (the queue is served
    // whenever a slot frees), so taking it keeps FIFO order; so does queuing
    // on a busy worker, but only when nothing waits in the pool's queue.
    auto* w = st.pick();
    if (w == nullptr && may_pipeline && st.queue.empty())
      w = st.pick_pipelined(detail::pipeline_key(req));
    return {w, {}};
  }
  auto* s = st.sessions.find(req.session_id);
  if (s == nullptr)
    return {nullptr, make_error(errc::session_unknown,
                                fmt::format("pool '{}' has no open session '{}': it was never "
                                            "opened, was closed, or expired after session_ttl "
                                            "without use; open a new one",
                                            st.cfg.name, req.session_id))};
  s->last_used = caf::make_timestamp();
  return route_session(st, *s);
}

caf::result<execute_reply> on_execute(pool_pointer self, execute_request& req) {
  auto& st = self->state;
  if (auto err = admit(self, req)) {
    ++st.failed;
    return err;
  }
  barrier_ticket ticket;
  if (auto err = barrier_admit(self, req, &ticket)) {
    ++st.failed;
    return err;
  }
  if (ticket.follow)
    return run_followed(self, req, ticket);
  return route_call(self, req, caf::make_timestamp());
}

/// A call that never started on a worker whose process died: routed again,
/// with its deadline as it was.
caf::result<execute_reply> on_redispatch(pool_pointer self, const caf::actor_addr& from,
                                         execute_request& req) {
  auto& st = self->state;
  if (auto* w = st.find(from))
    release_slot(*w);
  ++st.redispatched;
  auto now = caf::make_timestamp();
  if (auto err = closed_error(st)) {
    ++st.failed;
    return err;
  }
  if (req.deadline <= now) {
    ++st.failed;
    return make_error(errc::timeout,
                      fmt::format("request {} for tool '{}' passed its deadline while its "
                                  "worker died before starting it",
                                  req.request_id, req.tool));
  }
  detail::emit([&] {
    return telemetry_event{"snakepit.request.redispatched",
                           {},
                           {{"pool", st.cfg.name}, {"tool", req.tool},
                            {"request_id", req.request_id}}};
  });
  // The queue timeout counts the time it waited in the pool's queue before.
  return route_call(self, req, now - req.queued);
}

caf::result<execute_reply> route_call(pool_pointer self, execute_request& req,
                                      caf::timestamp since) {
  auto& st = self->state;
  auto r = route_request(st, req, true);
  if (r.error) {
    ++st.failed;
    return std::move(r.error);
  }
  if (r.worker != nullptr) {
    send_to(self, *r.worker, req);
    return self->delegate(r.worker->handle, execute_atom::value, std::move(req));
  }
  queued_request q;
  q.promise = self->make_response_promise<execute_reply>();
  auto promise = q.promise;
  // The promise owns the answer now (CAF): errors go through it too.
  if (auto err = enqueue(self, std::move(req), std::move(q), since))
    promise.deliver(std::move(err));
  return promise;
}

/// Puts a request that found no free worker in the queue, or refuses it
/// when the queue is full.
caf::error enqueue(pool_pointer self, execute_request req, queued_request q,
                   caf::timestamp since) {
  auto& st = self->state;
  auto now = caf::make_timestamp();
  if (st.queue.size() >= st.cfg.queue_max) {
    ++st.failed;
    ++st.queue_full;
    detail::emit([&] {
      return telemetry_event{"snakepit.pool.saturated",
                             {{"queued", static_cast<double>(st.queue.size())}},
                             {{"pool", st.cfg.name}, {"reason", "queue_full"},
                              {"tool", req.tool}}};
    });
    return make_error(errc::pool_saturated,
                      fmt::format("pool '{}' is saturated: all {} worker(s) busy and {} "
                                  "requests queued (queue_max); retry later, or raise "
                                  "size or queue_max",
                                  st.cfg.name, st.workers.size(), st.queue.size()));
  }
  q.seq = ++st.next_seq;
  q.enqueued_at = since;
  q.expires_at = std::min<caf::timestamp>(req.deadline, since + st.cfg.queue_timeout);
  q.req = std::move(req);
  if (auto when = st.expiries.add(q.expires_at, q.seq))
    self->delayed_send(self, std::max(caf::timespan{0}, *when - now), expire_atom::value,
                       when->time_since_epoch().count());
  st.queue.push_back(std::move(q));
  return {};
}

/// A stream is routed like a call and, without a free worker, waits in the
/// same queue (FIFO with calls, same `queue_max` and `queue_timeout`).
caf::result<stream_handle> on_execute_stream(pool_pointer self, execute_request& req,
                                             caf::actor& consumer) {
  auto& st = self->state;
  if (auto err = admit(self, req)) {
    ++st.failed;
    return err;
  }
  if (auto err = barrier_admit(self, req, nullptr)) {
    ++st.failed;
    return err;
  }
  req.stream_window = std::min(req.stream_window == 0 ? st.cfg.stream_window : req.stream_window,
                               std::uint32_t{4096});
  auto r = route_request(st, req);
  if (r.error) {
    ++st.failed;
    return std::move(r.error);
  }
  if (r.worker == nullptr) {
    queued_request q;
    q.is_stream = true;
    q.stream_promise = self->make_response_promise<stream_handle>();
    q.consumer = std::move(consumer);
    auto promise = q.stream_promise;
    if (auto err = enqueue(self, std::move(req), std::move(q), caf::make_timestamp()))
      promise.deliver(std::move(err));
    return promise;
  }
  send_to(self, *r.worker, req);
  return self->delegate(r.worker->handle, execute_stream_atom::value, std::move(req),
                        std::move(consumer));
}

} // namespace snakepit::pool_impl
