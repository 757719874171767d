// The telemetry bus: attach, detach, wildcard, and throwing handlers.

#include <stdexcept>

#include <doctest/doctest.h>

#include "snakepit/actors/telemetry.hpp"

using namespace snakepit;

TEST_CASE("telemetry handlers by name, wildcard, detach and throwing ones") {
  telemetry bus;
  CHECK(!bus.enabled());
  int named = 0, all = 0, thrower = 0;
  auto a = bus.attach("x.happened", [&](const telemetry_event& e) {
    ++named;
    CHECK(e.measurements.at("n") == 1.0);
  });
  bus.attach("*", [&](const telemetry_event&) { ++all; });
  bus.attach("x.happened", [&](const telemetry_event&) {
    ++thrower;
    throw std::runtime_error("handler bug");
  });
  CHECK(bus.enabled());
  bus.emit({"x.happened", {{"n", 1.0}}, {}});
  bus.emit({"y.happened", {}, {}});
  CHECK(named == 1);
  CHECK(all == 2);
  CHECK(thrower == 1);
  CHECK(bus.detached_for_throwing() == 1);
  bus.emit({"x.happened", {{"n", 1.0}}, {}});  // the thrower is gone, the rest still run
  CHECK(thrower == 1);
  CHECK(named == 2);
  CHECK(bus.detach(a));
  CHECK(!bus.detach(a));
  bus.emit({"x.happened", {{"n", 1.0}}, {}});
  CHECK(named == 2);
  CHECK(all == 4);
}
