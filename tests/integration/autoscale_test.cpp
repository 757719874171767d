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

TEST_CASE_FIXTURE(system_fixture,
                  "each worker gets its own {index} in env and its own CPUs, kept by its "
                  "replacement") {
  auto cfg = showcase(2);
  cfg.env = {{"SLOT", "{index}"}, {"OF", "{count}"}, {"GPU", "cuda:{index % 2}"},
             {"JSON", "{\"keep\": 1}"}};
  cfg.cpu_affinity.sets = {{0}, {1}};
  auto pool = start(cfg);
  caf::scoped_actor self{*sys};
  std::map<std::string, std::vector<std::int64_t>> cpus_of_slot;
  // A session binds to the worker its first call finds free; with the other
  // worker kept busy meanwhile, sessions land on both.
  std::set<std::string> slots;
  std::vector<std::string> sessions;
  for (int i = 0; i < 8 && slots.size() < 2; ++i) {
    std::string session;
    self->request(pool, 10s, open_session_atom::value, std::string{})
      .receive([&](std::string& id) { session = id; }, [](caf::error&) {});
    sessions.push_back(session);
    auto busy = self->request(pool, 10s, execute_atom::value,
                              make_request("sleep", {{"seconds", 0.2}}));
    auto req = make_request("worker_info");
    req.session_id = session;
    auto info = call(pool, req);
    busy.receive([](execute_reply&) {}, [](caf::error&) {});
    REQUIRE_MESSAGE(info, message_of(info));
    auto env_req = make_request("getenv", {{"name", "SLOT"}});
    env_req.session_id = session;
    auto slot = call(pool, env_req);
    REQUIRE_MESSAGE(slot, message_of(slot));
    auto s = std::string{slot->result.as_string()};
    slots.insert(s);
    std::vector<std::int64_t> cpus;
    if (auto* list = info->result["cpu_affinity"].if_list())
      for (auto& c : *list)
        cpus.push_back(c.as_int());
    cpus_of_slot[s] = cpus;
    std::vector<std::pair<std::string, std::string>> expected{
      {"OF", "2"}, {"GPU", "cuda:" + std::to_string(std::stoi(s) % 2)}, {"JSON", "{\"keep\": 1}"}};
    for (auto& [name, want] : expected) {
      auto q = make_request("getenv", {{"name", name}});
      q.session_id = session;
      auto got = call(pool, q);
      REQUIRE_MESSAGE(got, message_of(got));
      CHECK(got->result == value(want));
    }
  }
  CHECK(slots == std::set<std::string>{"0", "1"});
  CHECK(cpus_of_slot["0"] == std::vector<std::int64_t>{0});
  CHECK(cpus_of_slot["1"] == std::vector<std::int64_t>{1});
  for (auto& id : sessions)  // a worker holding a session drains slowly
    self->request(pool, 10s, close_session_atom::value, id)
      .receive([](bool) {}, [](caf::error&) {});
  // A recycled worker's replacement takes its slot.
  auto before = status(pool);
  REQUIRE(before.workers.size() == 2);
  self->request(pool, 10s, recycle_atom::value, before.workers[0].id, std::string{"test"})
    .receive([](bool ok) { CHECK(ok); }, [](caf::error& e) { FAIL(describe(e).message); });
  wait_status(pool, [&](const pool_status& st) {
    return st.workers.size() == 2
           && std::none_of(st.workers.begin(), st.workers.end(),
                           [&](auto& w) { return w.id == before.workers[0].id; });
  });
  std::set<std::string> now;
  for (int i = 0; i < 8 && now.size() < 2; ++i) {
    auto busy = self->request(pool, 10s, execute_atom::value,
                              make_request("sleep", {{"seconds", 0.2}}));
    auto got = call(pool, make_request("getenv", {{"name", "SLOT"}}));
    busy.receive([](execute_reply&) {}, [](caf::error&) {});
    REQUIRE_MESSAGE(got, message_of(got));
    now.insert(std::string{got->result.as_string()});
  }
  CHECK(now == std::set<std::string>{"0", "1"});
}

TEST_CASE_FIXTURE(system_fixture, "a wrong placeholder or CPU set is refused with its key") {
  auto cfg = showcase(1);
  cfg.env = {{"GPU", "{index % 0}"}};
  auto pool = start_pool(*sys, cfg);
  REQUIRE(!pool);
  CHECK(describe(pool.error()).message.find("env GPU") != std::string::npos);
  cfg.env.clear();
  cfg.cpu_affinity.sets = {{4000}};
  pool = start_pool(*sys, cfg);
  REQUIRE(!pool);
  CHECK(describe(pool.error()).message.find("cpu_affinity") != std::string::npos);
}
