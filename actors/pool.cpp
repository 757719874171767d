#include "snakepit/actors/pool.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "snakepit/actors/detail/deadline_set.hpp"
#include "snakepit/actors/detail/emit.hpp"
#include "snakepit/actors/detail/host_tool_server.hpp"
#include "snakepit/actors/detail/log.hpp"
#include "snakepit/actors/detail/pipelining_policy.hpp"
#include "snakepit/actors/detail/pool_protocol.hpp"
#include "snakepit/actors/lifecycle.hpp"
#include "snakepit/actors/runtime_paths.hpp"
#include "snakepit/actors/python_locator.hpp"
#include "snakepit/actors/scheduler_settings.hpp"
#include "snakepit/actors/worker.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/supervision/supervisor.hpp"

namespace snakepit {

namespace {

using detail::expire_atom;
using detail::replace_atom;
using detail::pool_actor_impl;
using detail::slot_free_atom;
using detail::worker_failed_atom;
using detail::worker_ready_atom;

enum class phase { starting, ready, failed, stopping };

const char* to_cstr(phase p) {
  switch (p) {
    case phase::starting: return "starting";
    case phase::ready: return "ready";
    case phase::failed: return "failed";
    default: return "stopping";
  }
}

/// A ready worker as the pool sees it.
struct worker_slot {
  worker_actor handle;
  caf::actor_addr addr;
  worker_status info;  // as reported when it became ready
  std::uint32_t in_flight = 0;
  std::uint64_t served = 0;
  std::uint64_t failed = 0;
  /// When it last got a call (a pool-wide counter).
  std::uint64_t last_used = 0;
  /// Time spent in the tools, summed over finished calls.
  caf::timespan python_wall{0};
  caf::timespan python_cpu{0};
  caf::timestamp ready_at;
  /// Being recycled: gets no new calls, stops once its calls are done.
  bool draining = false;
  /// Its process is gone; the slot goes when the actor is down.
  bool gone = false;
  /// Which process holds the state of the sessions bound here: worker id and
  /// pid (a restarted worker keeps its id, not its state). Set once, when
  /// it became ready; session routing compares it on every call.
  std::string instance_key;
  /// Expected Python time of its calls in flight, oldest first, and their sum
  /// (what the pipelining policy weighs).
  std::deque<caf::timespan> expected;
  caf::timespan expected_work{0};

  bool busy() const { return in_flight >= info.capacity; }
  /// Calls it may get in all (`worker_max_requests` plus jitter; 0: no limit).
  std::uint64_t request_limit = 0;
  /// It has been sent all the calls it may serve: it gets no more.
  bool at_limit() const {
    return request_limit > 0 && served + failed + in_flight >= request_limit;
  }
  /// Expected time of the calls queued behind the running one(s).
  caf::timespan queued_work() const {
    auto running = caf::timespan{0};
    for (std::size_t i = 0; i < expected.size() && i < info.capacity; ++i)
      running += expected[i];
    return expected_work - running;
  }
  /// Calls queued on it beyond its capacity.
  std::uint32_t queued() const { return in_flight > info.capacity ? in_flight - info.capacity : 0; }
};

struct queued_request {
  std::uint64_t seq = 0;
  execute_request req;
  caf::typed_response_promise<execute_reply> promise;
  /// A stream waits too: its handle's promise and its consumer.
  bool is_stream = false;
  caf::typed_response_promise<stream_handle> stream_promise;
  caf::actor consumer;
  caf::timestamp enqueued_at;
  /// Earlier of its deadline and the queue timeout.
  caf::timestamp expires_at;

  void fail(caf::error err) {
    if (is_stream)
      stream_promise.deliver(std::move(err));
    else
      promise.deliver(std::move(err));
  }
};

struct pool_state {
  pool_config cfg;
  supervisor_actor sup;
  phase current = phase::starting;
  std::vector<worker_slot> workers;
  std::deque<queued_request> queue;
  std::uint64_t next_seq = 0;
  std::uint64_t next_request = 0;
  std::uint64_t dispatches = 0;
  /// Expiry times of queued requests, behind one timer.
  detail::deadline_set expiries;
  /// Initial workers asked for and not yet ready or failed.
  std::set<std::string> starting;
  std::uint32_t launched = 0;
  std::vector<caf::typed_response_promise<pool_status>> ready_waiters;
  std::uint64_t served = 0;
  std::uint64_t failed = 0;
  std::uint64_t crashes = 0;
  std::uint64_t replacements = 0;
  std::uint64_t queue_full = 0;
  std::uint64_t queue_timeouts = 0;
  /// Calls that never started on a worker that died and went to another.
  std::uint64_t redispatched = 0;
  detail::pipelining_policy pipelining;
  caf::timestamp started_at = caf::make_timestamp();
  /// Every slot was busy at the last dispatch (capacity events are edges).
  bool at_capacity = false;
  session_table sessions{10000, std::chrono::minutes{30}};
  /// Serves `cfg.host_tools` to the workers (none: no server).
  std::shared_ptr<detail::host_tool_server> host_tools;
  /// The session expiry sweep is scheduled.
  bool sweeping = false;
  std::map<std::string, std::uint64_t> recycles;
  /// Recycles started and not finished (old worker not yet gone).
  std::set<std::string> recycling;
  /// Recycles waiting for a free recycle slot: (worker id, reason).
  std::deque<std::pair<std::string, std::string>> recycle_queue;
  caf::error failure;

  /// Marks the name as a pool's for the log's `pool=` field while it lives.
  detail::log_pool_name log_name;

  static inline const char* name = "snakepit.pool";

  worker_slot* find_instance(const std::string& key) {
    for (auto& w : workers)
      if (w.instance_key == key)
        return &w;
    return nullptr;
  }

  worker_slot* find(const caf::actor_addr& addr) {
    for (auto& w : workers)
      if (w.addr == addr)
        return &w;
    return nullptr;
  }

  /// The least-loaded worker with a free slot; among equals the one used
  /// most recently (its process is warm: one call at a time then stays on
  /// one worker instead of waking an idle one each time).
  worker_slot* pick() {
    worker_slot* best = nullptr;
    for (auto& w : workers) {
      if (w.draining || w.gone || w.in_flight >= w.info.capacity || w.at_limit())
        continue;
      // Load as a fraction of capacity (cross-multiplied, no division).
      auto load = std::uint64_t{w.in_flight} * (best ? best->info.capacity : 1);
      auto best_load = best ? std::uint64_t{best->in_flight} * w.info.capacity : 0;
      if (best == nullptr || load < best_load
          || (load == best_load && w.last_used > best->last_used))
        best = &w;
    }
    if (best != nullptr)
      best->last_used = ++dispatches;
    return best;
  }

  /// Every worker is busy: the one that may queue a call of `tool` behind
  /// its others (pipelining_policy), least loaded first; null if none may.
  /// Workers in `reserved` are skipped: a session call waits for them.
  worker_slot* pick_pipelined(const std::string& tool,
                              const std::vector<const worker_slot*>& reserved = {}) {
    if (!pipelining.enabled())
      return nullptr;
    worker_slot* best = nullptr;
    for (auto& w : workers) {
      if (w.draining || w.gone || w.info.pipeline_depth == 0 || !w.busy())
        continue;
      if (std::find(reserved.begin(), reserved.end(), &w) != reserved.end())
        continue;
      if (w.at_limit())
        continue;
      if (!pipelining.admits(tool, w.queued(), w.queued_work()))
        continue;
      if (best == nullptr || w.queued_work() < best->queued_work())
        best = &w;
    }
    if (best != nullptr)
      best->last_used = ++dispatches;
    return best;
  }
};

using pool_pointer = pool_actor_impl::stateful_pointer<pool_state>;

/// A worker's id without the pool prefix ("w-3"): its child id in the supervisor.
std::string local_id_of(const pool_state& st, const std::string& worker_id) {
  return worker_id.substr(st.cfg.name.size() + 1);
}

pool_status make_status(pool_pointer self) {
  auto& st = self->state;
  pool_status out;
  out.name = st.cfg.name;
  out.state = to_cstr(st.current);
  out.size = st.cfg.size;
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
  self->quit(err);
}

void start_more(pool_pointer self);

worker_config make_worker_config(pool_pointer self, const std::string& id) {
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
  wc.env = cfg.env;
  wc.profile = cfg.profile;
  wc.capacity = traits_of(cfg.profile, cfg.threads_per_worker, cfg.thread_check).capacity;
  wc.thread_check = cfg.thread_check;
  wc.max_payload_bytes = cfg.max_payload_bytes;
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
  wc.owner = self->address();
  return wc;
}

void launch_worker(pool_pointer self, bool initial = true) {
  auto& st = self->state;
  auto id = "w-" + std::to_string(++st.launched);
  if (initial)
    st.starting.insert(id);
  child_spec spec;
  spec.id = id;
  spec.restart = restart_type::permanent;
  spec.shutdown = shutdown_policy::after(st.cfg.shutdown_timeout + std::chrono::seconds{1});
  spec.start_timeout = caf::timespan{0};  // spawn_worker only spawns: inline
  spec.start = [wc = make_worker_config(self, id)](caf::actor_system& sys)
    -> caf::expected<caf::actor> {
    return caf::actor_cast<caf::actor>(spawn_worker(sys, wc));
  };
  self->request(st.sup, caf::infinite, start_child_atom::value, std::move(spec))
    .then([](const caf::actor&) {},
          [self](caf::error& err) { fail_pool(self, std::move(err)); });
}

void start_more(pool_pointer self) {
  auto& st = self->state;
  auto limit = st.cfg.startup_concurrency;
  while (st.launched < st.cfg.size && st.starting.size() < limit)
    launch_worker(self, true);
}

/// Where a request goes now: a worker, the queue (`queue`), or an error.
struct route {
  worker_slot* worker = nullptr;
  caf::error error;
};

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

void send_to(pool_pointer self, worker_slot& w, execute_request& req) {
  if (!req.session_id.empty())
    bind_session(self, req, w);
  ++w.in_flight;
  auto expected = self->state.pipelining.estimate(detail::pipeline_key(req.tool, !req.items.empty()))
                    .value_or(caf::timespan{0});
  w.expected.push_back(expected);
  w.expected_work += expected;
  note_dispatch(self->state);
}

/// A call on `w` is over (or went elsewhere): its expected time goes.
void release_slot(worker_slot& w) {
  if (w.in_flight > 0)
    --w.in_flight;
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
      auto key = detail::pipeline_key(i->req.tool, !i->req.items.empty());
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
  }
  dispatch_queue(self);
}

/// Checks common to calls and streams: the pool takes requests, the request
/// has an id and a deadline not yet passed.
caf::error admit(pool_pointer self, execute_request& req) {
  auto& st = self->state;
  if (st.current == phase::failed)
    return st.failure;
  if (st.current == phase::stopping)
    return make_error(errc::pool_stopped,
                      fmt::format("pool '{}' is stopping", st.cfg.name));
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
  return {};
}

/// Where an admitted request goes now: a worker, an error, or neither (wait
/// in the queue).
route route_request(pool_state& st, const execute_request& req, bool may_pipeline = false) {
  if (req.session_id.empty()) {
    // A free worker means nothing queued could use it (the queue is served
    // whenever a slot frees), so taking it keeps FIFO order; so does queuing
    // on a busy worker, but only when nothing waits in the pool's queue.
    auto* w = st.pick();
    if (w == nullptr && may_pipeline && st.queue.empty())
      w = st.pick_pipelined(detail::pipeline_key(req.tool, !req.items.empty()));
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

caf::error enqueue(pool_pointer self, execute_request req, queued_request q,
                   caf::timestamp since);

caf::result<execute_reply> route_call(pool_pointer self, execute_request& req,
                                      caf::timestamp since);

caf::result<execute_reply> on_execute(pool_pointer self, execute_request& req) {
  auto& st = self->state;
  if (auto err = admit(self, req)) {
    ++st.failed;
    return err;
  }
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
  if (st.current == phase::failed || st.current == phase::stopping) {
    ++st.failed;
    return st.current == phase::failed ? st.failure
                                       : make_error(errc::pool_stopped,
                                                    fmt::format("pool '{}' is stopping",
                                                                st.cfg.name));
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
                      fmt::format("pool '{}' is saturated: all {} workers busy and {} "
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
  launch_worker(self, false);
  self->request(st.sup, caf::infinite, terminate_child_atom::value, old_id)
    .then([](bool) {}, [](caf::error&) {});
}

void finish_drain(pool_pointer self, const std::string& id);

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

/// The old worker of a recycle is done (or its drain time is up): stop it.
void finish_drain(pool_pointer self, const std::string& id) {
  auto& st = self->state;
  if (st.recycling.count(id) == 0)
    return;
  self->request(st.sup, caf::infinite, terminate_child_atom::value, local_id_of(st, id))
    .then([](bool) {}, [](caf::error&) {});
}

void start_next_recycle(pool_pointer self);

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
  launch_worker(self, false);
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

} // namespace

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
  // Started before the pool, so a pool that cannot serve its host tools
  // fails to start with the reason instead of running without them.
  std::shared_ptr<detail::host_tool_server> host_tools;
  if (!checked->host_tools.empty()) {
    auto server = detail::host_tool_server::start(next_socket_path(checked->runtime_dir),
                                                  checked->host_tools,
                                                  checked->max_payload_bytes);
    if (!server)
      return std::move(server.error());
    host_tools = std::move(*server);
  }
  auto impl = sys.spawn([cfg = std::move(*checked), host_tools](pool_pointer self) mutable
                        -> pool_actor_impl::behavior_type {
    auto& init = self->state;
    init.cfg = std::move(cfg);
    init.sessions = session_table{init.cfg.max_sessions, init.cfg.session_ttl};
    init.pipelining = detail::pipelining_policy{init.cfg.pipeline_depth, init.cfg.pipeline_budget};
    init.host_tools = std::move(host_tools);
    init.log_name = detail::log_pool_name{init.cfg.name};
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
      auto err = make_error(errc::pool_stopped,
                            fmt::format("pool '{}' is stopping", st.cfg.name));
      for (auto& q : st.queue)
        q.fail(err);
      st.queue.clear();
      for (auto& rp : st.ready_waiters)
        rp.deliver(err);
      st.ready_waiters.clear();
      self->send_exit(st.sup, msg.reason);
    });
    self->set_down_handler([self](caf::down_msg& msg) {
      auto& st = self->state;
      if (msg.source == st.sup.address()) {
        if (st.current == phase::stopping)  // its workers are gone: done
          self->quit(st.failure);
        else
          fail_pool(self, msg.reason ? msg.reason
                                     : make_error(errc::internal, "worker supervisor exited"));
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
      if (st.recycling.erase(id) > 0)
        start_next_recycle(self);
    });
    if (lifecycle_enabled(init.cfg))  // it ends once the pool is gone
      spawn_lifecycle(self->system(), caf::actor_cast<pool_actor>(self), init.cfg);
    detail::log_info(init.cfg.name, "starting {} workers of {} ({})", init.cfg.size,
                     init.cfg.adapter, init.cfg.python);
    start_more(self);
    return {
      [self](execute_atom, execute_request& req) { return on_execute(self, req); },
      [self](status_atom) { return make_status(self); },
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
