// A cluster pool over a pool of this process and a pool of another node (a
// real `snakepit run` with [node]): calls spread by free capacity, a node
// killed under load (its running calls node_down, the queued ones run on the
// survivor), rejoin, sessions in both affinity modes, and the cluster's own
// queue bound, queue timeout and deadlines.
#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
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

/// A node exporting a showcase pool of `size` workers.
struct node_process {
  snakepit::testing::temp_dir dir;
  snakepit::testing::running_tree tree;
  std::uint16_t port = 0;

  explicit node_process(int size = 2)
    : tree{dir, snakepit::testing::showcase_tree(size) + "\n[node]\nexport = [\"showcase\"]\n"} {
    static const std::regex line{R"(node '[^']*' listening on [^:\s]+:(\d+))"};
    for (int i = 0; i < 200 && port == 0; ++i) {
      std::smatch m;
      auto log = tree.log();
      if (std::regex_search(log, m, line))
        port = static_cast<std::uint16_t>(std::stoi(m[1].str()));
      else
        std::this_thread::sleep_for(100ms);
    }
  }
};

/// Member handles by name, changed by the test while the cluster runs (as a
/// supervisor's restarts would).
struct member_table {
  struct entries {
    std::mutex mtx;
    std::map<std::string, pool_actor> handles;
  };
  /// Shared with the resolvers: a cluster still running after the test's table went out of
  /// scope (it stops with the fixture) must not read a dead table (ASan: stack-use-after-scope).
  std::shared_ptr<entries> table = std::make_shared<entries>();

  void set(const std::string& name, pool_actor h) {
    std::lock_guard<std::mutex> guard{table->mtx};
    table->handles[name] = std::move(h);
  }

  member_resolver resolver() {
    return [shared = table](const std::string& name) -> std::optional<pool_actor> {
      std::lock_guard<std::mutex> guard{shared->mtx};
      auto i = shared->handles.find(name);
      if (i == shared->handles.end())
        return std::nullopt;
      return i->second;
    };
  }
};

struct cluster_fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::vector<caf::actor> to_stop;

  cluster_fixture() {
    add_message_types(cfg);
    use_distribution(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }

  ~cluster_fixture() {
    for (auto& a : to_stop)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }

  pool_actor local_pool(std::uint32_t size) {
    pool_config pc;
    pc.name = "near";
    pc.adapter = "snakepit_bridge.showcase.ShowcaseAdapter";
    pc.size = size;
    pc.request_timeout = 30s;
    auto pool = start_pool(*sys, pc);
    REQUIRE_MESSAGE(pool, (pool ? "" : describe(pool.error()).message));
    to_stop.push_back(caf::actor_cast<caf::actor>(*pool));
    return *pool;
  }

  pool_actor remote_pool(const node_process& node) {
    REQUIRE_MESSAGE(node.port != 0, node.tree.log());
    remote_pool_options watch;
    watch.heartbeat_interval = 200ms;
    watch.heartbeat_timeout = 1000ms;
    auto pool = connect_pool(*sys, "127.0.0.1", node.port, "showcase", watch);
    REQUIRE_MESSAGE(pool, (pool ? "" : describe(pool.error()).message));
    to_stop.push_back(caf::actor_cast<caf::actor>(*pool));
    return *pool;
  }

  pool_actor cluster(cluster_options opts, member_table& members) {
    opts.status_interval = 100ms;
    opts.rejoin_backoff = restart_backoff{20ms, 200ms};
    auto c = spawn_cluster_pool(*sys, std::move(opts), members.resolver());
    to_stop.push_back(caf::actor_cast<caf::actor>(c));
    return c;
  }

  pool_status status(const pool_actor& pool) {
    caf::scoped_actor self{*sys};
    pool_status out;
    self->request(pool, 10s, status_atom::value)
      .receive([&](pool_status& s) { out = std::move(s); },
               [](caf::error& e) { FAIL(describe(e).message); });
    return out;
  }

  /// Waits (at most 10 s) until `pred(status)` holds.
  template <class Pred>
  pool_status await_status(const pool_actor& pool, Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    auto st = status(pool);
    while (!pred(st) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
      st = status(pool);
    }
    return st;
  }
};

const cluster_member_status* member(const pool_status& st, const std::string& name) {
  for (auto& m : st.members)
    if (m.name == name)
      return &m;
  return nullptr;
}

bool all_connected(const pool_status& st) {
  return std::all_of(st.members.begin(), st.members.end(),
                     [](auto& m) { return m.connected && m.capacity > 0; });
}

} // namespace

TEST_CASE_FIXTURE(cluster_fixture,
                  "a cluster spreads calls over a local and a remote pool by free capacity") {
  node_process node{2};
  member_table members;
  members.set("near", local_pool(2));
  members.set("far", remote_pool(node));
  cluster_options opts;
  opts.name = "both";
  opts.members = {"near", "far"};
  auto c = cluster(opts, members);
  auto st = await_status(c, all_connected);
  REQUIRE(all_connected(st));
  CHECK(st.capacity == 4);
  CHECK(member(st, "far")->node == "127.0.0.1:" + std::to_string(node.port));
  CHECK(member(st, "near")->node.empty());

  // 8 sleeps of 0.4 s on 4 slots: two rounds, each member runs half.
  auto t0 = std::chrono::steady_clock::now();
  auto outcomes = snakepit::testing::sleep_outcomes(*sys, c, 8, 0.4);
  auto took = std::chrono::steady_clock::now() - t0;
  for (auto& e : outcomes)
    CHECK_MESSAGE(!e, describe(e).message);
  CHECK(took < 2s);  // one member alone would take 1.6 s or more
  st = status(c);
  CHECK(member(st, "near")->served == 4);
  CHECK(member(st, "far")->served == 4);
  CHECK(st.served == 8);
  CHECK(member(st, "far")->latency_us >= 400000);

  // Calls, errors and tools pass through unchanged.
  caf::scoped_actor self{*sys};
  self->request(c, 10s, execute_atom::value, make_request("fail", {{"exception", "KeyError"}}))
    .receive([](execute_reply&) { FAIL("fail returned"); },
             [](caf::error& e) {
               CHECK(describe(e).code == errc::python_exception);
               CHECK(describe(e).python_type == "KeyError");
             });
  self->request(c, 10s, list_tools_atom::value)
    .receive([](std::vector<tool_spec>& tools) { CHECK(tools.size() > 10); },
             [](caf::error& e) { FAIL(describe(e).message); });
  std::vector<std::int64_t> items;
  auto summary = for_each_item(self, c, make_request("count", {{"n", 5}}),
                               [&](const value& x) {
                                 items.push_back(x.as_int());
                                 return true;
                               });
  REQUIRE_MESSAGE(summary, (summary ? "" : describe(summary.error()).message));
  CHECK(items.size() == 5);
}

TEST_CASE_FIXTURE(cluster_fixture,
                  "a node killed under load: its running calls fail node_down, the queued "
                  "ones run on the survivor, and it rejoins when it is back") {
  auto node = std::make_unique<node_process>(2);
  member_table members;
  members.set("near", local_pool(2));
  members.set("far", remote_pool(*node));
  cluster_options opts;
  opts.name = "both";
  opts.members = {"near", "far"};
  auto c = cluster(opts, members);
  REQUIRE(all_connected(await_status(c, all_connected)));

  // 8 sleeps of 1 s: 2 run here, 2 there, 4 wait in the cluster's queue.
  std::chrono::steady_clock::time_point killed;
  auto outcomes = snakepit::testing::sleep_outcomes(*sys, c, 8, 1.0, [&] {
    std::this_thread::sleep_for(300ms);
    killed = std::chrono::steady_clock::now();
    ::kill(node->tree.pid(), SIGKILL);
  });
  auto all_answered = std::chrono::steady_clock::now() - killed;
  REQUIRE(outcomes.size() == 8);
  int lost = 0;
  for (auto& e : outcomes) {
    if (!e)
      continue;
    ++lost;
    CHECK(describe(e).code == errc::node_down);
    CHECK(describe(e).message.find("may or may not have run") != std::string::npos);
  }
  CHECK(lost == 2);  // only the two running there; the four queued ran here
  CHECK(all_answered < 3s);  // 2 more rounds of 1 s here, not a hang
  auto st = status(c);
  CHECK(!member(st, "far")->connected);
  CHECK(member(st, "far")->lost == 1);
  CHECK(member(st, "near")->served == 6);

  // While it is gone, calls go to the survivor.
  caf::scoped_actor self{*sys};
  self->request(c, 10s, execute_atom::value, make_request("add", {{"a", 1}, {"b", 2}}))
    .receive([](execute_reply& r) { CHECK(r.result == value(3)); },
             [](caf::error& e) { FAIL(describe(e).message); });

  // A node is back (a supervisor would reconnect the child): it rejoins.
  node.reset();
  node = std::make_unique<node_process>(2);
  members.set("far", remote_pool(*node));
  st = await_status(c, all_connected);
  REQUIRE(all_connected(st));
  CHECK(member(st, "far")->joins == 2);
  outcomes = snakepit::testing::sleep_outcomes(*sys, c, 4, 0.3);
  for (auto& e : outcomes)
    CHECK_MESSAGE(!e, describe(e).message);
  st = status(c);
  CHECK(member(st, "far")->served >= 1);
  node->tree.stop();
}

TEST_CASE_FIXTURE(cluster_fixture,
                  "sessions stay on their member; a lost member's session is session_lost "
                  "when strict and moves when hinted") {
  node_process node{1};
  member_table members;
  // Only the remote member is there when the sessions open: they land on it.
  members.set("far", remote_pool(node));
  cluster_options strict;
  strict.name = "strict";
  strict.members = {"near", "far"};
  strict.affinity = affinity_mode::strict_queue;
  auto s = cluster(strict, members);
  auto h_opts = strict;
  h_opts.name = "hinted";
  h_opts.affinity = affinity_mode::hint;
  auto h = cluster(h_opts, members);
  auto far_only = [](const pool_status& st) { return member(st, "far")->connected; };
  REQUIRE(far_only(await_status(s, far_only)));
  REQUIRE(far_only(await_status(h, far_only)));
  caf::scoped_actor self{*sys};
  auto open = [&](const pool_actor& c) {
    std::string id;
    self->request(c, 10s, open_session_atom::value, std::string{})
      .receive([&](std::string& got) { id = got; },
               [](caf::error& e) { FAIL(describe(e).message); });
    return id;
  };
  auto session_call = [&](const pool_actor& c, const std::string& id) {
    auto req = make_request("session_info");
    req.session_id = id;
    caf::expected<execute_reply> out{caf::error{}};
    self->request(c, 10s, execute_atom::value, std::move(req))
      .receive([&](execute_reply& r) { out = std::move(r); },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  };
  auto s_id = open(s);
  auto h_id = open(h);
  REQUIRE(!s_id.empty());
  REQUIRE(!h_id.empty());
  for (int i = 1; i <= 2; ++i) {
    auto r = session_call(s, s_id);
    REQUIRE(r);
    CHECK(r->result["calls"] == value(i));
  }
  // The local member joins; the sessions stay where they are.
  members.set("near", local_pool(1));
  REQUIRE(all_connected(await_status(s, all_connected)));
  REQUIRE(all_connected(await_status(h, all_connected)));
  auto r = session_call(s, s_id);
  REQUIRE(r);
  CHECK(r->result["calls"] == value(3));

  ::kill(node.tree.pid(), SIGKILL);
  auto gone = [](const pool_status& st) { return !member(st, "far")->connected; };
  REQUIRE(gone(await_status(s, gone)));
  REQUIRE(gone(await_status(h, gone)));
  r = session_call(s, s_id);
  REQUIRE(!r);
  CHECK(describe(r.error()).code == errc::session_lost);
  CHECK(describe(r.error()).message.find("far") != std::string::npos);
  r = session_call(h, h_id);
  REQUIRE_MESSAGE(r, describe(r.error()).message);
  CHECK(r->result["calls"] == value(1));  // a fresh session on the survivor
  // Unknown sessions are refused by the cluster itself.
  r = session_call(h, "nope");
  REQUIRE(!r);
  CHECK(describe(r.error()).code == errc::session_unknown);
  node.tree.stop();
}

TEST_CASE_FIXTURE(cluster_fixture,
                  "the cluster's queue is bounded, times out, and keeps deadlines") {
  member_table members;
  members.set("near", local_pool(1));
  cluster_options opts;
  opts.name = "small";
  opts.members = {"near"};
  opts.queue_max = 2;
  opts.queue_timeout = 400ms;
  auto c = cluster(opts, members);
  REQUIRE(all_connected(await_status(c, all_connected)));
  caf::scoped_actor self{*sys};
  // One runs (2 s), two wait, the fourth finds the queue full.
  auto running = self->request(c, 10s, execute_atom::value,
                               make_request("sleep", {{"seconds", 2.0}}));
  std::this_thread::sleep_for(100ms);
  auto q1 = self->request(c, 10s, execute_atom::value, make_request("add", {{"a", 1}, {"b", 1}}));
  auto q2 = self->request(c, 10s, execute_atom::value,
                          make_request("add", {{"a", 1}, {"b", 1}}, caf::timespan{150ms}));
  auto full = self->request(c, 10s, execute_atom::value, make_request("add", {{"a", 1}, {"b", 1}}));
  full.receive([](execute_reply&) { FAIL("a full queue took a call"); },
               [](caf::error& e) {
                 CHECK(describe(e).code == errc::pool_saturated);
                 CHECK(describe(e).message.find("queue_max") != std::string::npos);
               });
  auto t0 = std::chrono::steady_clock::now();
  q2.receive([](execute_reply&) { FAIL("ran past its deadline"); },
             [](caf::error& e) { CHECK(describe(e).code == errc::timeout); });
  CHECK(std::chrono::steady_clock::now() - t0 < 400ms);
  q1.receive([](execute_reply&) { FAIL("waited past queue_timeout"); },
             [](caf::error& e) {
               CHECK(describe(e).code == errc::pool_saturated);
               CHECK(describe(e).message.find("queue_timeout") != std::string::npos);
             });
  running.receive([](execute_reply&) {}, [](caf::error& e) { FAIL(describe(e).message); });
  auto st = status(c);
  CHECK(st.queue_full == 1);
  CHECK(st.queue_timeouts == 2);
  CHECK(st.served == 1);
  CHECK(st.failed == 3);
}
