// Recycling: drain, then replace, with no dropped call.

#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "pool_fixture.hpp"
#include "snakepit/actors/lifecycle.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

std::uint64_t recycles(const pool_status& st, const std::string& reason) {
  auto i = st.recycles.find(reason);
  return i == st.recycles.end() ? 0 : i->second;
}

} // namespace

TEST_CASE_FIXTURE(system_fixture, "a recycled worker finishes its calls, then is replaced") {
  auto pool = start(showcase(1));
  auto before = status(pool).workers.at(0).id;
  caf::scoped_actor busy{*sys};
  busy->send(caf::actor_cast<caf::actor>(pool), execute_atom::value,
             make_request("sleep", {{"seconds", 0.4}}));
  wait_status(pool, [](const pool_status& s) { return s.busy == 1; });
  caf::scoped_actor self{*sys};
  bool accepted = false;
  self->request(pool, 5s, recycle_atom::value, before, std::string{"test"})
    .receive([&](bool ok) { accepted = ok; }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  CHECK(accepted);
  // Meanwhile new calls go to the replacement (or wait for it), never fail.
  auto during = call(pool, make_request("noop"));
  CHECK_MESSAGE(during, message_of(during));
  auto drained = await(busy);
  CHECK_MESSAGE(drained, message_of(drained));  // the in-flight call finished
  auto st = wait_status(pool, [&](const pool_status& s) {
    return s.workers.size() == 1 && s.workers[0].id != before && !s.workers[0].draining;
  });
  CHECK(recycles(st, "test") == 1);
  CHECK(st.crashes == 0);
  CHECK(st.failed == 0);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "workers are recycled by age and by request count") {
  SUBCASE("ttl") {
    auto cfg = showcase(1);
    cfg.worker_ttl = 300ms;
    cfg.lifecycle_interval = 50ms;
    auto pool = start(cfg);
    auto st = wait_status(pool, [](const pool_status& s) { return recycles(s, "ttl") >= 1; });
    CHECK(st.crashes == 0);
    stop(pool);
  }
  SUBCASE("requests") {
    auto cfg = showcase(1);
    cfg.worker_max_requests = 5;
    cfg.lifecycle_interval = 50ms;
    auto pool = start(cfg);
    for (int i = 0; i < 8; ++i)
      CHECK(call(pool, make_request("noop")));
    auto st = wait_status(pool, [](const pool_status& s) { return recycles(s, "requests") >= 1; });
    CHECK(st.failed == 0);
    stop(pool);
  }
  SUBCASE("memory, with hysteresis") {
    auto cfg = showcase(1);
    cfg.lifecycle_interval = 50ms;
    cfg.worker_max_rss_bytes = 120LL << 20;
    auto pool = start(cfg);
    auto pid = status(pool).workers.at(0).pid;
    CHECK(process_rss_bytes(pid) < cfg.worker_max_rss_bytes);
    REQUIRE(call(pool, make_request("hold_memory", {{"megabytes", 150}})));
    auto st = wait_status(pool, [](const pool_status& s) { return recycles(s, "memory") >= 1; });
    CHECK(st.crashes == 0);
    stop(pool);
  }
}

TEST_CASE_FIXTURE(system_fixture, "continuous load through repeated recycles drops no call") {
  auto cfg = showcase(2);
  cfg.worker_max_requests = 25;
  cfg.worker_max_requests_jitter = 10;
  cfg.lifecycle_interval = 20ms;
  auto pool = start(cfg);
  constexpr int callers = 8;
  constexpr int per_caller = 40;
  std::vector<std::unique_ptr<caf::scoped_actor>> selves;
  for (int i = 0; i < callers; ++i)
    selves.push_back(std::make_unique<caf::scoped_actor>(*sys));
  int failed = 0;
  for (int round = 0; round < per_caller; ++round) {
    for (auto& s : selves)
      (*s)->send(caf::actor_cast<caf::actor>(pool), execute_atom::value,
                 make_request("sleep", {{"seconds", 0.005}}));
    for (auto& s : selves) {
      auto r = await(*s);
      if (!r) {
        ++failed;
        MESSAGE(message_of(r));
      }
    }
  }
  auto st = status(pool);
  CHECK(failed == 0);
  CHECK(recycles(st, "requests") >= 4);
  CHECK(st.crashes == 0);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a wedged worker misses its health pings and is replaced") {
  auto cfg = showcase(1);
  cfg.health_interval = 100ms;
  cfg.health_timeout = 80ms;
  cfg.health_max_missed = 3;
  auto pool = start(cfg);
  auto before = status(pool).workers.at(0);
  // Busy is not wedged: a long sleep and a long CPU-bound tool still let
  // the pings through.
  REQUIRE(call(pool, make_request("sleep", {{"seconds", 0.6}})));
  REQUIRE(call(pool, make_request("cpu_burn", {{"milliseconds", 600}})));
  CHECK(status(pool).replacements == 0);
  // Truly wedged: the process is stopped.
  REQUIRE(::kill(before.pid, SIGSTOP) == 0);
  auto t0 = std::chrono::steady_clock::now();
  auto st = wait_status(pool, [&](const pool_status& s) {
    return s.replacements == 1 && s.ready == 1 && s.workers[0].pid != before.pid;
  });
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  CHECK(st.crashes == 0);
  CHECK(call(pool, make_request("noop")));
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "deadline_policy wait fails the caller but lets the call finish") {
  auto cfg = showcase(1);
  cfg.kill_stuck_calls = false;
  cfg.deadline_grace = 50ms;
  auto pool = start(cfg);
  auto pid = status(pool).workers.at(0).pid;
  auto late = call(pool, make_request("sleep", {{"seconds", 0.6}}, 150ms));
  CHECK(kind_of(late) == "timeout");
  // The worker serves nobody until the call returns, then serves again.
  auto next = call(pool, make_request("worker_info"));
  REQUIRE_MESSAGE(next, message_of(next));
  CHECK(next->result["pid"].as_int() == pid);
  CHECK(status(pool).replacements == 0);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a slow starter within its startup timeout is not killed") {
  auto dir = std::string{"/tmp/snakepit-slow-"} + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0700);
  std::ofstream{dir + "/slow_adapter.py"}
    << "import time\n"
       "from snakepit_bridge import BaseAdapter, tool\n"
       "class Slow(BaseAdapter):\n"
       "    def setup(self) -> None:\n"
       "        time.sleep(1.0)  # loads a model, say\n"
       "    @tool\n"
       "    def ping(self) -> str:\n"
       "        return 'pong'\n";
  auto cfg = showcase(1);
  cfg.adapter = "slow_adapter.Slow";
  cfg.python_path = {dir};
  cfg.health_interval = 100ms;  // liveness checks do not apply before ready
  cfg.health_timeout = 50ms;
  cfg.health_max_missed = 2;
  cfg.startup_timeout = 5s;
  auto pool = start(cfg);
  auto r = call(pool, make_request("ping"));
  CHECK_MESSAGE(r, message_of(r));
  auto st = status(pool);
  CHECK(st.replacements == 0);
  CHECK(st.crashes == 0);
  stop(pool);
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE_FIXTURE(system_fixture,
                  "a call on a worker the health check replaces is answered worker_replaced") {
  auto cfg = showcase(1);
  cfg.health_interval = 100ms;
  cfg.health_timeout = 80ms;
  cfg.health_max_missed = 3;
  auto pool = start(cfg);
  auto pid = status(pool).workers.at(0).pid;
  caf::scoped_actor self{*sys};
  auto open = self->request(pool, 20s, execute_atom::value,
                            make_request("sleep", {{"seconds", 10.0}}));
  std::this_thread::sleep_for(200ms);
  REQUIRE(::kill(pid, SIGSTOP) == 0);
  caf::expected<execute_reply> got{caf::error{}};
  open.receive([&](execute_reply& r) { got = std::move(r); },
               [&](caf::error& e) { got = std::move(e); });
  REQUIRE(!got);
  CHECK_MESSAGE(kind_of(got) == "worker_replaced", message_of(got));
  CHECK(message_of(got).find("health") != std::string::npos);
  ::kill(pid, SIGCONT);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture,
                  "a pool that gave up answers pool_stopped, so a retry loop learns to stop") {
  auto cfg = showcase(1);
  cfg.intensity.max_restarts = 1;
  cfg.intensity.period = 60s;
  auto pool = start(cfg);
  caf::scoped_actor self{*sys};
  self->monitor(pool);
  // Crash the worker until the pool's supervisor gives up.
  std::map<std::string, int> kinds;
  for (int i = 0; i < 200; ++i) {
    auto r = call(pool, make_request("crash"));
    kinds[kind_of(r)]++;
    if (kind_of(r) == "pool_stopped")
      break;
    if (i > 3)
      std::this_thread::sleep_for(20ms);
  }
  // Once it is down, every call says so, and says what to do.
  for (int i = 0; i < 50; ++i) {
    auto r = call(pool, make_request("add", {{"a", 1}, {"b", 2}}));
    REQUIRE(!r);
    CHECK_MESSAGE(kind_of(r) == "pool_stopped", message_of(r));
  }
  auto r = call(pool, make_request("add", {{"a", 1}, {"b", 2}}));
  CHECK(message_of(r).find("do not retry") != std::string::npos);
  INFO("kinds seen while it went down: " << kinds.size());
}
