// throughput_bench: calls/s with 2 workers and 16 callers through the pool,
// against a raw gRPC client driving the same two worker processes at the same
// per-worker concurrency (one call in flight per worker).
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 throughput_bench [--scheduler recommended|default]
//        [--rounds 5] [--slices 3] [--calls 1200] [--tool noop|echo] [--deferred 1|0]
//
// Every round interleaves the variants in `--slices` short slices of `--calls`
// calls each; a round's calls/s is its calls over its wall time. The table
// shows medians over rounds. Host CPU per call is getrusage(RUSAGE_SELF) over
// the calls; worker CPU per call is the two Python processes' utime + stime.
//
// Variants:
//   raw          C++ gRPC callback API, one chain of calls per worker socket (2 in flight)
//   raw+deadline the same with a 60 s gRPC deadline and timeout_ms on every call, as the
//                worker actor sends them
//   pool-16      16 event-based caller actors, one call in flight each, through the pool
//                (2 run, 14 wait in the pool's queue)
//   pool-2       2 event-based callers: the pool without queueing
//   pool-16-scoped  16 threads with a scoped_actor each (blocking request/receive)

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "snakepit/snakepit.hpp"

namespace {

using namespace bench;

/// Voluntary context switches of CAF's timer thread ("caf.clock") so far.
long clock_switches() {
  long total = 0;
  for (auto& [tid, info] : sample_threads(::getpid()))
    if (info.comm == "caf.clock")
      total += info.vol;
  return total;
}

double process_cpu_s(int pid) {
  double total = 0;
  for (auto& [tid, info] : sample_threads(pid))
    total += info.cpu_s;
  return total;
}

struct variant {
  std::string name;
  std::function<run_result(int)> run;
  std::vector<double> rate, p50, p99, host_cpu_us, worker_cpu_us, host_vcs, clock_vcs;
  std::uint64_t failures = 0;
};

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto scheduler = string_option(argc, argv, "--scheduler", "recommended");
  int rounds = int_option(argc, argv, "--rounds", 5);
  int slices = int_option(argc, argv, "--slices", 3);
  int calls = int_option(argc, argv, "--calls", 1200);
  int warmup = int_option(argc, argv, "--warmup", 300);
  auto tool = string_option(argc, argv, "--tool", "noop");
  bool deferred = int_option(argc, argv, "--deferred", 1) != 0;
  const int callers = 16;
  if (scheduler != "recommended" && scheduler != "default") {
    fmt::print(stderr, "--scheduler must be recommended or default\n");
    return 2;
  }
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  if (scheduler == "recommended")
    snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};
  auto policy = caf::to_string(caf::get_or(cfg, "scheduler.policy", caf::atom("stealing")));
  auto sched_label = fmt::format("{} ({}, {} threads)", scheduler, policy,
                                 sys.scheduler().num_workers());

  // Every call leaves timers behind that fire later (the worker's deadline
  // timer after request_timeout, 60 s; the pool's queue-expiry timer after
  // queue_timeout, 10 s by default). With queue_timeout raised to 120 s none
  // fires inside the measured rounds, where it would land on whichever
  // variant happens to run then (the raw floor too); the "deferred work"
  // section measures that cost per call on its own.
  auto started = start_showcase_pool(sys, "tput", 2, [](snakepit::pool_config& pc) {
    pc.queue_timeout = std::chrono::seconds{120};
  });
  if (!started) {
    fmt::print(stderr, "pool failed to start: {}\n", snakepit::describe(started.error()).message);
    return 1;
  }
  auto pool = *started;
  auto sockets = list_worker_sockets(snakepit::runtime_dir());
  auto status = pool_status_of(sys, pool);
  if (sockets.size() != 2 || status.workers.size() != 2) {
    fmt::print(stderr, "expected two workers, found {} sockets\n", sockets.size());
    return 1;
  }
  std::vector<int> worker_pids{status.workers[0].pid, status.workers[1].pid};

  const std::string kib(1024, 'x');
  auto payload = tool == "echo" ? kib : std::string{};
  auto wire = tool == "echo" ? make_wire_request("echo", &kib) : make_wire_request("noop");
  std::vector<std::unique_ptr<snakepit::bridge::v1::Worker::Stub>> stubs;
  std::vector<snakepit::bridge::v1::Worker::Stub*> stub_ptrs;
  for (auto& s : sockets) {
    stubs.push_back(snakepit::bridge::v1::Worker::NewStub(make_channel(s)));
    stub_ptrs.push_back(stubs.back().get());
  }
  auto make = [tool, payload] { return pool_request(tool, payload); };

  std::vector<variant> vs;
  vs.push_back({"raw", [&](int n) { return raw_run(stub_ptrs, wire, n / 2); },
                {}, {}, {}, {}, {}, {}, {}, 0});
  auto wire_timeout = wire;
  wire_timeout.set_timeout_ms(60000);
  vs.push_back({"raw+deadline",
                [&](int n) { return raw_run(stub_ptrs, wire_timeout, n / 2, true); },
                {}, {}, {}, {}, {}, {}, {}, 0});
  vs.push_back({"pool-16",
                [&](int n) {
                  return event_callers_run(sys, pool_sender(pool, make), callers, n / callers);
                },
                {}, {}, {}, {}, {}, {}, {}, 0});
  vs.push_back({"pool-2",
                [&](int n) { return event_callers_run(sys, pool_sender(pool, make), 2, n / 2); },
                {}, {}, {}, {}, {}, {}, {}, 0});
  vs.push_back({"pool-16-scoped",
                [&](int n) {
                  std::vector<std::thread> threads;
                  std::vector<run_result> parts(callers);
                  auto t0 = clk::now();
                  for (int c = 0; c < callers; ++c)
                    threads.emplace_back([&, c] {
                      caf::scoped_actor self{sys};
                      auto& part = parts[static_cast<size_t>(c)];
                      for (int i = 0; i < n / callers; ++i) {
                        auto c0 = clk::now();
                        self->request(pool, caf::infinite, snakepit::execute_atom::value, make())
                          .receive([](snakepit::execute_reply&) {},
                                   [&](caf::error&) { ++part.failures; });
                        part.lat_us.push_back(us_between(c0, clk::now()));
                      }
                    });
                  for (auto& t : threads)
                    t.join();
                  return merge_runs(parts, ms_between(t0, clk::now()) / 1000.0);
                },
                {}, {}, {}, {}, {}, {}, {}, 0});

  fmt::print("throughput_bench: scheduler {}, tool {}, 2 workers, {} rounds x {} slices x {} "
             "calls per variant\n",
             sched_label, tool, rounds, slices, calls);
  for (auto& v : vs)
    v.run(warmup);
  auto t_all = clk::now();
  for (int r = 0; r < rounds; ++r) {
    std::vector<run_result> acc(vs.size());
    std::vector<double> host_cpu(vs.size(), 0), worker_cpu(vs.size(), 0);
    std::vector<long> host_vcs(vs.size(), 0), clock_vcs(vs.size(), 0);
    for (int s = 0; s < slices; ++s) {
      for (size_t k = 0; k < vs.size(); ++k) {
        double w0 = process_cpu_s(worker_pids[0]) + process_cpu_s(worker_pids[1]);
        auto c0 = clock_switches();
        auto h0 = proc_usage::now();
        auto res = vs[k].run(calls);
        auto used = proc_usage::now() - h0;
        clock_vcs[k] += clock_switches() - c0;
        double w1 = process_cpu_s(worker_pids[0]) + process_cpu_s(worker_pids[1]);
        host_cpu[k] += used.cpu_s;
        host_vcs[k] += used.vol_switches;
        worker_cpu[k] += w1 - w0;
        acc[k].lat_us.insert(acc[k].lat_us.end(), res.lat_us.begin(), res.lat_us.end());
        acc[k].wall_s += res.wall_s;
        acc[k].calls += res.calls;
        acc[k].failures += res.failures;
      }
    }
    for (size_t k = 0; k < vs.size(); ++k) {
      auto n = static_cast<double>(acc[k].calls);
      vs[k].rate.push_back(acc[k].calls_per_s());
      vs[k].p50.push_back(percentile(acc[k].lat_us, 50));
      vs[k].p99.push_back(percentile(acc[k].lat_us, 99));
      vs[k].host_cpu_us.push_back(host_cpu[k] * 1e6 / n);
      vs[k].worker_cpu_us.push_back(worker_cpu[k] * 1e6 / n);
      vs[k].host_vcs.push_back(static_cast<double>(host_vcs[k]) / n);
      vs[k].clock_vcs.push_back(static_cast<double>(clock_vcs[k]) / n);
      vs[k].failures += acc[k].failures;
    }
  }
  auto total_s = ms_between(t_all, clk::now()) / 1000.0;

  fmt::print("\nPer variant: medians over {} rounds\n", rounds);
  table t({"variant", "calls/s", "p50 us", "p99 us", "host CPU us/call",
           "worker CPU us/call", "host vol.sw/call", "timer thread sw/call", "failed"});
  for (auto& v : vs)
    t.add({v.name, fixed(median(v.rate)), fixed(median(v.p50)), fixed(median(v.p99)),
           fixed(median(v.host_cpu_us), 1), fixed(median(v.worker_cpu_us), 1),
           fixed(median(v.host_vcs), 2), fixed(median(v.clock_vcs), 2),
           std::to_string(v.failures)});
  t.print();

  // Deferred work: every call leaves timers behind (the worker's deadline timer,
  // and the pool's queue-expiry timer for each queued request). With the
  // default 60 s deadline they fire a minute later; here the calls carry a 1 s
  // deadline, so their timers fire during the idle window that follows.
  double deferred_cpu_us = 0, deferred_clock = 0, deferred_rss_kib = 0;
  if (deferred) {
    auto rss_kib = [] {
      std::ifstream in{"/proc/self/status"};
      std::string line;
      while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0)
          return std::atof(line.c_str() + 6);
      return 0.0;
    };
    auto make_1s = [tool, payload] {
      auto req = pool_request(tool, payload);
      req.deadline = caf::make_timestamp() + std::chrono::seconds{1};
      return req;
    };
    std::this_thread::sleep_for(std::chrono::milliseconds{1500});  // earlier timers out of the way
    const int burst = 4800;
    auto rss0 = rss_kib();
    auto res = event_callers_run(sys, pool_sender(pool, make_1s), callers, burst / callers);
    auto rss1 = rss_kib();
    auto c0 = clock_switches();
    auto h0 = proc_usage::now();
    std::this_thread::sleep_for(std::chrono::milliseconds{1500});
    auto used = proc_usage::now() - h0;
    auto n = static_cast<double>(res.calls);
    deferred_cpu_us = used.cpu_s * 1e6 / n;
    deferred_clock = static_cast<double>(clock_switches() - c0) / n;
    deferred_rss_kib = rss1 - rss0;
    fmt::print("\nDeferred work: {} pool-16 calls with a 1 s deadline, then 1.5 s without calls "
               "(the calls' timers fire)\n",
               res.calls);
    table dt({"what", "value"});
    dt.add({"host CPU in the idle window, per call (us)", fixed(deferred_cpu_us, 1)});
    dt.add({"timer thread wake-ups in the idle window, per call", fixed(deferred_clock, 2)});
    dt.add({"host RSS growth during the burst (KiB)", fixed(deferred_rss_kib)});
    dt.print();
  }

  auto& raw = vs[0];
  auto& rawd = vs[1];
  auto& p16 = vs[2];
  auto& p2 = vs[3];
  auto& p16s = vs[4];
  double ratio = median(p16.rate) / median(raw.rate);
  fmt::print("\nRatios of medians (scheduler {})\n", sched_label);
  table rt({"ratio", "value", "target", "verdict"});
  rt.add({"pool-16 calls/s / raw calls/s", fixed(ratio, 2), ">= 0.8", verdict(ratio >= 0.8)});
  rt.add({"pool-2 calls/s / raw calls/s", fixed(median(p2.rate) / median(raw.rate), 2),
          "report", ""});
  rt.add({"pool-16-scoped calls/s / raw calls/s",
          fixed(median(p16s.rate) / median(raw.rate), 2), "report", ""});
  rt.add({"raw+deadline calls/s / raw calls/s", fixed(median(rawd.rate) / median(raw.rate), 2),
          "report", ""});
  rt.add({"host CPU per call, pool-16 / raw",
          fixed(median(p16.host_cpu_us) / median(raw.host_cpu_us), 2), "report", ""});
  if (deferred)
    rt.add({"host CPU per call incl. deferred timer work, pool-16 / raw",
            fixed((median(p16.host_cpu_us) + deferred_cpu_us) / median(raw.host_cpu_us), 2),
            "report", ""});
  rt.add({"worker CPU per call, pool-16 / raw",
          fixed(median(p16.worker_cpu_us) / median(raw.worker_cpu_us), 2), "report", ""});
  rt.print();

  auto tag = fmt::format("throughput.{}.{}", scheduler, tool);
  for (auto& v : vs) {
    result_line(tag, v.name + "_calls_per_s", median(v.rate));
    result_line(tag, v.name + "_host_cpu_us", median(v.host_cpu_us));
    result_line(tag, v.name + "_worker_cpu_us", median(v.worker_cpu_us));
    result_line(tag, v.name + "_p50_us", median(v.p50));
  }
  result_line(tag, "pool16_over_raw", ratio);
  if (deferred) {
    result_line(tag, "deferred_cpu_us", deferred_cpu_us);
    result_line(tag, "deferred_clock_sw", deferred_clock);
  }
  fmt::print("\n(measured in {:.1f} s)\n", total_s);
  stop_pool_within(sys, pool);
  return finish(0);
}
