// recycle_bench: latency and throughput under steady load while workers are
// recycled every ~second, against the same pool without recycling, same run.
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 recycle_bench [--rounds 5] [--slice-ms 3000]
//        [--callers 8] [--tool sleep|noop] [--sleep-ms 2] [--ttl-ms 1000]
//        [--interval-ms 100] [--warmup-ms 300]
//
// Variants (2 process workers of the showcase adapter each, recommended scheduler):
//   no-recycle  recycling off (the default)
//   recycle     worker_ttl = --ttl-ms, lifecycle_interval = --interval-ms,
//               max_concurrent_recycles = 1 (default): each worker is drained and
//               replaced about every ttl + its replacement's start-up
//
// Each round starts a fresh pool per variant (order alternating from round to
// round), warms it up for --warmup-ms (unrecorded), then --callers event-based
// actors keep one call in flight each for --slice-ms; calls still in flight at
// the end are waited for and counted. calls/s = calls / wall time of the slice.
// Recycles are the growth of pool_status.recycles over the measured slice.
// Tables show medians over rounds; ratios are ratios of medians. Exits 1 if any
// call failed (or if the recycle variant recycled nothing: nothing measured).

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "snakepit/snakepit.hpp"

namespace {

using namespace bench;

/// One caller of a time slice: calls one after another until `stop`.
struct timed_run {
  clk::time_point stop;
  std::vector<double> lat;
  std::uint64_t failures = 0;
  std::promise<void> finished;
};

template <class Send>
void next_timed_call(caf::event_based_actor* self, std::shared_ptr<timed_run> run, Send send) {
  auto t0 = clk::now();
  if (t0 >= run->stop) {
    run->finished.set_value();
    self->quit();
    return;
  }
  send(self, [self, run, send, t0](bool ok) {
    run->lat.push_back(us_between(t0, clk::now()));
    if (!ok)
      ++run->failures;
    next_timed_call(self, run, send);
  });
}

/// `callers` event-based actors keeping one call in flight each for `slice`.
template <class Send>
run_result timed_callers_run(caf::actor_system& sys, Send send, int callers,
                             std::chrono::milliseconds slice) {
  std::vector<std::shared_ptr<timed_run>> runs;
  std::vector<std::future<void>> finished;
  auto t0 = clk::now();
  for (int i = 0; i < callers; ++i) {
    auto run = std::make_shared<timed_run>();
    run->stop = t0 + slice;
    finished.push_back(run->finished.get_future());
    runs.push_back(std::move(run));
  }
  for (auto& run : runs)
    sys.spawn([run, send](caf::event_based_actor* self) { next_timed_call(self, run, send); });
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

std::uint64_t total_recycles(const snakepit::pool_status& st) {
  std::uint64_t n = 0;
  for (auto& [reason, count] : st.recycles)
    n += count;
  return n;
}

struct variant {
  std::string name;
  bool recycle = false;
  std::vector<double> rate, p50, p99, recycles;
  std::uint64_t failures = 0;
  std::uint64_t calls = 0;
};

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 5);
  auto slice = std::chrono::milliseconds{int_option(argc, argv, "--slice-ms", 3000)};
  auto warmup = std::chrono::milliseconds{int_option(argc, argv, "--warmup-ms", 300)};
  int callers = int_option(argc, argv, "--callers", 8);
  auto tool = string_option(argc, argv, "--tool", "sleep");
  int sleep_ms = int_option(argc, argv, "--sleep-ms", 2);
  auto ttl = std::chrono::milliseconds{int_option(argc, argv, "--ttl-ms", 1000)};
  auto interval = std::chrono::milliseconds{int_option(argc, argv, "--interval-ms", 100)};
  if (tool != "sleep" && tool != "noop") {
    fmt::print(stderr, "--tool must be sleep or noop\n");
    return 2;
  }
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};

  auto make = [tool, sleep_ms] {
    if (tool == "noop")
      return snakepit::make_request("noop");
    return snakepit::make_request(
      "sleep", snakepit::value::map{{"seconds", snakepit::value{sleep_ms / 1000.0}}});
  };
  std::vector<variant> vs{{"no-recycle", false, {}, {}, {}, {}, 0, 0},
                          {"recycle", true, {}, {}, {}, {}, 0, 0}};

  auto tool_label = tool == "sleep" ? fmt::format("sleep({} ms)", sleep_ms) : tool;
  fmt::print("recycle_bench: 2 process workers, {} callers, tool {}, {} rounds x {} ms per "
             "variant; recycle: worker_ttl {} ms, lifecycle_interval {} ms\n",
             callers, tool_label, rounds, slice.count(), ttl.count(), interval.count());
  table per_round({"round", "variant", "calls/s", "p50 us", "p99 us", "max us", "recycles",
                   "failed"});
  auto t_all = clk::now();
  int code = 0;
  for (int r = 0; r < rounds && code == 0; ++r) {
    for (int j = 0; j < 2; ++j) {
      auto& v = vs[static_cast<size_t>((r + j) % 2)];
      auto started = start_showcase_pool(sys, "recycle", 2, [&](snakepit::pool_config& pc) {
        if (v.recycle) {
          pc.worker_ttl = ttl;
          pc.lifecycle_interval = interval;
        }
      });
      if (!started) {
        fmt::print(stderr, "pool failed to start: {}\n",
                   snakepit::describe(started.error()).message);
        return finish(1);
      }
      auto pool = *started;
      auto send = pool_sender(pool, make);
      timed_callers_run(sys, send, callers, warmup);
      auto st0 = pool_status_of(sys, pool);
      auto res = timed_callers_run(sys, send, callers, slice);
      auto st1 = pool_status_of(sys, pool);
      auto recycles = total_recycles(st1) - total_recycles(st0);
      // Failures as the callers saw them, and as the pool counted them.
      auto failed = std::max<std::uint64_t>(res.failures, st1.failed - st0.failed);
      stop_pool_within(sys, pool);
      v.rate.push_back(res.calls_per_s());
      v.p50.push_back(percentile(res.lat_us, 50));
      v.p99.push_back(percentile(res.lat_us, 99));
      v.recycles.push_back(static_cast<double>(recycles));
      v.failures += failed;
      v.calls += res.calls;
      per_round.add({std::to_string(r + 1), v.name, fixed(res.calls_per_s()),
                     fixed(percentile(res.lat_us, 50)), fixed(percentile(res.lat_us, 99)),
                     fixed(percentile(res.lat_us, 100)), std::to_string(recycles),
                     std::to_string(failed)});
      if (unclean_shutdown()) {
        code = 1;
        break;
      }
    }
  }
  auto total_s = ms_between(t_all, clk::now()) / 1000.0;
  fmt::print("\nPer round\n");
  per_round.print();

  fmt::print("\nPer variant: medians over {} rounds\n", rounds);
  table t({"variant", "calls/s", "p50 us", "p99 us", "recycles/slice", "calls", "failed"});
  for (auto& v : vs)
    t.add({v.name, fixed(median(v.rate)), fixed(median(v.p50)), fixed(median(v.p99)),
           fixed(median(v.recycles), 1), std::to_string(v.calls), std::to_string(v.failures)});
  t.print();

  auto& a = vs[0];
  auto& b = vs[1];
  std::uint64_t failed = a.failures + b.failures;
  fmt::print("\nRatios of medians, recycle / no-recycle\n");
  table rt({"ratio", "value", "target", "verdict"});
  rt.add({"calls/s", fixed(median(b.rate) / median(a.rate), 2), "report", ""});
  rt.add({"p50", fixed(median(b.p50) / median(a.p50), 2), "report", ""});
  rt.add({"p99", fixed(median(b.p99) / median(a.p99), 2), "report", ""});
  rt.add({"failed calls (both variants)", std::to_string(failed), "0", verdict(failed == 0)});
  rt.print();

  auto tag = fmt::format("recycle.{}", tool);
  for (auto& v : vs) {
    result_line(tag, v.name + "_calls_per_s", median(v.rate));
    result_line(tag, v.name + "_p50_us", median(v.p50));
    result_line(tag, v.name + "_p99_us", median(v.p99));
    result_line(tag, v.name + "_recycles", median(v.recycles));
  }
  result_line(tag, "rate_ratio", median(b.rate) / median(a.rate));
  result_line(tag, "p50_ratio", median(b.p50) / median(a.p50));
  result_line(tag, "p99_ratio", median(b.p99) / median(a.p99));
  result_line(tag, "failed", static_cast<double>(failed));
  fmt::print("\n(measured in {:.1f} s)\n", total_s);

  if (failed > 0) {
    fmt::print(stderr, "recycle_bench: {} calls failed\n", failed);
    code = 1;
  }
  if (b.recycles.empty() || median(b.recycles) < 1) {
    fmt::print(stderr, "recycle_bench: the recycle variant recycled nothing\n");
    code = 1;
  }
  return finish(code);
}
