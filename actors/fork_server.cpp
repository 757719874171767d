#include "snakepit/actors/fork_server.hpp"

#include <random>

#include <unistd.h>

#include <caf/all.hpp>

#include "snakepit/actors/detail/emit.hpp"
#include "snakepit/actors/detail/log.hpp"
#include "snakepit/actors/detail/ready_line.hpp"
#include "snakepit/actors/detail/stderr_tail.hpp"
#include "snakepit/actors/process_launcher.hpp"
#include "snakepit/actors/python_command.hpp"
#include "snakepit/actors/run_registry.hpp"
#include "snakepit/actors/worker_env.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

namespace {

using fs_spawned_atom = caf::atom_constant<caf::atom("fsspawned")>;
using fs_ready_atom = caf::atom_constant<caf::atom("fsready")>;
using fs_exited_atom = caf::atom_constant<caf::atom("fsexited")>;
using fs_timeout_atom = caf::atom_constant<caf::atom("fstimeout")>;
using fs_start_atom = caf::atom_constant<caf::atom("fsstart")>;

/// How long a stopping server gets between SIGTERM and SIGKILL (it holds no calls).
constexpr auto server_stop_grace = std::chrono::milliseconds{1000};

enum class server_phase { starting, ready, waiting, gave_up };

struct fork_server_state {
  fork_server_config cfg;
  server_phase current = server_phase::starting;
  /// The server process: shared with the exit functor, which runs after the state is gone.
  struct process_ref {
    std::uint64_t launch_id = 0;
    bool alive = false;
  };
  std::shared_ptr<process_ref> proc = std::make_shared<process_ref>();
  /// Incremented per start, so a late message of an earlier process is ignored.
  std::uint64_t generation = 0;
  int pid = 0;
  bool ever_ready = false;
  /// Why the current start failed, when the ready line said so.
  caf::error start_error;
  std::uint32_t start_failures = 0;
  std::vector<caf::response_promise> waiters;
  std::shared_ptr<detail::stderr_tail> tail;
  std::minstd_rand jitter{std::random_device{}()};
  static inline const char* name = "snakepit.fork_server";
};

using server_actor = caf::stateful_actor<fork_server_state>;

process_spec make_spec(const fork_server_config& cfg) {
  process_spec spec;
  spec.executable = cfg.python;
  spec.tag = cfg.pool + "/fork-server";
  spec.fork_server = true;
  std::vector<std::string> args{"--adapter",    cfg.adapter,  "--ready-fd",   "3",
                                "--lifeline-fd", "4",         "--control-fd", "5",
                                "--parent-pid", std::to_string(::getpid())};
  for (auto& dir : cfg.python_path) {
    args.emplace_back("--python-path");
    args.emplace_back(absolute_path(dir));
  }
  spec.args = python_module_argv("snakepit_bridge.fork_server", args);
  spec.working_dir = python_working_dir;
  spec.env = base_python_env();
  for (auto& kv : cfg.env)
    spec.env.push_back(kv);
  return spec;
}

void start_process(server_actor* self) {
  auto& st = self->state;
  st.current = server_phase::starting;
  st.start_error = caf::error{};
  st.tail = std::make_shared<detail::stderr_tail>();
  auto generation = ++st.generation;
  auto weak = self->address();
  auto send = [weak](auto... xs) {
    if (auto h = caf::actor_cast<caf::actor>(weak))
      caf::anon_send(h, xs...);
  };
  process_events events;
  events.on_spawned = [send, generation](caf::expected<int> pid) {
    if (pid)
      run_registry::instance().record_spawn(*pid);
    send(fs_spawned_atom::value, generation, pid ? static_cast<std::int32_t>(*pid) : 0,
         pid ? std::string{} : caf::to_string(pid.error()));
  };
  events.on_ready_line = [send, generation](std::string line) {
    send(fs_ready_atom::value, generation, std::move(line));
  };
  events.on_output = [tail = st.tail, tag = st.cfg.pool + "/fork-server"](
                       bool is_stderr, std::string_view line) {
    if (is_stderr)
      tail->push(line);
    detail::log_worker_output(tag, is_stderr, line);
  };
  events.on_exit = [send, generation](process_exit how) {
    run_registry::instance().record_exit(how.pid);
    send(fs_exited_atom::value, generation, how);
  };
  st.proc->launch_id = default_process_launcher().spawn(make_spec(st.cfg), std::move(events));
  st.proc->alive = true;
  self->delayed_send(self, st.cfg.startup_timeout, fs_timeout_atom::value, generation);
}

caf::error start_failure(server_actor* self, const std::string& what) {
  auto& st = self->state;
  if (st.start_error)
    return st.start_error;
  auto tail = st.tail ? st.tail->joined() : std::string{};
  return make_error(errc::startup_failed,
                    fmt::format("the fork server of pool {} (adapter '{}') {}{}{}", st.cfg.pool,
                                st.cfg.adapter, what, tail.empty() ? "" : "; its last output:\n",
                                tail));
}

/// A start failed (or the server was lost): answer, retry or give up.
void on_down(server_actor* self, caf::error why, bool failed_at_start) {
  auto& st = self->state;
  st.cfg.handle->set_ready_server(0);
  if (!st.ever_ready) {  // the pool cannot start: the reason goes to it
    for (auto& rp : st.waiters)
      rp.deliver(why);
    st.waiters.clear();
    self->quit(why);
    return;
  }
  detail::emit([&] {
    return telemetry_event{"snakepit.pool.fork_server_lost",
                           {{"start_failures", static_cast<double>(st.start_failures)}},
                           {{"pool", st.cfg.pool}, {"reason", describe(why).message}}};
  });
  if (!failed_at_start) {
    st.start_failures = 0;
    detail::log_warning(st.cfg.pool, "fork server lost ({}); restarting it, new workers start "
                        "as plain processes meanwhile", describe(why).message);
    start_process(self);
    return;
  }
  if (++st.start_failures >= st.cfg.max_start_failures) {
    st.current = server_phase::gave_up;
    detail::log_error(st.cfg.pool, "fork server failed to start {} times in a row, not "
                      "restarting it; workers start as plain processes: {}", st.start_failures,
                      describe(why).message);
    return;
  }
  st.current = server_phase::waiting;
  std::uniform_real_distribution<double> unit{-1.0, 1.0};
  auto delay = st.cfg.backoff.delay(st.start_failures, unit(st.jitter));
  detail::log_warning(st.cfg.pool, "fork server failed to start ({}); retrying in {} ms",
                      describe(why).message,
                      std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  self->delayed_send(self, delay, fs_start_atom::value);
}

void on_ready_line(server_actor* self, const std::string& line) {
  auto& st = self->state;
  if (st.current != server_phase::starting)
    return;
  // The shared reader: a line from the process is untrusted, and no field of a wrong type
  // may throw here.
  std::string why;
  auto doc = detail::parse_ready_line(line, why);
  if (!doc || !doc->ready) {
    auto message = doc ? doc->message : "sent an unreadable ready line (" + why + "): "
                                          + line.substr(0, 500);
    st.start_error = make_error(
      errc::startup_failed,
      fmt::format("the fork server of pool {} could not preload adapter '{}': {}", st.cfg.pool,
                  st.cfg.adapter, message),
      doc ? doc->python_type : std::string{}, doc ? doc->traceback : std::string{});
    // The process exits on its own (exit 3); its exit reports the failure.
    return;
  }
  st.current = server_phase::ready;
  st.ever_ready = true;
  st.start_failures = 0;
  st.cfg.handle->set_ready_server(st.proc->launch_id);
  detail::log_info(st.cfg.pool, "fork server ready (pid {})", st.pid);
  for (auto& rp : st.waiters)
    rp.deliver(st.proc->launch_id);
  st.waiters.clear();
}

} // namespace

caf::actor spawn_fork_server(caf::actor_system& sys, fork_server_config cfg) {
  return sys.spawn([cfg = std::move(cfg)](server_actor* self) mutable -> caf::behavior {
    self->state.cfg = std::move(cfg);
    // Runs after the state is destroyed: it holds what it needs itself.
    self->attach_functor([handle = self->state.cfg.handle, proc = self->state.proc] {
      handle->set_ready_server(0);
      if (proc->alive)
        default_process_launcher().terminate(proc->launch_id, server_stop_grace);
    });
    start_process(self);
    return {
      [self](caf::get_atom) -> caf::result<std::uint64_t> {
        auto& st = self->state;
        if (st.current == server_phase::ready)
          return st.proc->launch_id;
        if (st.current == server_phase::gave_up)
          return make_error(errc::startup_failed, "the fork server of pool " + st.cfg.pool
                                                    + " gave up restarting");
        auto rp = self->make_response_promise();
        st.waiters.push_back(rp);
        return caf::delegated<std::uint64_t>{};
      },
      [self](fs_spawned_atom, std::uint64_t generation, std::int32_t pid, std::string& err) {
        auto& st = self->state;
        if (generation != st.generation)
          return;
        if (pid == 0) {
          st.proc->alive = false;
          on_down(self, make_error(errc::startup_failed,
                                   "cannot start the fork server of pool " + st.cfg.pool + ": "
                                     + err),
                  true);
          return;
        }
        st.pid = pid;
      },
      [self](fs_ready_atom, std::uint64_t generation, std::string& line) {
        if (generation == self->state.generation)
          on_ready_line(self, line);
      },
      [self](fs_exited_atom, std::uint64_t generation, process_exit& how) {
        auto& st = self->state;
        if (generation != st.generation)
          return;
        st.proc->alive = false;
        auto at_start = st.current == server_phase::starting;
        auto why = at_start ? start_failure(self, how.describe() + " before it was ready")
                            : make_error(errc::startup_failed,
                                         "fork server (pid " + std::to_string(how.pid) + ") "
                                           + how.describe());
        on_down(self, std::move(why), at_start);
      },
      [self](fs_timeout_atom, std::uint64_t generation) {
        auto& st = self->state;
        if (generation != st.generation || st.current != server_phase::starting)
          return;
        st.start_error = start_failure(
          self, fmt::format("was not ready within startup_timeout_ms ({} ms): raise it if "
                            "preload() needs longer",
                            std::chrono::duration_cast<std::chrono::milliseconds>(
                              st.cfg.startup_timeout)
                              .count()));
        default_process_launcher().terminate(st.proc->launch_id, server_stop_grace);
      },
      [self](fs_start_atom) {
        if (self->state.current == server_phase::waiting)
          start_process(self);
      },
    };
  });
}

} // namespace snakepit
