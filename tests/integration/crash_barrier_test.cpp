// The crash barrier with real workers that crash (os._exit in the tool):
// retries of idempotent calls (declared by the tool or the request), bounded
// by attempts and the deadline; the poison table refusing a request that
// keeps crashing workers; the circuit breaker opening, refusing and closing
// after a probe.

#include <atomic>
#include <cstdio>
#include <map>

#include <fmt/format.h>

#include "pool_fixture.hpp"
#include "snakepit/actors/telemetry.hpp"
#include "../support/event_log.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

pool_config flaky(std::uint32_t size = 2) {
  pool_config cfg;
  cfg.name = "flaky";
  cfg.adapter = "flaky_adapter.FlakyAdapter";
  cfg.python_path = {source_dir() + "/tests/integration/adapters"};
  cfg.size = size;
  cfg.request_timeout = 30s;
  // Crashing is the point here: the supervisor must not give up.
  cfg.intensity.max_restarts = 100;
  cfg.intensity.period = 60s;
  cfg.backoff.min = 1ms;
  cfg.backoff.max = 10ms;
  cfg.retry.backoff_min = 10ms;
  cfg.retry.backoff_max = 50ms;
  return cfg;
}

std::string marker_path() {
  static std::atomic<int> n{0};
  auto path = fmt::format("/tmp/snakepit-barrier-{}-{}", ::getpid(), ++n);
  std::remove(path.c_str());
  return path;
}

} // namespace

TEST_SUITE("crash barrier") {

TEST_CASE_FIXTURE(system_fixture, "an idempotent tool whose worker crashed is retried; the "
                                  "reply says how many attempts ran") {
  event_log events{"*"};
  auto pool = start(flaky(2));
  auto marker = marker_path();
  auto r = call(pool, make_request("crash_once", {{"marker", marker}}));
  REQUIRE_MESSAGE(r, message_of(r));
  CHECK(r->attempts == 2);
  CHECK(r->result.if_string()->rfind("ok from ", 0) == 0);
  auto st = wait_status(pool, [](const pool_status& s) { return s.crashes == 1; });
  CHECK(st.retries == 1);
  auto retried = events.named("snakepit.request.retried");
  REQUIRE(retried.size() == 1);
  CHECK(retried[0].metadata.at("tool") == "crash_once");
  CHECK(retried[0].metadata.at("reason") == "worker_crashed");
  CHECK(retried[0].measurements.at("attempt") == 2);
  // A call that did not crash took one attempt.
  auto plain = call(pool, make_request("add", {{"a", 1}, {"b", 2}}));
  REQUIRE(plain);
  CHECK(plain->attempts == 1);
  std::remove(marker.c_str());
}

TEST_CASE_FIXTURE(system_fixture, "the request's idempotent flag retries a tool that does not "
                                  "declare it; without it the crash is the answer") {
  auto pool = start(flaky(2));
  auto marker = marker_path();
  auto once = call(pool, make_request("crash_once_plain", {{"marker", marker}}));
  CHECK(kind_of(once) == "worker_crashed");
  CHECK(status(pool).retries == 0);
  std::remove(marker.c_str());
  auto req = make_request("crash_once_plain", {{"marker", marker}});
  req.idempotent = true;
  auto r = call(pool, req);
  REQUIRE_MESSAGE(r, message_of(r));
  CHECK(r->attempts == 2);
  std::remove(marker.c_str());
}

TEST_CASE_FIXTURE(system_fixture, "Python exceptions are never retried") {
  auto pool = start(flaky(1));
  auto r = call(pool, make_request("fails", {{"message", "no"}}));
  CHECK(kind_of(r) == "python_exception");
  CHECK(message_of(r).find("attempt") == std::string::npos);
  CHECK(status(pool).retries == 0);
}

TEST_CASE_FIXTURE(system_fixture, "retries are bounded; the error says how many attempts ran") {
  auto cfg = flaky(2);
  cfg.poison.threshold = 0;
  cfg.breaker.threshold = 0;
  cfg.retry.max_attempts = 3;
  auto pool = start(cfg);
  auto r = call(pool, make_request("crash_always", {{"n", 1}}));
  CHECK(kind_of(r) == "worker_crashed");
  CHECK_MESSAGE(message_of(r).find("attempt 3 of the call") != std::string::npos, message_of(r));
  CHECK(message_of(r).find("all 3 attempts") != std::string::npos);
  auto st = wait_status(pool, [](const pool_status& s) { return s.crashes == 3; });
  CHECK(st.retries == 2);
}

TEST_CASE_FIXTURE(system_fixture, "retries stay within the caller's deadline") {
  auto cfg = flaky(2);
  cfg.poison.threshold = 0;
  cfg.breaker.threshold = 0;
  cfg.retry.backoff_min = 3s;
  cfg.retry.backoff_max = 3s;
  auto pool = start(cfg);
  auto t0 = std::chrono::steady_clock::now();
  auto r = call(pool, make_request("crash_always", {{"n", 2}}, 1s));
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(kind_of(r) == "worker_crashed");
  CHECK_MESSAGE(message_of(r).find("no time for attempt 2 before the call's deadline")
                  != std::string::npos,
                message_of(r));
  CHECK(took < 1s);
  CHECK(status(pool).retries == 0);
}

TEST_CASE_FIXTURE(system_fixture, "a request that keeps crashing workers is refused as "
                                  "poison_request; other arguments pass; the taint expires") {
  event_log events{"*"};
  auto cfg = flaky(2);
  cfg.poison.threshold = 2;
  cfg.poison.ttl = 2s;
  cfg.breaker.threshold = 0;
  auto pool = start(cfg);
  for (int i = 0; i < 2; ++i) {
    auto r = call(pool, make_request("crash_plain", {{"n", 7}}));
    CHECK(kind_of(r) == "worker_crashed");
  }
  auto crashes = wait_status(pool, [](const pool_status& s) { return s.crashes == 2; }).crashes;
  auto t0 = std::chrono::steady_clock::now();
  auto refused = call(pool, make_request("crash_plain", {{"n", 7}}));
  CHECK(std::chrono::steady_clock::now() - t0 < 500ms);
  CHECK_MESSAGE(kind_of(refused) == "poison_request", message_of(refused));
  CHECK(message_of(refused).find("crashed its workers 2 times") != std::string::npos);
  CHECK(message_of(refused).find("poison_ttl_ms") != std::string::npos);
  auto st = status(pool);
  CHECK(st.crashes == crashes);  // nothing more was killed
  CHECK(st.poisoned == 1);
  CHECK(st.poison_refused == 1);
  CHECK(events.named("snakepit.request.poisoned").size() == 1);
  CHECK(events.named("snakepit.request.poison_refused").size() == 1);
  // Other arguments of the same tool are another request.
  CHECK(kind_of(call(pool, make_request("crash_plain", {{"n", 8}}))) == "worker_crashed");
  wait_status(pool, [](const pool_status& s) { return s.ready == 2; });
  CHECK(kind_of(call(pool, make_request("add", {{"a", 1}, {"b", 2}}))) == "ok");
  // After the ttl the request runs again (and crashes again).
  std::this_thread::sleep_for(2100ms);
  CHECK(status(pool).poisoned == 0);
  CHECK(kind_of(call(pool, make_request("crash_plain", {{"n", 7}}))) == "worker_crashed");
}

TEST_CASE_FIXTURE(system_fixture, "retries count into the poison table") {
  auto cfg = flaky(2);
  cfg.poison.threshold = 3;
  cfg.breaker.threshold = 0;
  cfg.retry.max_attempts = 5;
  auto pool = start(cfg);
  auto r = call(pool, make_request("crash_always", {{"n", 3}}));
  CHECK_MESSAGE(kind_of(r) == "poison_request", message_of(r));
  CHECK(message_of(r).find("attempt 3 of the call") != std::string::npos);
  CHECK(status(pool).retries == 2);
  auto again = call(pool, make_request("crash_always", {{"n", 3}}));
  CHECK(kind_of(again) == "poison_request");
  CHECK(message_of(again).find("attempt") == std::string::npos);
}

TEST_CASE_FIXTURE(system_fixture, "the circuit breaker opens after crashes, refuses with a "
                                  "retry-after, and a probe that succeeds closes it") {
  event_log events{"*"};
  auto cfg = flaky(2);
  cfg.poison.threshold = 0;
  cfg.breaker.threshold = 2;
  cfg.breaker.window = 10s;
  cfg.breaker.open_time = 1s;
  auto pool = start(cfg);
  CHECK(status(pool).breaker == "closed");
  CHECK(kind_of(call(pool, make_request("crash_plain", {{"n", 1}}))) == "worker_crashed");
  CHECK(kind_of(call(pool, make_request("crash_plain", {{"n", 2}}))) == "worker_crashed");
  auto st = wait_status(pool, [](const pool_status& s) { return s.breaker == "open"; });
  CHECK(st.breaker_opened == 1);
  auto refused = call(pool, make_request("add", {{"a", 1}, {"b", 2}}));
  CHECK_MESSAGE(kind_of(refused) == "circuit_open", message_of(refused));
  CHECK(message_of(refused).find("retry after") != std::string::npos);
  CHECK(status(pool).breaker_refused >= 1);
  // Open time over: one probe goes through, and its success closes it.
  wait_status(pool, [](const pool_status& s) { return s.ready == 2 && s.breaker == "half_open"; });
  auto probe = call(pool, make_request("add", {{"a", 1}, {"b", 2}}));
  REQUIRE_MESSAGE(probe, message_of(probe));
  CHECK(status(pool).breaker == "closed");
  CHECK(kind_of(call(pool, make_request("add", {{"a", 2}, {"b", 2}}))) == "ok");
  std::vector<std::string> states;
  for (auto& e : events.named("snakepit.pool.breaker"))
    states.push_back(e.metadata.at("state"));
  CHECK(states == std::vector<std::string>{"open", "half_open", "closed"});
  CHECK(!events.named("snakepit.request.breaker_refused").empty());
}

TEST_CASE_FIXTURE(system_fixture, "a half-open breaker whose probe crashes opens again; streams "
                                  "wait for it to close") {
  auto cfg = flaky(2);
  cfg.poison.threshold = 0;
  cfg.breaker.threshold = 1;
  cfg.breaker.open_time = 500ms;
  auto pool = start(cfg);
  CHECK(kind_of(call(pool, make_request("crash_plain", {{"n", 1}}))) == "worker_crashed");
  wait_status(pool, [](const pool_status& s) { return s.ready == 2 && s.breaker == "half_open"; });
  CHECK(kind_of(call(pool, make_request("crash_plain", {{"n", 2}}))) == "worker_crashed");
  auto st = wait_status(pool, [](const pool_status& s) { return s.breaker_opened == 2; });
  CHECK(st.breaker == "open");
  CHECK(kind_of(call(pool, make_request("add", {{"a", 1}, {"b", 1}}))) == "circuit_open");
}

TEST_CASE_FIXTURE(system_fixture, "the tool description carries idempotent") {
  auto pool = start(flaky(1));
  caf::scoped_actor self{*sys};
  std::map<std::string, bool> idempotent;
  self->request(pool, 10s, list_tools_atom::value)
    .receive(
      [&](std::vector<tool_spec>& tools) {
        for (auto& t : tools)
          idempotent[t.name] = t.idempotent;
      },
      [](caf::error& e) { FAIL(caf::to_string(e)); });
  CHECK(idempotent.at("crash_once"));
  CHECK(idempotent.at("add"));
  CHECK_FALSE(idempotent.at("crash_plain"));
  CHECK(status(pool).workers.at(0).idempotent_tools
        == std::vector<std::string>{"add", "crash_always", "crash_once", "fails"});
}

} // TEST_SUITE
