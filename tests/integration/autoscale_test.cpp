// Autoscaled pools with real workers: they grow while calls queue, shrink
// when idle without dropping a call, stay within min/max, and keep workers
// that hold sessions.

#include "../support/sleep_calls.hpp"
#include "pool_fixture.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

pool_config elastic(std::uint32_t min, std::uint32_t max) {
  auto cfg = system_fixture::showcase(min);
  cfg.name = "elastic";
  cfg.autoscale.min_size = min;
  cfg.autoscale.max_size = max;
  cfg.autoscale.scale_up_wait = 100ms;
  cfg.autoscale.up_cooldown = 200ms;
  cfg.autoscale.idle_timeout = 800ms;
  cfg.autoscale.down_cooldown = 300ms;
  return cfg;
}

std::size_t live_workers(const pool_status& st) {
  return static_cast<std::size_t>(
    std::count_if(st.workers.begin(), st.workers.end(), [](auto& w) { return !w.draining; }));
}

} // namespace

TEST_CASE_FIXTURE(system_fixture,
                  "an autoscaled pool grows while calls queue and shrinks back when idle") {
  auto pool = start(elastic(1, 4));
  auto st = status(pool);
  CHECK(st.size == 1);
  CHECK(st.min_size == 1);
  CHECK(st.max_size == 4);
  // 12 sleeps of 0.6 s on one worker would take 7.2 s; it grows to 4.
  std::size_t peak = 0;
  auto t0 = std::chrono::steady_clock::now();
  auto outcomes = sleep_outcomes(*sys, pool, 12, 0.6, [&] {
    for (int i = 0; i < 40; ++i) {
      std::this_thread::sleep_for(50ms);
      peak = std::max(peak, live_workers(status(pool)));
    }
  });
  auto took = std::chrono::steady_clock::now() - t0;
  for (auto& e : outcomes)
    CHECK_MESSAGE(!e, describe(e).message);
  CHECK(peak >= 3);
  CHECK(peak <= 4);
  CHECK(took < 5s);
  st = status(pool);
  CHECK(st.scale_ups >= 1);
  CHECK(st.size <= 4);
  // Idle: back to min_size, one worker at a time, nothing failed.
  st = wait_status(pool, [](const pool_status& s) { return s.size == 1 && s.ready == 1; }, 15s);
  CHECK(st.scale_downs >= 2);
  CHECK(st.failed == 0);
  CHECK(st.crashes == 0);
  auto r = call(pool, make_request("add", {{"a", 1}, {"b", 2}}));
  REQUIRE_MESSAGE(r, message_of(r));
}

TEST_CASE_FIXTURE(system_fixture,
                  "shrinking never retires a worker holding a session, nor goes below min_size") {
  auto cfg = elastic(1, 3);
  cfg.size = 3;
  auto pool = start(cfg);
  caf::scoped_actor self{*sys};
  std::string session;
  self->request(pool, 10s, open_session_atom::value, std::string{})
    .receive([&](std::string& id) { session = id; },
             [](caf::error& e) { FAIL(describe(e).message); });
  // The session binds to a worker on its first call.
  auto req = make_request("session_info");
  req.session_id = session;
  auto first = call(pool, req);
  REQUIRE_MESSAGE(first, message_of(first));
  auto pid = first->result["pid"].as_int();
  auto st = wait_status(
    pool, [](const pool_status& s) { return s.size == 1 && s.workers.size() == 1; }, 15s);
  REQUIRE(st.workers.size() == 1);
  CHECK(st.workers[0].pid == pid);  // the session's worker is the one kept
  // It stays at min_size while idle.
  std::this_thread::sleep_for(1500ms);
  CHECK(status(pool).size == 1);
  auto again = call(pool, req);
  REQUIRE_MESSAGE(again, message_of(again));
  CHECK(again->result["calls"] == value(2));
}

TEST_CASE_FIXTURE(system_fixture, "autoscaling bounds are checked") {
  auto cfg = elastic(3, 2);
  auto pool = start_pool(*sys, cfg);
  REQUIRE(!pool);
  CHECK(describe(pool.error()).message.find("min_size < max_size") != std::string::npos);
  cfg = elastic(2, 4);
  cfg.size = 6;
  pool = start_pool(*sys, cfg);
  REQUIRE(!pool);
  CHECK(describe(pool.error()).message.find("between min_size and max_size") != std::string::npos);
}
