// fast_path_bench: small calls through the fast path (batches over one stream
// per worker, pipelining) against Python's own multiprocessing.Pool(2) and
// against the previous release's path (one unary gRPC call per request), in
// the same run, interleaved.
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 fast_path_bench [--rounds 5] [--calls 6000]
//        [--seq-calls 1500] [--burn-calls 1500] [--budget-ms 2]
//
// Variants (2 process workers each; every round runs each once, in turn):
//   batches-16   16 event-based callers, one no-op call in flight each, default pool
//   unary-16     the same through a pool with transport = "unary", pipeline_depth = 0
//   mp-16        multiprocessing.Pool(2), 16 apply_async(noop) in flight (bench/mp_pool_slice.py)
//   batches-1    one caller, one call at a time (latency), default pool
//   unary-1      the same, unary pool
//   raw-1        a raw gRPC callback client, one unary Execute at a time, same kind of worker
//   burn-16      16 callers, cpu_burn(1 ms) (pure-Python CPU), default pool
//
// Host CPU is getrusage of this process; Python CPU is the pool's two worker
// processes (all threads). For mp-16 the helper reports both itself.

#include <unistd.h>

#include <string>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "snakepit/actors/detail/run_captured.hpp"
#include "snakepit/snakepit.hpp"

namespace {

using namespace bench;

struct sample {
  double rate = 0, p50 = 0, host_us = 0, python_us = 0;
};

struct variant {
  std::string name;
  std::vector<sample> rounds;

  double med(double sample::*field) const {
    std::vector<double> xs;
    for (auto& s : rounds)
      xs.push_back(s.*field);
    return median(xs);
  }
};

/// One run of bench/mp_pool_slice.py (arguments passed as they are, no
/// shell); false when it failed.
bool mp_slice(const std::string& python, int calls, sample& out) {
  auto run = snakepit::detail::run_captured(
    python, {std::string{SNAKEPIT_BENCH_DIR} + "/mp_pool_slice.py", "--calls",
             std::to_string(calls), "--in-flight", "16"},
    true, 1u << 16);
  if (!run || run->exit_code != 0)
    return false;
  auto doc = nlohmann::json::parse(snakepit::detail::last_line(run->output), nullptr, false);
  if (!doc.is_object())
    return false;
  for (auto key : {"calls", "wall_s", "host_cpu_s", "worker_cpu_s"})
    if (!doc.contains(key) || !doc[key].is_number())
      return false;
  double n = doc["calls"].get<double>();
  out.rate = n / doc["wall_s"].get<double>();
  out.host_us = doc["host_cpu_s"].get<double>() * 1e6 / n;
  out.python_us = doc["worker_cpu_s"].get<double>() * 1e6 / n;
  return true;
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 5);
  int calls = int_option(argc, argv, "--calls", 6000);
  int seq_calls = int_option(argc, argv, "--seq-calls", 1500);
  int burn_calls = int_option(argc, argv, "--burn-calls", 1500);
  int budget_ms = int_option(argc, argv, "--budget-ms", 2);
  const int callers = 16;
  auto python = python_from_env();
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};

  auto tweak = [](snakepit::pool_config& pc) { pc.queue_timeout = std::chrono::seconds{120}; };
  auto fast = start_showcase_pool(sys, "fast", 2, [&](snakepit::pool_config& pc) {
    tweak(pc);
    pc.pipeline_budget = std::chrono::milliseconds{budget_ms};
  });
  auto unary = start_showcase_pool(sys, "unary", 2, [&](snakepit::pool_config& pc) {
    tweak(pc);
    pc.use_batches = false;
    pc.pipeline_depth = 0;
  });
  if (!fast || !unary) {
    fmt::print(stderr, "pools failed to start\n");
    return 1;
  }
  auto pids_of = [&](const snakepit::pool_actor& p) {
    std::vector<int> out;
    for (auto& w : pool_status_of(sys, p).workers)
      out.push_back(w.pid);
    return out;
  };
  auto fast_pids = pids_of(*fast);
  auto unary_pids = pids_of(*unary);
  // A raw client on a worker socket: any of the four serves the same tools.
  auto sockets = list_worker_sockets(snakepit::runtime_dir());
  if (sockets.empty()) {
    fmt::print(stderr, "no worker sockets found\n");
    return 1;
  }
  auto stub = snakepit::bridge::v1::Worker::NewStub(make_channel(sockets.front()));
  std::vector<snakepit::bridge::v1::Worker::Stub*> one_stub{stub.get()};
  auto wire = make_wire_request("noop");

  auto noop = [] { return snakepit::make_request("noop"); };
  auto burn = [] { return snakepit::make_request("cpu_burn", {{"milliseconds", 1}}); };
  auto measure = [&](const std::vector<int>& pids, auto&& run) {
    double w0 = threads_cpu_s(pids);
    auto h0 = proc_usage::now();
    run_result res = run();
    auto used = proc_usage::now() - h0;
    double w1 = threads_cpu_s(pids);
    auto n = static_cast<double>(res.calls);
    sample s;
    s.rate = res.calls_per_s();
    s.p50 = percentile(res.lat_us, 50);
    s.host_us = used.cpu_s * 1e6 / n;
    s.python_us = (w1 - w0) * 1e6 / n;
    return s;
  };

  std::vector<variant> vs{{"batches-16", {}}, {"unary-16", {}}, {"mp-16", {}},
                          {"batches-1", {}},  {"unary-1", {}},  {"raw-1", {}},
                          {"burn-16", {}}};
  auto run_round = [&](int scale, bool keep) {
    std::vector<sample> got(vs.size());
    got[0] = measure(fast_pids, [&] {
      return event_callers_run(sys, pool_sender(*fast, noop), callers, calls / scale / callers);
    });
    got[1] = measure(unary_pids, [&] {
      return event_callers_run(sys, pool_sender(*unary, noop), callers, calls / scale / callers);
    });
    if (!mp_slice(python, std::max(calls, 20000) / scale, got[2]))
      fmt::print(stderr, "mp_pool_slice.py failed\n");
    got[3] = measure(fast_pids, [&] {
      return event_callers_run(sys, pool_sender(*fast, noop), 1, seq_calls / scale);
    });
    got[4] = measure(unary_pids, [&] {
      return event_callers_run(sys, pool_sender(*unary, noop), 1, seq_calls / scale);
    });
    got[5] = measure(fast_pids, [&] { return raw_run(one_stub, wire, seq_calls / scale); });
    got[6] = measure(fast_pids, [&] {
      return event_callers_run(sys, pool_sender(*fast, burn), callers,
                               burn_calls / scale / callers);
    });
    if (keep)
      for (size_t k = 0; k < vs.size(); ++k)
        vs[k].rounds.push_back(got[k]);
  };

  fmt::print("fast_path_bench: 2 workers per pool, {} rounds; {} no-op calls, {} one at a time, "
             "{} cpu_burn(1 ms) per round\n",
             rounds, calls, seq_calls, burn_calls);
  auto t_all = clk::now();
  run_round(10, false);  // warm-up: the pipelining policy learns the tools
  for (int r = 0; r < rounds; ++r)
    run_round(1, true);
  auto total_s = ms_between(t_all, clk::now()) / 1000.0;

  fmt::print("\nPer variant: medians over {} rounds\n", rounds);
  table t({"variant", "calls/s", "p50 us", "host CPU us/call", "Python CPU us/call",
           "total CPU us/call"});
  for (auto& v : vs)
    t.add({v.name, fixed(v.med(&sample::rate)), fixed(v.med(&sample::p50)),
           fixed(v.med(&sample::host_us), 1), fixed(v.med(&sample::python_us), 1),
           fixed(v.med(&sample::host_us) + v.med(&sample::python_us), 1)});
  t.print();

  auto cores = std::min<unsigned>(2, std::max(1u, std::thread::hardware_concurrency()));
  auto rate = [&](size_t k) { return vs[k].med(&sample::rate); };
  auto cpu = [&](size_t k) { return vs[k].med(&sample::host_us) + vs[k].med(&sample::python_us); };
  auto p50 = [&](size_t k) { return vs[k].med(&sample::p50); };
  double vs_mp = rate(0) / rate(2);
  double seq_vs_unary = p50(3) / p50(4);
  double burn_share = rate(6) / (cores * 1000.0);
  fmt::print("\nRatios of medians\n");
  table rt({"ratio", "value", "target", "verdict"});
  rt.add({"batches-16 calls/s / mp-16 calls/s", fixed(vs_mp, 2), ">= 0.5 (aim 1.0)",
          verdict(vs_mp >= 0.5)});
  rt.add({"CPU per call, batches-16 / mp-16", fixed(cpu(0) / cpu(2), 2), "report", ""});
  rt.add({"batches-16 calls/s / unary-16 calls/s", fixed(rate(0) / rate(1), 2), "report", ""});
  rt.add({"single call p50, batches-1 / unary-1 (previous path)", fixed(seq_vs_unary, 2),
          "<= 1.0", verdict(seq_vs_unary <= 1.0)});
  rt.add({"single call p50, batches-1 / raw-1", fixed(p50(3) / p50(5), 2), "report", ""});
  rt.add({fmt::format("cpu_burn(1 ms) calls/s / ({} cores x 1000)", cores), fixed(burn_share, 3),
          ">= 0.95", verdict(burn_share >= 0.95)});
  rt.print();

  const std::string tag = "fast_path";
  for (size_t k = 0; k < vs.size(); ++k) {
    result_line(tag, vs[k].name + "_calls_per_s", rate(k));
    result_line(tag, vs[k].name + "_p50_us", p50(k));
    result_line(tag, vs[k].name + "_cpu_us", cpu(k));
  }
  result_line(tag, "batches16_over_mp16", vs_mp);
  result_line(tag, "seq_p50_batches_over_unary", seq_vs_unary);
  result_line(tag, "burn_share_of_cores", burn_share);
  fmt::print("\n(measured in {:.1f} s)\n", total_s);
  stop_pool_within(sys, *fast);
  stop_pool_within(sys, *unary);
  return finish(0);
}
