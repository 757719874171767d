#include "repeat_call.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "interrupt_watcher.hpp"
#include "latency_histogram.hpp"
#include "snakepit/actors/profile_advice.hpp"
#include "snakepit/observability/diagnosis.hpp"
#include "snakepit/observability/machine_info.hpp"
#include "snakepit/observability/process_cpu.hpp"

namespace snakepit::cli {

namespace {

using std::chrono::steady_clock;

double seconds_since(steady_clock::time_point t0) {
  return std::chrono::duration<double>(steady_clock::now() - t0).count();
}

/// What the progress line reads while the driver actor writes it.
struct progress_counters {
  std::atomic<std::uint32_t> finished{0};
  std::atomic<std::uint32_t> failed{0};
};

struct driver_state {
  std::uint32_t sent = 0;
  bool stopped = false;
  latency_histogram latency;
  /// Sends the next call. Kept in the state (not in a shared_ptr that its
  /// own lambdas capture): it goes with the actor instead of leaking.
  std::function<void()> send_one;
};

} // namespace

std::string reply_json(const execute_reply& reply, bool timings) {
  if (!timings)
    return reply.result.to_json();
  auto us = [](caf::timespan t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t).count();
  };
  return value::make_map({{"result", reply.result},
                          {"python_wall_us", us(reply.python_wall)},
                          {"python_cpu_us", us(reply.python_cpu)},
                          {"worker", reply.worker_id},
                          {"attempts", reply.attempts}})
    .to_json();
}

std::string repeat_outcome::text(const repeat_plan& plan) const {
  auto calls = interrupted ? fmt::format("{} of {} calls", finished, plan.repeat)
                           : fmt::format("{} calls", finished);
  return fmt::format("{}, {} in flight, {} failed{}, {:.3f} s, {:.0f} calls/s, latency p50 "
                     "{:.2f} ms p99 {:.2f} ms",
                     calls, plan.concurrency, failed, failures_by_kind(failures), seconds,
                     finished / std::max(seconds, 1e-9), p50_ms, p99_ms);
}

repeat_outcome call_repeatedly(caf::actor_system& sys, const pool_actor& pool,
                               const repeat_plan& plan_in) {
  auto plan = std::make_shared<const repeat_plan>(plan_in);
  auto out = std::make_shared<repeat_outcome>();
  auto counters = std::make_shared<progress_counters>();
  auto t0 = steady_clock::now();
  caf::scoped_actor waiter{sys};
  auto timeout = std::chrono::milliseconds{plan->timeout_ms};
  auto driver = sys.spawn([plan, out, counters, pool, timeout, t0,
                           reply_to = caf::actor{waiter}](
                            caf::stateful_actor<driver_state>* self) -> caf::behavior {
    // The outcome is complete: hand it over and end (calls still in flight
    // after an interrupt are answered to nobody).
    auto done = [self, out, t0, reply_to] {
      out->seconds = seconds_since(t0);
      out->p50_ms = self->state.latency.quantile(0.5) / 1000;
      out->p99_ms = self->state.latency.quantile(0.99) / 1000;
      self->state.stopped = true;
      self->send(reply_to, true);
      self->quit();
    };
    auto next = [self, plan, out, done] {
      if (out->finished == plan->repeat)
        done();
      else
        self->state.send_one();
    };
    self->state.send_one = [self, plan, out, counters, pool, timeout, next] {
      auto& st = self->state;
      if (st.stopped || st.sent >= plan->repeat)
        return;
      ++st.sent;
      auto sent_at = steady_clock::now();
      auto record = [self, out, counters, sent_at] {
        self->state.latency.add(
          std::chrono::duration<double, std::micro>(steady_clock::now() - sent_at).count());
        ++out->finished;
        ++counters->finished;
      };
      auto req = make_request(plan->tool, plan->args, timeout);
      req.idempotent = plan->idempotent;
      self->request(pool, caf::infinite, execute_atom::value, std::move(req))
        .then(
          [plan, record, next](execute_reply& reply) {
            record();
            if (plan->print_results)
              std::cout << reply_json(reply, plan->timings) << '\n';
            next();
          },
          [plan, out, counters, record, next](caf::error& err) {
            record();
            auto info = describe(err);
            ++out->failed;
            ++counters->failed;
            ++out->failures[info.kind];
            if (plan->print_results)
              print_error(info);
            next();
          });
    };
    for (std::uint32_t i = 0; i < plan->concurrency; ++i)
      self->state.send_one();
    return {[out, done](interrupt_atom) {
      out->interrupted = true;
      done();
    }};
  });
  bool tty = ::isatty(STDERR_FILENO) == 1;
  bool drawn = false;
  {
    auto last_draw = steady_clock::now();
    interrupt_watcher watcher{
      [driver] { caf::anon_send(driver, interrupt_atom::value); },
      [&] {
        // A terminal gets one line redrawn in place; a pipe gets only the summary.
        if (!tty || steady_clock::now() - last_draw < std::chrono::milliseconds{250})
          return;
        last_draw = steady_clock::now();
        auto finished = counters->finished.load();
        std::cerr << fmt::format("\rsnakepit: {}/{} calls, {} failed, {:.0f} calls/s\033[K",
                                 finished, plan->repeat, counters->failed.load(),
                                 finished / std::max(seconds_since(t0), 1e-9))
                  << std::flush;
        drawn = true;
      }};
    waiter->receive([](bool) {});
  }
  if (drawn)
    std::cerr << "\r\033[K" << std::flush;
  std::cout.flush();
  return *out;
}

namespace {

/// One run of the plan on a pool of its own, and what it showed.
struct profile_run {
  std::string label;
  bool started = false;
  double start_ms = 0;
  repeat_outcome outcome;
  std::int64_t rss_bytes = 0;
  profile_advice advice;
};

std::string pool_label(const pool_options& opts) {
  auto workers = fmt::format("{} {}", opts.workers, opts.workers == 1 ? "worker" : "workers");
  return opts.profile == "thread"
           ? fmt::format("thread profile, {} x {} threads", workers, opts.threads)
           : fmt::format("process profile, {}", workers);
}

profile_run run_on_own_pool(const pool_options& opts, const repeat_plan& plan) {
  profile_run run;
  run.label = pool_label(opts);
  host h;
  auto cfg = opts.to_config("call");
  cfg.request_timeout = std::chrono::milliseconds{std::max<std::int64_t>(1, plan.timeout_ms)};
  auto t0 = steady_clock::now();
  auto pool = h.start(cfg);  // prints why when it cannot
  if (!pool)
    return run;
  run.started = true;
  run.start_ms = seconds_since(t0) * 1000;
  auto status_now = [&] {
    pool_status status;
    caf::scoped_actor self{*h.sys};
    self->request(*pool, caf::infinite, status_atom::value)
      .receive([&](pool_status& st) { status = std::move(st); }, [](caf::error&) {});
    return status;
  };
  // The same rules as `diagnose`, over the run: the workers' run-queue waits
  // and their tools' time in it tell starving calls from waiting ones.
  auto before = status_now();
  auto sched_before = read_processes_cpu(worker_pids({before}));
  auto t1 = steady_clock::now();
  run.outcome = call_repeatedly(*h.sys, *pool, plan);
  auto window = std::chrono::duration_cast<caf::timespan>(steady_clock::now() - t1);
  auto after = status_now();
  auto machine = read_machine_info();
  add_worker_window(machine, {before}, {after}, sched_before,
                    read_processes_cpu(worker_pids({after})), window);
  stop_pool(*h.sys, *pool);
  for (auto& w : after.workers)
    run.rss_bytes += std::max<std::int64_t>(0, w.rss_bytes);
  auto observed = observe(after, machine);
  observed.elapsed = window;
  run.advice = advise_profile(observed);
  return run;
}

std::string mib(std::int64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

int exit_code_of(const profile_run& run) {
  if (!run.started)
    return exit_failed;
  if (run.outcome.interrupted)
    return exit_interrupted;
  return run.outcome.failed == 0 ? exit_ok : exit_failed;
}

void print_advice(const profile_advice& advice) {
  log_line(fmt::format("profile advice: {} ({})", to_string(advice.recommended),
                       advice.reason));
}

/// Both profiles with the same slots, one after the other; the measured
/// ratios and the advice of the thread run (which alone can tell calls that
/// wait for I/O from calls that queue for the GIL).
int compare_profiles(const pool_options& opts, const repeat_plan& plan) {
  auto slots = std::min<std::uint32_t>(plan.concurrency, 1024);
  auto process = opts;
  process.profile = "process";
  process.workers = slots;
  process.min_workers = process.max_workers = 0;
  auto thread = opts;
  thread.profile = "thread";
  thread.workers = 1;
  thread.threads = slots;
  thread.min_workers = thread.max_workers = 0;
  log_line(fmt::format("comparing the profiles with {} slots each: {} calls on {}, then on {}",
                       slots, plan.repeat, pool_label(process), pool_label(thread)));
  std::vector<profile_run> runs;
  for (auto* each : {&process, &thread}) {
    runs.push_back(run_on_own_pool(*each, plan));
    auto& run = runs.back();
    if (!run.started || run.outcome.interrupted) {
      if (run.started)
        log_line(fmt::format("{}: {}; interrupted", run.label, run.outcome.text(plan)));
      return exit_code_of(run);
    }
    log_line(fmt::format("{}: {}; started in {:.0f} ms, RSS {}", run.label,
                         run.outcome.text(plan), run.start_ms, mib(run.rss_bytes)));
  }
  auto rate = [](const profile_run& r) { return r.outcome.finished / std::max(r.outcome.seconds, 1e-9); };
  log_line(fmt::format("thread vs process: {:.2f}x the calls/s, {:.2f}x the memory (RSS), "
                       "{:.2f}x the start time",
                       rate(runs[1]) / std::max(rate(runs[0]), 1e-9),
                       static_cast<double>(runs[1].rss_bytes)
                         / static_cast<double>(std::max<std::int64_t>(runs[0].rss_bytes, 1)),
                       runs[1].start_ms / std::max(runs[0].start_ms, 1e-9)));
  print_advice(runs[1].advice);
  return std::max(exit_code_of(runs[0]), exit_code_of(runs[1]));
}

} // namespace

int run_repeat(const pool_options& opts, const repeat_plan& plan, bool compare) {
  if (compare)
    return compare_profiles(opts, plan);
  auto run = run_on_own_pool(opts, plan);
  if (!run.started)
    return exit_failed;
  log_line(fmt::format("{} ({}{})", run.outcome.text(plan), pool_label(opts),
                       run.outcome.interrupted ? "; interrupted" : ""));
  if (!run.outcome.interrupted)
    print_advice(run.advice);
  return exit_code_of(run);
}

} // namespace snakepit::cli
