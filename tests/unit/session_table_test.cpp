// The host's session store: open, bounds, expiry, lost workers.

#include <doctest/doctest.h>

#include "snakepit/actors/session_table.hpp"
#include "snakepit/messages/error.hpp"

using namespace snakepit;
using namespace std::chrono_literals;

TEST_CASE("sessions open with fresh or given ids within max_sessions") {
  session_table t{2, 1min};
  auto now = caf::make_timestamp();
  auto a = t.open("", now);
  REQUIRE(a);
  CHECK(a->rfind("s-", 0) == 0);
  auto b = t.open("mine", now);
  REQUIRE(b);
  CHECK(*b == "mine");
  auto full = t.open("", now);
  REQUIRE(!full);
  CHECK(describe(full.error()).kind == "pool_saturated");
  CHECK(describe(full.error()).message.find("max_sessions") != std::string::npos);
  REQUIRE(t.close("mine"));
  CHECK(!t.close("mine"));
  auto again = t.open(*a, now);
  REQUIRE(!again);  // taken
  CHECK(describe(again.error()).kind == "bad_arguments");
}

TEST_CASE("sessions unused for the ttl expire and use keeps them") {
  session_table t{10, 100ms};
  auto now = caf::make_timestamp();
  REQUIRE(t.open("idle", now));
  REQUIRE(t.open("busy", now));
  t.find("busy")->last_used = now + 80ms;
  auto gone = t.expire(now + 120ms);
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].id == "idle");
  CHECK(t.find("idle") == nullptr);
  CHECK(t.find("busy") != nullptr);
  CHECK(t.expire(now + 200ms).size() == 1);
  CHECK(t.size() == 0);
}

TEST_CASE("a gone worker marks its sessions lost") {
  session_table t{10, 1min};
  auto now = caf::make_timestamp();
  REQUIRE(t.open("a", now));
  REQUIRE(t.open("b", now));
  t.find("a")->worker = "p/w-1@10";
  t.find("b")->worker = "p/w-2@11";
  CHECK(t.bound_to("p/w-1@10") == 1);
  t.worker_gone("p/w-1@10");
  CHECK(t.find("a")->lost);
  CHECK(!t.find("b")->lost);
  CHECK(t.bound_to("p/w-1@10") == 0);
}

TEST_CASE("affinity modes parse") {
  CHECK(parse_affinity_mode("hint") == affinity_mode::hint);
  CHECK(parse_affinity_mode("strict_queue") == affinity_mode::strict_queue);
  CHECK(parse_affinity_mode("strict_fail_fast") == affinity_mode::strict_fail_fast);
  CHECK(!parse_affinity_mode("sticky"));
}
