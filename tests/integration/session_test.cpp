// Sessions: affinity in each mode, close, expiry, and a session whose worker
// dies or is recycled, with real workers.

#include "pool_fixture.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

struct session_fixture : system_fixture {
  std::string open(const pool_actor& pool, std::string id = {}) {
    caf::scoped_actor self{*sys};
    std::string out;
    self->request(pool, 5s, open_session_atom::value, std::move(id))
      .receive([&](std::string& s) { out = std::move(s); },
               [&](caf::error& e) { FAIL("open_session: " << describe(e).message); });
    return out;
  }

  bool close(const pool_actor& pool, const std::string& id) {
    caf::scoped_actor self{*sys};
    bool out = false;
    self->request(pool, 5s, close_session_atom::value, id)
      .receive([&](bool ok) { out = ok; }, [&](caf::error& e) { FAIL(describe(e).message); });
    return out;
  }

  static execute_request in(const std::string& session, std::string tool,
                            value::map args = {}) {
    auto r = make_request(std::move(tool), std::move(args));
    r.session_id = session;
    return r;
  }

  /// `session_info` of the session: (pid, moved, keys).
  value::map info(const pool_actor& pool, const std::string& session) {
    auto r = call(pool, in(session, "session_info"));
    REQUIRE_MESSAGE(r, message_of(r));
    return *r->result.if_map();
  }

  value::list closed(const pool_actor& pool) {
    auto r = call(pool, make_request("closed_sessions"));
    REQUIRE_MESSAGE(r, message_of(r));
    return *r->result.if_list();
  }

  pool_config sessions_cfg(std::uint32_t size, affinity_mode mode) {
    auto cfg = showcase(size);
    cfg.affinity = mode;
    return cfg;
  }
};

bool contains(const value::list& closed, const std::string& id, const std::string& reason) {
  for (auto& entry : closed)
    if (entry == value(value::list{id, reason}))
      return true;
  return false;
}

} // namespace

TEST_CASE_FIXTURE(session_fixture, "a session's calls stay on one worker and keep its state") {
  auto pool = start(sessions_cfg(3, affinity_mode::hint));
  auto a = open(pool);
  auto b = open(pool);
  REQUIRE(call(pool, in(a, "session_put", {{"key", "model"}, {"value", "A"}})));
  REQUIRE(call(pool, in(b, "session_put", {{"key", "model"}, {"value", "B"}})));
  auto pid = info(pool, a).at("pid");
  for (int i = 0; i < 10; ++i) {
    REQUIRE(call(pool, make_request("noop")));  // unrelated traffic in between
    auto got = call(pool, in(a, "session_get", {{"key", "model"}}));
    REQUIRE(got);
    CHECK(got->result == value{"A"});
    CHECK(info(pool, a).at("pid") == pid);
    CHECK(info(pool, a).at("moved") == value{false});
  }
  auto other = call(pool, in(b, "session_get", {{"key", "model"}}));
  REQUIRE(other);
  CHECK(other->result == value{"B"});
  CHECK(status(pool).sessions == 2);
}

TEST_CASE_FIXTURE(session_fixture, "hint affinity sends the call elsewhere when the worker is busy and marks it moved") {
  auto pool = start(sessions_cfg(2, affinity_mode::hint));
  auto s = open(pool);
  REQUIRE(call(pool, in(s, "session_put", {{"key", "k"}, {"value", 1}})));
  auto first = info(pool, s);
  caf::scoped_actor self{*sys};
  self->send(pool, execute_atom::value, in(s, "sleep", {{"seconds", 0.5}}));
  std::this_thread::sleep_for(100ms);  // the sleep holds the session's worker
  auto moved = info(pool, s);
  CHECK(moved.at("pid") != first.at("pid"));
  CHECK(moved.at("moved") == value{true});
  CHECK(moved.at("keys") == value(value::list{}));  // the state is not here, and it says so
  CHECK(await(self));
  // The session now lives on the new worker, and the old one was told.
  CHECK(info(pool, s).at("moved") == value{false});
  CHECK(info(pool, s).at("pid") == moved.at("pid"));
}

TEST_CASE_FIXTURE(session_fixture, "strict_queue affinity waits for the session's worker") {
  auto pool = start(sessions_cfg(2, affinity_mode::strict_queue));
  auto s = open(pool);
  REQUIRE(call(pool, in(s, "session_put", {{"key", "k"}, {"value", 7}})));
  auto pid = info(pool, s).at("pid");
  caf::scoped_actor self{*sys};
  self->send(pool, execute_atom::value, in(s, "sleep", {{"seconds", 0.3}}));
  std::this_thread::sleep_for(50ms);
  auto t0 = std::chrono::steady_clock::now();
  auto got = call(pool, in(s, "session_get", {{"key", "k"}}));
  auto waited = std::chrono::steady_clock::now() - t0;
  REQUIRE(got);
  CHECK(got->result == value{7});
  CHECK(waited >= 150ms);  // it queued behind the sleep instead of moving
  CHECK(info(pool, s).at("pid") == pid);
  CHECK(await(self));
  // Calls without a session still use the free worker meanwhile.
  self->send(pool, execute_atom::value, in(s, "sleep", {{"seconds", 0.3}}));
  std::this_thread::sleep_for(50ms);
  t0 = std::chrono::steady_clock::now();
  REQUIRE(call(pool, make_request("noop")));
  CHECK(std::chrono::steady_clock::now() - t0 < 200ms);
  CHECK(await(self));
}

TEST_CASE_FIXTURE(session_fixture, "strict_fail_fast affinity fails the call at once when the worker is busy") {
  auto pool = start(sessions_cfg(2, affinity_mode::strict_fail_fast));
  auto s = open(pool);
  REQUIRE(call(pool, in(s, "noop")));
  caf::scoped_actor self{*sys};
  self->send(pool, execute_atom::value, in(s, "sleep", {{"seconds", 0.3}}));
  std::this_thread::sleep_for(50ms);
  auto busy = call(pool, in(s, "noop"));
  CHECK(kind_of(busy) == "session_busy");
  CHECK(message_of(busy).find("busy") != std::string::npos);
  CHECK(await(self));
  CHECK(call(pool, in(s, "noop")));
}

TEST_CASE_FIXTURE(session_fixture, "closing a session runs the Python hook and its id is then unknown") {
  auto pool = start(sessions_cfg(1, affinity_mode::hint));
  auto s = open(pool, "conversation-1");
  CHECK(s == "conversation-1");
  REQUIRE(call(pool, in(s, "session_put", {{"key", "k"}, {"value", 1}})));
  CHECK(close(pool, s));
  CHECK(!close(pool, s));
  auto after = call(pool, in(s, "noop"));
  CHECK(kind_of(after) == "session_unknown");
  CHECK(message_of(after).find("open a new one") != std::string::npos);
  wait_status(pool, [&](const pool_status&) { return contains(closed(pool), s, "closed"); });
  CHECK(kind_of(call(pool, in("never-opened", "noop"))) == "session_unknown");
}

TEST_CASE_FIXTURE(session_fixture, "a session unused for session_ttl expires and Python hears of it") {
  auto cfg = sessions_cfg(1, affinity_mode::hint);
  cfg.session_ttl = 200ms;
  auto pool = start(cfg);
  auto s = open(pool);
  REQUIRE(call(pool, in(s, "noop")));
  wait_status(pool, [&](const pool_status& st) { return st.sessions == 0; }, 3s);
  CHECK(kind_of(call(pool, in(s, "noop"))) == "session_unknown");
  wait_status(pool, [&](const pool_status&) { return contains(closed(pool), s, "expired"); });
}

TEST_CASE_FIXTURE(session_fixture, "max_sessions bounds the open sessions") {
  auto cfg = sessions_cfg(1, affinity_mode::hint);
  cfg.max_sessions = 2;
  auto pool = start(cfg);
  open(pool);
  open(pool);
  caf::scoped_actor self{*sys};
  self->request(pool, 5s, open_session_atom::value, std::string{})
    .receive([](std::string&) { FAIL("a third session opened"); },
             [](caf::error& e) {
               CHECK(describe(e).kind == "pool_saturated");
               CHECK(describe(e).message.find("max_sessions") != std::string::npos);
             });
}

TEST_CASE_FIXTURE(session_fixture, "a session whose worker is killed is lost when strict and moves when hint") {
  for (auto mode : {affinity_mode::strict_queue, affinity_mode::hint}) {
    CAPTURE(to_string(mode));
    auto pool = start(sessions_cfg(1, mode));
    auto s = open(pool);
    REQUIRE(call(pool, in(s, "session_put", {{"key", "k"}, {"value", 1}})));
    auto old_pid = status(pool).workers.at(0).pid;
    CHECK(!call(pool, make_request("crash")));
    wait_status(pool, [&](const pool_status& st) {
      return st.ready == 1 && st.workers[0].pid != old_pid;
    });
    auto next = call(pool, in(s, "session_get", {{"key", "k"}}));
    if (mode == affinity_mode::hint) {
      REQUIRE(next);
      CHECK(next->result == value{});  // the state is gone, and the call says it moved:
      CHECK(info(pool, s).at("moved") == value{false});
      CHECK(info(pool, s).at("calls") == value{3});
    } else {
      CHECK(kind_of(next) == "session_lost");
      CHECK(message_of(next).find("lost its state") != std::string::npos);
      CHECK(kind_of(call(pool, in(s, "noop"))) == "session_lost");  // until closed
      CHECK(close(pool, s));
    }
    stop(pool);
  }
}

TEST_CASE_FIXTURE(session_fixture, "a recycled worker serves its sessions until its drain time ends") {
  auto cfg = sessions_cfg(1, affinity_mode::strict_queue);
  cfg.drain_timeout = 1500ms;
  auto pool = start(cfg);
  auto s = open(pool);
  REQUIRE(call(pool, in(s, "session_put", {{"key", "k"}, {"value", 1}})));
  auto old = status(pool).workers.at(0);
  caf::scoped_actor self{*sys};
  self->request(pool, 5s, recycle_atom::value, old.id, std::string{"test"})
    .receive([](bool ok) { CHECK(ok); }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  wait_status(pool, [](const pool_status& st) { return st.ready == 2; });
  // Draining, yet still serving its session.
  auto got = call(pool, in(s, "session_get", {{"key", "k"}}));
  REQUIRE(got);
  CHECK(got->result == value{1});
  CHECK(info(pool, s).at("pid") == value{static_cast<std::int64_t>(old.pid)});
  // New sessions and plain calls go to the new worker.
  auto fresh = open(pool);
  CHECK(info(pool, fresh).at("pid") != value{static_cast<std::int64_t>(old.pid)});
  // After the drain time the old worker is gone: the session is lost, loudly.
  wait_status(pool, [](const pool_status& st) { return st.ready == 1; }, 5s);
  CHECK(kind_of(call(pool, in(s, "noop"))) == "session_lost");
}
