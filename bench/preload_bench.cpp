// preload_bench: what a fork server (`preload = true`) buys, against plain starts, in the
// same run (interleaved rounds; tables show medians):
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 preload_bench [--rounds 5] [--workers 16]
//        [--many 100] [--pss-workers 8] [--pss-mb 200] [--recycle-s 5]
//
//   start-N      start_pool(N) + calls until every worker answered one: plain vs preload
//   start-many   the same for --many workers, preload only (plain is reported for 1 round)
//   pss          total PSS (fork server included) of --pss-workers workers holding a
//                --pss-mb numpy array loaded in preload() vs in setup()
//   recycle      8 callers of sleep(2 ms) on 2 preloaded workers for --recycle-s, each worker
//                recycled every second (worker_ttl) vs never: p99, failures (and the same
//                recycling with plain starts, for comparison)
//
// The adapter is tests/integration/adapters/preload_adapter.py.

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "bench_actors.hpp"
#include "bench_common.hpp"
#include "snakepit/snakepit.hpp"

using namespace bench;
using namespace std::chrono_literals;

namespace {

snakepit::pool_config preload_pool(std::uint32_t n, bool preload) {
  snakepit::pool_config pc;
  pc.name = preload ? "pre" : "plain";
  pc.adapter = "preload_adapter.PreloadAdapter";
  pc.python_path = {std::string{SNAKEPIT_BENCH_DIR} + "/../tests/integration/adapters"};
  pc.size = n;
  pc.python = python_from_env();
  pc.preload = preload;
  pc.startup_timeout = 120s;
  return pc;
}

/// Every worker of the pool answers a call (as many calls at once as workers, repeated).
void call_every_worker(caf::actor_system& sys, const snakepit::pool_actor& pool,
                       std::uint32_t n) {
  std::set<std::string> served;
  caf::scoped_actor self{sys};
  for (int batch = 0; served.size() < n && batch < 50; ++batch) {
    for (std::uint32_t i = 0; i < n; ++i)
      self->send(pool, snakepit::execute_atom::value,
                 snakepit::make_request("sleep", {{"seconds", 0.05}}));
    for (std::uint32_t i = 0; i < n; ++i)
      self->receive([&](snakepit::execute_reply& r) { served.insert(r.worker_id); },
                    [&](caf::error& e) {
                      throw std::runtime_error("call failed: " + snakepit::describe(e).message);
                    });
  }
  if (served.size() < n)
    throw std::runtime_error("not every worker answered");
}

std::vector<int> pids_of(caf::actor_system& sys, const snakepit::pool_actor& pool) {
  std::vector<int> out;
  for (auto& w : pool_status_of(sys, pool).workers)
    out.push_back(w.pid);
  return out;
}

/// Stops the pool and waits for its processes, so the next run has the CPUs to itself.
void stop_and_wait(caf::actor_system& sys, const snakepit::pool_actor& pool,
                   std::vector<int> pids) {
  stop_pool_within(sys, pool, 60s);
  wait_processes_gone(pids, 20s);
}

/// start_pool + a call on every worker, in ms.
double time_to_served(caf::actor_system& sys, std::uint32_t n, bool preload) {
  auto t0 = clk::now();
  auto pool = snakepit::start_pool(sys, preload_pool(n, preload));
  if (!pool)
    throw std::runtime_error("pool failed to start: " + snakepit::describe(pool.error()).message);
  call_every_worker(sys, *pool, n);
  auto ms = ms_between(t0, clk::now());
  auto pids = pids_of(sys, *pool);
  snakepit::execute_request where = snakepit::make_request("where");
  caf::scoped_actor self{sys};
  self->request(*pool, caf::infinite, snakepit::execute_atom::value, where)
    .receive([&](snakepit::execute_reply& r) {
               pids.push_back(static_cast<int>(r.result["preload_pid"].as_int()));
             },
             [](caf::error&) {});
  stop_and_wait(sys, *pool, pids);
  return ms;
}

/// PSS of a process in KiB (smaps_rollup).
double pss_kib(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/smaps_rollup"};
  std::string key;
  while (in >> key) {
    if (key == "Pss:") {
      double kib = 0;
      in >> kib;
      return kib;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

/// Total PSS in MiB of a pool of n workers holding `mb` MiB each way.
double pool_pss_mib(caf::actor_system& sys, std::uint32_t n, int mb, bool preload) {
  auto pc = preload_pool(n, preload);
  pc.env = {{preload ? "PRELOAD_BYTES" : "SETUP_BYTES", std::to_string(mb * 1024LL * 1024)}};
  auto pool = snakepit::start_pool(sys, pc);
  if (!pool)
    throw std::runtime_error("pool failed to start: " + snakepit::describe(pool.error()).message);
  call_every_worker(sys, *pool, n);
  auto pids = pids_of(sys, *pool);
  caf::scoped_actor self{sys};
  self->request(*pool, caf::infinite, snakepit::execute_atom::value,
                snakepit::make_request("where"))
    .receive(
      [&](snakepit::execute_reply& r) {
        auto server = static_cast<int>(r.result["preload_pid"].as_int());
        if (preload)
          pids.push_back(server);  // the pages it shares count once, split among all
      },
      [](caf::error&) {});
  double kib = 0;
  for (auto pid : pids)
    kib += pss_kib(pid);
  stop_and_wait(sys, *pool, pids);
  return kib / 1024.0;
}

struct recycle_result {
  double p99_ms = 0;
  std::uint64_t failures = 0;
  std::uint64_t calls = 0;
  std::uint64_t recycles = 0;
};

/// recycle_bench's setting: 2 workers, 8 callers of sleep(2 ms), each worker recycled every
/// second (worker_ttl) or never.
recycle_result steady_load(caf::actor_system& sys, bool preload, bool recycle,
                           clk::duration length) {
  auto pc = preload_pool(2, preload);
  if (recycle) {
    pc.worker_ttl = 1s;
    pc.lifecycle_interval = 100ms;
  }
  auto pool = snakepit::start_pool(sys, pc);
  if (!pool)
    throw std::runtime_error("pool failed to start: " + snakepit::describe(pool.error()).message);
  auto r = event_callers_for(
    sys, pool_sender(*pool, [] { return snakepit::make_request("sleep", {{"seconds", 0.002}}); }),
    8, length);
  recycle_result out;
  out.p99_ms = percentile(r.lat_us, 99) / 1000.0;
  out.failures = r.failures;
  out.calls = r.calls;
  auto st = pool_status_of(sys, *pool);
  for (auto& [why, count] : st.recycles)
    out.recycles += count;
  stop_and_wait(sys, *pool, pids_of(sys, *pool));
  return out;
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 5);
  auto n = static_cast<std::uint32_t>(int_option(argc, argv, "--workers", 16));
  auto many = static_cast<std::uint32_t>(int_option(argc, argv, "--many", 100));
  auto pss_workers = static_cast<std::uint32_t>(int_option(argc, argv, "--pss-workers", 8));
  int pss_mb = int_option(argc, argv, "--pss-mb", 200);
  auto recycle_s = std::chrono::seconds{int_option(argc, argv, "--recycle-s", 5)};
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};
  fmt::print("preload_bench: {} CPUs usable, {} rounds\n", snakepit::available_cpus(), rounds);
  try {
    static_cast<void>(time_to_served(sys, 1, false));  // the interpreter probe, once
    std::vector<double> plain_n, pre_n, pre_many, ratio_n, pss_pre, pss_setup, pss_ratio,
      p99_recycle, p99_steady, p99_ratio, p99_plain_ratio;
    std::uint64_t recycle_failures = 0, recycles = 0;
    for (int round = 0; round < rounds; ++round) {
      auto a = time_to_served(sys, n, false);
      auto b = time_to_served(sys, n, true);
      plain_n.push_back(a);
      pre_n.push_back(b);
      ratio_n.push_back(b / a);
      pre_many.push_back(time_to_served(sys, many, true));
      auto setup_mib = pool_pss_mib(sys, pss_workers, pss_mb, false);
      auto pre_mib = pool_pss_mib(sys, pss_workers, pss_mb, true);
      pss_setup.push_back(setup_mib);
      pss_pre.push_back(pre_mib);
      pss_ratio.push_back(pre_mib / setup_mib);
      auto steady = steady_load(sys, true, false, recycle_s);
      auto rec = steady_load(sys, true, true, recycle_s);
      auto plain_rec = steady_load(sys, false, true, recycle_s);
      p99_steady.push_back(steady.p99_ms);
      p99_recycle.push_back(rec.p99_ms);
      p99_ratio.push_back(rec.p99_ms / steady.p99_ms);
      p99_plain_ratio.push_back(plain_rec.p99_ms / steady.p99_ms);
      recycle_failures += rec.failures + steady.failures + plain_rec.failures;
      recycles += rec.recycles;
      fmt::print("round {}: start-{} plain {:.0f} ms, preload {:.0f} ms; start-{} preload {:.0f} "
                 "ms; PSS setup {:.0f} MiB, preload {:.0f} MiB; p99 steady {:.1f} ms, "
                 "recycling {:.1f} ms, plain recycling {:.1f} ms ({} recycles, {} failed)\n",
                 round + 1, n, a, b, many, pre_many.back(), setup_mib, pre_mib, steady.p99_ms,
                 rec.p99_ms, plain_rec.p99_ms, rec.recycles,
                 rec.failures + steady.failures + plain_rec.failures);
    }
    auto plain_many = time_to_served(sys, many, false);
    table t({"measure", "plain / in setup()", "preload", "ratio", "aim"});
    t.add({fmt::format("{} workers served (ms)", n), fixed(median(plain_n)),
           fixed(median(pre_n)), fixed(median(ratio_n), 2), "<= 0.3"});
    t.add({fmt::format("{} workers served (ms)", many), fixed(plain_many) + " (1 round)",
           fixed(median(pre_many)), fixed(median(pre_many) / plain_many, 2), "< 3000 ms"});
    t.add({fmt::format("PSS of {} workers, {} MB each (MiB)", pss_workers, pss_mb),
           fixed(median(pss_setup)), fixed(median(pss_pre)), fixed(median(pss_ratio), 2),
           "<= 0.3"});
    t.add({"p99, each worker recycled every 1 s / never (ms)", fixed(median(p99_steady), 1),
           fixed(median(p99_recycle), 1), fixed(median(p99_ratio), 2), "<= 1.5"});
    t.add({"  the same ratio with plain starts", "", "", fixed(median(p99_plain_ratio), 2), ""});
    t.print();
    fmt::print("recycles: {}, failed calls: {}\n", recycles, recycle_failures);
    result_line("preload", "start_ratio", median(ratio_n));
    result_line("preload", "many_ms", median(pre_many));
    result_line("preload", "pss_ratio", median(pss_ratio));
    result_line("preload", "recycle_p99_ratio", median(p99_ratio));
    result_line("preload", "plain_recycle_p99_ratio", median(p99_plain_ratio));
    result_line("preload", "recycle_failures", static_cast<double>(recycle_failures));
  } catch (const std::exception& ex) {
    fmt::print(stderr, "preload_bench: {}\n", ex.what());
    return finish(1);
  }
  return finish(0);
}
