// startup_bench: time until a pool of 16 workers has served a first call on
// every worker, against the floor 16 x (one worker's start time) / CPUs.
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 startup_bench [--rounds 5] [--workers 16]
//
// Each round, interleaved:
//   floor-1     one worker process started by hand exactly as the host starts it
//               (same interpreter, arguments, environment, ready pipe), then one
//               raw gRPC no-op call: spawn -> first reply
//   parallel-N  N such processes started at once by hand, then one call on each
//               (information: what the machine does with no pool at all)
//   pool-1      start_pool(size 1) + one call through the pool (information: the
//               library's fixed cost per pool)
//   pool-N      start_pool(size N) + calls through the pool until every worker has
//               answered one
// The first start_pool in a process also probes the interpreter (python -c
// "import grpc, google.protobuf"); that one-time cost is measured first and
// reported apart, so the rounds compare like with like.

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
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

/// Spawn -> ready line -> first raw call, for `n` processes started at once.
/// Returns the time until every one has answered, in ms.
double start_by_hand(int n, const std::string& python, int round) {
  auto t0 = clk::now();
  std::vector<std::unique_ptr<child_process>> children;
  std::vector<std::string> sockets;
  auto env = worker_env(snakepit::python_package_dir());
  for (int i = 0; i < n; ++i) {
    sockets.push_back(fmt::format("{}/hand-{}-{}-{}.sock", snakepit::runtime_dir(), n, round, i));
    children.push_back(std::make_unique<child_process>());
    children.back()->start(worker_argv(python, sockets.back(), fmt::format("hand-{}", i)), env);
  }
  std::mutex mtx;
  std::condition_variable cv;
  int answered = 0, failed = 0;
  std::vector<std::unique_ptr<snakepit::bridge::v1::Worker::Stub>> stubs;
  struct call_t {
    grpc::ClientContext ctx;
    snakepit::bridge::v1::ExecuteResponse resp;
  };
  std::vector<std::unique_ptr<call_t>> calls;
  auto req = make_wire_request("noop");
  // Ready lines come in any order; each worker gets its first call as soon as
  // its own line is read (reads block in start order, which only delays the
  // calls of workers that were ready earlier, never the last one).
  for (int i = 0; i < n; ++i) {
    auto line = children[static_cast<size_t>(i)]->wait_ready_line();
    if (line.find("\"ready\"") == std::string::npos)
      throw std::runtime_error("a worker started by hand did not become ready: " + line);
    auto& socket = sockets[static_cast<size_t>(i)];
    stubs.push_back(snakepit::bridge::v1::Worker::NewStub(make_channel(socket)));
    calls.push_back(std::make_unique<call_t>());
    auto* c = calls.back().get();
    stubs.back()->async()->Execute(&c->ctx, &req, &c->resp, [&](grpc::Status s) {
      std::lock_guard<std::mutex> guard{mtx};
      ++answered;
      if (!s.ok())
        ++failed;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> guard{mtx};
    cv.wait(guard, [&] { return answered == n; });
  }
  auto ms = ms_between(t0, clk::now());
  if (failed > 0)
    throw std::runtime_error("first calls to workers started by hand failed");
  for (auto& c : children)
    c->kill_and_reap();
  return ms;
}

struct pool_timing {
  double ready_ms = 0;   // start_pool returned (all workers ready)
  double served_ms = 0;  // every worker answered a first call
  double stop_ms = 0;    // stop_pool returned
};

/// start_pool(n), then calls until every worker has answered one.
pool_timing start_pool_and_call(caf::actor_system& sys, std::uint32_t n) {
  pool_timing out;
  auto t0 = clk::now();
  auto pool = start_showcase_pool(sys, "start", n);
  if (!pool)
    throw std::runtime_error("pool failed to start: "
                             + snakepit::describe(pool.error()).message);
  out.ready_ms = ms_between(t0, clk::now());
  std::set<std::string> served;
  {
    caf::scoped_actor self{sys};
    for (int batch = 0; served.size() < n && batch < 20; ++batch) {
      // As many calls at once as there are workers: with capacity 1 each, the
      // pool gives every free worker one.
      std::vector<decltype(self->request(*pool, caf::infinite, snakepit::execute_atom::value,
                                         snakepit::make_request("noop")))>
        handles;
      for (std::uint32_t i = 0; i < n; ++i)
        handles.push_back(self->request(*pool, caf::infinite, snakepit::execute_atom::value,
                                        snakepit::make_request("noop")));
      for (auto& h : handles)
        h.receive([&](snakepit::execute_reply& r) { served.insert(r.worker_id); },
                  [&](caf::error& e) {
                    throw std::runtime_error("call failed: " + snakepit::describe(e).message);
                  });
    }
  }
  out.served_ms = ms_between(t0, clk::now());
  if (served.size() < n)
    throw std::runtime_error("not every worker answered");
  std::vector<int> pids;
  for (auto& w : pool_status_of(sys, *pool).workers)
    pids.push_back(w.pid);
  auto t1 = clk::now();
  stop_pool_within(sys, *pool);
  // The pool actor is gone at once; its processes end in the background. Wait
  // for them, so the next measurement does not share the CPUs with them.
  wait_processes_gone(pids, std::chrono::milliseconds{10000});
  out.stop_ms = ms_between(t1, clk::now());
  return out;
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 5);
  auto n = static_cast<std::uint32_t>(int_option(argc, argv, "--workers", 16));
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};
  auto cpus = snakepit::available_cpus();
  auto python = python_from_env();

  auto tp = clk::now();
  auto located = snakepit::locate_python(python);
  auto probe_ms = ms_between(tp, clk::now());
  if (!located) {
    fmt::print(stderr, "{}\n", snakepit::describe(located.error()).message);
    return 1;
  }
  fmt::print("startup_bench: {} workers, {} CPUs usable, {} rounds, python {}\n", n, cpus,
             rounds, *located);

  std::vector<double> floor1, parallel, pool1_ready, pool1_served, pooln_ready, pooln_served,
    pooln_stop;
  auto t_all = clk::now();
  for (int r = 0; r < rounds; ++r) {
    floor1.push_back(start_by_hand(1, python, r));
    auto p1 = start_pool_and_call(sys, 1);
    pool1_ready.push_back(p1.ready_ms);
    pool1_served.push_back(p1.served_ms);
    auto pn = start_pool_and_call(sys, n);
    pooln_ready.push_back(pn.ready_ms);
    pooln_served.push_back(pn.served_ms);
    pooln_stop.push_back(pn.stop_ms);
    parallel.push_back(start_by_hand(static_cast<int>(n), python, r));
  }
  auto total_s = ms_between(t_all, clk::now()) / 1000.0;

  auto per_round = [](const std::vector<double>& xs) {
    std::string out;
    for (auto x : xs)
      out += fmt::format(" {:.0f}", x);
    return out;
  };
  fmt::print("\nStart times in ms (median of {} rounds; every round's value after the colon)\n",
             rounds);
  table t({"what", "median ms", "rounds"});
  t.add({"interpreter probe, once per process (first start_pool)", fixed(probe_ms, 1), ""});
  t.add({"floor-1: one worker by hand, spawn -> first reply", fixed(median(floor1), 1),
         per_round(floor1)});
  t.add({fmt::format("parallel-{}: {} by hand at once -> all replied", n, n),
         fixed(median(parallel), 1), per_round(parallel)});
  t.add({"pool-1: start_pool -> ready", fixed(median(pool1_ready), 1), per_round(pool1_ready)});
  t.add({"pool-1: start_pool -> first reply", fixed(median(pool1_served), 1),
         per_round(pool1_served)});
  t.add({fmt::format("pool-{}: start_pool -> ready", n), fixed(median(pooln_ready), 1),
         per_round(pooln_ready)});
  t.add({fmt::format("pool-{}: start_pool -> every worker replied", n),
         fixed(median(pooln_served), 1), per_round(pooln_served)});
  t.add({fmt::format("pool-{}: stop -> all its processes ended", n),
         fixed(median(pooln_stop), 1), per_round(pooln_stop)});
  t.print();

  double floor = static_cast<double>(n) * median(floor1) / static_cast<double>(cpus);
  double ratio = median(pooln_served) / floor;
  fmt::print("\nRatios\n");
  table rt({"ratio", "value", "target", "verdict"});
  rt.add({fmt::format("pool-{} / ({} x floor-1 / {} CPUs = {:.0f} ms)", n, n, cpus, floor),
          fixed(ratio, 2), "<= 1.5", verdict(ratio <= 1.5)});
  rt.add({fmt::format("pool-{} / parallel-{}", n, n),
          fixed(median(pooln_served) / median(parallel), 2), "report", ""});
  rt.add({"pool-1 / floor-1", fixed(median(pool1_served) / median(floor1), 2), "report", ""});
  rt.print();

  result_line("startup", "probe_ms", probe_ms);
  result_line("startup", "floor1_ms", median(floor1));
  result_line("startup", "parallel_ms", median(parallel));
  result_line("startup", "pool1_ms", median(pool1_served));
  result_line("startup", "pooln_ready_ms", median(pooln_ready));
  result_line("startup", "pooln_ms", median(pooln_served));
  result_line("startup", "pooln_stop_ms", median(pooln_stop));
  result_line("startup", "floor_ms", floor);
  result_line("startup", "pooln_over_floor", ratio);
  result_line("startup", "cpus", cpus);
  result_line("startup", "workers", n);
  fmt::print("\n(measured in {:.1f} s)\n", total_s);
  return finish(0);
}
