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
