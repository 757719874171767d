// Supervision trees from TOML with real Python workers.

#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "pool_fixture.hpp"
#include "snakepit/actors/process_launcher.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

struct tree_fixture : system_fixture {
  std::vector<running_tree> trees;

  ~tree_fixture() {
    for (auto& t : trees)
      caf::anon_send_exit(t.root(), caf::exit_reason::user_shutdown);
  }

  running_tree start(const std::string& toml) {
    auto spec = load_tree_string(toml, "test.toml");
    REQUIRE_MESSAGE(spec, (spec ? "" : describe(spec.error()).message));
    auto tree = start_tree(*sys, *spec);
    REQUIRE_MESSAGE(tree, (tree ? "" : describe(tree.error()).message));
    trees.push_back(*tree);
    return *tree;
  }

  /// Starts the tree in `toml`, which must fail; what the failure says.
  error_info start_failure(const std::string& toml, const actor_registry* registry = nullptr) {
    auto spec = load_tree_string(toml, "test.toml", registry);
    REQUIRE_MESSAGE(spec, (spec ? "" : describe(spec.error()).message));
    auto tree = start_tree(*sys, *spec, registry);
    REQUIRE(!tree);
    return describe(tree.error());
  }

  pool_actor pool_of(const running_tree& tree, const std::string& name) {
    auto p = tree.pool(name);
    REQUIRE_MESSAGE(p, (p ? "" : describe(p.error()).message));
    return *p;
  }

  std::vector<child_info> children(const supervisor_actor& sup) {
    caf::scoped_actor self{*sys};
    std::vector<child_info> out;
    self->request(sup, 5s, which_children_atom::value)
      .receive([&](std::vector<child_info>& xs) { out = std::move(xs); },
               [&](caf::error& e) { FAIL(caf::to_string(e)); });
    return out;
  }

  /// Waits until `name` runs under a handle other than `old`, and is ready.
  pool_actor wait_new_pool(const running_tree& tree, const std::string& name,
                           const pool_actor& old) {
    auto until = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < until) {
      auto p = tree.pool(name);
      if (p && *p != old) {
        auto st = wait_status(*p, [](const pool_status& s) { return s.state == "ready"; });
        (void) st;
        return *p;
      }
      std::this_thread::sleep_for(10ms);
    }
    FAIL("pool " << name << " was not restarted");
    return old;
  }
};

std::string two_pools(const std::string& strategy) {
  return "[supervisors.app]\nstrategy = \"" + strategy
         + "\"\nchildren = [\"a\", \"b\"]\n"
           "[pools.a]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\nsize = 1\n"
           "[pools.b]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\nsize = 1\n";
}

} // namespace

TEST_CASE_FIXTURE(tree_fixture, "a worker SIGKILLed in a running tree is replaced and counted") {
  auto tree = start("[supervisors.app]\nchildren = [\"ml\"]\n"
                    "[pools.ml]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                    "size = 2\n");
  auto pool = pool_of(tree, "ml");
  caf::scoped_actor busy{*sys};
  busy->send(caf::actor_cast<caf::actor>(pool), execute_atom::value,
             make_request("sleep", {{"seconds", 0.5}}));
  wait_status(pool, [](const pool_status& s) { return s.busy == 1; });
  auto info = call(pool, make_request("worker_info"));  // the other, idle worker
  REQUIRE(info);
  REQUIRE(::kill(static_cast<pid_t>(info->result["pid"].as_int()), SIGKILL) == 0);
  // The busy worker's caller sees nothing of it.
  caf::expected<execute_reply> slept{caf::error{}};
  busy->receive([&](execute_reply& r) { slept = std::move(r); },
                [&](caf::error& e) { slept = std::move(e); });
  CHECK_MESSAGE(slept, message_of(slept));
  auto st = wait_status(pool, [](const pool_status& s) { return s.ready == 2 && s.crashes == 1; });
  CHECK(st.crashes == 1);
  // Same pool actor: only the worker was restarted, by the pool's own supervisor.
  CHECK(pool_of(tree, "ml") == pool);
  CHECK(call(pool, make_request("noop")));
  tree.stop();
}

TEST_CASE_FIXTURE(tree_fixture, "an adapter that breaks at import escalates up the tree, without a busy loop") {
  auto dir = std::string{"/tmp/snakepit-flaky-"} + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0700);
  auto marker = dir + "/broken";
  std::ofstream{dir + "/flaky_adapter.py"}
    << "import os\n"
       "with open(os.environ['FLAKY_DIR'] + '/imports.log', 'a') as log:\n"
       "    log.write('import\\n')\n"
       "if os.path.exists(os.environ['FLAKY_DIR'] + '/broken'):\n"
       "    raise RuntimeError('adapter broken on purpose')\n"
       "from snakepit_bridge import BaseAdapter, tool\n"
       "class Flaky(BaseAdapter):\n"
       "    @tool\n"
       "    def ping(self) -> str:\n"
       "        return 'pong'\n";
  auto tree = start("[supervisors.app]\nchildren = [\"flaky\"]\nmax_restarts = 1\n"
                    "max_seconds = 30\nrestart_backoff_min_ms = 50\n"
                    "[pools.flaky]\nadapter = \"flaky_adapter.Flaky\"\nsize = 1\n"
                    "python_path = [\"" + dir + "\"]\nenv = { FLAKY_DIR = \"" + dir + "\" }\n"
                    "max_restarts = 1\nmax_seconds = 30\nrestart_backoff_min_ms = 50\n");
  auto pool = pool_of(tree, "flaky");
  auto info = call(pool, make_request("ping"));
  REQUIRE_MESSAGE(info, message_of(info));
  std::ofstream{marker} << "x";
  caf::scoped_actor self{*sys};
  self->monitor(tree.root());
  auto pid_reply = call(pool, make_request("ping"));
  REQUIRE(pid_reply);
  auto st = status(pool);
  REQUIRE(st.workers.size() == 1);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(::kill(st.workers[0].pid, SIGKILL) == 0);
  caf::error reason;
  self->receive([&](const caf::down_msg& m) { reason = m.reason; },
                caf::after(30s) >> [] { FAIL("the tree did not give up"); });
  auto took = std::chrono::steady_clock::now() - t0;
  auto err = describe(reason);
  CHECK(err.kind == "restart_intensity_exceeded");
  CHECK(err.message.find("flaky") != std::string::npos);
  CHECK(err.python_type == "RuntimeError");
  CHECK(err.traceback.find("adapter broken on purpose") != std::string::npos);
  CHECK(took < 20s);
  // Bounded attempts: the first start, then a handful of restarts at two levels.
  std::ifstream log{dir + "/imports.log"};
  std::stringstream content;
  content << log.rdbuf();
  auto text = content.str();
  auto imports = std::count(text.begin(), text.end(), '\n');
  CHECK(imports <= 8);
  auto until = std::chrono::steady_clock::now() + 10s;
  while (default_process_launcher().live_count() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  CHECK(default_process_launcher().live_count() == 0);
  for (auto f : {"/broken", "/imports.log", "/flaky_adapter.py"})
    std::remove((dir + f).c_str());
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE_FIXTURE(tree_fixture, "one_for_all over two pools restarts both") {
  auto tree = start(two_pools("one_for_all"));
  auto a = pool_of(tree, "a");
  auto b = pool_of(tree, "b");
  caf::anon_send_exit(b, caf::exit_reason::kill);
  auto a2 = wait_new_pool(tree, "a", a);
  auto b2 = wait_new_pool(tree, "b", b);
  CHECK(a2 != a);
  CHECK(b2 != b);
  CHECK(call(a2, make_request("noop")));
  CHECK(call(b2, make_request("noop")));
  auto infos = children(tree.root());
  REQUIRE(infos.size() == 2);
  CHECK(infos[0].restarts == 1);  // restarted because of its sibling: counted too
  CHECK(infos[1].restarts == 1);
  tree.stop();
}

TEST_CASE_FIXTURE(tree_fixture, "rest_for_one over two pools restarts only the failed one and later ones") {
  auto tree = start(two_pools("rest_for_one"));
  auto a = pool_of(tree, "a");
  auto b = pool_of(tree, "b");
  SUBCASE("the later pool fails: the earlier one is untouched") {
    caf::anon_send_exit(b, caf::exit_reason::kill);
    auto b2 = wait_new_pool(tree, "b", b);
    CHECK(b2 != b);
    CHECK(pool_of(tree, "a") == a);
    CHECK(call(a, make_request("noop")));
  }
  SUBCASE("the earlier pool fails: both restart") {
    caf::anon_send_exit(a, caf::exit_reason::kill);
    auto a2 = wait_new_pool(tree, "a", a);
    auto b2 = wait_new_pool(tree, "b", b);
    CHECK(a2 != a);
    CHECK(b2 != b);
  }
  tree.stop();
}

TEST_CASE_FIXTURE(tree_fixture, "stopping a tree with busy workers keeps to the declared timeouts") {
  auto tree = start("[supervisors.app]\nchildren = [\"first\", \"second\"]\n"
                    "[pools.first]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                    "size = 1\nshutdown_timeout_ms = 500\n"
                    "[pools.second]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                    "size = 1\nshutdown_timeout_ms = 500\n");
  caf::scoped_actor a{*sys}, b{*sys};
  for (auto* self : {&a, &b}) {
    auto name = self == &a ? "first" : "second";
    (*self)->send(caf::actor_cast<caf::actor>(pool_of(tree, name)), execute_atom::value,
                  make_request("sleep", {{"seconds", 30.0}}));
  }
  wait_status(pool_of(tree, "first"), [](const pool_status& s) { return s.busy == 1; });
  wait_status(pool_of(tree, "second"), [](const pool_status& s) { return s.busy == 1; });
  auto t0 = std::chrono::steady_clock::now();
  tree.stop();
  auto took = std::chrono::steady_clock::now() - t0;
  // Reverse order, each pool within its 500 ms budget: about 1 s in all.
  CHECK(took < 3s);
  CHECK(default_process_launcher().live_count() == 0);
  for (auto* self : {&a, &b}) {
    caf::error err;
    (*self)->receive([](execute_reply&) { FAIL("a 30 s call finished"); },
                     [&](caf::error& e) { err = std::move(e); });
    CHECK(describe(err).kind == "pool_stopped");
  }
}

TEST_CASE_FIXTURE(tree_fixture, "a tree whose pool cannot start reports the child and the traceback") {
  auto err = start_failure("[supervisors.app]\nchildren = [\"ok\", \"bad\"]\n"
                           "[pools.ok]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                           "size = 1\n"
                           "[pools.bad]\nadapter = \"missing_module_q.Adapter\"\nsize = 1\n");
  CHECK(err.kind == "startup_failed");
  CHECK(err.message.find("child bad failed to start") != std::string::npos);
  CHECK(err.python_type == "ModuleNotFoundError");
  auto until = std::chrono::steady_clock::now() + 10s;
  while (default_process_launcher().live_count() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  CHECK(default_process_launcher().live_count() == 0);
}

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;

caf::behavior greeter(caf::event_based_actor*, std::string greeting) {
  return {[greeting](ping_atom, const std::string& who) { return greeting + ", " + who; }};
}

} // namespace

TEST_CASE_FIXTURE(tree_fixture, "user actors registered by kind run in the tree beside pools") {
  actor_registry registry;
  registry.add("greeter", [](caf::actor_system& s, const value::map& args)
                            -> caf::expected<caf::actor> {
    auto i = args.find("greeting");
    return s.spawn(greeter, i == args.end() ? std::string{"hi"}
                                            : std::string{i->second.as_string()});
  });
  auto spec = load_tree_string("[supervisors.app]\nchildren = [\"hello\", \"p\"]\n"
                               "[actors.hello]\nkind = \"greeter\"\n"
                               "args = { greeting = \"hello\" }\n"
                               "[pools.p]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                               "size = 1\n",
                               "test.toml", &registry);
  REQUIRE_MESSAGE(spec, (spec ? "" : describe(spec.error()).message));
  auto tree = start_tree(*sys, *spec, &registry);
  REQUIRE(tree);
  trees.push_back(*tree);
  auto hello = tree->actor("hello");
  REQUIRE(hello);
  caf::scoped_actor self{*sys};
  self->request(*hello, 5s, ping_atom::value, std::string{"tree"})
    .receive([](const std::string& s) { CHECK(s == "hello, tree"); },
             [](caf::error& e) { FAIL(caf::to_string(e)); });
  CHECK(call(pool_of(*tree, "p"), make_request("noop")));
  CHECK(!tree->pool("hello"));  // a name is looked up with its kind
  auto bad = load_tree_string("[supervisors.app]\nchildren = [\"x\"]\n[actors.x]\nkind = \"gretter\"\n",
                              "test.toml", &registry);
  REQUIRE(!bad);
  CHECK(describe(bad.error()).message.find("greeter") != std::string::npos);
  tree->stop();
}

TEST_CASE_FIXTURE(tree_fixture, "a tree whose FIRST child cannot start reports that child, not a lost request") {
  auto err = start_failure("[supervisors.app]\nchildren = [\"bad\", \"ok\"]\n"
                           "[pools.bad]\nadapter = \"missing_module_q.Adapter\"\nsize = 1\n"
                           "[pools.ok]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                           "size = 1\n");
  CHECK(err.kind == "startup_failed");
  CHECK(err.message.find("child bad failed to start") != std::string::npos);
  CHECK(err.python_type == "ModuleNotFoundError");
}

TEST_CASE_FIXTURE(tree_fixture, "a registry factory that returns an empty handle is a start failure, not a crash") {
  actor_registry registry;
  registry.add("hollow", [](caf::actor_system&, const value::map&) -> caf::expected<caf::actor> {
    return caf::actor{};
  });
  auto err = start_failure("[supervisors.app]\nchildren = [\"h\"]\n[actors.h]\nkind = \"hollow\"\n",
                           &registry);
  CHECK(err.kind == "startup_failed");
  CHECK(err.message.find("child h") != std::string::npos);
}

TEST_CASE_FIXTURE(tree_fixture, "a call to a stopped pool is pool_stopped") {
  auto spec = load_tree_string("[supervisors.app]\nchildren = [\"p\"]\n"
                               "[pools.p]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                               "size = 1\n",
                               "test.toml");
  REQUIRE(spec);
  auto tree = start_tree(*sys, *spec);
  REQUIRE(tree);
  auto pool = pool_of(*tree, "p");
  auto root = tree->root();  // a copy, valid after stop
  auto copy = *tree;
  CHECK(call(pool, make_request("noop")));
  tree->stop();
  auto r = call(pool, make_request("noop"));
  REQUIRE(!r);
  CHECK(describe(r.error()).kind == "pool_stopped");
  CHECK(root);
  caf::scoped_actor self{*sys};
  self->request(root, 5s, which_children_atom::value)
    .receive([](const std::vector<child_info>&) { FAIL("a stopped root answered"); },
             [](caf::error& e) { CHECK(describe(e).kind == "pool_stopped"); });
  // Every copy of the tree knows it is stopped.
  auto again = copy.pool("p");
  REQUIRE(!again);
  CHECK(describe(again.error()).kind == "pool_stopped");
}

namespace {

/// A user actor that becomes ready a moment after it starts (it loads
/// something), or fails instead: it answers `(ready_atom) -> bool` like a pool.
caf::behavior slow_to_ready(caf::event_based_actor* self, std::string name, bool fail) {
  using loaded_atom = caf::atom_constant<caf::atom("loaded")>;
  self->delayed_send(self, 150ms, loaded_atom::value);
  auto ready = std::make_shared<bool>(false);
  auto waiting = std::make_shared<std::vector<caf::response_promise>>();
  auto answer = [fail, name](caf::response_promise& rp) {
    if (fail)
      rp.deliver(make_error(errc::startup_failed, name + " could not load"));
    else
      rp.deliver(true);
  };
  return {
    [=](loaded_atom) {
      *ready = true;
      for (auto& rp : *waiting)
        answer(rp);
      waiting->clear();
    },
    [=](ping_atom, const std::string& who) { return name + " greets " + who; },
    [=](ready_atom) {
      auto rp = self->make_response_promise();
      if (*ready)
        answer(rp);
      else
        waiting->push_back(rp);
    },
  };
}

} // namespace

TEST_CASE_FIXTURE(tree_fixture, "registry factories learn their node, may be slow, and report readiness") {
  actor_registry registry;
  std::vector<std::string> seen;
  std::mutex seen_mtx;
  registry.add(
    "loader",
    [&](caf::actor_system& s, const actor_context& ctx) -> caf::expected<caf::actor> {
      {
        std::lock_guard<std::mutex> guard{seen_mtx};
        seen.push_back(ctx.name + ":" + std::string{ctx.args.at("model").as_string()});
      }
      std::this_thread::sleep_for(300ms);  // a factory that blocks: off the supervisor's thread
      return s.spawn(slow_to_ready, ctx.name, ctx.args.count("fail") > 0);
    },
    actor_readiness::await_ready);
  SUBCASE("ready before the next sibling starts") {
    auto spec = load_tree_string("[supervisors.app]\nchildren = [\"m\", \"p\"]\n"
                                 "[actors.m]\nkind = \"loader\"\nargs = { model = \"tiny\" }\n"
                                 "[pools.p]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                                 "size = 1\n",
                                 "test.toml", &registry);
    REQUIRE(spec);
    auto tree = start_tree(*sys, *spec, &registry);
    REQUIRE_MESSAGE(tree, (tree ? "" : describe(tree.error()).message));
    trees.push_back(*tree);
    CHECK(seen == std::vector<std::string>{"m:tiny"});
    caf::scoped_actor self{*sys};
    self->request(*tree->actor("m"), 5s, ping_atom::value, std::string{"you"})
      .receive([](const std::string& s) { CHECK(s == "m greets you"); },
               [](caf::error& e) { FAIL(caf::to_string(e)); });
    tree->stop();
  }
  SUBCASE("a readiness error is a start failure naming the node") {
    auto err = start_failure("[supervisors.app]\nchildren = [\"m\"]\n"
                             "[actors.m]\nkind = \"loader\"\n"
                             "args = { model = \"big\", fail = true }\n",
                             &registry);
    CHECK(err.kind == "startup_failed");
    CHECK(err.message.find("child m") != std::string::npos);
    CHECK(err.message.find("could not load") != std::string::npos);
  }
  SUBCASE("a factory slower than start_timeout_ms fails the start") {
    auto err = start_failure("[supervisors.app]\nchildren = [\"m\"]\n"
                             "[actors.m]\nkind = \"loader\"\nargs = { model = \"x\" }\n"
                             "start_timeout_ms = 100\n",
                             &registry);
    CHECK(err.message.find("did not start within 100 ms") != std::string::npos);
  }
}

TEST_CASE_FIXTURE(tree_fixture, "a dynamic supervisor declared in TOML makes children from its template") {
  auto spec = load_tree_string("[supervisors.app]\nchildren = [\"jobs\", \"p\"]\n"
                               "[supervisors.jobs]\nstrategy = \"dynamic\"\n"
                               "template = \"job\"\nmax_children = 2\n"
                               "[pools.job]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                               "size = 1\nrestart = \"temporary\"\n"
                               "[pools.p]\nadapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
                               "size = 1\n",
                               "test.toml");
  REQUIRE_MESSAGE(spec, (spec ? "" : describe(spec.error()).message));
  CHECK(describe_tree(*spec).find("template job, max_children 2") != std::string::npos);
  auto tree = start_tree(*sys, *spec);
  REQUIRE_MESSAGE(tree, (tree ? "" : describe(tree.error()).message));
  trees.push_back(*tree);
  auto jobs = tree->supervisor("jobs");
  REQUIRE(jobs);
  CHECK(children(*jobs).empty());  // nothing from the template starts at boot
  CHECK(!tree->pool("job"));
  auto first = tree->start_child("jobs", "job-1");
  REQUIRE_MESSAGE(first, (first ? "" : describe(first.error()).message));
  auto job1 = tree->pool("job-1");
  REQUIRE(job1);
  CHECK(call(*job1, make_request("noop")));
  REQUIRE(tree->start_child("jobs", "job-2"));
  auto third = tree->start_child("jobs", "job-3");
  REQUIRE(!third);
  CHECK(describe(third.error()).kind == "pool_saturated");
  auto taken = tree->start_child("jobs", "p");
  REQUIRE(!taken);
  CHECK(describe(taken.error()).kind == "already_present");
  auto not_dynamic = tree->start_child("app", "x");
  REQUIRE(!not_dynamic);
  CHECK(describe(not_dynamic.error()).kind == "bad_arguments");
  caf::scoped_actor self{*sys};
  self->request(*jobs, 10s, terminate_child_atom::value, std::string{"job-1"})
    .receive([](bool found) { CHECK(found); }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  CHECK(children(*jobs).size() == 1);  // a dynamic supervisor forgets a terminated child
  tree->stop();
}
