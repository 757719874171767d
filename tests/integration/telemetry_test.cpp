// Telemetry events from a real pool: calls, a crash, a recycle.

#include <mutex>

#include "pool_fixture.hpp"
#include "snakepit/actors/telemetry.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

TEST_CASE_FIXTURE(system_fixture, "events fire with measurements for a real pool") {
  std::mutex mtx;
  std::vector<telemetry_event> seen;
  auto id = telemetry::global().attach("*", [&](const telemetry_event& e) {
    std::lock_guard<std::mutex> guard{mtx};
    seen.push_back(e);
  });
  auto pool = start(showcase(1));
  REQUIRE(call(pool, make_request("cpu_burn", {{"milliseconds", 20}})));
  CHECK(!call(pool, make_request("fail")));
  auto first = status(pool).workers.at(0).id;
  caf::scoped_actor self{*sys};
  self->request(pool, 5s, recycle_atom::value, first, std::string{"test"})
    .receive([](bool ok) { CHECK(ok); }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  wait_status(pool, [&](const pool_status& s) {
    return s.ready == 1 && s.workers[0].id != first;
  });
  CHECK(!call(pool, make_request("crash")));
  wait_status(pool, [](const pool_status& s) { return s.ready == 1 && s.crashes == 1; });
  stop(pool);
  telemetry::global().detach(id);
  std::lock_guard<std::mutex> guard{mtx};
  auto find = [&](const std::string& name, const std::string& key = {},
                  const std::string& value = {}) -> const telemetry_event* {
    for (auto& e : seen)
      if (e.name == name && (key.empty() || (e.metadata.count(key) && e.metadata.at(key) == value)))
        return &e;
    return nullptr;
  };
  CHECK(find("snakepit.pool.ready"));
  CHECK(find("snakepit.worker.started"));
  auto burn = find("snakepit.request.executed", "tool", "cpu_burn");
  REQUIRE(burn);
  CHECK(burn->metadata.at("outcome") == "ok");
  CHECK(burn->measurements.at("python_wall_us") >= 15000);
  CHECK(burn->measurements.count("queue_us") == 1);
  auto failed = find("snakepit.request.executed", "tool", "fail");
  REQUIRE(failed);
  CHECK(failed->metadata.at("outcome") == "PYTHON_EXCEPTION");
  auto recycled = find("snakepit.worker.recycled");
  REQUIRE(recycled);
  CHECK(recycled->metadata.at("reason") == "test");
  auto crashed = find("snakepit.worker.crashed");
  REQUIRE(crashed);
  CHECK(crashed->metadata.at("reason").find("code 13") != std::string::npos);
  CHECK(find("snakepit.supervisor.restart"));
  CHECK(find("snakepit.worker.stopped"));
}

namespace {

/// Collects the events of one name, thread-safe (handlers run on actor and
/// gRPC threads).
struct event_log {
  std::mutex mtx;
  std::vector<telemetry_event> events;
  std::uint64_t id = 0;

  explicit event_log(const std::string& name) {
    id = telemetry::global().attach(name, [this](const telemetry_event& e) {
      std::lock_guard<std::mutex> guard{mtx};
      events.push_back(e);
    });
  }

  ~event_log() {
    telemetry::global().detach(id);
  }

  std::vector<telemetry_event> copy() {
    std::lock_guard<std::mutex> guard{mtx};
    return events;
  }
};

} // namespace

TEST_CASE_FIXTURE(system_fixture, "events from Python reach the bus with pool, worker and pid") {
  event_log ticks{"python.showcase.tick"};
  auto pool = start(showcase(1));
  auto reply = call(pool, make_request("emit_events", {{"count", 3}}));
  REQUIRE(reply);
  CHECK(reply->result == value{3});
  // They come back with the reply, so they are on the bus before the caller
  // gets it.
  auto events = ticks.copy();
  REQUIRE(events.size() == 3);
  auto worker = status(pool).workers.at(0);
  for (int i = 0; i < 3; ++i) {
    CHECK(events[i].measurements.at("i") == i);
    CHECK(events[i].metadata.at("source") == "showcase");
    CHECK(events[i].metadata.at("tool") == "emit_events");
    CHECK(events[i].metadata.at("pool") == "test");
    CHECK(events[i].metadata.at("worker") == worker.id);
    CHECK(events[i].metadata.at("pid") == std::to_string(worker.pid));
  }
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "events emitted outside calls arrive with the health ping") {
  event_log later{"python.showcase.later"};
  auto cfg = showcase(1);
  cfg.health_interval = 50ms;
  auto pool = start(cfg);
  REQUIRE(call(pool, make_request("emit_later", {{"count", 2}, {"delay_ms", 100}})));
  CHECK(later.copy().empty());
  wait_status(pool, [&](const pool_status&) { return later.copy().size() == 2; }, 5s);
  CHECK(later.copy().at(0).metadata.at("source") == "background");
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "Python events over the buffer are dropped and counted") {
  event_log ticks{"python.showcase.tick"};
  event_log dropped{"snakepit.python.events_dropped"};
  auto cfg = showcase(1);
  cfg.python_event_buffer = 4;
  auto pool = start(cfg);
  auto reply = call(pool, make_request("emit_events", {{"count", 10}}));
  REQUIRE(reply);
  CHECK(reply->result == value{4});
  CHECK(ticks.copy().size() == 4);
  auto drops = dropped.copy();
  REQUIRE(drops.size() == 1);
  CHECK(drops[0].measurements.at("dropped") == 6);
  CHECK(drops[0].metadata.at("pool") == "test");
  wait_status(pool, [](const pool_status& s) {
    return s.workers.size() == 1 && s.workers[0].python_events_dropped == 6;
  });
  // Later replies repeat the total; no new drop event without a new drop.
  REQUIRE(call(pool, make_request("emit_events", {{"count", 1}})));
  CHECK(dropped.copy().size() == 1);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "capacity reached fires once each time the pool fills up") {
  event_log full{"snakepit.pool.capacity_reached"};
  auto pool = start(showcase(2));
  caf::scoped_actor self{*sys};
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 3; ++i)  // 2 slots: the third call queues
      self->send(pool, execute_atom::value, make_request("sleep", {{"seconds", 0.2}}));
    for (int i = 0; i < 3; ++i)
      CHECK(await(self));
  }
  auto events = full.copy();
  REQUIRE(events.size() == 2);
  CHECK(events[0].measurements.at("capacity") == 2);
  CHECK(events[0].metadata.at("pool") == "test");
  stop(pool);
}
