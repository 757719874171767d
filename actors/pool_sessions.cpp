// The pool actor's sessions: routing by affinity, binding, expiry, closing.

#include "snakepit/actors/detail/pool_state.hpp"

namespace snakepit::pool_impl {

void emit_session_event(const pool_state& st, const char* what, const session_entry& s,
                        const std::string& reason) {
  detail::emit([&] {
    return telemetry_event{std::string{"snakepit.session."} + what,
                           {{"calls", static_cast<double>(s.calls)}},
                           {{"pool", st.cfg.name}, {"session", s.id},
                            {"worker", s.worker.substr(0, s.worker.rfind('@'))},
                            {"reason", reason}}};
  });
}

/// A session's request: its worker when free (even draining: it keeps its
/// sessions until its drain time ends); otherwise as `affinity` says. A null
/// worker without error means: wait in the queue.
route route_session(pool_state& st, session_entry& s) {
  auto* bound = s.worker.empty() ? nullptr : st.find_instance(s.worker);
  if (bound != nullptr && bound->gone)
    bound = nullptr;
  if (!s.worker.empty() && bound == nullptr)
    s.lost = true;
  if (bound != nullptr && bound->in_flight < bound->info.capacity && !bound->at_limit()) {
    bound->last_used = ++st.dispatches;
    return {bound, {}};
  }
  auto mode = st.cfg.affinity;
  if (s.lost && mode != affinity_mode::hint) {
    emit_session_event(st, "lost", s, "worker gone");
    return {nullptr,
            make_error(errc::session_lost,
                       fmt::format("session '{}' of pool '{}' lost its state: its worker {} "
                                   "is gone (crashed, killed or recycled); close it and open "
                                   "a new session",
                                   s.id, st.cfg.name, s.worker.substr(0, s.worker.rfind('@'))))};
  }
  if (bound != nullptr && mode == affinity_mode::strict_fail_fast)
    return {nullptr, make_error(errc::session_busy,
                                fmt::format("session '{}': its worker {} is busy "
                                            "(affinity = strict_fail_fast); retry later",
                                            s.id, bound->info.id))};
  if (bound != nullptr && mode == affinity_mode::strict_queue)
    return {nullptr, {}};  // waits for its worker
  return {st.pick(), {}};  // unbound yet, or hint: any free worker
}

/// The request runs on `w` now: binds its session there (a session that had
/// another worker is marked moved; that worker is told to drop it).
void bind_session(pool_pointer self, execute_request& req, worker_slot& w) {
  auto& st = self->state;
  auto* s = st.sessions.find(req.session_id);
  if (s == nullptr)
    return;
  const auto& key = w.instance_key;
  if (s->worker != key) {
    if (!s->worker.empty()) {
      req.session_moved = true;
      emit_session_event(st, "moved", *s, s->lost ? "worker gone" : "worker busy");
      if (auto* old = st.find_instance(s->worker))
        self->send(old->handle, close_session_atom::value, s->id, std::string{"moved"});
    }
    s->worker = key;
    s->lost = false;
  }
  ++s->calls;
  s->last_used = caf::make_timestamp();
}

/// A session ended: tells its worker's Python side (its hook runs there).
void end_session(pool_pointer self, const session_entry& s, const char* reason) {
  auto& st = self->state;
  emit_session_event(st, reason, s, reason);
  if (auto* w = s.worker.empty() ? nullptr : st.find_instance(s.worker)) {
    self->send(w->handle, close_session_atom::value, s.id, std::string{reason});
    if (w->draining && w->in_flight == 0 && st.sessions.bound_to(s.worker) == 0)
      finish_drain(self, w->info.id);
  }
}

/// Closes the sessions unused for `session_ttl`; runs while any are open.
void sweep_sessions(pool_pointer self) {
  auto& st = self->state;
  for (auto& s : st.sessions.expire(caf::make_timestamp()))
    end_session(self, s, "expired");
  st.sweeping = st.sessions.size() > 0;
  if (st.sweeping)
    self->delayed_send(self, std::clamp<caf::timespan>(st.cfg.session_ttl / 4,
                                                       std::chrono::milliseconds{10},
                                                       std::chrono::seconds{1}),
                       detail::session_sweep_atom::value);
}

caf::result<std::string> open_session(pool_pointer self, std::string id) {
  auto& st = self->state;
  auto opened = st.sessions.open(std::move(id), caf::make_timestamp());
  if (!opened)
    return std::move(opened.error());
  emit_session_event(st, "opened", *st.sessions.find(*opened), "opened");
  if (!st.sweeping)
    sweep_sessions(self);
  return std::move(*opened);
}

} // namespace snakepit::pool_impl
