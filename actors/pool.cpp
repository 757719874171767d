#include "snakepit/actors/pool.hpp"

#include "snakepit/actors/detail/pool_state.hpp"

namespace snakepit::pool_impl {

/// A worker's id without the pool prefix ("w-3"): its child id in the supervisor.
std::string local_id_of(const pool_state& st, const std::string& worker_id) {
  return worker_id.substr(st.cfg.name.size() + 1);
}

pool_status make_status(pool_pointer self) {
  auto& st = self->state;
  pool_status out;
  out.name = st.cfg.name;
  out.state = to_cstr(st.current);
  out.size = st.target_size;
  out.min_size = st.cfg.autoscale.min_size;
  out.max_size = st.cfg.autoscale.max_size;
  out.scale_ups = st.scale_ups;
  out.scale_downs = st.scale_downs;
  out.ready = static_cast<std::uint32_t>(st.workers.size());
  out.queued = static_cast<std::uint32_t>(st.queue.size());
  out.queue_max = st.cfg.queue_max;
  out.served = st.served;
  out.failed = st.failed;
  out.crashes = st.crashes;
  out.replacements = st.replacements;
  out.queue_full = st.queue_full;
  out.queue_timeouts = st.queue_timeouts;
  out.redispatched = st.redispatched;
  out.sessions = static_cast<std::uint32_t>(st.sessions.size());
  out.uptime = caf::make_timestamp() - st.started_at;
  out.recycles = st.recycles;
  fill_barrier_status(st, out);
  for (auto& w : st.workers) {
    if (!w.draining)
      out.capacity += w.info.capacity;
    out.busy += w.in_flight;
    auto ws = w.info;
    ws.in_flight = w.in_flight;
    ws.served = w.served;
    ws.failed = w.failed;
    ws.python_wall_total = w.python_wall;
    ws.python_cpu_total = w.python_cpu;
    ws.age = caf::make_timestamp() - w.ready_at;
    ws.draining = w.draining;
    ws.rss_bytes = process_rss_bytes(ws.pid);
    out.workers.push_back(std::move(ws));
  }
  return out;
}

/// After a dispatch: emits `snakepit.pool.capacity_reached` when the last
/// free slot was taken (once per time the pool fills up).
void note_dispatch(pool_state& st) {
  if (st.at_capacity || !telemetry::global().enabled())
    return;
  std::uint32_t capacity = 0;
  std::uint32_t busy = 0;
  for (auto& w : st.workers)
    if (!w.draining) {
      capacity += w.info.capacity;
      busy += std::min(w.in_flight, w.info.capacity);
    }
  if (busy < capacity)
    return;
  st.at_capacity = true;
  detail::emit([&] {
    return telemetry_event{"snakepit.pool.capacity_reached",
                           {{"capacity", static_cast<double>(capacity)},
                            {"queued", static_cast<double>(st.queue.size())}},
                           {{"pool", st.cfg.name}}};
  });
}

/// The pool cannot go on: answer everyone waiting, then exit (the linked
/// supervisor stops the workers).
void fail_pool(pool_pointer self, caf::error err) {
  auto& st = self->state;
  if (st.current == phase::failed || st.current == phase::stopping)
    return;
  st.current = phase::failed;
  st.failure = err;
  detail::log_error(st.cfg.name, "pool failed: {}", describe(err).message);
  for (auto& rp : st.ready_waiters)
    rp.deliver(err);
  st.ready_waiters.clear();
  for (auto& q : st.queue)
    q.fail(err);
  st.failed += st.queue.size();
  st.queue.clear();
  fail_followed(self, err);
  self->quit(err);
}

worker_config make_worker_config(pool_pointer self, const std::string& id, std::uint32_t slot) {
  auto& cfg = self->state.cfg;
  worker_config wc;
  wc.id = cfg.name + "/" + id;
  wc.pool = cfg.name;
  wc.python_event_buffer = cfg.python_event_buffer;
  wc.max_sessions = cfg.max_sessions;
  if (self->state.host_tools)
    wc.host_socket = self->state.host_tools->socket_path();
  wc.python = cfg.python;
  wc.adapter = cfg.adapter;
  wc.python_path = cfg.python_path;
  wc.env = expand_worker_env(cfg.env, slot, self->state.target_size);
  wc.cpu_affinity = cfg.cpu_affinity.cpus_for(slot);
  wc.profile = cfg.profile;
  wc.capacity = traits_of(cfg.profile, cfg.threads_per_worker, cfg.thread_check).capacity;
  wc.thread_check = cfg.thread_check;
  wc.max_payload_bytes = cfg.max_payload_bytes;
  wc.shm = self->state.shm;
  wc.startup_timeout = cfg.startup_timeout;
  wc.deadline_grace = cfg.deadline_grace;
  wc.shutdown_timeout = cfg.shutdown_timeout;
  wc.runtime_dir = cfg.runtime_dir;
  wc.kill_stuck_calls = cfg.kill_stuck_calls;
  wc.health_interval = cfg.health_interval;
  wc.health_timeout = cfg.health_timeout;
  wc.health_max_missed = cfg.health_max_missed;
  wc.use_batches = cfg.use_batches;
  wc.batches = cfg.batches;
  // Only a worker that runs one call at a time starts its calls strictly in
  // order, which is what lets a queued call move to another worker when the
  // process dies before starting it.
  wc.pipeline_depth = wc.capacity == 1 ? cfg.pipeline_depth : 0;
  wc.fork_server = self->state.fork_handle;
  wc.owner = self->address();
  return wc;
}

std::optional<std::uint32_t> slot_of(const pool_state& st, const std::string& worker_id) {
  auto i = st.slots.find(local_id_of(st, worker_id));
  if (i == st.slots.end())
    return std::nullopt;
  return i->second;
}

void free_slot(pool_state& st, const std::string& worker_id) {
  st.slots.erase(local_id_of(st, worker_id));
}

std::string launch_worker(pool_pointer self, bool initial, std::optional<std::uint32_t> slot) {
  auto& st = self->state;
  auto id = "w-" + std::to_string(++st.launched);
  if (!slot) {
    std::set<std::uint32_t> used;
    for (auto& [worker, s] : st.slots)
      used.insert(s);
    slot = 0;
    while (used.count(*slot) > 0)
      ++*slot;
  }
  st.slots[id] = *slot;
  if (initial)
    st.starting.insert(id);
  child_spec spec;
  spec.id = id;
  spec.restart = restart_type::permanent;
  spec.shutdown = shutdown_policy::after(st.cfg.shutdown_timeout + std::chrono::seconds{1});
  spec.start_timeout = caf::timespan{0};  // spawn_worker only spawns: inline
  spec.start = [wc = make_worker_config(self, id, *slot)](caf::actor_system& sys)
    -> caf::expected<caf::actor> {
    return caf::actor_cast<caf::actor>(spawn_worker(sys, wc));
  };
  self->request(st.sup, caf::infinite, start_child_atom::value, std::move(spec))
    .then([](const caf::actor&) {},
          [self](caf::error& err) { fail_pool(self, std::move(err)); });
  return id;
}

/// `preload = true`: the fork server first (its `preload()` failing fails
/// the pool's start with the traceback), then the workers, forked from it.
void start_fork_server(pool_pointer self) {
  auto& st = self->state;
  fork_server_config fc;
  fc.pool = st.cfg.name;
  fc.python = st.cfg.python;
  fc.adapter = st.cfg.adapter;
  fc.python_path = st.cfg.python_path;
  fc.env = shared_worker_env(st.cfg.env);
  fc.startup_timeout = st.cfg.startup_timeout;
  fc.backoff = st.cfg.backoff;
  st.fork_handle = std::make_shared<fork_server_handle>();
  fc.handle = st.fork_handle;
  st.fork_server = spawn_fork_server(self->system(), std::move(fc));
  // It ends with the pool, whatever the reason (a link ignores a normal exit).
  self->attach_functor([server = st.fork_server] {
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  });
  self->request(st.fork_server, caf::infinite, caf::get_atom::value)
    .then([self](std::uint64_t) { start_more(self); },
          [self](caf::error& err) { fail_pool(self, std::move(err)); });
}

void start_more(pool_pointer self) {
  auto& st = self->state;
  auto limit = st.cfg.startup_concurrency;
  while (st.launched < st.cfg.size && st.starting.size() < limit)
    launch_worker(self, true);
}

void on_worker_ready(pool_pointer self, worker_actor& handle, worker_status& info) {
  auto& st = self->state;
  if (st.current == phase::failed || st.current == phase::stopping)
    return;
  auto local_id = local_id_of(st, info.id);
  // A restarted worker keeps its id: drop the stale slot, if any.
  st.workers.erase(std::remove_if(st.workers.begin(), st.workers.end(),
                                  [&](const worker_slot& w) { return w.info.id == info.id; }),
                   st.workers.end());
  self->monitor(handle);
  note_idempotent_tools(st, info);
  worker_slot slot;
  slot.ready_at = caf::make_timestamp();
  slot.addr = handle.address();
  slot.handle = std::move(handle);
  slot.info = std::move(info);
  slot.instance_key = slot.info.id + "@" + std::to_string(slot.info.pid);
  slot.request_limit = request_limit(st.cfg, slot.info.id);
  st.workers.push_back(std::move(slot));
  if (st.starting.erase(local_id) > 0)
    start_more(self);
  st.scale_starting.erase(local_id);
  if (st.current == phase::starting && st.workers.size() >= st.cfg.min_ready) {
    st.current = phase::ready;
    detail::log_info(st.cfg.name, "ready: {} of {} workers", st.workers.size(),
                     st.cfg.size);
    detail::emit([&] {
      return telemetry_event{"snakepit.pool.ready",
                             {{"workers", static_cast<double>(st.workers.size())}},
                             {{"pool", st.cfg.name}}};
    });
    auto status = make_status(self);
    for (auto& rp : st.ready_waiters)
      rp.deliver(status);
    st.ready_waiters.clear();
    start_autoscaling(self);
  }
  dispatch_queue(self);
}

/// A deliberate replacement: start the new worker, then have the supervisor
/// terminate the old one (never a restart on top, not counted as one).
void on_replace(pool_pointer self, const caf::actor_addr& addr, const std::string& why) {
  auto& st = self->state;
  auto* w = st.find(addr);
  if (w == nullptr || st.current == phase::failed || st.current == phase::stopping)
    return;
  auto old_id = local_id_of(st, w->info.id);
  ++st.replacements;
  st.failed += w->in_flight;  // the worker answered those calls already
  st.workers.erase(st.workers.begin() + (w - st.workers.data()));
  detail::log_info(st.cfg.name, "replacing {}: {}", old_id, why);
  auto slot = st.slots.count(old_id) > 0 ? std::optional{st.slots[old_id]} : std::nullopt;
  st.slots.erase(old_id);
  launch_worker(self, false, slot);
  self->request(st.sup, caf::infinite, terminate_child_atom::value, old_id)
    .then([](bool) {}, [](caf::error&) {});
}

void on_expire(pool_pointer self, std::uint64_t seq) {
  auto& st = self->state;
  // The queue is ordered by seq: binary search.
  auto i = std::lower_bound(st.queue.begin(), st.queue.end(), seq,
                            [](const queued_request& q, std::uint64_t s) { return q.seq < s; });
  if (i == st.queue.end() || i->seq != seq)
    return;
  auto now = caf::make_timestamp();
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - i->enqueued_at);
  if (i->req.deadline <= now) {
    i->fail(make_error(
      errc::timeout, fmt::format("request {} for tool '{}' waited {} ms in the queue of "
                                 "pool '{}' and passed its deadline without a free worker",
                                 i->req.request_id, i->req.tool, waited.count(),
                                 st.cfg.name)));
  } else {
    ++st.queue_timeouts;
    detail::emit([&] {
      return telemetry_event{"snakepit.pool.saturated",
                             {{"waited_us", detail::micros(now - i->enqueued_at)}},
                             {{"pool", st.cfg.name}, {"reason", "queue_timeout"},
                              {"tool", i->req.tool}}};
    });
    i->fail(make_error(
      errc::pool_saturated,
      fmt::format("request {} for tool '{}' waited {} ms in the queue of pool '{}' "
                  "(queue_timeout) without a free worker; raise size or queue_timeout",
                  i->req.request_id, i->req.tool, waited.count(), st.cfg.name)));
  }
  ++st.failed;
  st.queue.erase(i);
}

} // namespace snakepit::pool_impl

namespace snakepit {

using namespace pool_impl;

caf::expected<pool_actor> spawn_pool(caf::actor_system& sys, pool_config cfg) {
  auto checked = validate(std::move(cfg));
  if (!checked)
    return std::move(checked.error());
  auto python = locate_python(checked->python);
  if (!python)
    return std::move(python.error());
  if (auto err = ensure_runtime_dir())
    return err;
  checked->python = std::move(*python);
  if (checked->startup_concurrency == 0)
    checked->startup_concurrency = 2 * available_cpus();
  // One arena per pool: its workers share the shm_bytes_max budget.
  std::shared_ptr<detail::shm_arena> shm;
  if (checked->shared_memory) {
    auto dir = detail::shm_directory();
    if (!dir)
      return std::move(dir.error());
    auto arena = detail::shm_arena::make(*dir, static_cast<std::size_t>(checked->shm_threshold),
                                         static_cast<std::size_t>(checked->shm_bytes_max),
                                         static_cast<std::size_t>(checked->shm_cache_bytes));
    if (!arena)
      return std::move(arena.error());
    shm = std::move(*arena);
  }
  // Started before the pool, so a pool that cannot serve its host tools
  // fails to start with the reason instead of running without them.
  std::shared_ptr<detail::host_tool_server> host_tools;
  if (!checked->host_tools.empty()) {
    auto server = detail::host_tool_server::start(next_socket_path(checked->runtime_dir),
                                                  checked->host_tools,
                                                  checked->max_payload_bytes, shm);
    if (!server)
      return std::move(server.error());
    host_tools = std::move(*server);
  }
  auto impl = sys.spawn([cfg = std::move(*checked), host_tools, shm](pool_pointer self) mutable
                        -> pool_actor_impl::behavior_type {
    auto& init = self->state;
    init.cfg = std::move(cfg);
    init.shm = std::move(shm);
    init.sessions = session_table{init.cfg.max_sessions, init.cfg.session_ttl};
    init.pipelining = detail::pipelining_policy{init.cfg.pipeline_depth, init.cfg.pipeline_budget};
    init.poison = poison_table{init.cfg.poison};
    init.breaker = circuit_breaker{init.cfg.breaker};
    init.host_tools = std::move(host_tools);
    init.log_name = detail::log_pool_name{init.cfg.name};
    init.target_size = init.cfg.size;
    if (init.cfg.autoscale.enabled())
      init.autoscale.emplace(init.cfg.autoscale);
    supervisor_config sc;
    sc.name = init.cfg.name + "/workers";
    sc.strategy = supervision_strategy::dynamic;
    sc.intensity = init.cfg.intensity;
    sc.backoff = init.cfg.backoff;
    init.sup = spawn_supervisor(self->system(), std::move(sc));
    // Linked, so either dying takes the other along; monitored, because CAF
    // drops the link when the pool sends its supervisor an exit message.
    self->link_to(init.sup);
    self->monitor(init.sup);
    self->set_exit_handler([self](caf::exit_msg& msg) {
      auto& st = self->state;
      detail::log_debug(st.cfg.name, "exit message ({}) from {}", caf::to_string(msg.reason),
                        msg.source == st.sup.address() ? "its supervisor" : "outside");
      if (msg.source == st.sup.address()) {
        if (st.current == phase::stopping) {  // its workers are gone: done
          fail_followed(self, closed_error(st));
          self->quit(st.failure);
          return;
        }
        fail_pool(self, msg.reason ? msg.reason
                                   : make_error(errc::internal, "worker supervisor exited"));
        return;
      }
      if (st.current == phase::stopping)
        return;
      // Asked to stop (by a parent or user): calls in flight finish within
      // the workers' shutdown timeout; the pool ends after its workers.
      st.current = phase::stopping;
      st.failure = msg.reason;
      auto err = closed_error(st);
      for (auto& q : st.queue)
        q.fail(err);
      st.queue.clear();
      fail_waiting_retries(self, err);
      for (auto& rp : st.ready_waiters)
        rp.deliver(err);
      st.ready_waiters.clear();
      self->send_exit(st.sup, msg.reason);
    });
    self->set_down_handler([self](caf::down_msg& msg) {
      auto& st = self->state;
      if (msg.source == st.sup.address()) {
        if (st.current == phase::stopping) {  // its workers are gone: done
          fail_followed(self, closed_error(st));
          self->quit(st.failure);
        } else {
          fail_pool(self, msg.reason ? msg.reason
                                     : make_error(errc::internal, "worker supervisor exited"));
        }
        return;
      }
      auto* w = st.find(msg.source);
      if (w == nullptr)
        return;
      if (is(msg.reason, errc::worker_replaced))
        ++st.replacements;  // replaced by its supervisor (no pool was there to ask)
      else if (msg.reason && msg.reason != caf::exit_reason::user_shutdown
               && !is(msg.reason, errc::pool_stopped))
        ++st.crashes;
      st.failed += w->in_flight;  // the worker failed its calls in flight
      auto id = w->info.id;
      st.workers.erase(st.workers.begin() + (w - st.workers.data()));
      st.retiring.erase(id);
      if (st.recycling.erase(id) > 0)
        start_next_recycle(self);
    });
    if (lifecycle_enabled(init.cfg))  // it ends once the pool is gone
      spawn_lifecycle(self->system(), caf::actor_cast<pool_actor>(self), init.cfg);
    detail::log_info(init.cfg.name, "starting {} worker{} of {} ({})", init.cfg.size,
                     init.cfg.size == 1 ? "" : "s",
                     init.cfg.adapter, init.cfg.python);
    if (init.cfg.preload)
      start_fork_server(self);  // workers start once it is ready
    else
      start_more(self);
    return {
      [self](execute_atom, execute_request& req) { return on_execute(self, req); },
      [self](status_atom) { return make_status(self); },
      [self](list_tools_atom) -> caf::result<std::vector<tool_spec>> {
        // Any ready worker knows the adapter's tools (they cache them).
        for (auto& w : self->state.workers)
          if (!w.gone && !w.draining && w.handle) {
            auto rp = self->make_response_promise<std::vector<tool_spec>>();
            rp.delegate(w.handle, list_tools_atom::value);
            return rp;
          }
        return make_error(errc::pool_saturated,
                          fmt::format("pool {} has no ready worker to list its tools",
                                      self->state.cfg.name));
      },
      [self](execute_stream_atom, execute_request& req, caf::actor& consumer) {
        return on_execute_stream(self, req, consumer);
      },
      [self](ready_atom) -> caf::result<pool_status> {
        auto& st = self->state;
        if (st.current == phase::ready)
          return make_status(self);
        if (st.current == phase::failed)
          return st.failure;
        auto rp = self->make_response_promise<pool_status>();
        st.ready_waiters.push_back(rp);
        return rp;
      },
      [self](worker_ready_atom, worker_actor& handle, worker_status& info) {
        on_worker_ready(self, handle, info);
      },
      [self](worker_failed_atom, const std::string& id, const caf::error& err) {
        auto& st = self->state;
        auto local_id = local_id_of(st, id);
        if (st.current == phase::starting && st.starting.count(local_id) > 0) {
          // A worker of the first start failed before the pool was ready: the
          // adapter or interpreter is broken; restarting it would only spin.
          // Later failures are the supervisor's (back-off, intensity).
          fail_pool(self, err);
        }
      },
      [self](slot_free_atom, const caf::actor_addr& addr, bool ok, std::int64_t wall_ns,
             std::int64_t cpu_ns, const std::string& tool) {
        auto& st = self->state;
        ok ? ++st.served : ++st.failed;
        st.pipelining.observe(tool, caf::timespan{wall_ns});
        if (auto* w = st.find(addr)) {
          release_slot(*w);
          // Full until a slot stays free: one taken again at once by a
          // queued request does not end the episode.
          if (st.queue.empty())
            st.at_capacity = false;
          ok ? ++w->served : ++w->failed;
          w->python_wall += caf::timespan{wall_ns};
          w->python_cpu += caf::timespan{cpu_ns};
          // A draining worker with sessions serves them until its drain time ends.
          if (w->draining && w->in_flight == 0 && st.sessions.bound_to(w->instance_key) == 0)
            finish_drain(self, w->info.id);
          // Served all it may: recycle now rather than at the lifecycle's next look.
          else if (!w->draining && w->request_limit > 0
                   && w->served + w->failed >= w->request_limit)
            begin_recycle(self, std::string{w->info.id}, "requests");
        }
        dispatch_queue(self);
      },
      [self](detail::worker_exited_atom, const caf::actor_addr& addr) {
        if (auto* w = self->state.find(addr))
          w->gone = true;
        return true;  // the worker may end: nothing more is sent to it
      },
      [self](detail::redispatch_atom, const caf::actor_addr& from, execute_request& req) {
        return on_redispatch(self, from, req);
      },
      [self](replace_atom, const caf::actor_addr& addr, const std::string& why) {
        on_replace(self, addr, why);
      },
      [self](recycle_atom, const std::string& id, const std::string& reason) {
        return begin_recycle(self, id, reason);
      },
      [self](detail::drained_atom, const std::string& id) { finish_drain(self, id); },
      [self](open_session_atom, std::string& id) -> caf::result<std::string> {
        return open_session(self, std::move(id));
      },
      [self](close_session_atom, const std::string& id) {
        auto& st = self->state;
        auto s = st.sessions.close(id);
        if (!s)
          return false;
        end_session(self, *s, "closed");
        return true;
      },
      [self](detail::session_sweep_atom) { sweep_sessions(self); },
      [self](detail::autoscale_atom) { on_autoscale_tick(self); },
      [self](detail::calls_crashed_atom, const caf::actor_addr&,
             const std::vector<detail::crashed_call>& calls) { on_calls_crashed(self, calls); },
      [self](detail::retry_atom, std::uint64_t id) { on_retry(self, id); },
      [self](detail::attempt_atom, execute_request& req) { return on_attempt(self, req); },
      [self](detail::events_dropped_atom, const caf::actor_addr& worker, std::uint64_t total) {
        if (auto* w = self->state.find(worker))
          w->info.python_events_dropped = total;
      },
      [self](expire_atom, std::int64_t tick_ns) {
        auto& st = self->state;
        std::optional<caf::timestamp> rearm;
        auto now = caf::make_timestamp();
        auto due = st.expiries.on_tick(caf::timestamp{caf::timespan{tick_ns}}, now, rearm);
        if (rearm)
          self->delayed_send(self, std::max(caf::timespan{0}, *rearm - now), expire_atom::value,
                             rearm->time_since_epoch().count());
        for (auto seq : due)
          on_expire(self, seq);
      },
    };
  });
  return caf::actor_cast<pool_actor>(impl);
}

caf::expected<pool_actor> start_pool(caf::actor_system& sys, pool_config cfg) {
  auto pool = spawn_pool(sys, std::move(cfg));
  if (!pool)
    return pool;
  caf::scoped_actor self{sys};
  caf::error failure;
  self->request(*pool, caf::infinite, ready_atom::value)
    .receive([](const pool_status&) {}, [&](caf::error& err) { failure = std::move(err); });
  if (failure) {
    self->send_exit(*pool, caf::exit_reason::user_shutdown);
    return failure;
  }
  return pool;
}

caf::expected<execute_reply> call(caf::actor_system& sys, const pool_actor& pool,
                                  execute_request req) {
  caf::scoped_actor self{sys};
  caf::expected<execute_reply> out{caf::error{}};
  self->request(pool, caf::infinite, execute_atom::value, std::move(req))
    .receive([&](execute_reply& reply) { out = std::move(reply); },
             [&](caf::error& err) { out = std::move(err); });
  return out;
}

void stop_pool(caf::actor_system& sys, const pool_actor& pool) {
  caf::scoped_actor self{sys};
  self->monitor(pool);
  self->send_exit(pool, caf::exit_reason::user_shutdown);
  self->receive([&](const caf::down_msg& msg) {
    if (msg.source != pool.address())
      return;
  });
}

} // namespace snakepit
