#pragma once

// Actor-side helpers shared by the benchmarks: event-based callers that drive
// calls one after another with a timestamp per call, pool start and stop.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_common.hpp"
#include "snakepit/snakepit.hpp"

namespace bench {

// -- event-based callers --------------------------------------------------------------

struct caller_run {
  int calls = 0;
  int done = 0;
  clk::time_point stop = clk::time_point::max();  // no call starts at or after it
  std::vector<double> lat;
  std::uint64_t failures = 0;
  std::promise<void> finished;
};

/// Sends one call with `send(self, k)`, where `k(ok)` is called from the
/// response handler; then the next, until `run->calls` are done or
/// `run->stop` has come.
template <class Send>
void next_call(caf::event_based_actor* self, std::shared_ptr<caller_run> run, Send send) {
  auto t0 = clk::now();
  if (run->done == run->calls || t0 >= run->stop) {
    run->finished.set_value();
    self->quit();
    return;
  }
  send(self, [self, run, send, t0](bool ok) {
    thread_roles::get().mark("caf-sched");
    run->lat.push_back(us_between(t0, clk::now()));
    if (!ok)
      ++run->failures;
    ++run->done;
    next_call(self, run, send);
  });
}

/// `callers` event-based actors, each making `calls_each` calls one after
/// another; returns when all are done (wall time from the first spawn). With
/// `slice`, the callers start no call once `slice` has passed (calls in
/// flight then are waited for and counted).
template <class Send>
run_result event_callers_run(caf::actor_system& sys, Send send, int callers, int calls_each,
                             std::optional<clk::duration> slice = std::nullopt) {
  std::vector<std::shared_ptr<caller_run>> runs;
  std::vector<std::future<void>> finished;
  for (int i = 0; i < callers; ++i) {
    auto run = std::make_shared<caller_run>();
    run->calls = calls_each;
    if (!slice)
      run->lat.reserve(static_cast<size_t>(calls_each));
    finished.push_back(run->finished.get_future());
    runs.push_back(std::move(run));
  }
  auto t0 = clk::now();
  if (slice)
    for (auto& run : runs)
      run->stop = t0 + *slice;
  for (auto& run : runs)
    sys.spawn([run, send](caf::event_based_actor* self) { next_call(self, run, send); });
  for (auto& f : finished)
    f.wait();
  run_result out;
  out.wall_s = ms_between(t0, clk::now()) / 1000.0;
  for (auto& run : runs) {
    out.lat_us.insert(out.lat_us.end(), run->lat.begin(), run->lat.end());
    out.failures += run->failures;
  }
  out.calls = out.lat_us.size();
  return out;
}

template <class Send>
run_result event_caller_run(caf::actor_system& sys, Send send, int calls) {
  return event_callers_run(sys, send, 1, calls);
}

/// `callers` event-based actors keeping one call in flight each for `slice`.
template <class Send>
run_result event_callers_for(caf::actor_system& sys, Send send, int callers,
                             clk::duration slice) {
  return event_callers_run(sys, send, callers, std::numeric_limits<int>::max(), slice);
}

/// A request of the pool path for `tool` (`echo` gets the 1 KiB string).
inline snakepit::execute_request pool_request(const std::string& tool, const std::string& payload) {
  if (payload.empty())
    return snakepit::make_request(tool);
  return snakepit::make_request(tool, snakepit::value::map{{"value", snakepit::value{payload}}});
}

/// Starts a pool of the showcase adapter with `size` workers (blocking).
/// `tweak`, when given, may change the configuration first.
inline caf::expected<snakepit::pool_actor>
start_showcase_pool(caf::actor_system& sys, const std::string& name, std::uint32_t size,
                    const std::function<void(snakepit::pool_config&)>& tweak = {}) {
  snakepit::pool_config pc;
  pc.name = name;
  pc.adapter = "snakepit_bridge.showcase.ShowcaseAdapter";
  pc.size = size;
  pc.python = python_from_env();
  if (tweak)
    tweak(pc);
  return snakepit::start_pool(sys, pc);
}

/// Set when a pool did not stop in time: the benchmark then ends with
/// `finish()` instead of waiting for its actors at shutdown.
inline bool& unclean_shutdown() {
  static bool flag = false;
  return flag;
}

/// Stops a pool and waits until it is gone, at most `limit`; a pool that
/// takes longer is killed and reported on stderr (a benchmark must not hang).
inline bool stop_pool_within(caf::actor_system& sys, const snakepit::pool_actor& pool,
                      std::chrono::seconds limit = std::chrono::seconds{15}) {
  caf::scoped_actor self{sys};
  self->monitor(pool);
  self->send_exit(pool, caf::exit_reason::user_shutdown);
  bool down = false;
  self->receive([&](const caf::down_msg&) { down = true; },
                caf::after(limit) >> [] {});
  if (!down) {
    fmt::print(stderr, "warning: the pool did not stop within {} s; killed\n", limit.count());
    self->send_exit(pool, caf::exit_reason::kill);
    unclean_shutdown() = true;
  }
  return down;
}

/// Ends the benchmark: flushes its output; after an unclean pool stop, exits at
/// once (worker processes die with their lifeline) rather than wait for actors.
inline int finish(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (unclean_shutdown())
    std::_Exit(code);
  return code;
}

/// The pool's status (blocking).
inline snakepit::pool_status pool_status_of(caf::actor_system& sys,
                                            const snakepit::pool_actor& pool) {
  caf::scoped_actor self{sys};
  snakepit::pool_status out;
  self->request(pool, caf::infinite, snakepit::status_atom::value)
    .receive([&](snakepit::pool_status& st) { out = std::move(st); }, [](caf::error&) {});
  return out;
}

/// Sends `make()` to the pool and calls `k(ok)` with the outcome: the `send`
/// argument of `next_call` for pool calls.
template <class Make>
auto pool_sender(snakepit::pool_actor pool, Make make) {
  return [pool, make](caf::event_based_actor* self, auto k) {
    self->request(pool, caf::infinite, snakepit::execute_atom::value, make())
      .then([k](snakepit::execute_reply&) mutable { k(true); },
            [k](caf::error&) mutable { k(false); });
  };
}

} // namespace bench
