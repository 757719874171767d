// profile_bench: the two worker profiles at the same capacity. 16 process
// workers (one call at a time each) against 1 thread worker serving 16 calls at
// once: memory, start-up time and throughput for four kinds of work.
//
//   SNAKEPIT_PYTHON=/usr/bin/python3 profile_bench [--rounds 5] [--slots 16]
//        [--scale 1.0] [--sleep-s 0.02] [--sha-mib 8] [--matmul-n 300] [--burn-ms 5]
//
// Both pools run `snakepit_bridge.showcase.ThreadedShowcaseAdapter` (it runs in
// the process profile too), so the profiles differ in nothing but the profile.
// Every round, for each profile (the order alternates from round to round):
//   start       start_pool, then batches of `slots` concurrent no-op calls until
//               every worker has answered one: start_pool -> every worker replied
//   memory      after start: RSS, PSS and USS (Private_Clean + Private_Dirty) of the
//               workers, summed over their processes, from /proc/PID/smaps_rollup
// then, for each kind of work, process pool and thread pool one after the other
// (same alternating order), `slots` event-based callers with one call in flight
// each (every slot busy): calls/s = calls / wall time; worker CPU per call is the
// workers' utime + stime over the batch;
//   sleep       sleep(seconds)          I/O-like: the GIL is released while waiting
//   sha256      sha256(megabytes)       hashlib, releases the GIL while hashing
//   matmul      matmul(n)               numpy matrix product, releases the GIL (BLAS
//                                       limited to 1 thread per slot by the host)
//   cpu_burn    cpu_burn(milliseconds)  pure-Python loop: holds the GIL
// and memory again after the load. Tables show medians over rounds; ratios are
// ratios of medians (thread / process). The first calls of each tool on each
// pool (imports, first allocations) run before the measured batches, after the
// "after start" memory sample.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <tuple>
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

/// Memory of a set of processes, MiB.
struct memory {
  double rss = 0;
  double pss = 0;
  double uss = 0;  // Private_Clean + Private_Dirty
};

/// Sums the fields of /proc/PID/smaps_rollup over `pids`.
memory memory_of(const std::vector<int>& pids) {
  memory out;
  for (auto pid : pids) {
    std::ifstream in{"/proc/" + std::to_string(pid) + "/smaps_rollup"};
    std::string line;
    while (std::getline(in, line)) {
      auto kib = [&](const char* key) {
        auto n = std::strlen(key);
        return line.compare(0, n, key) == 0 ? std::atof(line.c_str() + n) / 1024.0 : 0.0;
      };
      out.rss += kib("Rss:");
      out.pss += kib("Pss:");
      out.uss += kib("Private_Clean:") + kib("Private_Dirty:");
    }
  }
  return out;
}

double processes_cpu_s(const std::vector<int>& pids) {
  double total = 0;
  for (auto pid : pids)
    for (auto& [tid, info] : sample_threads(pid))
      total += info.cpu_s;
  return total;
}

int thread_count(int pid) {
  return static_cast<int>(sample_threads(pid).size());
}

struct profile_spec {
  std::string name;  // "process" or "thread"
  snakepit::worker_profile profile;
  std::uint32_t size;
  std::uint32_t threads;
};

struct workload {
  std::string name;
  std::string tool;
  snakepit::value::map args;
  int calls;  // per batch
};

/// What one profile measured, over rounds.
struct profile_results {
  std::vector<double> ready_ms, served_ms, stop_ms;
  std::vector<memory> mem_start, mem_load;
  std::vector<std::vector<double>> rate, worker_cpu_ms, p50_ms;  // [workload][round]
  std::vector<std::vector<double>> work_per_s;  // integer results per second (iterations)
  std::vector<double> threads_after_load;
  std::uint64_t failures = 0;
};

struct running_pool {
  snakepit::pool_actor pool;
  std::vector<int> pids;
};

/// start_pool, then batches of `slots` concurrent no-op calls until every
/// worker has answered one.
running_pool start_profile(caf::actor_system& sys, const profile_spec& spec, int slots,
                           profile_results& res) {
  snakepit::pool_config pc;
  pc.name = spec.name;
  pc.adapter = "snakepit_bridge.showcase.ThreadedShowcaseAdapter";
  pc.size = spec.size;
  pc.profile = spec.profile;
  pc.threads_per_worker = spec.threads;
  pc.python = python_from_env();
  pc.queue_timeout = std::chrono::seconds{120};
  auto t0 = clk::now();
  auto started = snakepit::start_pool(sys, pc);
  if (!started)
    throw std::runtime_error(spec.name + " pool failed to start: "
                             + snakepit::describe(started.error()).message);
  res.ready_ms.push_back(ms_between(t0, clk::now()));
  std::set<std::string> served;
  {
    caf::scoped_actor self{sys};
    for (int batch = 0; served.size() < spec.size && batch < 20; ++batch) {
      std::vector<decltype(self->request(*started, caf::infinite, snakepit::execute_atom::value,
                                         snakepit::make_request("noop")))>
        handles;
      for (int i = 0; i < slots; ++i)
        handles.push_back(self->request(*started, caf::infinite, snakepit::execute_atom::value,
                                        snakepit::make_request("noop")));
      for (auto& h : handles)
        h.receive([&](snakepit::execute_reply& r) { served.insert(r.worker_id); },
                  [&](caf::error& e) {
                    throw std::runtime_error("call failed: " + snakepit::describe(e).message);
                  });
    }
  }
  res.served_ms.push_back(ms_between(t0, clk::now()));
  if (served.size() < spec.size)
    throw std::runtime_error("not every worker answered");
  running_pool out{*started, {}};
  for (auto& w : pool_status_of(sys, *started).workers)
    out.pids.push_back(w.pid);
  return out;
}

/// Stops the pool and waits until its worker processes have ended.
double stop_profile(caf::actor_system& sys, const running_pool& rp) {
  auto t0 = clk::now();
  stop_pool_within(sys, rp.pool);
  auto gone = [](int pid) {
    auto stat = read_first_line("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    return stat.empty()
           || (close != std::string::npos && stat.size() > close + 2 && stat[close + 2] == 'Z');
  };
  for (auto pid : rp.pids)
    while (!gone(pid) && ms_between(t0, clk::now()) < 10000)
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
  return ms_between(t0, clk::now());
}

/// A batch of `calls` calls from `slots` event-based callers. Integer results
/// are summed into `*work` (cpu_burn returns the loop iterations it managed).
run_result run_batch(caf::actor_system& sys, const running_pool& rp, const workload& w,
                     int slots, int calls, std::atomic<std::int64_t>* work = nullptr) {
  auto pool = rp.pool;
  auto send = [pool, w, work](caf::event_based_actor* self, auto k) {
    self->request(pool, caf::infinite, snakepit::execute_atom::value,
                  snakepit::make_request(w.tool, w.args))
      .then(
        [k, work](snakepit::execute_reply& r) mutable {
          if (auto* n = r.result.if_int(); n != nullptr && work != nullptr)
            *work += *n;
          k(true);
        },
        [k](caf::error&) mutable { k(false); });
  };
  return event_callers_run(sys, send, slots, calls / slots);
}

std::string mib(double x) {
  return fixed(x, 1);
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int rounds = int_option(argc, argv, "--rounds", 5);
  int slots = int_option(argc, argv, "--slots", 16);
  double scale = std::atof(string_option(argc, argv, "--scale", "1.0").c_str());
  double sleep_s = std::atof(string_option(argc, argv, "--sleep-s", "0.02").c_str());
  int sha_mib = int_option(argc, argv, "--sha-mib", 8);
  int matmul_n = int_option(argc, argv, "--matmul-n", 300);
  int burn_ms = int_option(argc, argv, "--burn-ms", 5);
  snakepit::set_log_level(snakepit::log_level::warning);
  caf::actor_system_config cfg;
  snakepit::add_message_types(cfg);
  snakepit::use_recommended_scheduler(cfg);
  caf::actor_system sys{cfg};
  auto cpus = snakepit::available_cpus();
  auto python = python_from_env();
  if (!snakepit::locate_python(python)) {
    fmt::print(stderr, "cannot use python {}\n", python);
    return 1;
  }

  auto su = static_cast<std::uint32_t>(slots);
  std::vector<profile_spec> specs{
    {"process", snakepit::worker_profile::process, su, 1},
    {"thread", snakepit::worker_profile::thread, 1, su},
  };
  // Calls per batch (times --scale): multiples of `slots`, 0.4-1 s per batch here.
  auto calls = [&](int base) {
    return std::max(slots, static_cast<int>(base * scale) / slots * slots);
  };
  std::vector<workload> work{
    {fmt::format("sleep({})", sleep_s), "sleep", {{"seconds", snakepit::value{sleep_s}}},
     calls(320)},
    {fmt::format("sha256({} MiB)", sha_mib), "sha256", {{"megabytes", snakepit::value{sha_mib}}},
     calls(160)},
    {fmt::format("matmul({})", matmul_n), "matmul", {{"n", snakepit::value{matmul_n}}},
     calls(96)},
    {fmt::format("cpu_burn({} ms)", burn_ms), "cpu_burn",
     {{"milliseconds", snakepit::value{burn_ms}}}, calls(160)},
  };

  fmt::print("profile_bench: {} slots: process = {} workers x 1, thread = 1 worker x {} threads;"
             " {} CPUs usable, {} rounds, python {}\n",
             slots, slots, slots, cpus, rounds, python);
  std::vector<profile_results> res(specs.size());
  for (auto& r : res) {
    r.rate.resize(work.size());
    r.worker_cpu_ms.resize(work.size());
    r.p50_ms.resize(work.size());
    r.work_per_s.resize(work.size());
  }

  std::vector<double> one_core_iter_per_s;
  auto t_all = clk::now();
  for (int round = 0; round < rounds; ++round) {
    std::vector<size_t> order = round % 2 == 0 ? std::vector<size_t>{0, 1}
                                               : std::vector<size_t>{1, 0};
    std::vector<running_pool> pools(specs.size());
    // Start one pool at a time, each while the other is not yet running.
    for (auto k : order) {
      pools[k] = start_profile(sys, specs[k], slots, res[k]);
      res[k].mem_start.push_back(memory_of(pools[k].pids));
    }
    // First calls of every tool (imports, first allocations), all slots busy.
    for (auto k : order)
      for (auto& w : work)
        res[k].failures += run_batch(sys, pools[k], w, slots, slots).failures;
    for (size_t j = 0; j < work.size(); ++j)
      for (auto k : order) {
        auto c0 = processes_cpu_s(pools[k].pids);
        std::atomic<std::int64_t> done{0};
        auto out = run_batch(sys, pools[k], work[j], slots, work[j].calls, &done);
        auto c1 = processes_cpu_s(pools[k].pids);
        res[k].rate[j].push_back(out.calls_per_s());
        res[k].worker_cpu_ms[j].push_back((c1 - c0) * 1e3 / static_cast<double>(out.calls));
        res[k].p50_ms[j].push_back(percentile(out.lat_us, 50) / 1e3);
        res[k].work_per_s[j].push_back(static_cast<double>(done.load()) / out.wall_s);
        res[k].failures += out.failures;
      }
    // One core's pure-Python speed: cpu_burn one call at a time (process pool).
    for (auto& w : work)
      if (w.tool == "cpu_burn") {
        std::atomic<std::int64_t> done{0};
        auto out = run_batch(sys, pools[0], w, 1, 40, &done);
        one_core_iter_per_s.push_back(static_cast<double>(done.load()) / out.wall_s);
      }
    for (auto k : order) {
      res[k].mem_load.push_back(memory_of(pools[k].pids));
      double threads = 0;
      for (auto pid : pools[k].pids)
        threads += thread_count(pid);
      res[k].threads_after_load.push_back(threads);
    }
    for (auto k : order)
      res[k].stop_ms.push_back(stop_profile(sys, pools[k]));
    fmt::print("round {} done ({:.1f} s so far)\n", round + 1, ms_between(t_all, clk::now()) / 1e3);
  }
  auto total_s = ms_between(t_all, clk::now()) / 1000.0;

  auto med = [](const std::vector<memory>& ms, double memory::*field) {
    std::vector<double> xs;
    for (auto& m : ms)
      xs.push_back(m.*field);
    return median(xs);
  };
  auto& P = res[0];
  auto& T = res[1];

  fmt::print("\nMemory of the workers, MiB, summed over their processes (median of {} rounds)\n",
             rounds);
  table mt({"when", "measure", "process x16", "thread 1x16", "process / thread"});
  for (auto [when, p, t] : {std::tuple{"after start", &P.mem_start, &T.mem_start},
                            std::tuple{"after load", &P.mem_load, &T.mem_load}})
    for (auto [name, field] : {std::pair{"RSS", &memory::rss}, std::pair{"PSS", &memory::pss},
                               std::pair{"USS", &memory::uss}}) {
      double a = med(*p, field), b = med(*t, field);
      mt.add({when, name, mib(a), mib(b), fixed(a / b, 2)});
    }
  mt.add({"after load", "threads (all processes)", fixed(median(P.threads_after_load)),
          fixed(median(T.threads_after_load)), ""});
  mt.print();

  fmt::print("\nStart-up, ms (median of {} rounds)\n", rounds);
  table st({"what", "process x16", "thread 1x16", "process / thread"});
  st.add({"start_pool -> ready", fixed(median(P.ready_ms), 1), fixed(median(T.ready_ms), 1),
          fixed(median(P.ready_ms) / median(T.ready_ms), 2)});
  st.add({"start_pool -> every worker replied", fixed(median(P.served_ms), 1),
          fixed(median(T.served_ms), 1), fixed(median(P.served_ms) / median(T.served_ms), 2)});
  st.add({"stop -> processes ended", fixed(median(P.stop_ms), 1), fixed(median(T.stop_ms), 1),
          fixed(median(P.stop_ms) / median(T.stop_ms), 2)});
  st.print();

  fmt::print("\nThroughput, {} calls in flight (median of {} rounds)\n", slots, rounds);
  table tt({"work", "calls/batch", "process calls/s", "thread calls/s", "thread / process",
            "p50 ms proc / thr", "worker CPU ms/call proc / thr"});
  for (size_t j = 0; j < work.size(); ++j) {
    double a = median(P.rate[j]), b = median(T.rate[j]);
    tt.add({work[j].name, std::to_string(work[j].calls), fixed(a, 1), fixed(b, 1),
            fixed(b / a, 2),
            fmt::format("{} / {}", fixed(median(P.p50_ms[j]), 1), fixed(median(T.p50_ms[j]), 1)),
            fmt::format("{} / {}", fixed(median(P.worker_cpu_ms[j]), 2),
                        fixed(median(T.worker_cpu_ms[j]), 2))});
  }
  tt.print();
  // cpu_burn spins for a wall-clock time, so a call preempted by other calls
  // does less work: its calls/s flatters an oversubscribed CPU. The loop
  // iterations it returns are the pure-Python work actually done.
  for (size_t j = 0; j < work.size(); ++j)
    if (work[j].tool == "cpu_burn") {
      double a = median(P.work_per_s[j]), b = median(T.work_per_s[j]);
      fmt::print("\n{}: pure-Python loop iterations per second (the work done; a call spins for "
                 "{} ms of wall time, preempted or not)\n",
                 work[j].name, burn_ms);
      table bt({"", "process", "thread", "thread / process"});
      bt.add({"iterations/s, millions", fixed(a / 1e6, 2), fixed(b / 1e6, 2), fixed(b / a, 2)});
      double one = median(one_core_iter_per_s);
      bt.add({fmt::format("share of {} CPUs x one call alone ({:.2f} M/s)", cpus, one / 1e6),
              fixed(a / (one * cpus), 2), fixed(b / (one * cpus), 2), ""});
      bt.print();
      result_line("profiles", "one_call_cpu_burn_iter_per_s", one);
      result_line("profiles", "process_cpu_burn_iter_per_s", a);
      result_line("profiles", "thread_cpu_burn_iter_per_s", b);
      result_line("profiles", "thread_over_process_cpu_burn_work", b / a);
    }
  fmt::print("\nEvery round's calls/s (process | thread):\n");
  for (size_t j = 0; j < work.size(); ++j) {
    std::string a, b;
    for (auto x : P.rate[j])
      a += fmt::format(" {:.0f}", x);
    for (auto x : T.rate[j])
      b += fmt::format(" {:.0f}", x);
    fmt::print("  {:<16}{} |{}\n", work[j].name, a, b);
  }
  if (P.failures + T.failures > 0)
    fmt::print("\nFAILED CALLS: process {}, thread {}\n", P.failures, T.failures);

  const std::string tag = "profiles";
  for (auto [pname, r] : {std::pair{"process", &P}, std::pair{"thread", &T}}) {
    std::string p = pname;
    result_line(tag, p + "_rss_start_mib", med(r->mem_start, &memory::rss));
    result_line(tag, p + "_pss_start_mib", med(r->mem_start, &memory::pss));
    result_line(tag, p + "_uss_start_mib", med(r->mem_start, &memory::uss));
    result_line(tag, p + "_rss_load_mib", med(r->mem_load, &memory::rss));
    result_line(tag, p + "_pss_load_mib", med(r->mem_load, &memory::pss));
    result_line(tag, p + "_uss_load_mib", med(r->mem_load, &memory::uss));
    result_line(tag, p + "_served_ms", median(r->served_ms));
    for (size_t j = 0; j < work.size(); ++j)
      result_line(tag, p + "_" + work[j].tool + "_calls_per_s", median(r->rate[j]));
    result_line(tag, p + "_failures", static_cast<double>(r->failures));
  }
  for (auto [name, field] : {std::pair{"rss", &memory::rss}, std::pair{"pss", &memory::pss},
                             std::pair{"uss", &memory::uss}}) {
    result_line(tag, std::string{"process_over_thread_"} + name + "_load",
                med(P.mem_load, field) / med(T.mem_load, field));
  }
  result_line(tag, "process_over_thread_served", median(P.served_ms) / median(T.served_ms));
  for (size_t j = 0; j < work.size(); ++j)
    result_line(tag, "thread_over_process_" + work[j].tool,
                median(T.rate[j]) / median(P.rate[j]));
  result_line(tag, "slots", slots);
  result_line(tag, "cpus", cpus);
  fmt::print("\n(measured in {:.1f} s)\n", total_s);
  return finish(P.failures + T.failures > 0 ? 1 : 0);
}
