// The pool actor's recycling: drain, then replace, a bounded number at once.

#include "snakepit/actors/detail/pool_state.hpp"

namespace snakepit::pool_impl {

/// The old worker of a recycle is done (or its drain time is up): stop it.
void finish_drain(pool_pointer self, const std::string& id) {
  auto& st = self->state;
  if (st.recycling.count(id) == 0 && st.retiring.count(id) == 0)
    return;
  free_slot(st, id);
  self->request(st.sup, caf::infinite, terminate_child_atom::value, local_id_of(st, id))
    .then([](bool) {}, [](caf::error&) {});
}

/// Recycling drains, then replaces: the worker gets no new call, its
/// replacement starts at once, and it stops when its calls are done.
bool begin_recycle(pool_pointer self, const std::string& id, const std::string& reason) {
  auto& st = self->state;
  worker_slot* w = nullptr;
  for (auto& x : st.workers)
    if (x.info.id == id)
      w = &x;
  if (w == nullptr || w->draining || st.current != phase::ready)
    return false;
  if (st.recycling.size() >= st.cfg.max_concurrent_recycles) {
    for (auto& q : st.recycle_queue)
      if (q.first == id)
        return true;
    st.recycle_queue.emplace_back(id, reason);
    return true;
  }
  w->draining = true;
  ++st.recycles[reason];
  st.recycling.insert(id);
  detail::log_info(st.cfg.name, "recycling {} ({}): draining {} calls", id, reason,
                   w->in_flight);
  detail::emit([&] {
    return telemetry_event{"snakepit.worker.recycled",
                           {{"in_flight", static_cast<double>(w->in_flight)},
                            {"served", static_cast<double>(w->served)}},
                           {{"pool", st.cfg.name}, {"worker", id}, {"reason", reason}}};
  });
  launch_worker(self, false, slot_of(st, id));  // the replacement takes its slot
  if (w->in_flight == 0 && st.sessions.bound_to(w->instance_key) == 0)
    finish_drain(self, id);
  else
    self->delayed_send(self, st.cfg.drain_timeout, detail::drained_atom::value, id);
  return true;
}

void start_next_recycle(pool_pointer self) {
  auto& st = self->state;
  while (!st.recycle_queue.empty() && st.recycling.size() < st.cfg.max_concurrent_recycles) {
    auto [id, reason] = st.recycle_queue.front();
    st.recycle_queue.pop_front();
    begin_recycle(self, id, reason);
  }
}

} // namespace snakepit::pool_impl
