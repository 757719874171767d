// recovery_bench: a kill storm on a pool under load. Every ~150 ms a random
// worker of a 4-worker pool is SIGKILLed, for `--storm-ms`, while 8 callers
// keep `sleep(20 ms)` calls in flight. Reports how much of the time the pool
// had all its workers ready, and none, and what the callers got (every
// failure must be a typed worker error; none may hang).
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 recovery_bench [--storm-ms 10000]

#include <signal.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "snakepit/snakepit.hpp"

using namespace bench;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto storm = std::chrono::milliseconds{int_option(argc, argv, "--storm-ms", 10000)};
  python_from_env();
  snakepit::set_log_level(snakepit::log_level::error);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};
  const std::uint32_t size = 4;
  auto pool = start_showcase_pool(sys, "storm", size, [](snakepit::pool_config& pc) {
    pc.intensity.max_restarts = 100000;  // the storm must not make it give up
    pc.breaker.threshold = 0;  // recovery is measured, not the breaker's refusals
    pc.intensity.period = std::chrono::seconds{1};
    pc.queue_timeout = std::chrono::seconds{60};
  });
  if (!pool) {
    fmt::print(stderr, "the pool failed to start\n");
    return 1;
  }
  std::atomic<bool> stop{false};
  // Samples the ready workers every 20 ms.
  std::map<std::uint32_t, int> ready_samples;
  std::thread sampler{[&] {
    caf::scoped_actor self{sys};
    while (!stop) {
      self->request(*pool, 10s, snakepit::status_atom::value)
        .receive([&](snakepit::pool_status& st) { ++ready_samples[st.ready]; },
                 [](caf::error&) {});
      std::this_thread::sleep_for(20ms);
    }
  }};
  // Kills a random ready worker every ~150 ms.
  int kills = 0;
  std::thread killer{[&] {
    caf::scoped_actor self{sys};
    std::minstd_rand rng{42};
    auto until = clk::now() + storm;
    while (clk::now() < until) {
      std::this_thread::sleep_for(150ms);
      std::vector<int> pids;
      self->request(*pool, 10s, snakepit::status_atom::value)
        .receive(
          [&](snakepit::pool_status& st) {
            for (auto& w : st.workers)
              if (w.pid > 0)
                pids.push_back(w.pid);
          },
          [](caf::error&) {});
      if (pids.empty())
        continue;
      ::kill(pids[rng() % pids.size()], SIGKILL);
      ++kills;
    }
  }};
  std::map<std::string, int> outcomes;
  std::mutex mtx;
  auto send = [p = *pool, &outcomes, &mtx](caf::event_based_actor* self, auto k) {
    self->request(p, caf::infinite, snakepit::execute_atom::value,
                  snakepit::make_request("sleep", {{"seconds", 0.02}}, std::chrono::seconds{30}))
      .then(
        [k, &outcomes, &mtx](snakepit::execute_reply&) mutable {
          {
            std::lock_guard<std::mutex> guard{mtx};
            ++outcomes["ok"];
          }
          k(true);
        },
        [k, &outcomes, &mtx](caf::error& e) mutable {
          {
            std::lock_guard<std::mutex> guard{mtx};
            ++outcomes[snakepit::describe(e).kind];
          }
          k(false);
        });
  };
  auto load = event_callers_for(sys, send, 8, storm);
  killer.join();
  stop = true;
  sampler.join();
  int samples = 0;
  for (auto& [n, count] : ready_samples)
    samples += count;
  auto share = [&](auto pred) {
    int hits = 0;
    for (auto& [n, count] : ready_samples)
      if (pred(n))
        hits += count;
    return samples > 0 ? 100.0 * hits / samples : 0.0;
  };
  double full = share([&](std::uint32_t n) { return n >= size; });
  double none = share([](std::uint32_t n) { return n == 0; });
  double most = share([&](std::uint32_t n) { return n >= size - 1; });
  fmt::print("recovery_bench: {} kills of a random worker of {} over {} ms, 8 callers of "
             "sleep(20 ms)\n",
             kills, size, storm.count());
  table t({"measure", "value"});
  t.add({"time with all workers ready", fixed(full, 1) + " %"});
  t.add({"time with at least all but one ready", fixed(most, 1) + " %"});
  t.add({"time with no worker ready", fixed(none, 1) + " %"});
  for (auto& [kind, n] : outcomes)
    t.add({"calls answered " + kind, std::to_string(n)});
  t.add({"calls made", std::to_string(load.calls)});
  t.print();
  bool typed = true;
  for (auto& [kind, n] : outcomes)
    typed = typed && (kind == "ok" || kind == "worker_crashed" || kind == "worker_replaced");
  fmt::print("every failure typed as a worker error: {}\n", typed ? "yes" : "NO");
  result_line("recovery", "full_strength_pct", full);
  result_line("recovery", "none_ready_pct", none);
  stop_pool_within(sys, *pool, std::chrono::seconds{20});
  return finish(typed ? 0 : 1);
}
