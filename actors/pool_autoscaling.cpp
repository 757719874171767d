// The pool actor's autoscaling: every tick, a sample of the pool goes to the
// policy (autoscale_policy.hpp); growing starts workers, shrinking drains one
// as recycling does, without a replacement.

#include <fmt/format.h>

#include "snakepit/actors/detail/pool_state.hpp"

namespace snakepit::pool_impl {

namespace {

/// How often the policy looks; its windows and cooldowns are far longer.
constexpr auto autoscale_tick = std::chrono::milliseconds{100};

autoscale_sample sample_of(const pool_state& st) {
  autoscale_sample s;
  s.now = std::chrono::steady_clock::now();
  s.starting = static_cast<std::uint32_t>(st.scale_starting.size());
  s.per_worker_capacity
    = traits_of(st.cfg.profile, st.cfg.threads_per_worker, st.cfg.thread_check).capacity;
  for (auto& w : st.workers) {
    if (w.gone)
      continue;
    if (w.draining) {
      ++s.draining;
      continue;
    }
    ++s.ready;
    s.capacity += w.info.capacity;
    s.busy += std::min(w.in_flight, w.info.capacity);
    autoscale_worker aw;
    aw.id = w.info.id;
    if (w.in_flight == 0)
      aw.idle_since = w.idle_since;
    aw.has_sessions = st.sessions.bound_to(w.instance_key) > 0;
    s.workers.push_back(std::move(aw));
  }
  s.queued = static_cast<std::uint32_t>(st.queue.size());
  if (!st.queue.empty())
    s.oldest_wait = std::chrono::duration_cast<std::chrono::milliseconds>(
      caf::make_timestamp() - st.queue.front().enqueued_at);
  return s;
}

void emit_scaled(const pool_state& st, const char* direction, std::uint32_t workers,
                 const std::string& reason) {
  detail::emit([&] {
    return telemetry_event{"snakepit.pool.scaled",
                           {{"workers", static_cast<double>(workers)},
                            {"size", static_cast<double>(st.target_size)}},
                           {{"pool", st.cfg.name}, {"direction", direction},
                            {"reason", reason}}};
  });
}

/// Drains a worker with no replacement; it stops once its calls are done.
void retire(pool_pointer self, const std::string& id, const std::string& reason) {
  auto& st = self->state;
  worker_slot* w = nullptr;
  for (auto& x : st.workers)
    if (x.info.id == id)
      w = &x;
  if (w == nullptr || w->draining)
    return;
  w->draining = true;
  st.retiring.insert(id);
  --st.target_size;
  ++st.scale_downs;
  detail::log_info(st.cfg.name, "scaling down to {} workers: retiring {} ({})", st.target_size,
                   id, reason);
  emit_scaled(st, "down", 1, reason);
  if (w->in_flight == 0)
    finish_drain(self, id);
  else
    self->delayed_send(self, st.cfg.drain_timeout, detail::drained_atom::value, id);
}

} // namespace

void start_autoscaling(pool_pointer self) {
  if (self->state.autoscale)
    self->delayed_send(self, autoscale_tick, detail::autoscale_atom::value);
}

void on_autoscale_tick(pool_pointer self) {
  auto& st = self->state;
  if (!st.autoscale || st.current != phase::ready)
    return;  // stopping or failed: no more ticks
  auto decision = st.autoscale->decide(sample_of(st));
  if (decision.grow > 0) {
    st.target_size += decision.grow;
    ++st.scale_ups;
    detail::log_info(st.cfg.name, "scaling up to {} workers: +{} ({})", st.target_size,
                     decision.grow, decision.reason);
    emit_scaled(st, "up", decision.grow, decision.reason);
    for (std::uint32_t i = 0; i < decision.grow; ++i)
      st.scale_starting.insert(launch_worker(self, false));
  } else if (decision.retire) {
    retire(self, *decision.retire, decision.reason);
  }
  self->delayed_send(self, autoscale_tick, detail::autoscale_atom::value);
}

} // namespace snakepit::pool_impl
