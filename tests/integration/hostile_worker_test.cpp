// A worker process that answers garbage, wrong call ids, oversized or endless replies, or a
// ready line of the wrong shape: the host gives every caller a typed answer in bounded time,
// keeps serving everything else, and stops cleanly. The worker is the showcase adapter behind
// a server patched by adapters/hostile_adapter.py (SNAKEPIT_HOSTILE picks how it misbehaves).

#include <fstream>
#include <optional>

#include "pool_fixture.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

pool_config hostile(const std::string& mode) {
  auto cfg = system_fixture::showcase(1);
  cfg.name = "hostile";
  cfg.adapter = "hostile_adapter.HostileAdapter";
  cfg.python_path = {source_dir() + "/tests/integration/adapters"};
  cfg.env = {{"SNAKEPIT_HOSTILE", mode}};
  return cfg;
}

execute_request add_request(std::chrono::milliseconds deadline = 5s) {
  return make_request("add", {{"a", 2}, {"b", 3}}, deadline);
}

/// Resident memory of this process in bytes (0 when unknown).
std::int64_t own_rss_bytes() {
  std::ifstream in{"/proc/self/statm"};
  std::int64_t pages = 0;
  std::int64_t resident = 0;
  in >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

/// Calls `req` and says how long the answer took.
struct timed {
  caf::expected<execute_reply> reply{caf::error{}};
  std::chrono::milliseconds took{0};
};

timed timed_call(system_fixture& fx, const pool_actor& pool, execute_request req) {
  auto start = std::chrono::steady_clock::now();
  timed out;
  out.reply = fx.call(pool, std::move(req));
  out.took = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - start);
  return out;
}

/// The pool answers status within `limit` (the host is not wedged).
bool answers_status(system_fixture& fx, const pool_actor& pool, caf::timespan limit = 2s) {
  caf::scoped_actor self{*fx.sys};
  bool ok = false;
  self->request(pool, limit, status_atom::value)
    .receive([&](pool_status&) { ok = true; }, [&](caf::error&) { ok = false; });
  return ok;
}

/// A second, well-behaved pool keeps serving next to the hostile one.
void healthy_pool_serves(system_fixture& fx) {
  auto good = fx.start(system_fixture::showcase(1));
  auto r = fx.call(good, add_request());
  REQUIRE_MESSAGE(r, message_of(r));
  CHECK(r->result == value{5});
  fx.stop(good);
}

/// Three calls each fail with a typed error within 4 s, before their 5 s deadline. An
/// unreadable reply is a broken transport: the worker is replaced within 2 s (and a pool whose
/// workers all break gives up after its restart intensity: pool_stopped).
void calls_fail_typed(system_fixture& fx, const pool_actor& pool) {
  for (int i = 0; i < 3; ++i) {
    auto r = timed_call(fx, pool, add_request());
    CHECK_MESSAGE(!r.reply, "a garbage reply was taken as a result");
    auto kind = kind_of(r.reply);
    CHECK_MESSAGE((kind == "worker_crashed" || kind == "pool_stopped"),
                  kind << ": " << (r.reply ? r.reply->result.to_json() : message_of(r.reply)));
    CHECK(r.took < 4s);
  }
}

/// Stopping the hostile pool ends in bounded time.
void stops_in_time(system_fixture& fx, const pool_actor& pool) {
  auto start = std::chrono::steady_clock::now();
  fx.stop(pool);
  CHECK(std::chrono::steady_clock::now() - start < 15s);
}

} // namespace

TEST_SUITE("hostile worker") {

TEST_CASE_FIXTURE(system_fixture, "garbage on the batch stream: a typed error, not a hang") {
  auto pool = start(hostile("garbage"));
  calls_fail_typed(*this, pool);
  healthy_pool_serves(*this);
  stops_in_time(*this, pool);
}

TEST_CASE_FIXTURE(system_fixture, "garbage unary replies: each call fails typed, in bounded time") {
  auto pool = start(hostile("garbage_unary"));
  CHECK(status(pool).workers.at(0).transport == "unary");
  calls_fail_typed(*this, pool);
  healthy_pool_serves(*this);
  stops_in_time(*this, pool);
}

TEST_CASE_FIXTURE(system_fixture, "results for calls never sent and answers given twice are ignored") {
  auto pool = start(hostile("wrong_ids"));
  caf::scoped_actor self{*sys};
  for (int i = 0; i < 20; ++i) {
    auto r = call(pool, add_request());
    REQUIRE_MESSAGE(r, message_of(r));
    CHECK(r->result == value{42}); // the first answer naming the call, nothing else
  }
  auto st = status(pool);
  CHECK(st.ready == 1);
  CHECK(st.crashes == 0);
  CHECK(st.busy == 0);
  stops_in_time(*this, pool);
}

TEST_CASE_FIXTURE(system_fixture, "a worker that never answers its own calls: timeout, then it is replaced") {
  auto cfg = hostile("never_own");
  cfg.deadline_grace = 200ms;
  auto pool = start(cfg);
  auto first_pid = status(pool).workers.at(0).pid;
  auto r = timed_call(*this, pool, add_request(1s));
  CHECK(kind_of(r.reply) == "timeout");
  CHECK(r.took < 3s);
  // The process still "running" the call past its grace is killed and replaced.
  auto st = wait_status(pool, [&](const pool_status& s) {
    return s.ready == 1 && s.workers.size() == 1 && s.workers.at(0).pid != first_pid;
  }, 20s);
  CHECK(st.ready == 1);
  stops_in_time(*this, pool);
}

TEST_CASE_FIXTURE(system_fixture, "a reply over the message limit fails the call, not the host") {
  auto cfg = hostile("oversized");
  cfg.max_payload_bytes = 64 * 1024;
  cfg.env.emplace_back("SNAKEPIT_HOSTILE_BYTES", std::to_string(1024 * 1024));
  auto pool = start(cfg);
  for (int i = 0; i < 2; ++i) {
    auto r = timed_call(*this, pool, add_request());
    CHECK_MESSAGE(!r.reply, "an oversized reply was taken as a result");
    CHECK(r.took < 6s);
  }
  healthy_pool_serves(*this);
  stops_in_time(*this, pool);
}

TEST_CASE_FIXTURE(system_fixture, "an endless flood of unsolicited replies does not wedge the host") {
  auto before = own_rss_bytes();
  auto pool = start(hostile("flood"));
  auto until = std::chrono::steady_clock::now() + 3s;
  int answered = 0;
  while (std::chrono::steady_clock::now() < until) {
    CHECK(answers_status(*this, pool));
    ++answered;
    std::this_thread::sleep_for(100ms);
  }
  CHECK(answered >= 10);
  healthy_pool_serves(*this);
  auto grown = own_rss_bytes() - before;
  MESSAGE("host RSS grew by " << grown / (1024 * 1024) << " MiB during the flood");
  CHECK(grown < 512LL * 1024 * 1024);
  stops_in_time(*this, pool);
}

TEST_CASE_FIXTURE(system_fixture, "a stream that ignores its credit is failed, not buffered") {
  auto pool = start(hostile("endless_stream"));
  caf::scoped_actor self{*sys};
  auto req = make_request("count", {{"n", 1000000}}, 10s);
  req.stream_window = 8;
  caf::expected<stream_handle> h{caf::error{}};
  self->request(pool, 10s, execute_stream_atom::value, std::move(req),
                caf::actor_cast<caf::actor>(self))
    .receive([&](stream_handle& x) { h = std::move(x); }, [&](caf::error& e) { h = std::move(e); });
  REQUIRE(h);
  // The consumer grants nothing beyond the window: at most 8 items, then an error.
  std::size_t items = 0;
  caf::error err;
  bool ended = false;
  bool done = false;
  while (!done) {
    self->receive(
      [&](stream_item_atom, std::uint64_t, std::uint64_t, value&) { ++items; },
      [&](stream_end_atom, std::uint64_t, stream_summary&) { ended = done = true; },
      [&](stream_error_atom, std::uint64_t, caf::error& e) {
        err = std::move(e);
        done = true;
      },
      caf::after(15s) >> [&] { done = true; });
  }
  CHECK(!ended);
  REQUIRE(err);
  CHECK(describe(err).kind == "internal");
  CHECK_MESSAGE(describe(err).message.find("credit") != std::string::npos, describe(err).message);
  CHECK(items <= 8);
  CHECK(answers_status(*this, pool));
  stops_in_time(*this, pool);
}

TEST_CASE_FIXTURE(system_fixture, "a ready line of the wrong shape fails the start, typed") {
  auto pool = start_pool(*sys, hostile("bad_ready"));
  if (pool) {
    // Tolerated fields are fine too, as long as the worker then serves.
    pools.push_back(*pool);
    auto r = call(*pool, add_request());
    REQUIRE_MESSAGE(r, message_of(r));
    stop(*pool);
  } else {
    CHECK(describe(pool.error()).kind == "startup_failed");
  }
  healthy_pool_serves(*this);
}

} // TEST_SUITE
