// The thread profile beside the process profile, with real workers.

#include "pool_fixture.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

pool_config threaded(std::uint32_t size, std::uint32_t threads) {
  auto cfg = system_fixture::showcase(size);
  cfg.adapter = "snakepit_bridge.showcase.ThreadedShowcaseAdapter";
  cfg.profile = worker_profile::thread;
  cfg.threads_per_worker = threads;
  return cfg;
}

/// Sends `n` requests from `n` scoped actors, returns them for `await`.
std::vector<std::unique_ptr<caf::scoped_actor>>
send_all(caf::actor_system& sys, const pool_actor& pool, int n, execute_request req) {
  std::vector<std::unique_ptr<caf::scoped_actor>> callers;
  for (int i = 0; i < n; ++i) {
    callers.push_back(std::make_unique<caf::scoped_actor>(sys));
    (*callers.back())->send(caf::actor_cast<caf::actor>(pool), execute_atom::value, req);
  }
  return callers;
}

} // namespace

TEST_CASE_FIXTURE(system_fixture, "a thread worker runs N requests at once and never more") {
  auto pool = start(threaded(1, 4));
  for (auto& c : send_all(*sys, pool, 4, make_request("noop")))  // the tool threads exist
    CHECK(await(*c));
  // Four at once: all four are in flight together (the status shows it, so
  // a loaded machine cannot make this flaky), and they end together.
  auto t0 = std::chrono::steady_clock::now();
  auto four = send_all(*sys, pool, 4, make_request("sleep", {{"seconds", 0.5}}));
  wait_status(pool, [](const pool_status& s) { return s.busy == 4 && s.queued == 0; });
  for (auto& c : four)
    CHECK(await(*c));
  auto one_wave = std::chrono::steady_clock::now() - t0;
  CHECK(one_wave < 1500ms);  // 4 x 0.5 s one after another would be 2 s
  // Never more: of eight, four run and four wait, in two waves.
  t0 = std::chrono::steady_clock::now();
  auto eight = send_all(*sys, pool, 8, make_request("sleep", {{"seconds", 0.3}}));
  wait_status(pool, [](const pool_status& s) { return s.busy == 4 && s.queued == 4; });
  for (auto& c : eight)
    CHECK(await(*c));
  auto two_waves = std::chrono::steady_clock::now() - t0;
  CHECK(two_waves >= 590ms);  // at most 4 at once: two waves
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "dispatch follows free capacity across busy and idle workers") {
  auto pool = start(threaded(2, 2));
  auto first = send_all(*sys, pool, 3, make_request("sleep", {{"seconds", 0.5}}));
  auto st = wait_status(pool, [](const pool_status& s) { return s.busy == 3; });
  REQUIRE(st.workers.size() == 2);
  auto a = st.workers[0].in_flight, b = st.workers[1].in_flight;
  CHECK(std::min(a, b) == 1);  // spread by load, not piled on one worker
  CHECK(std::max(a, b) == 2);
  CHECK(st.capacity == 4);
  auto more = send_all(*sys, pool, 2, make_request("noop"));
  // One fits the last free slot; the other waits for a sleeper.
  st = wait_status(pool, [](const pool_status& s) { return s.busy + s.queued >= 4; });
  CHECK(st.busy <= 4);
  for (auto& c : first)
    CHECK(await(*c));
  for (auto& c : more)
    CHECK(await(*c));
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a thread pool refuses an adapter not declared thread-safe") {
  auto cfg = threaded(1, 4);
  cfg.adapter = "snakepit_bridge.showcase.ShowcaseAdapter";
  auto pool = start_pool(*sys, cfg);
  REQUIRE(!pool);
  auto err = describe(pool.error());
  CHECK(err.kind == "startup_failed");
  CHECK(err.python_type == "ThreadSafetyError");
  CHECK(err.message.find("ThreadSafeAdapter") != std::string::npos);
}

TEST_CASE_FIXTURE(system_fixture, "workers report their Python, its GIL and their profile") {
  auto pool = start(threaded(1, 2));
  auto st = status(pool);
  REQUIRE(st.workers.size() == 1);
  const auto& w = st.workers[0];
  CHECK(w.python_version.rfind("3.", 0) == 0);
  CHECK(w.implementation == "cpython");
  CHECK(w.gil_enabled);  // no free-threaded Python on this machine
  CHECK(!w.free_threaded);
  CHECK(w.profile == "thread");
  CHECK(w.capacity == 2);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "in the thread profile a deadline fails only its caller") {
  auto cfg = threaded(1, 2);
  cfg.deadline_grace = 100ms;
  auto pool = start(cfg);
  caf::scoped_actor other{*sys};
  other->send(caf::actor_cast<caf::actor>(pool), execute_atom::value,
              make_request("sleep", {{"seconds", 0.6}}));
  auto late = call(pool, make_request("sleep", {{"seconds", 1.0}}, 200ms));
  CHECK(kind_of(late) == "timeout");
  auto ok = await(other);  // same process, unaffected
  CHECK_MESSAGE(ok, message_of(ok));
  auto st = wait_status(pool, [](const pool_status& s) { return s.busy == 0; });
  CHECK(st.replacements == 0);
  CHECK(st.crashes == 0);
  CHECK(call(pool, make_request("noop")));
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "the thread-safety checker reports a deliberate race") {
  auto cfg = threaded(1, 4);
  cfg.thread_check = thread_check_mode::strict;
  auto pool = start(cfg);
  auto racy = send_all(*sys, pool, 4, make_request("racy_increment"));
  int failed = 0;
  for (auto& c : racy) {
    auto r = await(*c);
    if (!r) {
      ++failed;
      CHECK(describe(r.error()).python_type == "ThreadSafetyError");
    }
  }
  CHECK(failed >= 1);
  // The same work under the adapter's lock is fine.
  auto safe = send_all(*sys, pool, 4, make_request("counter_increment"));
  for (auto& c : safe)
    CHECK(await(*c));
  stop(pool);
}
