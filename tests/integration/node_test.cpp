// Pools of another node (a real `snakepit run` with [node]) used through
// connect_pool exactly like local ones: calls, typed errors, deadlines,
// sessions, streams and tools, over CAF's middleman on loopback TCP.
#include <algorithm>
#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include <caf/all.hpp>

#include "../support/running_tree.hpp"
#include "../support/sleep_calls.hpp"
#include "snakepit/snakepit.hpp"

using namespace snakepit;
using namespace std::chrono_literals;

namespace {

std::string node_tree(const std::string& node_table) {
  return snakepit::testing::showcase_tree(2) + "\n[node]\n" + node_table;
}

/// The port the node logged ("node 'x' listening on 127.0.0.1:PORT"), waiting
/// for the line at most 20 s; 0 when it never came.
std::uint16_t node_port(const snakepit::testing::running_tree& tree) {
  static const std::regex line{R"(node '[^']*' listening on [^:\s]+:(\d+))"};
  for (int i = 0; i < 200; ++i) {
    std::smatch m;
    auto log = tree.log();
    if (std::regex_search(log, m, line))
      return static_cast<std::uint16_t>(std::stoi(m[1].str()));
    std::this_thread::sleep_for(100ms);
  }
  return 0;
}

struct distributed_fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;

  distributed_fixture() {
    add_message_types(cfg);
    use_distribution(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

} // namespace

TEST_CASE_FIXTURE(distributed_fixture,
                  "a pool of another node works like a local one: calls, errors, deadlines, "
                  "sessions, streams and tools") {
  snakepit::testing::temp_dir dir;
  snakepit::testing::running_tree tree{dir, node_tree("name = \"left\"\nexport = [\"showcase\"]\n")};
  auto port = node_port(tree);
  REQUIRE_MESSAGE(port != 0, tree.log());
  auto pool = connect_pool(*sys, "127.0.0.1", port, "showcase");
  REQUIRE_MESSAGE(pool, (pool ? "" : describe(pool.error()).message));

  caf::scoped_actor self{*sys};

  // A call and a typed Python error.
  self->request(*pool, 10s, execute_atom::value, make_request("add", {{"a", 40}, {"b", 2}}))
    .receive([](execute_reply& r) { CHECK(r.result == value(42)); },
             [](caf::error& e) { FAIL(describe(e).message); });
  self->request(*pool, 10s, execute_atom::value,
                make_request("fail", {{"exception", "KeyError"}}))
    .receive([](execute_reply&) { FAIL("fail returned"); },
             [](caf::error& e) {
               auto info = describe(e);
               CHECK(info.code == errc::python_exception);
               CHECK(info.python_type == "KeyError");
               CHECK(info.traceback.find("Traceback") != std::string::npos);
             });

  // The request's deadline holds on the other node.
  auto started = std::chrono::steady_clock::now();
  self->request(*pool, 10s, execute_atom::value,
                make_request("sleep", {{"seconds", 3}}, caf::timespan{300ms}))
    .receive([](execute_reply&) { FAIL("the sleep outlived its deadline"); },
             [](caf::error& e) { CHECK(describe(e).code == errc::timeout); });
  CHECK(std::chrono::steady_clock::now() - started < 2s);

  // A session keeps its worker (its process id) across calls.
  std::string session;
  self->request(*pool, 10s, open_session_atom::value, std::string{})
    .receive([&](std::string& id) { session = id; },
             [](caf::error& e) { FAIL(describe(e).message); });
  REQUIRE(!session.empty());
  std::vector<std::int64_t> pids;
  for (int i = 0; i < 3; ++i) {
    auto req = make_request("session_info");
    req.session_id = session;
    self->request(*pool, 10s, execute_atom::value, std::move(req))
      .receive([&](execute_reply& r) {
                 pids.push_back(r.result["pid"].as_int());
                 CHECK(r.result["calls"] == value(i + 1));
               },
               [](caf::error& e) { FAIL(describe(e).message); });
  }
  REQUIRE(pids.size() == 3);
  CHECK(pids[0] == pids[1]);
  CHECK(pids[1] == pids[2]);
  self->request(*pool, 10s, close_session_atom::value, session)
    .receive([](bool closed) { CHECK(closed); },
             [](caf::error& e) { FAIL(describe(e).message); });

  // A stream: the items travel from the other node's worker to this consumer.
  std::vector<std::int64_t> items;
  auto summary = for_each_item(self, *pool, make_request("count", {{"n", 20}}),
                               [&](const value& x) {
                                 items.push_back(x.as_int());
                                 return true;
                               });
  REQUIRE_MESSAGE(summary, (summary ? "" : describe(summary.error()).message));
  CHECK(summary->items == 20);
  REQUIRE(items.size() == 20);
  for (std::int64_t i = 0; i < 20; ++i)
    CHECK(items[static_cast<std::size_t>(i)] == i);

  // Its tools, with their schemas.
  self->request(*pool, 10s, list_tools_atom::value)
    .receive(
      [](std::vector<tool_spec>& tools) {
        auto add = std::find_if(tools.begin(), tools.end(),
                                [](const tool_spec& t) { return t.name == "add"; });
        REQUIRE(add != tools.end());
        CHECK(add->parameters.size() == 2);
      },
      [](caf::error& e) { FAIL(describe(e).message); });
  CHECK(tree.stop() == 0);
}

TEST_CASE_FIXTURE(distributed_fixture,
                  "connect_pool says what is wrong: a pool not exported, no node there") {
  snakepit::testing::temp_dir dir;
  snakepit::testing::running_tree tree{dir, node_tree("export = [\"showcase\"]\n")};
  auto port = node_port(tree);
  REQUIRE_MESSAGE(port != 0, tree.log());
  auto hidden = connect_pool(*sys, "127.0.0.1", port, "other");
  REQUIRE(!hidden);
  CHECK(describe(hidden.error()).code == errc::bad_arguments);
  CHECK(describe(hidden.error()).message.find("exports no pool 'other'") != std::string::npos);
  CHECK(tree.stop() == 0);
  auto started = std::chrono::steady_clock::now();
  auto gone = connect_pool(*sys, "127.0.0.1", port, "showcase");
  REQUIRE(!gone);
  CHECK(describe(gone.error()).code == errc::node_down);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
}


TEST_CASE_FIXTURE(distributed_fixture,
                  "a node killed under load: every call open there is answered node_down") {
  snakepit::testing::temp_dir dir;
  snakepit::testing::running_tree tree{dir, node_tree("export = [\"showcase\"]\n")};
  auto port = node_port(tree);
  REQUIRE_MESSAGE(port != 0, tree.log());
  auto pool = connect_pool(*sys, "127.0.0.1", port, "showcase");
  REQUIRE(pool);
  caf::scoped_actor self{*sys};
  self->monitor(*pool);
  auto started = std::chrono::steady_clock::now();
  auto outcomes = snakepit::testing::sleep_outcomes(*sys, *pool, 6, 5.0, [&] {
    std::this_thread::sleep_for(500ms); // two running, four queued on the node
    ::kill(tree.pid(), SIGKILL);
  });
  auto took = std::chrono::steady_clock::now() - started;
  REQUIRE(outcomes.size() == 6);
  for (auto& e : outcomes) {
    REQUIRE(e);
    CHECK(describe(e).code == errc::node_down);
    CHECK(describe(e).message.find("may or may not have run") != std::string::npos);
  }
  CHECK(took < 4s); // long before the sleeps would have ended
  // The stand-in exits node_down: a supervisor would see its child fail.
  self->receive([](caf::down_msg& msg) { CHECK(is(msg.reason, errc::node_down)); });
  tree.stop();
}

TEST_CASE_FIXTURE(distributed_fixture,
                  "a frozen node (SIGSTOP, connection open) is found down by its heartbeat") {
  snakepit::testing::temp_dir dir;
  snakepit::testing::running_tree tree{dir, node_tree("export = [\"showcase\"]\n")};
  auto port = node_port(tree);
  REQUIRE_MESSAGE(port != 0, tree.log());
  remote_pool_options watch;
  watch.heartbeat_interval = 200ms;
  watch.heartbeat_timeout = 1500ms;
  auto pool = connect_pool(*sys, "127.0.0.1", port, "showcase", watch);
  REQUIRE(pool);
  caf::scoped_actor self{*sys};
  std::chrono::steady_clock::time_point frozen;
  auto outcomes = snakepit::testing::sleep_outcomes(*sys, *pool, 2, 20.0, [&] {
    std::this_thread::sleep_for(300ms);
    frozen = std::chrono::steady_clock::now();
    ::kill(tree.pid(), SIGSTOP);
  });
  auto detected = std::chrono::steady_clock::now() - frozen;
  REQUIRE(outcomes.size() == 2);
  for (auto& e : outcomes) {
    REQUIRE(e);
    CHECK(describe(e).code == errc::node_down);
    CHECK(describe(e).message.find("heartbeat") != std::string::npos);
  }
  CHECK(detected < 1500ms + 1s); // heartbeat timeout + 1 s
  ::kill(tree.pid(), SIGKILL);
  ::kill(tree.pid(), SIGCONT);
  tree.stop();
}

TEST_CASE_FIXTURE(distributed_fixture,
                  "a program's own node: its pool's host tools run where the pool runs") {
  // The node: another actor system (as another program would be) with a pool
  // whose Python tools call back a C++ host tool of that program.
  caf::actor_system_config node_cfg;
  add_message_types(node_cfg);
  use_distribution(node_cfg);
  caf::actor_system node_sys{node_cfg};
  pool_config pc;
  pc.name = "ml";
  pc.adapter = "snakepit_bridge.showcase.ShowcaseAdapter";
  pc.size = 1;
  host_tool where;
  where.name = "where";
  where.description = "names the program that serves it and doubles x";
  where.parameters = {{"x", "int", true, ""}};
  where.returns = "dict";
  where.handler = [](host_call call) {
    call.reply(value::map{{"served_by", "node program"},
                          {"twice", 2 * call.arguments().at("x").as_int()}});
  };
  pc.host_tools.push_back(where);
  auto ml = start_pool(node_sys, pc);
  REQUIRE_MESSAGE(ml, (ml ? "" : describe(ml.error()).message));
  node_options opts;
  opts.name = "program";
  opts.exports = {"ml"};
  auto server = node_server::start(node_sys, opts, [&](const std::string& name)
                                                     -> caf::expected<pool_actor> {
    if (name == "ml")
      return *ml;
    return make_error(errc::bad_arguments, "no pool " + name);
  });
  REQUIRE_MESSAGE(server, (server ? "" : describe(server.error()).message));

  // The caller, in this test's own system, uses it like a local pool.
  auto pool = connect_pool(*sys, "127.0.0.1", (*server)->port(), "ml");
  REQUIRE_MESSAGE(pool, (pool ? "" : describe(pool.error()).message));
  caf::scoped_actor self{*sys};
  self->request(*pool, 10s, execute_atom::value,
                make_request("host_call", {{"name", "where"}, {"args", value{{"x", 21}}}}))
    .receive(
      [](execute_reply& r) {
        CHECK(r.result["served_by"] == value("node program"));
        CHECK(r.result["twice"] == value(42));
      },
      [](caf::error& e) { FAIL(describe(e).message); });
  // A host tool's failure comes back typed, as locally.
  self->request(*pool, 10s, execute_atom::value,
                make_request("host_call", {{"name", "where"}, {"args", value{value::map{}}}}))
    .receive([](execute_reply&) { FAIL("a call without x succeeded"); },
             [](caf::error& e) { CHECK(describe(e).code == errc::python_exception); });
  server->reset();
  caf::anon_send_exit(*ml, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(*pool, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(distributed_fixture,
                  "a remote stream keeps its credit and its cancel across nodes") {
  snakepit::testing::temp_dir dir;
  snakepit::testing::running_tree tree{
    dir, snakepit::testing::showcase_tree(1) + "\n[node]\nexport = [\"showcase\"]\n"};
  auto port = node_port(tree);
  REQUIRE_MESSAGE(port != 0, tree.log());
  auto pool = connect_pool(*sys, "127.0.0.1", port, "showcase");
  REQUIRE(pool);
  caf::scoped_actor self{*sys};
  constexpr std::uint32_t window = 4;
  auto req = make_request("count_tracked", {{"n", 1000}, {"key", "remote"}});
  req.stream_window = window;
  stream_handle h;
  self->request(*pool, 10s, execute_stream_atom::value, std::move(req),
                caf::actor_cast<caf::actor>(self))
    .receive([&](stream_handle& x) { h = std::move(x); },
             [](caf::error& e) { FAIL(describe(e).message); });
  REQUIRE(h.worker);
  // Takes what arrives within `quiet_for`; the items' indexes.
  auto take = [&](std::chrono::milliseconds quiet_for) {
    std::vector<std::uint64_t> got;
    bool more = true;
    while (more)
      self->receive([&](stream_item_atom, std::uint64_t, std::uint64_t index,
                        value&) { got.push_back(index); },
                    [&](stream_end_atom, std::uint64_t, stream_summary&) { more = false; },
                    [&](stream_error_atom, std::uint64_t, caf::error& e) {
                      FAIL(describe(e).message);
                      more = false;
                    },
                    caf::after(quiet_for) >> [&] { more = false; });
    return got;
  };
  // The window, then nothing until the consumer acks: the credit crosses the network.
  auto first = take(400ms);
  CHECK(first.size() == window);
  caf::anon_send(h.worker, stream_ack_atom::value, h.id, std::uint32_t{2});
  auto second = take(400ms);
  CHECK(second.size() == 2);
  if (!second.empty())
    CHECK(second.front() == window);
  caf::anon_send(h.worker, stream_cancel_atom::value, h.id);
  CHECK(take(300ms).empty());
  // One worker: `pulled` runs once the cancelled stream has let go of it.
  std::int64_t produced = -1;
  self->request(*pool, 10s, execute_atom::value, make_request("pulled", {{"key", "remote"}}))
    .receive([&](execute_reply& r) { produced = r.result.as_int(); },
             [](caf::error& e) { FAIL(describe(e).message); });
  // Python ran at most one item beyond the credit it was given.
  CHECK(produced >= static_cast<std::int64_t>(window + 2));
  CHECK(produced <= static_cast<std::int64_t>(window + 2 + 1));
  CHECK(tree.stop() == 0);
}
