// Which profile to recommend from what the calls did.

#include <doctest/doctest.h>

#include "snakepit/actors/profile_advice.hpp"

using namespace snakepit;
using namespace std::chrono_literals;

namespace {

workload_observation seen(worker_profile p, caf::timespan wall, caf::timespan cpu,
                          bool gil = true) {
  workload_observation w;
  w.profile = p;
  w.threads_per_worker = p == worker_profile::thread ? 8 : 1;
  w.gil_enabled = gil;
  w.calls = 100;
  w.python_wall = wall;
  w.python_cpu = cpu;
  return w;
}

} // namespace

TEST_CASE("waiting tools are advised the thread profile") {
  auto a = advise_profile(seen(worker_profile::process, 10s, 1s));
  CHECK(a.recommended == worker_profile::thread);
  CHECK(a.cpu_share == doctest::Approx(0.1));
  CHECK(a.reason.find("waiting") != std::string::npos);
}

TEST_CASE("pure-Python CPU work on a GIL Python is advised the process profile") {
  auto a = advise_profile(seen(worker_profile::process, 10s, 9s));
  CHECK(a.recommended == worker_profile::process);
  CHECK(a.reason.find("GIL") != std::string::npos);
  // In the thread profile, contention for the GIL shows as a low CPU share per call.
  auto contended_obs = seen(worker_profile::thread, 80s, 10s);
  contended_obs.elapsed = 10s;  // one process burning a full CPU for 10 s
  auto contended = advise_profile(contended_obs);
  CHECK(contended.recommended == worker_profile::process);
  CHECK(contended.reason.find("GIL") != std::string::npos);
  auto io_obs = seen(worker_profile::thread, 80s, 1s);
  io_obs.elapsed = 10s;  // a tenth of a CPU: waiting for I/O
  CHECK(advise_profile(io_obs).recommended == worker_profile::thread);
  auto parallel = advise_profile(seen(worker_profile::thread, 10s, 9s));
  CHECK(parallel.recommended == worker_profile::thread);  // GIL released: threads scale
}

TEST_CASE("a free-threaded Python runs CPU work in threads") {
  auto a = advise_profile(seen(worker_profile::process, 10s, 9s, false));
  CHECK(a.recommended == worker_profile::thread);
}

TEST_CASE("no calls, no advice beyond keeping the profile") {
  workload_observation w;
  w.profile = worker_profile::thread;
  auto a = advise_profile(w);
  CHECK(a.recommended == worker_profile::thread);
  CHECK(a.reason.find("no calls") != std::string::npos);
}

TEST_CASE("a profile decides capacity, start arguments and what a stuck call costs") {
  auto process = traits_of(worker_profile::process, 8, thread_check_mode::off);
  CHECK(process.capacity == 1);
  CHECK(process.replace_when_stuck);
  CHECK(process.worker_args.empty());
  auto thread = traits_of(worker_profile::thread, 8, thread_check_mode::strict);
  CHECK(thread.capacity == 8);
  CHECK(!thread.replace_when_stuck);
  CHECK(thread.worker_args
        == std::vector<std::string>{"--profile", "thread", "--thread-check", "strict"});
  CHECK(parse_worker_profile("thread") == worker_profile::thread);
  CHECK(!parse_worker_profile("threads"));
}

TEST_CASE("calls of a few microseconds get no profile advice") {
  auto a = advise_profile(seen(worker_profile::process, 5ms, 1ms));  // 50 us per call
  CHECK(a.recommended == worker_profile::process);
  CHECK(a.reason.find("too little for the profile to matter") != std::string::npos);
}

TEST_CASE("a low CPU share spent in the run queue is starving, not waiting") {
  // 16 process workers on 2 busy cores: each call gets 1/8 of its wall time on a CPU.
  auto w = seen(worker_profile::process, 80s, 10s);
  w.elapsed = 10s;
  w.usable_cores = 2;
  w.window = 10s;
  w.window_tools_wall = 80s;
  w.window_tools_cpu = 10s;
  w.window_run_queue_wait = 60s;  // most of the 70 s off a CPU: runnable, queued for a core
  auto starved = advise_profile(w);
  CHECK(starved.cpu_starved);
  CHECK(starved.recommended == worker_profile::process);
  CHECK(starved.reason.find("starved of CPU, not waiting") != std::string::npos);
  CHECK(starved.reason.find("86% of the rest") != std::string::npos);
  // The same share with little run-queue time: the calls wait for I/O.
  w.window_run_queue_wait = 5s;
  auto waiting = advise_profile(w);
  CHECK(!waiting.cpu_starved);
  CHECK(waiting.recommended == worker_profile::thread);
}

TEST_CASE("without the run queue, busy cores mean starving and CPU pressure means unsure") {
  auto w = seen(worker_profile::process, 80s, 18s);
  w.elapsed = 10s;  // 1.8 of 2 cores used by the tools
  w.usable_cores = 2;
  auto starved = advise_profile(w);
  CHECK(starved.cpu_starved);
  CHECK(starved.recommended == worker_profile::process);
  CHECK(starved.reason.find("use 1.8 of the 2 usable cores") != std::string::npos);
  // Few cores used, but the machine is under CPU pressure: no claim, no switch.
  w.python_cpu = 4s;
  w.cpu_pressure = 0.9;
  auto unsure = advise_profile(w);
  CHECK(!unsure.cpu_starved);
  CHECK(unsure.recommended == worker_profile::process);
  CHECK(unsure.reason.find("CPU pressure is 90%") != std::string::npos);
  // A quiet machine: waiting.
  w.cpu_pressure = 0.05;
  CHECK(advise_profile(w).recommended == worker_profile::thread);
}
