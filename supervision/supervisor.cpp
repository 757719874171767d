#include "snakepit/supervision/supervisor.hpp"

#include <algorithm>
#include <optional>
#include <random>
#include <set>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "snakepit/actors/detail/emit.hpp"
#include "snakepit/actors/detail/log.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

namespace {

using restart_atom = caf::atom_constant<caf::atom("restart")>;
using kill_atom = caf::atom_constant<caf::atom("kill")>;
/// From a start function run off the supervisor's thread.
using started_atom = caf::atom_constant<caf::atom("startres")>;
using start_tout_atom = caf::atom_constant<caf::atom("starttout")>;

using supervisor_actor_impl = supervisor_actor::extend<
  caf::reacts_to<restart_atom, std::uint64_t>,
  caf::reacts_to<kill_atom, caf::actor_addr>,
  caf::replies_to<started_atom, std::uint64_t, caf::actor, caf::error>::with<bool>,
  caf::reacts_to<start_tout_atom, std::uint64_t>>;

/// Life of one child slot. Restarts happen in two phases: stop what the
/// strategy says must go (`stopping_for_restart`, in reverse start order),
/// then start every `restarting` child in start order, one at a time.
enum class child_state {
  /// Its start function runs on a thread of its own (`start_timeout`).
  launching,
  /// Started, waiting for its `child_ready` (children with `await_ready`).
  starting,
  running,
  /// Being stopped for good (terminate_child or supervisor shutdown).
  stopping,
  /// Being stopped because a sibling failed (one_for_all, rest_for_one).
  stopping_for_restart,
  /// Dead; waits for the start phase.
  restarting,
  /// Not running and not to be restarted (terminated, or a transient child
  /// that exited normally): the spec is kept, as OTP does.
  not_running,
};

const char* to_cstr(child_state s) {
  switch (s) {
    case child_state::launching:
    case child_state::starting: return "starting";
    case child_state::running: return "running";
    case child_state::restarting: return "restarting";
    case child_state::not_running: return "not running";
    default: return "stopping";
  }
}

struct child_entry {
  child_spec spec;
  caf::actor handle;
  child_state state = child_state::restarting;
  bool stop_sent = false;
  std::uint64_t restarts = 0;
  std::uint64_t replacements = 0;
  /// Promises of terminate_child requests, delivered once the child is down.
  std::vector<caf::typed_response_promise<bool>> on_stopped;
  /// Stopped by handle: forgotten once down.
  bool forget_when_down = false;
  /// Identifies the start running off-thread (`launching`); 0: none.
  std::uint64_t start_token = 0;
  /// Why a child that reported "not ready" failed to start.
  caf::error start_error;
  /// Why it last ended, for which_children.
  std::string last_exit;
  /// A start_child / restart_child request waiting for an off-thread start.
  std::optional<caf::typed_response_promise<caf::actor>> requested;
  /// Added by that start_child: forgotten again if its start fails.
  bool added_by_request = false;

  [[nodiscard]] bool runs() const noexcept {
    return static_cast<bool>(handle);
  }
};

enum class sup_phase { starting, running, stopping };

struct supervisor_state {
  supervisor_config cfg;
  std::vector<child_entry> children;  // in start order
  restart_window window{restart_intensity{}};
  /// Children that failed to start or died before they were ready, within
  /// the intensity period: what the restart back-off grows with. A child
  /// that was up and ready when it died restarts at once (a kill storm keeps
  /// its capacity); one that keeps failing at start backs off.
  restart_window early_failures{restart_intensity{}};
  sup_phase phase = sup_phase::starting;
  caf::error stop_reason;
  std::minstd_rand rng{std::random_device{}()};
  /// Every child started, for the exit functor. Children are monitored, not
  /// linked: in CAF 0.17 a child killed with `exit_reason::kill` would take a
  /// linked supervisor down with it (kill cannot be trapped); instead, a
  /// functor attached to the supervisor stops the children when it ends.
  std::shared_ptr<std::set<caf::actor_addr>> started = std::make_shared<std::set<caf::actor_addr>>();
  /// Identifies the latest scheduled start phase; older timers are ignored.
  std::uint64_t start_generation = 0;
  std::uint64_t next_start_token = 0;
  std::vector<caf::typed_response_promise<bool>> ready_waiters;

  static inline const char* name = "snakepit.supervisor";

  child_entry* find(const std::string& id) {
    for (auto& c : children)
      if (c.spec.id == id)
        return &c;
    return nullptr;
  }

  child_entry* find_launch(std::uint64_t token) {
    for (auto& c : children)
      if (token != 0 && c.start_token == token && c.state == child_state::launching)
        return &c;
    return nullptr;
  }

  child_entry* find(const caf::actor_addr& addr) {
    for (auto& c : children)
      if (c.handle && c.handle.address() == addr)
        return &c;
    return nullptr;
  }

  void erase(const child_entry* entry) {
    children.erase(children.begin() + (entry - children.data()));
  }

  bool any_in(child_state s) const {
    return std::any_of(children.begin(), children.end(),
                       [s](const child_entry& c) { return c.state == s; });
  }
};

using sup_pointer = supervisor_actor_impl::stateful_pointer<supervisor_state>;

bool is_normal(const caf::error& reason) {
  return !reason || reason == caf::exit_reason::normal;
}

bool is_shutdown(const caf::error& reason) {
  return reason == caf::exit_reason::user_shutdown || is(reason, errc::pool_stopped);
}

std::string reason_text(const caf::error& reason) {
  auto info = describe(reason);
  return info.message.empty() ? caf::to_string(reason) : info.message;
}

// -- configuration -------------------------------------------------------------------

/// OTP's rules for a child spec, checked before anything starts.
caf::error check_child(const std::string& supervisor, const child_spec& spec) {
  if (spec.significant && spec.restart == restart_type::permanent)
    return make_error(errc::bad_config,
                      fmt::format("supervisor {}: child {} is significant and permanent; a "
                                  "significant child must be transient or temporary (OTP)",
                                  supervisor, spec.id));
  return {};
}

caf::error check_children(const supervisor_config& cfg) {
  for (auto& spec : cfg.children)
    if (auto err = check_child(cfg.name, spec))
      return err;
  return {};
}

// -- telemetry -------------------------------------------------------------------

const char* kind_name(const child_spec& spec) {
  return spec.kind == child_kind::supervisor ? "supervisor" : "worker";
}

void emit_child_started(sup_pointer self, const child_entry& entry) {
  detail::emit([&] {
    return telemetry_event{"snakepit.supervisor.child_started",
                           {{"restarts", static_cast<double>(entry.restarts)}},
                           {{"supervisor", self->state.cfg.name},
                            {"child", entry.spec.id},
                            {"type", kind_name(entry.spec)}}};
  });
}

void emit_child_stopped(sup_pointer self, const child_entry& entry, const caf::error& reason) {
  detail::emit([&] {
    return telemetry_event{"snakepit.supervisor.child_stopped",
                           {},
                           {{"supervisor", self->state.cfg.name},
                            {"child", entry.spec.id},
                            {"type", kind_name(entry.spec)},
                            {"reason", is_normal(reason) ? std::string{"normal"}
                                                         : reason_text(reason)}}};
  });
}

// -- stopping ------------------------------------------------------------------

/// Asks one child to stop per its shutdown policy; its DOWN finishes the job.
void stop_child(sup_pointer self, child_entry& entry) {
  if (!entry.handle || entry.stop_sent)
    return;
  entry.stop_sent = true;
  const auto& policy = entry.spec.shutdown;
  if (policy.mode == shutdown_policy::kind::brutal_kill) {
    self->send_exit(entry.handle, caf::exit_reason::kill);
    return;
  }
  self->send_exit(entry.handle, caf::exit_reason::user_shutdown);
  if (policy.mode == shutdown_policy::kind::timeout)
    self->delayed_send(self, policy.timeout, kill_atom::value, entry.handle.address());
}

/// Stops the next child in reverse start order (all at once for dynamic
/// supervisors); quits when none is left.
void continue_shutdown(sup_pointer self) {
  auto& st = self->state;
  st.children.erase(std::remove_if(st.children.begin(), st.children.end(),
                                   [](const child_entry& c) { return !c.handle; }),
                    st.children.end());
  if (st.children.empty()) {
    detail::log_debug(st.cfg.name, "stopped");
    self->quit(st.stop_reason);
    return;
  }
  if (st.cfg.strategy == supervision_strategy::dynamic) {
    for (auto& c : st.children)
      stop_child(self, c);
  } else {
    stop_child(self, st.children.back());
  }
}

void begin_shutdown(sup_pointer self, caf::error reason) {
  auto& st = self->state;
  if (st.phase == sup_phase::stopping)
    return;
  st.phase = sup_phase::stopping;
  st.stop_reason = std::move(reason);
  detail::log_debug(st.cfg.name, "stopping ({} children)", st.children.size());
  for (auto& rp : st.ready_waiters)
    rp.deliver(st.stop_reason ? st.stop_reason
                              : make_error(errc::pool_stopped, "supervisor stopped"));
  st.ready_waiters.clear();
  for (auto& c : st.children)
    c.state = child_state::stopping;
  continue_shutdown(self);
}

// -- starting ------------------------------------------------------------------

/// Runs a child's start function; an empty handle or an exception is a start
/// failure naming the child, never a crash of the supervisor.
caf::expected<caf::actor> start_checked(caf::actor_system& sys, const child_spec& spec) {
  caf::expected<caf::actor> started{caf::error{}};
  try {
    started = spec.start(sys);
  } catch (const std::exception& e) {
    return make_error(errc::startup_failed,
                      fmt::format("child {}: its start function threw: {}", spec.id, e.what()));
  }
  if (started && !*started)
    return make_error(errc::startup_failed,
                      fmt::format("child {}: its start function returned no actor (an empty "
                                  "handle)",
                                  spec.id));
  return started;
}

void advance_start(sup_pointer self);
void mark_group(sup_pointer self, const child_entry& failed);
void continue_group_stop(sup_pointer self, bool at_once);
void on_significant_exit(sup_pointer self);
void keep_or_forget(sup_pointer self, child_entry& entry, bool forget);
void fail_launch(sup_pointer self, child_entry& entry, const caf::error& err);
bool adopt(sup_pointer self, child_entry& entry, caf::actor handle);
void launch(sup_pointer self, child_entry& entry);

/// Counts a failure; false (and the supervisor is shutting down) when the
/// restart intensity is exceeded.
bool count_failure(sup_pointer self, const std::string& id, const caf::error& reason) {
  auto& st = self->state;
  if (st.window.record(restart_window::clock::now()))
    return true;
  const auto& lim = st.window.limits();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(lim.period).count();
  auto info = describe(reason);
  auto err = make_error(errc::restart_intensity_exceeded,
                        fmt::format("supervisor {} gave up: more than {} restarts within "
                                    "{} ms; last: child {} exited with {}",
                                    st.cfg.name, lim.max_restarts, ms, id,
                                    reason_text(reason)),
                        info.python_type, info.traceback);
  detail::log_error(st.cfg.name, "{}", describe(err).message);
  detail::emit([&] {
    return telemetry_event{"snakepit.supervisor.escalation",
                           {{"max_restarts", static_cast<double>(lim.max_restarts)}},
                           {{"supervisor", st.cfg.name}, {"child", id},
                            {"reason", describe(err).message}}};
  });
  begin_shutdown(self, err);
  return false;
}

/// Runs the start phase after the back-off (none when `at_once`).
void schedule_start_phase(sup_pointer self, bool at_once) {
  auto& st = self->state;
  auto gen = ++st.start_generation;
  caf::timespan delay{0};
  if (!at_once) {
    std::uniform_real_distribution<double> unit{0.0, 1.0};
    delay = st.cfg.backoff.delay(st.early_failures.count(restart_window::clock::now()) + 1,
                                 unit(st.rng));
  }
  if (delay.count() == 0)
    self->send(self, restart_atom::value, gen);
  else
    self->delayed_send(self, delay, restart_atom::value, gen);
}

/// A child could not be started (or died before it was ready).
void on_start_failure(sup_pointer self, child_entry& entry, const caf::error& err) {
  auto& st = self->state;
  auto id = entry.spec.id;
  entry.handle = nullptr;
  entry.state = child_state::restarting;
  if (st.phase == sup_phase::starting) {
    auto info = describe(err);
    begin_shutdown(self, make_error(errc::startup_failed,
                                    fmt::format("supervisor {}: child {} failed to start: {}",
                                                st.cfg.name, id, reason_text(err)),
                                    info.python_type, info.traceback));
    return;
  }
  detail::log_warning(st.cfg.name, "child {} failed to restart: {}", id, reason_text(err));
  (void) st.early_failures.record(restart_window::clock::now());
  if (!count_failure(self, id, err))
    return;
  // As OTP: one_for_all stops the siblings it already restarted and starts
  // the whole group again; rest_for_one does so for the ones after it.
  mark_group(self, entry);
  continue_group_stop(self, false);
}

/// An off-thread start failed or timed out: a waiting start_child /
/// restart_child gets the error (a child it added is forgotten again, one it
/// restarted stays a kept spec); a declared child's start fails as usual.
void fail_launch(sup_pointer self, child_entry& entry, const caf::error& err) {
  auto& st = self->state;
  entry.start_token = 0;
  if (!entry.requested) {
    on_start_failure(self, entry, err);
    return;
  }
  auto rp = std::move(*entry.requested);
  entry.requested.reset();
  if (entry.added_by_request)
    st.erase(&entry);
  else
    entry.state = child_state::not_running;
  rp.deliver(err);
  advance_start(self);
}

/// A start function answered ignore (OTP): keep the spec, run nothing.
void on_ignored(sup_pointer self, child_entry& entry) {
  auto& st = self->state;
  detail::log_info(st.cfg.name, "child {} answered ignore", entry.spec.id);
  entry.start_token = 0;
  if (entry.spec.restart == restart_type::temporary)
    st.erase(&entry);
  else
    entry.state = child_state::not_running;
}

/// Records a freshly started child's handle and watches it.
void take_in(sup_pointer self, child_entry& entry, caf::actor handle) {
  entry.handle = std::move(handle);
  entry.stop_sent = false;
  entry.start_token = 0;
  self->state.started->insert(entry.handle.address());
  self->monitor(entry.handle);
  emit_child_started(self, entry);
}

/// Running at once, or (with `await_ready`) starting until it reports ready:
/// false then.
bool run_or_await(sup_pointer self, child_entry& entry) {
  if (entry.spec.await_ready) {
    entry.state = child_state::starting;
    entry.spec.await_ready(self->system(), entry.handle, caf::actor_cast<caf::actor>(self));
    return false;
  }
  entry.state = child_state::running;
  return true;
}

/// Takes a freshly started child in; false when it must report ready first.
bool adopt(sup_pointer self, child_entry& entry, caf::actor handle) {
  take_in(self, entry, std::move(handle));
  detail::log_info(self->state.cfg.name, "started {} {}",
                   entry.spec.kind == child_kind::supervisor ? "supervisor" : "child",
                   entry.spec.id);
  return run_or_await(self, entry);
}

/// Runs a child's start function on a detached actor (a thread of its own):
/// a slow start never holds the supervisor or a scheduler thread. The result
/// comes back as `started_atom`; an actor made after the supervisor stopped
/// waiting for it (timeout, shutdown, or the supervisor gone) is killed.
void launch(sup_pointer self, child_entry& entry) {
  auto& st = self->state;
  auto token = ++st.next_start_token;
  entry.state = child_state::launching;
  entry.start_token = token;
  auto sup = caf::actor_cast<caf::actor>(self);
  self->system().spawn<caf::detached>(
    [sup, token, spec = entry.spec](caf::event_based_actor* starter) -> caf::behavior {
      auto started = start_checked(starter->system(), spec);
      caf::actor handle = started ? *started : caf::actor{};
      caf::error err = started ? caf::error{} : started.error();
      starter->request(sup, caf::infinite, started_atom::value, token, handle, err)
        .then(
          [starter, handle](bool adopted) {
            if (!adopted && handle)
              caf::anon_send_exit(handle, caf::exit_reason::kill);
            starter->quit();
          },
          [starter, handle](caf::error&) {  // the supervisor is gone
            if (handle)
              caf::anon_send_exit(handle, caf::exit_reason::kill);
            starter->quit();
          });
      return {};
    });
  self->delayed_send(self, entry.spec.start_timeout, start_tout_atom::value, token);
}

/// Starts the `restarting` children in start order, one at a time (a child
/// with `await_ready` must report ready before the next starts).
void advance_start(sup_pointer self) {
  auto& st = self->state;
  if (st.phase == sup_phase::stopping)
    return;
  for (;;) {
    if (st.any_in(child_state::starting) || st.any_in(child_state::launching)
        || st.any_in(child_state::stopping_for_restart))
      return;
    auto next = std::find_if(st.children.begin(), st.children.end(), [](const child_entry& c) {
      return c.state == child_state::restarting;
    });
    if (next == st.children.end())
      break;
    auto& entry = *next;
    if (entry.spec.start_timeout.count() > 0) {
      launch(self, entry);
      return;  // its result (or its timeout) continues the start phase
    }
    auto started = start_checked(self->system(), entry.spec);
    if (!started && is(started.error(), errc::ignored)) {
      on_ignored(self, entry);
      continue;
    }
    if (!started) {
      on_start_failure(self, entry, started.error());
      return;
    }
    if (!adopt(self, entry, std::move(*started)))
      return;  // waits for its child_ready
  }
  if (st.phase == sup_phase::starting) {
    st.phase = sup_phase::running;
    for (auto& rp : st.ready_waiters)
      rp.deliver(true);
    st.ready_waiters.clear();
  }
}

// -- failures --------------------------------------------------------------------

/// Stops the next sibling marked for a group restart, in reverse start order;
/// when none is left, schedules the start phase.
void continue_group_stop(sup_pointer self, bool at_once) {
  auto& st = self->state;
  for (auto i = st.children.rbegin(); i != st.children.rend(); ++i) {
    if (i->state != child_state::stopping_for_restart)
      continue;
    if (!i->stop_sent)
      stop_child(self, *i);
    return;  // one at a time: wait for its DOWN
  }
  schedule_start_phase(self, at_once);
}

/// The siblings a failure takes down with it, per strategy.
void mark_group(sup_pointer self, const child_entry& failed) {
  auto& st = self->state;
  auto strategy = st.cfg.strategy;
  if (strategy != supervision_strategy::one_for_all
      && strategy != supervision_strategy::rest_for_one)
    return;
  auto failed_index = &failed - st.children.data();
  for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(st.children.size()); ++i) {
    auto& c = st.children[static_cast<size_t>(i)];
    if (&c == &failed)
      continue;
    if (strategy == supervision_strategy::rest_for_one && i < failed_index)
      continue;
    if (c.state == child_state::running || c.state == child_state::starting)
      c.state = child_state::stopping_for_restart;
    else if (c.state == child_state::not_running)
      c.state = child_state::restarting;  // as OTP: a group restart starts kept specs too
  }
}

void on_child_down(sup_pointer self, const caf::down_msg& msg) {
  auto& st = self->state;
  auto* entry = st.find(msg.source);
  if (entry == nullptr)
    return;
  emit_child_stopped(self, *entry, msg.reason);
  entry->last_exit = is_normal(msg.reason) ? std::string{"normal"} : reason_text(msg.reason);
  if (st.phase == sup_phase::stopping || entry->state == child_state::stopping) {
    for (auto& rp : entry->on_stopped)
      rp.deliver(true);
    entry->handle = nullptr;
    if (st.phase == sup_phase::stopping) {
      continue_shutdown(self);
    } else {
      keep_or_forget(self, *entry, entry->forget_when_down);
      advance_start(self);
    }
    return;
  }
  if (entry->state == child_state::stopping_for_restart) {
    entry->handle = nullptr;
    if (entry->spec.restart == restart_type::temporary) {
      st.erase(entry);
    } else {
      entry->state = child_state::restarting;
      ++entry->restarts;  // restarted because of a sibling: it counts too
    }
    continue_group_stop(self, false);
    return;
  }
  const auto& reason = msg.reason;
  if (entry->state == child_state::starting) {
    auto why = entry->start_error ? std::move(entry->start_error) : reason;
    entry->start_error = caf::error{};
    on_start_failure(self, *entry, why);
    return;
  }
  // A supervisor (or pool) that gave up ends with its own reason so the
  // cause travels up; like OTP's `shutdown` it does not make a transient
  // parent restart it.
  bool normal = is_normal(reason) || is_shutdown(reason)
                || is(reason, errc::restart_intensity_exceeded);
  auto restart = entry->spec.restart;
  if (restart == restart_type::temporary || (restart == restart_type::transient && normal)) {
    bool significant = entry->spec.significant;
    if (restart == restart_type::temporary) {
      st.erase(entry);  // OTP forgets temporary children whatever their exit
    } else {
      entry->handle = nullptr;
      entry->state = child_state::not_running;
    }
    if (significant)
      on_significant_exit(self);
    return;
  }
  entry->handle = nullptr;
  entry->state = child_state::restarting;
  if (is(reason, errc::worker_replaced)) {
    // A deliberate replacement: restart at once, not counted.
    ++entry->replacements;
    mark_group(self, *entry);
    continue_group_stop(self, true);
    return;
  }
  auto id = entry->spec.id;
  // Only a restart that happens is counted and reported: one the intensity
  // refuses is the give-up, reported as the escalation instead.
  if (!count_failure(self, id, reason))
    return;
  entry = st.find(id);
  ++entry->restarts;
  detail::log_info(st.cfg.name, "child {} exited ({}); restarting", id, reason_text(reason));
  detail::emit([&] {
    return telemetry_event{"snakepit.supervisor.restart",
                           {{"restarts", static_cast<double>(entry->restarts)}},
                           {{"supervisor", st.cfg.name}, {"child", id},
                            {"reason", reason_text(reason)}}};
  });
  mark_group(self, *entry);
  continue_group_stop(self, false);
}

/// A significant child ended on its own: auto_shutdown decides whether the
/// supervisor ends too (never for children it stopped itself).
void on_significant_exit(sup_pointer self) {
  auto& st = self->state;
  bool go = false;
  switch (st.cfg.shutdown_when) {
    case auto_shutdown::never:
      break;
    case auto_shutdown::any_significant:
      go = true;
      break;
    case auto_shutdown::all_significant:
      go = std::none_of(st.children.begin(), st.children.end(), [](const child_entry& c) {
        return c.spec.significant && c.runs();
      });
      break;
  }
  if (!go)
    return;
  detail::log_info(st.cfg.name, "significant child ended: auto_shutdown");
  begin_shutdown(self, caf::exit_reason::user_shutdown);
}

/// The kept, not running child `id` (for restart_child and delete_child), or
/// OTP's not_found / running as errors.
caf::expected<child_entry*> stopped_child(sup_pointer self, const std::string& id) {
  auto& st = self->state;
  auto* entry = st.find(id);
  if (entry == nullptr)
    return make_error(errc::child_unknown,
                      fmt::format("supervisor {} has no child {}", st.cfg.name, id));
  if (entry->state != child_state::not_running)
    return make_error(errc::child_running,
                      fmt::format("child {} of supervisor {} is {}: terminate_child it first",
                                  id, st.cfg.name, to_cstr(entry->state)));
  return entry;
}

/// A child its supervisor stopped on request: OTP keeps its spec (not
/// running), except for temporary children, children of dynamic supervisors
/// and those stopped by handle (`forget`), which it forgets.
void keep_or_forget(sup_pointer self, child_entry& entry, bool forget) {
  auto& st = self->state;
  if (forget || entry.spec.restart == restart_type::temporary
      || st.cfg.strategy == supervision_strategy::dynamic)
    st.erase(&entry);
  else
    entry.state = child_state::not_running;
}

/// terminate_child: stops a running child per its shutdown policy and answers
/// once it is down; a child that does not run answers at once.
caf::result<bool> terminate(sup_pointer self, child_entry& entry, bool forget) {
  if (!entry.runs()) {
    keep_or_forget(self, entry, forget);  // a pending restart is cancelled
    return true;
  }
  auto rp = self->make_response_promise<bool>();
  entry.on_stopped.push_back(rp);
  entry.state = child_state::stopping;
  entry.forget_when_down = entry.forget_when_down || forget;
  stop_child(self, entry);
  return rp;
}

} // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys, supervisor_config cfg) {
  auto impl = sys.spawn([cfg = std::move(cfg)](sup_pointer self) mutable
                        -> supervisor_actor_impl::behavior_type {
    auto& init = self->state;
    init.window = restart_window{cfg.intensity};
    init.early_failures = restart_window{cfg.intensity};
    init.cfg = std::move(cfg);
    self->set_down_handler([self](caf::down_msg& msg) {
      self->state.started->erase(msg.source);
      on_child_down(self, msg);
    });
    // Children end with their supervisor, however it ends (even killed).
    self->attach_functor([started = init.started](const caf::error& reason) {
      auto why = reason == caf::exit_reason::kill ? caf::error{caf::exit_reason::user_shutdown}
                                                  : reason;
      if (!why)
        why = caf::exit_reason::user_shutdown;
      for (auto& addr : *started)
        if (auto child = caf::actor_cast<caf::strong_actor_ptr>(addr))
          child->enqueue(nullptr, caf::make_message_id(),
                         caf::make_message(caf::exit_msg{caf::actor_addr{}, why}), nullptr);
    });
    self->set_exit_handler([self](caf::exit_msg& msg) {
      // Children's exits are handled through their DOWN messages; an exit
      // from anyone else (the parent) stops the supervisor.
      if (self->state.find(msg.source) != nullptr)
        return;  // a child's exit: its DOWN message decides
      begin_shutdown(self, msg.reason);
    });
    for (auto& spec : init.cfg.children) {
      child_entry entry;
      entry.spec = spec;
      init.children.push_back(std::move(entry));
    }
    if (auto err = check_children(init.cfg))
      begin_shutdown(self, std::move(err));
    else
      advance_start(self);
    return {
      [self](start_child_atom, child_spec& spec) -> caf::result<caf::actor> {
        auto& st = self->state;
        if (st.phase == sup_phase::stopping)
          return make_error(errc::pool_stopped,
                            fmt::format("supervisor {} is stopping", st.cfg.name));
        if (auto* existing = st.find(spec.id)) {
          if (existing->runs())
            return caf::error{static_cast<std::uint8_t>(errc::already_started), error_category,
                              caf::make_message(
                                fmt::format("supervisor {} already runs a child {}",
                                            st.cfg.name, spec.id),
                                existing->handle)};
          return make_error(errc::already_present,
                            fmt::format("supervisor {} already has a child spec {} (not "
                                        "running): restart_child or delete_child it",
                                        st.cfg.name, spec.id));
        }
        if (auto err = check_child(st.cfg.name, spec))
          return err;
        if (st.cfg.max_children > 0 && st.children.size() >= st.cfg.max_children)
          return make_error(errc::pool_saturated,
                            fmt::format("supervisor {} has max_children = {} children; stop "
                                        "one first or raise the bound",
                                        st.cfg.name, st.cfg.max_children));
        if (spec.start_timeout.count() > 0) {
          // A start that may block runs off this thread; the answer waits for it.
          child_entry entry;
          entry.spec = std::move(spec);
          entry.added_by_request = true;
          auto rp = self->make_response_promise<caf::actor>();
          entry.requested = rp;
          st.children.push_back(std::move(entry));
          launch(self, st.children.back());
          return rp;
        }
        auto started = start_checked(self->system(), spec);
        if (!started)
          return std::move(started.error());
        child_entry entry;
        entry.spec = std::move(spec);
        st.children.push_back(std::move(entry));
        auto& added = st.children.back();
        take_in(self, added, std::move(*started));
        added.state = child_state::running;
        return added.handle;
      },
      [self](terminate_child_atom, const std::string& id) -> caf::result<bool> {
        auto* entry = self->state.find(id);
        if (entry == nullptr)
          return false;
        return terminate(self, *entry, false);
      },
      [self](terminate_child_atom, const caf::actor& handle) -> caf::result<bool> {
        auto* entry = handle ? self->state.find(handle.address()) : nullptr;
        if (entry == nullptr)
          return false;
        return terminate(self, *entry, true);
      },
      [self](restart_child_atom, const std::string& id) -> caf::result<caf::actor> {
        auto& st = self->state;
        auto target = stopped_child(self, id);
        if (!target)
          return std::move(target.error());
        auto* entry = *target;
        if (st.phase == sup_phase::stopping)
          return make_error(errc::pool_stopped,
                            fmt::format("supervisor {} is stopping", st.cfg.name));
        if (entry->spec.start_timeout.count() > 0) {
          auto rp = self->make_response_promise<caf::actor>();
          entry->requested = rp;
          launch(self, *entry);
          return rp;
        }
        auto started = start_checked(self->system(), entry->spec);
        if (!started)
          return std::move(started.error());
        take_in(self, *entry, std::move(*started));
        run_or_await(self, *entry);
        return entry->handle;
      },
      [self](delete_child_atom, const std::string& id) -> caf::result<bool> {
        auto target = stopped_child(self, id);
        if (!target)
          return std::move(target.error());
        self->state.erase(*target);
        return true;
      },
      [self](count_children_atom) {
        child_counts out;
        for (auto& c : self->state.children) {
          ++out.specs;
          if (c.runs())
            ++out.active;
          if (c.spec.kind == child_kind::supervisor)
            ++out.supervisors;
          else
            ++out.workers;
        }
        return out;
      },
      [self](get_childspec_atom, const std::string& id) -> caf::result<child_spec> {
        auto* entry = self->state.find(id);
        if (entry == nullptr)
          return make_error(errc::child_unknown, fmt::format("supervisor {} has no child {}",
                                                             self->state.cfg.name, id));
        return entry->spec;
      },
      [self](which_children_atom) {
        std::vector<child_info> out;
        for (auto& c : self->state.children)
          out.push_back(child_info{c.spec.id, to_cstr(c.state), c.restarts, c.replacements,
                                   c.handle, kind_name(c.spec), c.last_exit});
        return out;
      },
      [self](ready_atom) -> caf::result<bool> {
        auto& st = self->state;
        if (st.phase == sup_phase::running)
          return true;
        if (st.phase == sup_phase::stopping)
          return st.stop_reason ? st.stop_reason
                                : make_error(errc::pool_stopped, "supervisor stopped");
        auto rp = self->make_response_promise<bool>();
        st.ready_waiters.push_back(rp);
        return rp;
      },
      [self](child_ready_atom, const caf::actor_addr& child, const caf::error& err) {
        auto* entry = self->state.find(child);
        if (entry == nullptr || entry->state != child_state::starting)
          return;
        if (err) {
          // Not ready, and it says why: that is its start failure. It may
          // still run (a user actor need not quit): stop it per its shutdown
          // policy; its DOWN then reports this error, not the stop.
          entry->start_error = err;
          stop_child(self, *entry);
          return;
        }
        entry->state = child_state::running;
        detail::log_info(self->state.cfg.name, "{} is ready", entry->spec.id);
        advance_start(self);
      },
      [self](restart_atom, std::uint64_t generation) {
        if (generation == self->state.start_generation)
          advance_start(self);
      },
      [self](started_atom, std::uint64_t token, caf::actor& handle, caf::error& err) -> bool {
        auto& st = self->state;
        auto* entry = st.find_launch(token);
        if (entry == nullptr || st.phase == sup_phase::stopping)
          return false;  // timed out, or no longer wanted: the starter kills it
        if (err) {
          if (is(err, errc::ignored) && !entry->requested) {
            on_ignored(self, *entry);
            advance_start(self);
          } else {
            fail_launch(self, *entry, err);
          }
          return false;
        }
        auto requested = std::move(entry->requested);
        entry->requested.reset();
        entry->added_by_request = false;
        bool running = adopt(self, *entry, handle);
        if (requested)
          requested->deliver(handle);
        if (running)
          advance_start(self);
        return true;
      },
      [self](start_tout_atom, std::uint64_t token) {
        auto* entry = self->state.find_launch(token);
        if (entry == nullptr)
          return;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    entry->spec.start_timeout)
                    .count();
        fail_launch(self, *entry,
                    make_error(errc::startup_failed,
                               fmt::format("child {} did not start within {} ms "
                                           "(start_timeout)",
                                           entry->spec.id, ms)));
      },
      [self](kill_atom, const caf::actor_addr& addr) {
        if (auto* entry = self->state.find(addr))
          self->send_exit(entry->handle, caf::exit_reason::kill);
      },
    };
  });
  return caf::actor_cast<supervisor_actor>(impl);
}

} // namespace snakepit
