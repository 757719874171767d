// Which busy worker may queue one more call: learned from wall times.

#include <doctest/doctest.h>

#include "snakepit/actors/detail/pipelining_policy.hpp"

using snakepit::detail::pipelining_policy;
using namespace std::chrono_literals;

TEST_CASE("a tool not seen yet is never queued behind another call") {
  pipelining_policy p{8, 2ms};
  CHECK(p.enabled());
  CHECK(!p.estimate("noop"));
  CHECK(!p.admits("noop", 0, 0ms));
  p.observe("noop", 20us);
  CHECK(p.admits("noop", 0, 0ms));
}

TEST_CASE("queued work stays within the budget and the queue within the depth") {
  pipelining_policy p{3, 2ms};
  p.observe("tool", 600us);
  CHECK(p.admits("tool", 0, 0us));
  CHECK(p.admits("tool", 1, 600us));
  CHECK(p.admits("tool", 2, 1200us));     // 1.8 ms queued after it
  CHECK(!p.admits("tool", 2, 1500us));    // 2.1 ms: over the budget
  p.observe("short", 10us);
  CHECK(!p.admits("short", 3, 30us));     // the depth is full
}

TEST_CASE("a slow call counts at once, fast ones pull the estimate down gradually") {
  pipelining_policy p{8, 2ms};
  p.observe("t", 100us);
  p.observe("t", 5ms);  // one slow call: no call queues behind its like any more
  REQUIRE(p.estimate("t"));
  CHECK(*p.estimate("t") == 5ms);
  CHECK(!p.admits("t", 0, 0ms));
  for (int i = 0; i < 30; ++i)
    p.observe("t", 100us);
  CHECK(*p.estimate("t") < 200us);
  CHECK(p.admits("t", 0, 0ms));
}

TEST_CASE("pipelining off: depth 0 or budget 0") {
  pipelining_policy off_depth{0, 2ms};
  off_depth.observe("t", 10us);
  CHECK(!off_depth.enabled());
  CHECK(!off_depth.admits("t", 0, 0ms));
  pipelining_policy off_budget{8, 0ms};
  CHECK(!off_budget.enabled());
}

TEST_CASE("the tools remembered are bounded") {
  pipelining_policy p{8, 2ms};
  for (std::size_t i = 0; i < pipelining_policy::max_tools + 10; ++i)
    p.observe("tool-" + std::to_string(i), 10us);
  std::size_t known = 0;
  for (std::size_t i = 0; i < pipelining_policy::max_tools + 10; ++i)
    known += p.estimate("tool-" + std::to_string(i)) ? 1 : 0;
  CHECK(known == pipelining_policy::max_tools);
}
