// The fast path with real workers: calls in batches over one stream per
// worker, pipelining of short tools onto busy workers, and what must stay
// exact with both on (crashes, deadlines, cancellation, payload limits,
// sessions, recycling, old workers).

#include <sys/types.h>

#include <csignal>
#include <mutex>

#include "pool_fixture.hpp"
#include "snakepit/actors/telemetry.hpp"
#include "../support/event_log.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

/// Sends `req` `n` times from `self` without waiting.
void send_n(caf::scoped_actor& self, const pool_actor& pool, int n, const execute_request& req) {
  for (int i = 0; i < n; ++i)
    self->send(pool, execute_atom::value, req);
}

/// Teaches the pool's pipelining policy that `tool` is short.
void learn(system_fixture& f, const pool_actor& pool, execute_request req, int times = 3) {
  for (int i = 0; i < times; ++i)
    REQUIRE(f.call(pool, req));
}

/// A pool whose pipelining budget keeps `short_sleep` pipelined even when a
/// loaded machine stretches its wall time (the default is 2 ms).
pool_config pipelined(pool_config cfg) {
  cfg.pipeline_budget = std::chrono::milliseconds{50};
  return cfg;
}

execute_request short_sleep() {
  return make_request("sleep", {{"seconds", 0.0002}});
}

} // namespace

TEST_CASE_FIXTURE(system_fixture, "calls go alone under light load and in batches under load") {
  event_log log{"snakepit.worker.batch"};
  auto pool = start(showcase(2));
  auto st = status(pool);
  for (auto& w : st.workers) {
    CHECK(w.transport == "batches");
    CHECK(w.pipeline_depth == 8);
  }
  for (int i = 0; i < 20; ++i)  // one at a time: each call is written at once, alone
    REQUIRE(call(pool, make_request("noop")));
  auto light = log.named("snakepit.worker.batch");
  CHECK(light.size() == 20);
  for (auto& e : light)
    CHECK(e.measurements.at("calls") == 1);
  log.clear();
  caf::scoped_actor self{*sys};
  send_n(self, pool, 1000, make_request("add", {{"a", 1}, {"b", 2}}));
  for (int i = 0; i < 1000; ++i) {
    auto r = await(self);
    REQUIRE_MESSAGE(r, message_of(r));
    CHECK(r->result.as_int() == 3);
  }
  auto heavy = log.named("snakepit.worker.batch");
  double calls = 0, largest = 0;
  for (auto& e : heavy) {
    calls += e.measurements.at("calls");
    largest = std::max(largest, e.measurements.at("calls"));
  }
  CHECK(calls == 1000);
  CHECK(largest > 1);
  CHECK(heavy.size() < 800);
  MESSAGE("1000 calls in " << heavy.size() << " batches, largest " << largest);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a killed worker fails only its running call; calls queued behind it run elsewhere") {
  auto pool = start(pipelined(showcase(2)));
  learn(*this, pool, short_sleep(), 4);
  caf::scoped_actor self{*sys};
  // Both workers run a long call; short ones then queue behind them.
  send_n(self, pool, 2, make_request("sleep", {{"seconds", 1.5}}));
  wait_status(pool, [](const pool_status& s) { return s.busy == 2; });
  send_n(self, pool, 4, short_sleep());
  auto st = wait_status(pool, [](const pool_status& s) {
    return s.workers.size() == 2 && s.workers[0].in_flight >= 2 && s.workers[1].in_flight >= 2;
  });
  CHECK(st.queued == 0);  // pipelined on the workers, not waiting in the pool
  auto victim = st.workers[0].pid;
  auto queued_on_victim = st.workers[0].in_flight - 1;
  REQUIRE(::kill(victim, SIGKILL) == 0);
  int crashed = 0, ok = 0;
  for (int i = 0; i < 6; ++i) {
    auto r = await(self);
    if (r)
      ++ok;
    else if (kind_of(r) == "worker_crashed")
      ++crashed;
    else
      FAIL("unexpected " << kind_of(r) << ": " << message_of(r));
  }
  CHECK(crashed == 1);
  CHECK(ok == 5);
  CHECK(status(pool).redispatched == queued_on_victim);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a pipelined call times out at its deadline and never reaches Python") {
  event_log log{"*"};
  auto pool = start(pipelined(showcase(1)));
  learn(*this, pool, short_sleep());
  learn(*this, pool, make_request("emit_events", {{"count", 1}, {"name", "warm"}}), 2);
  auto pid = status(pool).workers.at(0).pid;
  caf::scoped_actor self{*sys};
  self->send(pool, execute_atom::value, make_request("sleep", {{"seconds", 1.0}}));
  wait_status(pool, [](const pool_status& s) { return s.busy == 1; });
  auto t0 = std::chrono::steady_clock::now();
  auto queued = call(pool, make_request("emit_events", {{"count", 1}, {"name", "queued"}}, 200ms));
  auto waited = std::chrono::steady_clock::now() - t0;
  REQUIRE(!queued);
  CHECK(kind_of(queued) == "timeout");
  CHECK(message_of(queued).find("behind other calls") != std::string::npos);
  CHECK(waited < 700ms);  // at its deadline, not when the long call ends
  auto slow = await(self);
  CHECK(slow);  // the running call was not disturbed
  learn(*this, pool, make_request("emit_events", {{"count", 1}, {"name", "after"}}), 1);
  CHECK(status(pool).workers.at(0).pid == pid);  // nothing was killed
  CHECK(!log.named("python.after").empty());
  CHECK(log.named("python.queued").empty());  // it never ran
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a call over batch_max_bytes goes alone and still succeeds") {
  event_log log{"snakepit.worker.batch"};
  auto cfg = showcase(1);
  cfg.batches.max_bytes = 4096;
  auto pool = start(cfg);
  std::string big(100000, 'x');
  auto r = call(pool, make_request("echo", {{"value", big}}));
  REQUIRE(r);
  CHECK(r->result.as_string() == big);
  REQUIRE(call(pool, make_request("echo", {{"value", "small"}})));
  auto batches = log.named("snakepit.worker.batch");
  REQUIRE(batches.size() == 1);  // only the small call went in a batch
  CHECK(batches[0].measurements.at("bytes") < 4096);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a slow tool is never pipelined: its calls wait in the pool") {
  auto pool = start(showcase(1));
  learn(*this, pool, make_request("sleep", {{"seconds", 0.05}}), 2);
  caf::scoped_actor self{*sys};
  send_n(self, pool, 3, make_request("sleep", {{"seconds", 0.3}}));
  auto st = wait_status(pool, [](const pool_status& s) { return s.busy == 1 && s.queued == 2; });
  CHECK(st.workers.at(0).in_flight == 1);
  for (int i = 0; i < 3; ++i)
    CHECK(await(self));
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "pipelining off: a busy worker gets nothing more") {
  auto cfg = showcase(1);
  cfg.pipeline_depth = 0;
  auto pool = start(cfg);
  learn(*this, pool, short_sleep());
  caf::scoped_actor self{*sys};
  send_n(self, pool, 4, short_sleep());
  send_n(self, pool, 1, make_request("sleep", {{"seconds", 0.3}}));
  for (int i = 0; i < 5; ++i)
    CHECK(await(self));
  CHECK(status(pool).workers.at(0).pipeline_depth == 0);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "strict sessions keep their worker and state with pipelining on") {
  auto cfg = pipelined(showcase(2));
  cfg.affinity = affinity_mode::strict_queue;
  auto pool = start(cfg);
  learn(*this, pool, short_sleep(), 4);
  caf::scoped_actor self{*sys};
  std::string session;
  self->request(pool, 5s, open_session_atom::value, std::string{})
    .receive([&](std::string& id) { session = id; }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  auto put = make_request("session_put", {{"key", "k"}, {"value", 42}});
  put.session_id = session;
  auto first = call(pool, put);
  REQUIRE(first);
  // Load on both workers, with calls pipelined behind the long ones.
  send_n(self, pool, 2, make_request("sleep", {{"seconds", 0.5}}));
  send_n(self, pool, 6, short_sleep());
  for (int i = 0; i < 5; ++i) {
    auto get = make_request("session_get", {{"key", "k"}});
    get.session_id = session;
    auto r = call(pool, get);
    REQUIRE(r);
    CHECK(r->result.as_int() == 42);
    CHECK(r->worker_id == first->worker_id);
  }
  for (int i = 0; i < 8; ++i)
    CHECK(await(self));
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "recycling drains the calls pipelined on a worker") {
  auto pool = start(pipelined(showcase(1)));
  learn(*this, pool, short_sleep());
  auto first = status(pool).workers.at(0).id;
  caf::scoped_actor self{*sys};
  self->send(pool, execute_atom::value, make_request("sleep", {{"seconds", 0.3}}));
  wait_status(pool, [](const pool_status& s) { return s.busy == 1; });
  send_n(self, pool, 3, short_sleep());
  wait_status(pool, [](const pool_status& s) { return s.workers.at(0).in_flight == 4; });
  self->request(pool, 5s, recycle_atom::value, first, std::string{"test"})
    .receive([](bool ok) { CHECK(ok); }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  for (int i = 0; i < 4; ++i) {
    auto r = await(self);
    CHECK_MESSAGE(r, message_of(r));
  }
  auto st = wait_status(pool, [&](const pool_status& s) {
    return s.ready == 1 && s.workers[0].id != first;
  });
  CHECK(st.recycles.at("test") == 1);
  CHECK(st.failed == 0);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a worker without the stream RPC gets one unary call each") {
  auto cfg = showcase(1);
  cfg.adapter = "unary_only_adapter.UnaryOnlyAdapter";
  cfg.python_path = {source_dir() + "/tests/integration/adapters"};
  auto pool = start(cfg);
  auto st = status(pool);
  CHECK(st.workers.at(0).transport == "unary");
  CHECK(st.workers.at(0).pipeline_depth == 0);
  caf::scoped_actor self{*sys};
  send_n(self, pool, 50, make_request("add", {{"a", 2}, {"b", 3}}));
  for (int i = 0; i < 50; ++i) {
    auto r = await(self);
    REQUIRE(r);
    CHECK(r->result.as_int() == 5);
  }
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "transport unary: the path of earlier releases") {
  event_log log{"snakepit.worker.batch"};
  auto cfg = showcase(1);
  cfg.use_batches = false;
  auto pool = start(cfg);
  CHECK(status(pool).workers.at(0).transport == "unary");
  REQUIRE(call(pool, make_request("noop")));
  CHECK(log.named("snakepit.worker.batch").empty());
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "health pings are answered while a batch's tool computes") {
  auto cfg = showcase(1);
  cfg.health_interval = 100ms;
  cfg.health_timeout = 80ms;
  cfg.health_max_missed = 5;  // a loop blocked by the tool would miss ~15
  auto pool = start(cfg);
  learn(*this, pool, make_request("cpu_burn", {{"milliseconds", 1}}));
  auto pid = status(pool).workers.at(0).pid;
  caf::scoped_actor self{*sys};
  // Pure-Python CPU in the tool thread, calls queued behind it: the event loop still answers.
  self->send(pool, execute_atom::value, make_request("cpu_burn", {{"milliseconds", 1500}}));
  send_n(self, pool, 4, make_request("cpu_burn", {{"milliseconds", 1}}));
  for (int i = 0; i < 5; ++i) {
    auto r = await(self);
    CHECK_MESSAGE(r, message_of(r));
  }
  auto st = status(pool);
  CHECK(st.workers.at(0).pid == pid);
  CHECK(st.replacements == 0);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "each worker serves exactly worker_max_requests calls, pipelined ones included") {
  event_log log{"snakepit.worker.stopped"};
  auto cfg = showcase(2);
  cfg.worker_max_requests = 25;
  auto pool = start(cfg);
  learn(*this, pool, short_sleep(), 5);  // 5 of the first 25 on some worker
  caf::scoped_actor self{*sys};
  const int calls = 400;
  send_n(self, pool, calls, short_sleep());
  for (int i = 0; i < calls; ++i) {
    auto r = await(self);
    CHECK_MESSAGE(r, message_of(r));
  }
  auto st = wait_status(pool, [](const pool_status& s) {
    std::uint64_t recycled = 0;
    for (auto& [why, n] : s.recycles)
      recycled += n;
    return s.ready == 2 && recycled >= 15;
  });
  CHECK(st.recycles.at("requests") >= 15);  // 405 calls / 25
  for (auto& w : st.workers)
    CHECK(w.served + w.failed <= 25);
  stop(pool);
  auto stopped = log.named("snakepit.worker.stopped");
  REQUIRE(stopped.size() >= 15);
  int full = 0;
  for (auto& e : stopped) {
    auto n = e.measurements.at("served") + e.measurements.at("failed");
    CHECK(n <= 25);  // never more than it may serve
    full += n == 25 ? 1 : 0;
  }
  CHECK(full >= 15);  // the recycled ones served exactly their share
}
