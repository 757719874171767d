// autoscale_bench: a bursty load (idle, then 16 callers for a while, then
// idle) on an autoscaled pool (min 1, max 8) against fixed pools of 8 and of
// 1, one after another in each round: p99 queue wait, calls served, and the
// worker-seconds each pool kept alive (sampled every 100 ms).
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 autoscale_bench [--rounds 3] [--burst-ms 10000]
//                                                   [--idle-ms 3000] [--scale-up-wait-ms 200]
//
// Calls are `sleep(50 ms)`: waiting, not CPU, so more workers help on this
// 2-core machine; the autoscaled pool uses idle_timeout 1.5 s so that it
// shrinks within the idle tail.

#include <atomic>
#include <mutex>
#include <thread>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "snakepit/snakepit.hpp"

using namespace bench;
using namespace std::chrono_literals;

namespace {

struct burst_result {
  std::vector<double> queue_ms;
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;
  double worker_seconds = 0;
  std::uint32_t peak = 0;
};

/// Counts the pool's live workers every 100 ms until `stop`.
void sample_workers(caf::actor_system& sys, const snakepit::pool_actor& pool,
                    const std::atomic<bool>& stop, burst_result& out) {
  caf::scoped_actor self{sys};
  auto last = clk::now();
  while (!stop) {
    std::this_thread::sleep_for(100ms);
    std::uint32_t live = 0;
    self->request(pool, 10s, snakepit::status_atom::value)
      .receive([&](snakepit::pool_status& st) { live = static_cast<std::uint32_t>(st.workers.size()); },
               [](caf::error&) {});
    auto now = clk::now();
    out.worker_seconds += ms_between(last, now) / 1000.0 * live;
    out.peak = std::max(out.peak, live);
    last = now;
  }
}

burst_result run_burst(caf::actor_system& sys, const snakepit::pool_actor& pool, int callers,
                       clk::duration idle, clk::duration burst) {
  burst_result out;
  std::mutex mtx;
  std::atomic<bool> stop{false};
  std::thread sampler{[&] { sample_workers(sys, pool, stop, out); }};
  std::this_thread::sleep_for(idle);
  auto send = [pool, &mtx, &out](caf::event_based_actor* self, auto k) {
    self->request(pool, caf::infinite, snakepit::execute_atom::value,
                  snakepit::make_request("sleep", {{"seconds", 0.05}}))
      .then(
        [k, &mtx, &out](snakepit::execute_reply& r) mutable {
          {
            std::lock_guard<std::mutex> guard{mtx};
            out.queue_ms.push_back(
              std::chrono::duration<double, std::milli>(r.queued).count());
          }
          k(true);
        },
        [k](caf::error&) mutable { k(false); });
  };
  auto got = event_callers_for(sys, send, callers, burst);
  out.calls = got.calls;
  out.failures = got.failures;
  std::this_thread::sleep_for(idle);
  stop = true;
  sampler.join();
  return out;
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 3);
  auto burst = std::chrono::milliseconds{int_option(argc, argv, "--burst-ms", 10000)};
  auto idle = std::chrono::milliseconds{int_option(argc, argv, "--idle-ms", 3000)};
  int scale_up_wait = int_option(argc, argv, "--scale-up-wait-ms", 200);
  python_from_env();
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};
  auto elastic = start_showcase_pool(sys, "elastic", 1, [&](snakepit::pool_config& pc) {
    pc.autoscale.min_size = 1;
    pc.autoscale.max_size = 8;
    pc.autoscale.idle_timeout = 1500ms;
    pc.autoscale.scale_up_wait = std::chrono::milliseconds{scale_up_wait};
    pc.autoscale.down_cooldown = 300ms;
    pc.queue_timeout = 120s;
  });
  auto eight = start_showcase_pool(sys, "fixed8", 8, [](snakepit::pool_config& pc) {
    pc.queue_timeout = 120s;
  });
  auto one = start_showcase_pool(sys, "fixed1", 1, [](snakepit::pool_config& pc) {
    pc.queue_timeout = 120s;
  });
  if (!elastic || !eight || !one) {
    fmt::print(stderr, "a pool failed to start\n");
    return 1;
  }
  const int callers = 16;
  std::vector<std::string> names{"autoscaled 1..8", "fixed 8", "fixed 1"};
  std::vector<snakepit::pool_actor> pools{*elastic, *eight, *one};
  std::vector<std::vector<burst_result>> results(pools.size());
  fmt::print("autoscale_bench: {} callers of sleep(50 ms) for {} ms between {} ms idle, {} "
             "rounds; scale_up_wait {} ms\n",
             callers, burst.count(), idle.count(), rounds, scale_up_wait);
  for (int r = 0; r < rounds; ++r)
    for (std::size_t k = 0; k < pools.size(); ++k)
      results[k].push_back(run_burst(sys, pools[k], callers, idle, burst));

  table t({"pool", "calls", "p50 queue ms", "p99 queue ms", "worker-seconds", "peak workers",
           "failures"});
  std::vector<double> p99s, wss;
  for (std::size_t k = 0; k < pools.size(); ++k) {
    std::vector<double> p50, p99, ws, calls, peak;
    std::uint64_t failures = 0;
    for (auto& b : results[k]) {
      p50.push_back(percentile(b.queue_ms, 50));
      p99.push_back(percentile(b.queue_ms, 99));
      ws.push_back(b.worker_seconds);
      calls.push_back(static_cast<double>(b.calls));
      peak.push_back(b.peak);
      failures += b.failures;
    }
    t.add({names[k], fixed(median(calls), 0), fixed(median(p50), 1), fixed(median(p99), 1),
           fixed(median(ws), 1), fixed(median(peak), 0), std::to_string(failures)});
    p99s.push_back(median(p99));
    wss.push_back(median(ws));
  }
  t.print();
  fmt::print("\nautoscaled vs fixed 8: p99 queue wait {} ms vs {} ms; worker-seconds {:.2f}x\n",
             fixed(p99s[0], 1), fixed(p99s[1], 1), wss[0] / wss[1]);
  fmt::print("autoscaled vs fixed 1: p99 queue wait {:.2f}x lower\n",
             p99s[2] / std::max(p99s[0], 0.001));
  result_line("autoscale", "p99_queue_ms", p99s[0]);
  result_line("autoscale", "worker_seconds_vs_fixed8", wss[0] / wss[1]);
  for (auto& p : pools)
    stop_pool_within(sys, p, std::chrono::seconds{20});
  return finish(0);
}
