#include "snakepit/supervision/supervisor.hpp"

#include <algorithm>
#include <random>
#include <set>
#include <unordered_map>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "snakepit/actors/detail/log.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

namespace {

using restart_atom = caf::atom_constant<caf::atom("restart")>;
using kill_atom = caf::atom_constant<caf::atom("kill")>;

using supervisor_actor_impl = supervisor_actor::extend<
  caf::reacts_to<restart_atom, std::string, std::uint64_t>,
  caf::reacts_to<kill_atom, caf::actor_addr>>;

enum class child_state { running, restarting, stopping };

const char* to_cstr(child_state s) {
  switch (s) {
    case child_state::running: return "running";
    case child_state::restarting: return "restarting";
    default: return "stopping";
  }
}

struct child_entry {
  child_spec spec;
  caf::actor handle;
  child_state state = child_state::running;
  std::uint64_t restarts = 0;
  std::uint64_t replacements = 0;
  /// Bumped on every (re)start, so stale restart timers are ignored.
  std::uint64_t generation = 0;
  /// Promises of terminate_child requests, delivered once the child is down.
  std::vector<caf::typed_response_promise<bool>> on_stopped;
};

struct supervisor_state {
  supervisor_config cfg;
  std::vector<child_entry> children;  // in start order
  restart_window window{restart_intensity{}};
  bool stopping = false;
  caf::error stop_reason;
  std::minstd_rand rng{std::random_device{}()};
  /// Linked children whose exit message has not arrived yet: an exit message
  /// from anyone else comes from the parent.
  std::set<caf::actor_addr> linked;

  static inline const char* name = "snakepit.supervisor";

  child_entry* find(const std::string& id) {
    auto i = std::find_if(children.begin(), children.end(),
                          [&](const child_entry& c) { return c.spec.id == id; });
    return i == children.end() ? nullptr : &*i;
  }

  child_entry* find(const caf::actor_addr& addr) {
    auto i = std::find_if(children.begin(), children.end(), [&](const child_entry& c) {
      return c.handle && c.handle.address() == addr;
    });
    return i == children.end() ? nullptr : &*i;
  }

  void erase(const child_entry* entry) {
    children.erase(children.begin() + (entry - children.data()));
  }
};

using sup_pointer = supervisor_actor_impl::stateful_pointer<supervisor_state>;

bool is_normal(const caf::error& reason) {
  return !reason || reason == caf::exit_reason::normal;
}

bool is_shutdown(const caf::error& reason) {
  return reason == caf::exit_reason::user_shutdown || is(reason, errc::pool_stopped);
}

caf::error start_one(sup_pointer self, child_entry& entry) {
  auto started = entry.spec.start(self->system());
  if (!started)
    return std::move(started.error());
  entry.handle = std::move(*started);
  entry.state = child_state::running;
  ++entry.generation;
  self->state.linked.insert(entry.handle.address());
  self->link_to(entry.handle);
  self->monitor(entry.handle);
  return caf::none;
}

/// Asks one child to stop per its shutdown policy; its DOWN finishes the job.
void stop_child(sup_pointer self, child_entry& entry) {
  entry.state = child_state::stopping;
  if (!entry.handle)
    return;
  const auto& policy = entry.spec.shutdown;
  if (policy.mode == shutdown_policy::kind::brutal_kill) {
    self->send_exit(entry.handle, caf::exit_reason::kill);
    return;
  }
  self->send_exit(entry.handle, caf::exit_reason::user_shutdown);
  if (policy.mode == shutdown_policy::kind::timeout)
    self->delayed_send(self, policy.timeout, kill_atom::value, entry.handle.address());
}

void finish_if_done(sup_pointer self);

/// Stops the next child in reverse start order (static supervisors), or all
/// of them at once (dynamic supervisors).
void continue_shutdown(sup_pointer self) {
  auto& st = self->state;
  // Children waiting out a back-off have no process to stop.
  st.children.erase(std::remove_if(st.children.begin(), st.children.end(),
                                   [](const child_entry& c) { return !c.handle; }),
                    st.children.end());
  if (st.cfg.strategy == supervision_strategy::dynamic) {
    for (auto& c : st.children)
      if (c.state != child_state::stopping)
        stop_child(self, c);
  } else if (!st.children.empty()) {
    auto& last = st.children.back();
    if (last.state != child_state::stopping)
      stop_child(self, last);
  }
  finish_if_done(self);
}

void finish_if_done(sup_pointer self) {
  auto& st = self->state;
  if (st.stopping && st.children.empty())
    self->quit(st.stop_reason);
}

void begin_shutdown(sup_pointer self, caf::error reason) {
  auto& st = self->state;
  if (st.stopping)
    return;
  st.stopping = true;
  st.stop_reason = std::move(reason);
  continue_shutdown(self);
}

void schedule_restart(sup_pointer self, child_entry& entry, bool deliberate) {
  auto& st = self->state;
  entry.handle = nullptr;
  entry.state = child_state::restarting;
  caf::timespan delay{0};
  if (!deliberate) {
    std::uniform_real_distribution<double> unit{0.0, 1.0};
    auto nth = st.window.count(restart_window::clock::now());
    delay = st.cfg.backoff.delay(nth, unit(st.rng));
  }
  if (delay.count() == 0) {
    // Send rather than start inline: keeps one path for both cases.
    self->send(self, restart_atom::value, entry.spec.id, entry.generation);
  } else {
    self->delayed_send(self, delay, restart_atom::value, entry.spec.id, entry.generation);
  }
}

/// Counts a failure; false (and the supervisor is shutting down) when the
/// restart intensity is exceeded.
bool count_failure(sup_pointer self, const std::string& id, const caf::error& reason) {
  auto& st = self->state;
  if (st.window.record(restart_window::clock::now()))
    return true;
  const auto& lim = st.window.limits();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(lim.period).count();
  auto err = make_error(errc::restart_intensity_exceeded,
                        fmt::format("supervisor {} gave up: more than {} restarts within "
                                    "{} ms; last: child {} exited with {}",
                                    st.cfg.name, lim.max_restarts, ms, id,
                                    describe(reason).message.empty()
                                      ? caf::to_string(reason)
                                      : describe(reason).message));
  detail::log_error(st.cfg.name, "{}", describe(err).message);
  begin_shutdown(self, err);
  return false;
}

void on_child_down(sup_pointer self, const caf::down_msg& msg) {
  auto& st = self->state;
  auto* entry = st.find(msg.source);
  if (entry == nullptr)
    return;
  if (entry->state == child_state::stopping || st.stopping) {
    for (auto& rp : entry->on_stopped)
      rp.deliver(true);
    st.erase(entry);
    if (st.stopping)
      continue_shutdown(self);
    return;
  }
  const auto& reason = msg.reason;
  bool normal = is_normal(reason) || is_shutdown(reason);
  auto restart = entry->spec.restart;
  if (restart == restart_type::temporary
      || (restart == restart_type::transient && normal)) {
    st.erase(entry);
    return;
  }
  if (is(reason, errc::worker_replaced)) {
    ++entry->replacements;
    schedule_restart(self, *entry, true);
    return;
  }
  ++entry->restarts;
  entry->handle = nullptr;  // dead: nothing to stop if we give up below
  entry->state = child_state::restarting;
  auto id = entry->spec.id;
  detail::log_info(st.cfg.name, "child {} exited ({}); restarting", id,
                   describe(reason).message.empty() ? caf::to_string(reason)
                                                    : describe(reason).message);
  if (!count_failure(self, id, reason))
    return;
  schedule_restart(self, *st.find(id), false);
}

void on_restart(sup_pointer self, const std::string& id, std::uint64_t generation) {
  auto& st = self->state;
  auto* entry = st.find(id);
  if (st.stopping || entry == nullptr || entry->generation != generation
      || entry->state != child_state::restarting)
    return;
  if (auto err = start_one(self, *entry)) {
    detail::log_warning(st.cfg.name, "child {} failed to restart: {}", id,
                        describe(err).message);
    if (count_failure(self, id, err))
      schedule_restart(self, *st.find(id), false);
  }
}

} // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys, supervisor_config cfg) {
  auto impl = sys.spawn([cfg = std::move(cfg)](sup_pointer self) mutable
                        -> supervisor_actor_impl::behavior_type {
    auto& init = self->state;
    init.window = restart_window{cfg.intensity};
    init.cfg = std::move(cfg);
    self->set_down_handler([self](caf::down_msg& msg) { on_child_down(self, msg); });
    self->set_exit_handler([self](caf::exit_msg& msg) {
      // Children's exits are handled through their DOWN messages; an exit
      // from anyone else (the parent) stops the supervisor.
      if (self->state.linked.erase(msg.source) > 0)
        return;
      begin_shutdown(self, msg.reason);
    });
    for (auto& spec : init.cfg.children) {
      child_entry entry;
      entry.spec = spec;
      init.children.push_back(std::move(entry));
      if (auto err = start_one(self, init.children.back())) {
        auto failed = make_error(errc::startup_failed,
                                 fmt::format("supervisor {}: child {} failed to start: {}",
                                             init.cfg.name, spec.id,
                                             describe(err).message));
        init.children.pop_back();
        begin_shutdown(self, failed);
        break;
      }
    }
    return {
      [self](start_child_atom, child_spec& spec) -> caf::result<caf::actor> {
        auto& st = self->state;
        if (st.stopping)
          return make_error(errc::pool_stopped,
                            fmt::format("supervisor {} is stopping", st.cfg.name));
        if (st.find(spec.id) != nullptr)
          return make_error(errc::bad_config,
                            fmt::format("supervisor {} already has a child {}",
                                        st.cfg.name, spec.id));
        child_entry entry;
        entry.spec = std::move(spec);
        st.children.push_back(std::move(entry));
        if (auto err = start_one(self, st.children.back())) {
          st.children.pop_back();
          return err;
        }
        return st.children.back().handle;
      },
      [self](terminate_child_atom, const std::string& id) -> caf::result<bool> {
        auto* entry = self->state.find(id);
        if (entry == nullptr)
          return false;
        if (!entry->handle) {
          self->state.erase(entry);
          return true;
        }
        auto rp = self->make_response_promise<bool>();
        entry->on_stopped.push_back(rp);
        if (entry->state != child_state::stopping)
          stop_child(self, *entry);
        return rp;
      },
      [self](which_children_atom) {
        std::vector<child_info> out;
        for (auto& c : self->state.children)
          out.push_back(child_info{c.spec.id, to_cstr(c.state), c.restarts,
                                   c.replacements, c.handle});
        return out;
      },
      [self](restart_atom, const std::string& id, std::uint64_t generation) {
        on_restart(self, id, generation);
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
