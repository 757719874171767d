// The pool's crash barrier: the poison table (requests that crash workers
// are refused), the circuit breaker (a pool whose workers keep crashing
// refuses calls for a while) and retries of idempotent calls whose worker
// crashed. See docs/architecture.md#crash-barrier.

#include <random>

#include "snakepit/actors/detail/pool_state.hpp"

namespace snakepit::pool_impl {

namespace {

using steady = std::chrono::steady_clock;

long long millis(caf::timespan t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
}

double jitter_unit() {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  return std::uniform_real_distribution<double>{0.0, 1.0}(gen);
}

void note_breaker(const pool_state& st, breaker_state to, const std::string& why) {
  auto now = steady::now();
  if (to == breaker_state::open)
    detail::log_warning(st.cfg.name, "circuit breaker open ({}): calls are refused "
                        "(circuit_open) for {} ms", why, millis(st.cfg.breaker.open_time));
  else
    detail::log_info(st.cfg.name, "circuit breaker {} ({})", to_cstr(to), why);
  detail::emit([&] {
    return telemetry_event{"snakepit.pool.breaker",
                           {{"recent_crashes", static_cast<double>(st.breaker.recent_crashes(now))},
                            {"opened_total", static_cast<double>(st.breaker.opened())}},
                           {{"pool", st.cfg.name}, {"state", to_cstr(to)}, {"reason", why}}};
  });
}

caf::error poison_error(const pool_state& st, const execute_request& req,
                        std::uint32_t crashes, const std::string& how) {
  return make_error(errc::poison_request,
                    fmt::format("pool '{}' {} request {} of tool '{}': the same tool and "
                                "arguments crashed its workers {} times (poison_threshold = "
                                "{}), so it is refused until {} ms after its last crash "
                                "(poison_ttl_ms) instead of killing more workers. Fix the "
                                "tool or its input; sending the same call again will not help",
                                st.cfg.name, how, req.request_id, req.tool, crashes,
                                st.cfg.poison.threshold, millis(st.cfg.poison.ttl)));
}

/// The error an attempt ended with, saying how many attempts ran and why
/// there was no other.
caf::error with_attempts(caf::error err, std::uint32_t attempts, const std::string& why_not) {
  if (attempts <= 1 && why_not.empty())
    return err;
  auto info = describe(err);
  auto note = attempts > 1 ? fmt::format(" [attempt {} of the call", attempts) : std::string{" ["};
  if (!why_not.empty())
    note += fmt::format("{}not retried: {}", attempts > 1 ? "; " : "", why_not);
  note += "]";
  return make_error(info.code, info.message + note, info.python_type, info.traceback);
}

void deliver(pool_pointer self, tracked_call& call, caf::error err) {
  call.promise.deliver(std::move(err));
  self->state.followed.erase(call.id);
}

void start_attempt(pool_pointer self, const std::shared_ptr<tracked_call>& call);

void on_attempt_failed(pool_pointer self, const std::shared_ptr<tracked_call>& call,
                       caf::error err) {
  auto& st = self->state;
  auto code = describe(err).code;
  bool crash = is_crash_kind(code);
  if (call->probe) {
    call->probe = false;
    if (auto changed = st.breaker.probe_done(crash, steady::now()))
      note_breaker(st, *changed, crash ? "the probe call crashed its worker"
                                       : "the probe call ended without a crash");
  }
  if (!crash || !call->retryable) {
    deliver(self, *call, with_attempts(std::move(err), call->attempt, {}));
    return;
  }
  auto now = caf::make_timestamp();
  // The worker's crash report came first: the poison table has counted it.
  if (st.poison.enabled())
    if (auto* e = st.poison.tainted(call->req.poison_key, steady::now())) {
      deliver(self, *call, with_attempts(poison_error(st, call->req, e->crashes, "gave up on"),
                                         call->attempt, {}));
      return;
    }
  if (st.breaker.enabled() && st.breaker.state(steady::now()) != breaker_state::closed) {
    deliver(self, *call, with_attempts(std::move(err), call->attempt,
                                       "the pool's circuit breaker is open"));
    return;
  }
  if (auto closed = closed_error(st)) {
    deliver(self, *call, with_attempts(std::move(err), call->attempt, "the pool is stopping"));
    return;
  }
  auto d = decide_retry(st.cfg.retry, call->attempt, now, call->req.deadline, jitter_unit());
  if (!d.retry) {
    deliver(self, *call, with_attempts(std::move(err), call->attempt, d.why_not));
    return;
  }
  ++st.retries;
  call->waiting = true;
  detail::log_info(st.cfg.name, "request {} of tool '{}': attempt {} crashed its worker, "
                   "retrying in {} ms", call->req.request_id, call->req.tool, call->attempt,
                   millis(d.delay));
  detail::emit([&] {
    return telemetry_event{"snakepit.request.retried",
                           {{"attempt", static_cast<double>(call->attempt + 1)},
                            {"delay_ms", static_cast<double>(millis(d.delay))}},
                           {{"pool", st.cfg.name}, {"tool", call->req.tool},
                            {"request_id", call->req.request_id},
                            {"reason", to_string(code)}}};
  });
  self->delayed_send(self, d.delay, detail::retry_atom::value, call->id);
}

void start_attempt(pool_pointer self, const std::shared_ptr<tracked_call>& call) {
  ++call->attempt;
  call->waiting = false;
  // A call that may run again keeps its request: the worker takes the
  // arguments of the one it is sent.
  auto req = call->retryable ? call->req : std::move(call->req);
  req.attempt = call->attempt;
  self
    ->request(caf::actor_cast<pool_actor_impl>(self), caf::infinite, detail::attempt_atom::value,
              std::move(req))
    .then(
      [self, call](execute_reply& reply) {
        auto& st = self->state;
        if (call->probe) {
          call->probe = false;
          if (auto changed = st.breaker.probe_done(false, steady::now()))
            note_breaker(st, *changed, "the probe call succeeded");
        }
        reply.attempts = call->attempt;
        call->promise.deliver(std::move(reply));
        st.followed.erase(call->id);
      },
      [self, call](caf::error& err) { on_attempt_failed(self, call, std::move(err)); });
}

} // namespace

caf::error barrier_admit(pool_pointer self, execute_request& req, barrier_ticket* ticket) {
  auto& st = self->state;
  if (req.attempt == 0)
    req.attempt = 1;
  auto now = steady::now();
  if (st.poison.enabled()) {
    req.poison_key = request_key(req.tool, req.arguments, req.items);
    if (auto* e = st.poison.tainted(req.poison_key, now)) {
      ++st.poison_refused;
      detail::emit([&] {
        return telemetry_event{"snakepit.request.poison_refused",
                               {{"crashes", static_cast<double>(e->crashes)}},
                               {{"pool", st.cfg.name}, {"tool", req.tool},
                                {"request_id", req.request_id}}};
      });
      return poison_error(st, req, e->crashes, "refused");
    }
  }
  if (st.breaker.enabled()) {
    std::optional<breaker_state> changed;
    auto a = st.breaker.admit(now, &changed, ticket != nullptr);
    if (changed)
      note_breaker(st, *changed, "breaker_open_ms passed: the next call is a probe");
    if (!a.allowed) {
      detail::emit([&] {
        return telemetry_event{"snakepit.request.breaker_refused",
                               {{"retry_after_ms", static_cast<double>(millis(a.retry_after))}},
                               {{"pool", st.cfg.name}, {"tool", req.tool}}};
      });
      return make_error(
        errc::circuit_open,
        fmt::format("pool '{}' refused the call of tool '{}' without running it: its circuit "
                    "breaker is {} after {} worker crashes within {} ms (breaker_threshold, "
                    "breaker_window_ms); retry after {} ms, and find out why its workers "
                    "crash (their log lines, snakepit inspect)",
                    st.cfg.name, req.tool, to_cstr(st.breaker.state(now)),
                    st.cfg.breaker.threshold, millis(st.cfg.breaker.window),
                    std::max<long long>(1, millis(a.retry_after))));
    }
    if (ticket != nullptr && a.probe)
      ticket->probe = ticket->follow = true;
  }
  if (ticket != nullptr && st.cfg.retry.max_attempts > 1 && req.session_id.empty()
      && (req.idempotent || st.idempotent_tools.count(req.tool) > 0))
    ticket->retryable = ticket->follow = true;
  return {};
}

caf::result<execute_reply> run_followed(pool_pointer self, execute_request& req,
                                       const barrier_ticket& ticket) {
  auto& st = self->state;
  auto call = std::make_shared<tracked_call>();
  call->id = ++st.next_followed;
  call->req = std::move(req);
  call->promise = self->make_response_promise<execute_reply>();
  call->retryable = ticket.retryable;
  call->probe = ticket.probe;
  st.followed.emplace(call->id, call);
  auto promise = call->promise;
  start_attempt(self, call);
  return promise;
}

caf::result<execute_reply> on_attempt(pool_pointer self, execute_request& req) {
  auto& st = self->state;
  if (auto err = closed_error(st)) {
    ++st.failed;
    return err;
  }
  if (req.deadline <= caf::make_timestamp()) {
    ++st.failed;
    return make_error(errc::timeout,
                      fmt::format("request {} for tool '{}' passed its deadline before its "
                                  "attempt {} could start",
                                  req.request_id, req.tool, req.attempt));
  }
  return route_call(self, req, caf::make_timestamp());
}

void on_retry(pool_pointer self, std::uint64_t id) {
  auto& st = self->state;
  auto i = st.followed.find(id);
  if (i == st.followed.end() || !i->second->waiting)
    return;
  auto call = i->second;
  if (auto err = closed_error(st)) {
    deliver(self, *call, std::move(err));
    return;
  }
  start_attempt(self, call);
}

void on_calls_crashed(pool_pointer self, const std::vector<detail::crashed_call>& calls) {
  auto& st = self->state;
  auto now = steady::now();
  if (st.poison.enabled())
    for (auto& c : calls) {
      auto crashes = st.poison.record_crash(c.poison_key, c.tool, now);
      if (crashes != st.cfg.poison.threshold)
        continue;
      detail::log_warning(st.cfg.name, "a request of tool '{}' crashed workers {} times: it is "
                          "refused (poison_request) for {} ms", c.tool, crashes,
                          millis(st.cfg.poison.ttl));
      detail::emit([&] {
        return telemetry_event{"snakepit.request.poisoned",
                               {{"crashes", static_cast<double>(crashes)}},
                               {{"pool", st.cfg.name}, {"tool", c.tool}}};
      });
    }
  auto before = st.breaker.state(now);
  if (auto changed = st.breaker.on_crash(now))
    note_breaker(st, *changed,
                 before == breaker_state::half_open
                   ? "a worker crashed while it was half-open"
                   : fmt::format("{} worker crashes within {} ms", st.cfg.breaker.threshold,
                                 millis(st.cfg.breaker.window)));
}

void note_idempotent_tools(pool_state& st, const worker_status& info) {
  st.idempotent_tools.insert(info.idempotent_tools.begin(), info.idempotent_tools.end());
}

void fill_barrier_status(const pool_state& st, pool_status& out) {
  auto now = steady::now();
  out.breaker = to_cstr(st.breaker.state(now));
  out.breaker_opened = st.breaker.opened();
  out.breaker_refused = st.breaker.refused();
  out.retries = st.retries;
  out.poisoned = static_cast<std::uint32_t>(st.poison.tainted_count(now));
  out.poison_refused = st.poison_refused;
}

void fail_waiting_retries(pool_pointer self, const caf::error& err) {
  auto& st = self->state;
  std::vector<std::shared_ptr<tracked_call>> waiting;
  for (auto& [id, call] : st.followed)
    if (call->waiting)
      waiting.push_back(call);
  for (auto& call : waiting)
    deliver(self, *call, err);
}

void fail_followed(pool_pointer self, const caf::error& err) {
  auto& st = self->state;
  auto all = std::move(st.followed);
  st.followed.clear();
  for (auto& [id, call] : all)
    call->promise.deliver(err);
}

} // namespace snakepit::pool_impl
