// The profile rules on recorded traces: what `diagnose` saw of real pools on a
// real (2-core, shared) machine, recorded by traces/record_trace.py. One pool
// whose calls wait (sleeps), one whose calls are starved of CPU (CPU work on
// more busy processes than cores): both show a low CPU share per call, and
// only the run queue tells them apart. `diagnose` and `call --repeat` judge
// them by the same function, `advise_profile(observe(status, machine))`.

#include <fstream>
#include <iterator>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "snakepit/observability/diagnosis.hpp"
#include "snakepit/observability/status_json.hpp"

using namespace snakepit;

namespace {

std::string traces_dir() {
  std::string here = __FILE__;
  return here.substr(0, here.find_last_of('/')) + "/traces";
}

template <class T>
std::optional<T> optional_of(const nlohmann::json& j) {
  return j.is_null() ? std::nullopt : std::optional<T>{j.get<T>()};
}

/// {pid: {tid: [ns on a CPU, ns in the run queue]}}, as read_processes_cpu reads it.
std::map<std::int32_t, process_cpu> sched_of(const nlohmann::json& j) {
  std::map<std::int32_t, process_cpu> out;
  for (auto& [pid, threads] : j.items()) {
    process_cpu p;
    for (auto& [tid, figures] : threads.items()) {
      caf::timespan wait{figures[1].get<std::int64_t>()};
      p.run += caf::timespan{figures[0].get<std::int64_t>()};
      p.run_queue_wait += wait;
      p.thread_waits[std::stoi(tid)] = wait;
    }
    out[std::stoi(pid)] = std::move(p);
  }
  return out;
}

/// A recorded trace as `diagnose` reads it: the machine with its sampled
/// worker window, and the pools at the second look.
struct replay {
  machine_info machine;
  std::vector<pool_status> pools;
};

replay load(const std::string& name) {
  std::ifstream in{traces_dir() + "/" + name};
  REQUIRE_MESSAGE(in, "no trace " << name);
  auto j = nlohmann::json::parse(std::string{std::istreambuf_iterator<char>{in}, {}});
  replay r;
  auto& m = j["machine"];
  r.machine.cores = m["cores"].get<unsigned>();
  r.machine.memory_total_bytes = m["memory_total_bytes"].get<std::uint64_t>();
  r.machine.memory_available_bytes = m["memory_available_bytes"].get<std::uint64_t>();
  r.machine.cpu_pressure_10s = optional_of<double>(m["cpu_pressure_10s"]);
  r.machine.cpu_pressure_60s = optional_of<double>(m["cpu_pressure_60s"]);
  r.machine.load_1m = optional_of<double>(m["load_1m"]);
  r.machine.runnable = optional_of<std::uint32_t>(m["runnable"]);
  auto before = tree_status_from_json(j["before"].dump());
  auto after = tree_status_from_json(j["after"].dump());
  REQUIRE(before);
  REQUIRE(after);
  add_worker_window(r.machine, before->pools, after->pools, sched_of(j["sched_before"]),
                    sched_of(j["sched_after"]),
                    std::chrono::duration_cast<caf::timespan>(
                      std::chrono::duration<double>(j["window_s"].get<double>())));
  r.pools = after->pools;
  return r;
}

const recommendation* find_rule(const pool_diagnosis& d, const std::string& rule) {
  for (auto& r : d.recommendations)
    if (r.rule == rule)
      return &r;
  return nullptr;
}

} // namespace

TEST_CASE("recorded: calls that wait for I/O are advised the thread profile") {
  auto r = load("waiting.json");
  REQUIRE(r.pools.size() == 1);
  REQUIRE(!r.machine.workers.empty());  // the run queue was read
  auto advice = advise_profile(observe(r.pools[0], r.machine));
  CHECK(advice.cpu_share < 0.5);
  CHECK(!advice.cpu_starved);
  CHECK(advice.recommended == worker_profile::thread);
  auto d = diagnose(r.machine, r.pools);
  auto profile = find_rule(d.pools[0], "profile");
  REQUIRE(profile);
  CHECK(profile->what == "profile thread suits these calls better than process");
  CHECK(!find_rule(d.pools[0], "cpu_starved"));
}

TEST_CASE("recorded: calls starved of CPU keep their profile and are told why") {
  auto r = load("starving.json");
  REQUIRE(r.pools.size() == 1);
  REQUIRE(!r.machine.workers.empty());
  auto advice = advise_profile(observe(r.pools[0], r.machine));
  CHECK(advice.cpu_share < 0.5);  // the same low share as waiting calls...
  CHECK(advice.cpu_starved);      // ... spent in the run queue
  CHECK(advice.recommended == worker_profile::process);
  CHECK(advice.reason.find("starved of CPU, not waiting") != std::string::npos);
  auto d = diagnose(r.machine, r.pools);
  CHECK(!find_rule(d.pools[0], "profile"));  // no thread profile for them
  auto starved = find_rule(d.pools[0], "cpu_starved");
  REQUIRE(starved);
  CHECK(starved->level == recommendation::severity::warning);
  CHECK(starved->action.find("keep profile = \"process\"") != std::string::npos);
}

TEST_CASE("recorded: the same starving trace without the run queue is not called waiting") {
  // A tree on another machine: no scheduler figures. The tools' CPU use or
  // the machine's CPU pressure keeps the advice from the thread profile.
  auto r = load("starving.json");
  r.machine.workers.clear();
  r.machine.worker_window_length = caf::timespan{0};
  auto advice = advise_profile(observe(r.pools[0], r.machine));
  CHECK(advice.recommended == worker_profile::process);
}
