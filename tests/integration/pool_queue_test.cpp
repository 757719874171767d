// The pool's queue, its bounds and deadlines, and payload limits.

#include "pool_fixture.hpp"
#include "snakepit/actors/process_launcher.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

void send(caf::scoped_actor& self, const pool_actor& pool, execute_request req) {
  self->send(caf::actor_cast<caf::actor>(pool), execute_atom::value, std::move(req));
}

} // namespace

TEST_CASE_FIXTURE(system_fixture, "requests queue while workers are busy and run in order") {
  auto pool = start(showcase(1));
  caf::scoped_actor a{*sys}, b{*sys}, c{*sys};
  send(a, pool, make_request("sleep", {{"seconds", 0.2}}));
  wait_status(pool, [](const pool_status& s) { return s.busy == 1; });
  send(b, pool, make_request("echo", {{"value", "second"}}));
  send(c, pool, make_request("echo", {{"value", "third"}}));
  CHECK(status(pool).queued == 2);
  auto ra = await(a), rb = await(b), rc = await(c);
  REQUIRE(ra);
  REQUIRE(rb);
  REQUIRE(rc);
  CHECK(rb->result == value{"second"});
  CHECK(rb->queued > 100ms);
  CHECK(rc->queued >= rb->queued);
  wait_status(pool, [](const pool_status& st) { return st.served == 3; });
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a full queue answers pool_saturated at once") {
  auto cfg = showcase(1);
  cfg.queue_max = 1;
  auto pool = start(cfg);
  caf::scoped_actor a{*sys}, b{*sys};
  send(a, pool, make_request("sleep", {{"seconds", 0.5}}));
  wait_status(pool, [](const pool_status& s) { return s.busy == 1; });
  send(b, pool, make_request("noop"));
  wait_status(pool, [](const pool_status& s) { return s.queued == 1; });
  auto t0 = std::chrono::steady_clock::now();
  auto r = call(pool, make_request("noop"));
  CHECK(std::chrono::steady_clock::now() - t0 < 200ms);
  CHECK(kind_of(r) == "pool_saturated");
  CHECK(message_of(r).find("queue_max") != std::string::npos);
  CHECK(await(a));
  CHECK(await(b));
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "the queue timeout and the deadline bound the wait in the queue") {
  auto cfg = showcase(1);
  cfg.queue_timeout = 150ms;
  auto pool = start(cfg);
  caf::scoped_actor a{*sys};
  send(a, pool, make_request("sleep", {{"seconds", 0.6}}));
  wait_status(pool, [](const pool_status& s) { return s.busy == 1; });
  auto waited = call(pool, make_request("noop"));
  CHECK(kind_of(waited) == "pool_saturated");
  CHECK(message_of(waited).find("queue_timeout") != std::string::npos);
  // A deadline shorter than the queue timeout: timeout, and the call never runs.
  auto late = call(pool, make_request("crash", {}, 50ms));
  CHECK(kind_of(late) == "timeout");
  CHECK(await(a));
  auto st = status(pool);
  CHECK(st.crashes == 0);  // the queued crash request never reached Python
  CHECK(st.ready == 1);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "payloads over the limit are refused both ways") {
  auto cfg = showcase(1);
  cfg.max_payload_bytes = 1 << 20;
  // Inline only: payloads in shared memory have their own bound (arrays_test).
  cfg.shared_memory = false;
  auto pool = start(cfg);
  auto big_request = call(pool, make_request("bytes_length",
                                             {{"data", bytes{std::string(2 << 20, 'x')}}}));
  CHECK(kind_of(big_request) == "payload_too_large");
  CHECK(message_of(big_request).find("max_payload_bytes") != std::string::npos);
  auto big_result = call(pool, make_request("make_bytes", {{"size", 2 << 20}}));
  CHECK(kind_of(big_result) == "payload_too_large");
  auto fits = call(pool, make_request("make_bytes", {{"size", 512 << 10}}));
  REQUIRE_MESSAGE(fits, message_of(fits));
  CHECK(status(pool).crashes == 0);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "requests sent before the pool is ready wait for it") {
  auto pool = spawn_pool(*sys, showcase(2));
  REQUIRE(pool);
  pools.push_back(*pool);
  auto r = call(*pool, make_request("add", {{"a", 1}, {"b", 2}}));
  REQUIRE_MESSAGE(r, message_of(r));
  CHECK(r->result == value{3});
  stop(*pool);
}

TEST_CASE_FIXTURE(system_fixture, "bad pool configurations are rejected with every problem listed") {
  pool_config cfg;
  cfg.adapter = "";
  cfg.size = 0;
  cfg.max_payload_bytes = 10;
  auto pool = spawn_pool(*sys, cfg);
  REQUIRE(!pool);
  auto info = describe(pool.error());
  CHECK(info.kind == "bad_config");
  CHECK(info.message.find("adapter") != std::string::npos);
  CHECK(info.message.find("size") != std::string::npos);
  CHECK(info.message.find("max_payload_bytes") != std::string::npos);
}

TEST_CASE("a pool nobody stops does not keep its actor system from ending") {
  auto t0 = std::chrono::steady_clock::now();
  {
    caf::actor_system_config cfg;
    add_message_types(cfg);
    caf::actor_system sys{cfg};
    auto pool = start_pool(sys, system_fixture::showcase(2));
    REQUIRE(pool);
    caf::scoped_actor self{sys};
    self->request(*pool, 10s, execute_atom::value, make_request("noop"))
      .receive([](execute_reply&) {}, [](caf::error& e) { FAIL(caf::to_string(e)); });
  }  // the system ends here: handles dropped, workers must go too
  CHECK(std::chrono::steady_clock::now() - t0 < 15s);
  auto until = std::chrono::steady_clock::now() + 10s;
  while (default_process_launcher().live_count() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  CHECK(default_process_launcher().live_count() == 0);
}
