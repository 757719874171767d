// One timer for many deadlines.

#include <doctest/doctest.h>

#include "snakepit/actors/detail/deadline_set.hpp"

using snakepit::detail::deadline_set;
using namespace std::chrono_literals;

TEST_CASE("a deadline set arms a timer only for an earlier deadline") {
  deadline_set ds;
  auto t0 = caf::make_timestamp();
  auto a = ds.add(t0 + 100ms, 1);
  REQUIRE(a);
  CHECK(*a == t0 + 100ms);
  CHECK(!ds.add(t0 + 200ms, 2));  // later: the armed timer will handle it
  auto b = ds.add(t0 + 50ms, 3);  // earlier: arm again
  REQUIRE(b);
  std::optional<caf::timestamp> rearm;
  // The 50 ms timer fires: only key 3 is due; no re-arm, the 100 ms timer is pending.
  auto due = ds.on_tick(t0 + 50ms, t0 + 60ms, rearm);
  CHECK(due == std::vector<std::uint64_t>{3});
  CHECK(!rearm);
  ds.remove(t0 + 100ms, 1);  // finished before its deadline
  due = ds.on_tick(t0 + 100ms, t0 + 110ms, rearm);
  CHECK(due.empty());
  REQUIRE(rearm);  // key 2 remains and no timer covers it any more
  CHECK(*rearm == t0 + 200ms);
  due = ds.on_tick(*rearm, t0 + 200ms, rearm);
  CHECK(due == std::vector<std::uint64_t>{2});
  CHECK(!rearm);
  CHECK(ds.empty());
}
