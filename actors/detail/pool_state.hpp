#pragma once

// The pool actor's state and its handlers, shared by pool.cpp (workers: start,
// readiness, replacement, status), pool_dispatch.cpp (routing, the queue,
// pipelining, re-dispatch), pool_sessions.cpp and pool_recycling.cpp. Private
// to the library.

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "snakepit/actors/detail/deadline_set.hpp"
#include "snakepit/actors/detail/emit.hpp"
#include "snakepit/actors/detail/host_tool_server.hpp"
#include "snakepit/actors/fork_server.hpp"
#include "snakepit/actors/detail/log.hpp"
#include "snakepit/actors/detail/pipelining_policy.hpp"
#include "snakepit/actors/detail/pool_protocol.hpp"
#include "snakepit/actors/circuit_breaker.hpp"
#include "snakepit/actors/lifecycle.hpp"
#include "snakepit/actors/poison_table.hpp"
#include "snakepit/actors/pool.hpp"
#include "snakepit/actors/runtime_paths.hpp"
#include "snakepit/actors/python_locator.hpp"
#include "snakepit/actors/scheduler_settings.hpp"
#include "snakepit/actors/worker.hpp"
#include "snakepit/actors/worker_env.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/supervision/supervisor.hpp"

namespace snakepit::pool_impl {

using detail::expire_atom;
using detail::replace_atom;
using detail::pool_actor_impl;
using detail::slot_free_atom;
using detail::worker_failed_atom;
using detail::worker_ready_atom;

enum class phase { starting, ready, failed, stopping };

inline const char* to_cstr(phase p) {
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
  /// When its last call ended (or it became ready); it is idle while it has
  /// none in flight (autoscaling retires the longest idle).
  std::chrono::steady_clock::time_point idle_since = std::chrono::steady_clock::now();
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

/// A call the pool follows instead of delegating it away: an idempotent call
/// (retried after a crash) or the half-open breaker's probe
/// (actors/pool_barrier.cpp).
struct tracked_call {
  std::uint64_t id = 0;
  /// The request as the caller sent it (a retry needs its arguments again;
  /// empty once taken by an attempt that cannot be retried).
  execute_request req;
  caf::typed_response_promise<execute_reply> promise;
  /// Attempts started so far.
  std::uint32_t attempt = 0;
  bool retryable = false;
  bool probe = false;
  /// Between a crash and its retry (the back-off timer runs).
  bool waiting = false;
};

/// What the crash barrier decided about an admitted call.
struct barrier_ticket {
  /// The pool follows it (instead of delegating it away).
  bool follow = false;
  /// A crash under it is retried.
  bool retryable = false;
  /// The half-open breaker's probe.
  bool probe = false;
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
  /// `preload = true`: the actor running the fork server, and what its
  /// workers read to find it.
  caf::actor fork_server;
  std::shared_ptr<fork_server_handle> fork_handle;
  /// Serves `cfg.host_tools` to the workers (none: no server).
  std::shared_ptr<detail::host_tool_server> host_tools;
  /// Where large payloads travel; null with `shared_memory = false`.
  std::shared_ptr<detail::shm_arena> shm;
  /// The session expiry sweep is scheduled.
  bool sweeping = false;
  std::map<std::string, std::uint64_t> recycles;
  /// Recycles started and not finished (old worker not yet gone).
  std::set<std::string> recycling;
  /// Recycles waiting for a free recycle slot: (worker id, reason).
  std::deque<std::pair<std::string, std::string>> recycle_queue;
  caf::error failure;
  /// Autoscaling: its decisions (none: a fixed size), the workers it asked
  /// for and are not ready yet, those it is retiring (draining, no
  /// replacement), the size it aims at, and what it did.
  std::optional<autoscale_policy> autoscale;
  std::set<std::string> scale_starting;
  std::set<std::string> retiring;
  std::uint32_t target_size = 0;
  std::uint64_t scale_ups = 0;
  std::uint64_t scale_downs = 0;
  /// Each worker's slot by local id ("w-3" -> 0): its `{index}` in `env`
  /// and its place in `cpu_affinity`.
  std::map<std::string, std::uint32_t> slots;

  /// Crash barrier (pool_barrier.cpp): crashes per request, the breaker,
  /// tools the adapter declares idempotent, calls waiting for their retry.
  poison_table poison;
  circuit_breaker breaker;
  std::set<std::string> idempotent_tools;
  std::map<std::uint64_t, std::shared_ptr<tracked_call>> followed;
  std::uint64_t next_followed = 0;
  std::uint64_t retries = 0;
  std::uint64_t poison_refused = 0;

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

/// Where a request goes now: a worker, the queue (`queue`), or an error.
struct route {
  worker_slot* worker = nullptr;
  caf::error error;
};

// Handlers and helpers, by file.

// pool.cpp
std::string local_id_of(const pool_state& st, const std::string& worker_id);
pool_status make_status(pool_pointer self);
void note_dispatch(pool_state& st);
void fail_pool(pool_pointer self, caf::error err);
worker_config make_worker_config(pool_pointer self, const std::string& id, std::uint32_t slot);
/// Starts a worker under the pool's supervisor; its local id ("w-N").
/// `slot`: the slot of the worker it replaces (its `{index}`); none: the
/// lowest free one.
std::string launch_worker(pool_pointer self, bool initial = true,
                          std::optional<std::uint32_t> slot = std::nullopt);
/// The worker (full id) leaves for good: its slot is free again.
void free_slot(pool_state& st, const std::string& worker_id);
/// The slot of a worker (full id); none if unknown.
std::optional<std::uint32_t> slot_of(const pool_state& st, const std::string& worker_id);
void start_more(pool_pointer self);
void on_worker_ready(pool_pointer self, worker_actor& handle, worker_status& info);
void on_replace(pool_pointer self, const caf::actor_addr& addr, const std::string& why);
void on_expire(pool_pointer self, std::uint64_t seq);

// pool_dispatch.cpp
void send_to(pool_pointer self, worker_slot& w, execute_request& req);
void release_slot(worker_slot& w);
void dispatch_queue(pool_pointer self);
/// Why the pool takes no requests now (failed or stopping); none if it does.
caf::error closed_error(const pool_state& st);
caf::error admit(pool_pointer self, execute_request& req);
route route_request(pool_state& st, const execute_request& req, bool may_pipeline = false);
caf::result<execute_reply> on_execute(pool_pointer self, execute_request& req);
caf::result<execute_reply> on_redispatch(pool_pointer self, const caf::actor_addr& from,
                                         execute_request& req);
caf::result<execute_reply> route_call(pool_pointer self, execute_request& req,
                                      caf::timestamp since);
caf::error enqueue(pool_pointer self, execute_request req, queued_request q,
                   caf::timestamp since);
caf::result<stream_handle> on_execute_stream(pool_pointer self, execute_request& req,
                                             caf::actor& consumer);

// pool_sessions.cpp
void emit_session_event(const pool_state& st, const char* what, const session_entry& s,
                        const std::string& reason);
route route_session(pool_state& st, session_entry& s);
void bind_session(pool_pointer self, execute_request& req, worker_slot& w);
void end_session(pool_pointer self, const session_entry& s, const char* reason);
void sweep_sessions(pool_pointer self);
caf::result<std::string> open_session(pool_pointer self, std::string id);

// pool_barrier.cpp
/// Poison table and breaker for an admitted call or stream (null `ticket`):
/// its key is set; an error when it is refused.
caf::error barrier_admit(pool_pointer self, execute_request& req, barrier_ticket* ticket);
/// Runs a call the pool follows: attempts, retries, the probe's verdict.
caf::result<execute_reply> run_followed(pool_pointer self, execute_request& req,
                                       const barrier_ticket& ticket);
/// The pool ends: every call it follows gets `err`.
void fail_followed(pool_pointer self, const caf::error& err);
/// The pool stops: calls waiting for a retry get `err` now.
void fail_waiting_retries(pool_pointer self, const caf::error& err);
caf::result<execute_reply> on_attempt(pool_pointer self, execute_request& req);
void on_retry(pool_pointer self, std::uint64_t id);
void on_calls_crashed(pool_pointer self, const std::vector<detail::crashed_call>& calls);
void note_idempotent_tools(pool_state& st, const worker_status& info);
void fill_barrier_status(const pool_state& st, pool_status& out);

// pool_autoscaling.cpp
void start_autoscaling(pool_pointer self);
void on_autoscale_tick(pool_pointer self);

// pool_recycling.cpp
void finish_drain(pool_pointer self, const std::string& id);
bool begin_recycle(pool_pointer self, const std::string& id, const std::string& reason);
void start_next_recycle(pool_pointer self);

} // namespace snakepit::pool_impl
