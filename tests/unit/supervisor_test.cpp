// Supervisor semantics on plain C++ test actors (no Python).

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "snakepit/actors/telemetry.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/messages/message_types.hpp"
#include "snakepit/supervision/supervisor.hpp"

using namespace snakepit;
using namespace std::chrono_literals;

namespace {

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using replace_atom = caf::atom_constant<caf::atom("replace")>;

/// Shared record of what the test children did.
struct journal {
  std::mutex mtx;
  std::vector<std::string> events;
  std::atomic<int> starts{0};

  void add(std::string e) {
    std::lock_guard<std::mutex> guard{mtx};
    events.push_back(std::move(e));
  }
  std::vector<std::string> snapshot() {
    std::lock_guard<std::mutex> guard{mtx};
    return events;
  }
};

caf::behavior test_child(caf::event_based_actor* self, std::string id,
                         std::shared_ptr<journal> log) {
  // Logged before the child quits, so before its supervisor sees it down.
  self->set_exit_handler([self, id, log](caf::exit_msg& msg) {
    log->add("stop " + id);
    self->quit(msg.reason);
  });
  return {
    [self, id, log](crash_atom) {
      log->add("stop " + id);
      self->quit(caf::sec::runtime_error);
    },
    [self](done_atom) { self->quit(); },
    [self](replace_atom) { self->quit(make_error(errc::worker_replaced, "on purpose")); },
  };
}

child_spec make_child(const std::string& id, std::shared_ptr<journal> log,
                      restart_type restart = restart_type::permanent) {
  child_spec spec;
  spec.id = id;
  spec.restart = restart;
  spec.shutdown = shutdown_policy::after(1s);
  // A plain spawn: started inline, so the tests see exact orders at once
  // (`slow_child` below exercises starts off the supervisor's thread).
  spec.start_timeout = caf::timespan{0};
  spec.start = [id, log](caf::actor_system& sys) -> caf::expected<caf::actor> {
    ++log->starts;
    log->add("start " + id);  // here, in the supervisor, so the order is exact
    return sys.spawn(test_child, id, log);
  };
  return spec;
}

struct fixture {
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<journal> log = std::make_shared<journal>();

  fixture() {
    add_message_types(sys_cfg);
    sys = std::make_unique<caf::actor_system>(sys_cfg);
  }

  supervisor_config config(std::uint32_t max_restarts = 3) {
    supervisor_config sc;
    sc.name = "test-sup";
    sc.intensity = restart_intensity{max_restarts, 5s};
    sc.backoff = restart_backoff{caf::timespan{0}, caf::timespan{0}};
    return sc;
  }

  std::vector<child_info> children(const supervisor_actor& sup) {
    caf::scoped_actor self{*sys};
    std::vector<child_info> out;
    self->request(sup, 5s, which_children_atom::value)
      .receive([&](std::vector<child_info>& xs) { out = std::move(xs); },
               [&](caf::error& e) { FAIL(caf::to_string(e)); });
    return out;
  }

  caf::actor child(const supervisor_actor& sup, const std::string& id) {
    for (auto& c : children(sup))
      if (c.id == id)
        return c.handle;
    return nullptr;
  }

  /// Waits until the child `id` runs with a handle other than `old`.
  caf::actor wait_new_child(const supervisor_actor& sup, const std::string& id,
                            const caf::actor& old) {
    for (int i = 0; i < 500; ++i) {
      auto h = child(sup, id);
      if (h && h != old)
        return h;
      std::this_thread::sleep_for(5ms);
    }
    FAIL("child " << id << " was not restarted");
    return nullptr;
  }

  caf::error wait_down(caf::scoped_actor& self) {
    caf::error reason;
    self->receive([&](const caf::down_msg& m) { reason = m.reason; },
                  caf::after(10s) >> [&] { FAIL("no DOWN message"); });
    return reason;
  }
};

} // namespace

TEST_CASE_FIXTURE(fixture, "a crashed permanent child is restarted") {
  auto sc = config();
  sc.children = {make_child("a", log), make_child("b", log)};
  auto sup = spawn_supervisor(*sys, sc);
  auto a = child(sup, "a");
  REQUIRE(a);
  caf::anon_send(a, crash_atom::value);
  auto a2 = wait_new_child(sup, "a", a);
  CHECK(a2 != a);
  CHECK(log->starts == 3);
  auto infos = children(sup);
  REQUIRE(infos.size() == 2);
  CHECK(infos[0].restarts == 1);
  CHECK(infos[1].restarts == 0);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "more restarts than the intensity stops the supervisor") {
  auto sc = config(2);
  sc.children = {make_child("a", log), make_child("b", log)};
  auto sup = spawn_supervisor(*sys, sc);
  caf::scoped_actor self{*sys};
  self->monitor(sup);
  caf::actor last;
  for (int i = 0; i < 2; ++i) {
    auto a = child(sup, "a");
    caf::anon_send(a, crash_atom::value);
    last = wait_new_child(sup, "a", a);
  }
  caf::anon_send(last, crash_atom::value);  // the third within the window
  auto reason = wait_down(self);
  CHECK(is(reason, errc::restart_intensity_exceeded));
  CHECK(describe(reason).message.find("more than 2 restarts") != std::string::npos);
  // The surviving child was stopped too.
  auto events = log->snapshot();
  REQUIRE(!events.empty());
  CHECK(events.back() == "stop b");
}

TEST_CASE_FIXTURE(fixture, "stopping a supervisor stops its children in reverse order") {
  auto sc = config();
  sc.children = {make_child("a", log), make_child("b", log), make_child("c", log)};
  auto sup = spawn_supervisor(*sys, sc);
  REQUIRE(children(sup).size() == 3);
  caf::scoped_actor self{*sys};
  self->monitor(sup);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  CHECK(wait_down(self) == caf::exit_reason::user_shutdown);
  auto events = log->snapshot();
  CHECK(events == std::vector<std::string>{"start a", "start b", "start c", "stop c",
                                           "stop b", "stop a"});
}

TEST_CASE_FIXTURE(fixture, "restart types: temporary never, transient only on failure") {
  auto sc = config();
  sc.children = {make_child("temp", log, restart_type::temporary),
                 make_child("trans", log, restart_type::transient)};
  auto sup = spawn_supervisor(*sys, sc);
  auto temp = child(sup, "temp");
  caf::anon_send(temp, crash_atom::value);
  auto trans = child(sup, "trans");
  caf::anon_send(trans, crash_atom::value);
  auto trans2 = wait_new_child(sup, "trans", trans);
  CHECK(child(sup, "temp") == nullptr);
  caf::anon_send(trans2, done_atom::value);  // normal exit: not restarted, spec kept (OTP)
  for (int i = 0; i < 200 && children(sup).at(0).state != "not running"; ++i)
    std::this_thread::sleep_for(5ms);
  auto left = children(sup);
  REQUIRE(left.size() == 1);  // the temporary child is forgotten
  CHECK(left[0].id == "trans");
  CHECK(left[0].state == "not running");
  CHECK(!left[0].handle);
  CHECK(log->starts == 3);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "deliberate replacements do not count toward the intensity") {
  auto sc = config(1);
  sc.children = {make_child("a", log)};
  auto sup = spawn_supervisor(*sys, sc);
  caf::scoped_actor self{*sys};
  self->monitor(sup);
  for (int i = 0; i < 5; ++i) {
    auto a = child(sup, "a");
    caf::anon_send(a, replace_atom::value);
    wait_new_child(sup, "a", a);
  }
  auto infos = children(sup);
  REQUIRE(infos.size() == 1);
  CHECK(infos[0].replacements == 5);
  CHECK(infos[0].restarts == 0);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  CHECK(wait_down(self) == caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "a child that fails to start stops the ones before it") {
  auto sc = config();
  auto bad = make_child("bad", log);
  bad.start = [](caf::actor_system&) -> caf::expected<caf::actor> {
    return make_error(errc::startup_failed, "no luck");
  };
  sc.children = {make_child("a", log), bad, make_child("c", log)};
  auto sup = spawn_supervisor(*sys, sc);
  caf::scoped_actor self{*sys};
  self->monitor(sup);
  auto reason = wait_down(self);
  CHECK(is(reason, errc::startup_failed));
  CHECK(describe(reason).message.find("child bad failed to start") != std::string::npos);
  auto events = log->snapshot();
  CHECK(events == std::vector<std::string>{"start a", "stop a"});
}

TEST_CASE_FIXTURE(fixture, "a dynamic supervisor starts and terminates children at run time") {
  auto sc = config();
  sc.strategy = supervision_strategy::dynamic;
  auto sup = spawn_supervisor(*sys, sc);
  caf::scoped_actor self{*sys};
  for (auto id : {"x", "y"})
    self->request(sup, 5s, start_child_atom::value, make_child(id, log))
      .receive([](const caf::actor& h) { CHECK(h); },
               [](caf::error& e) { FAIL(caf::to_string(e)); });
  self->request(sup, 5s, start_child_atom::value, make_child("x", log))
    .receive([](const caf::actor&) { FAIL("duplicate id accepted"); },
             [&](caf::error& e) {
               CHECK(is(e, errc::already_started));
               CHECK(started_child(e) == child(sup, "x"));
             });
  CHECK(children(sup).size() == 2);
  self->request(sup, 5s, terminate_child_atom::value, std::string{"x"})
    .receive([](bool found) { CHECK(found); }, [](caf::error& e) { FAIL(caf::to_string(e)); });
  CHECK(children(sup).size() == 1);  // a dynamic supervisor forgets a terminated child
  self->monitor(sup);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  wait_down(self);
  auto events = log->snapshot();
  CHECK(std::count(events.begin(), events.end(), "stop y") == 1);
}

TEST_CASE("the restart window slides and the back-off grows with jitter") {
  restart_window w{restart_intensity{2, 100ms}};
  auto t0 = restart_window::clock::now();
  CHECK(w.record(t0));
  CHECK(w.record(t0 + 10ms));
  CHECK_FALSE(w.record(t0 + 20ms));
  CHECK(w.count(t0 + 200ms) == 0);
  CHECK(w.record(t0 + 200ms));
  restart_backoff b{100ms, 1s};
  CHECK(b.delay(1, 0.5) == caf::timespan{0});
  CHECK(b.delay(2, 0.5) == 100ms);
  CHECK(b.delay(3, 0.5) == 200ms);
  CHECK(b.delay(10, 0.5) == 1s);
  CHECK(b.delay(2, 0.0) == 80ms);
}

TEST_CASE_FIXTURE(fixture, "one_for_all restarts every child, temporary ones excepted") {
  auto sc = config();
  sc.strategy = supervision_strategy::one_for_all;
  sc.children = {make_child("a", log), make_child("b", log),
                 make_child("t", log, restart_type::temporary), make_child("c", log)};
  auto sup = spawn_supervisor(*sys, sc);
  auto b = child(sup, "b");
  REQUIRE(b);
  caf::anon_send(b, crash_atom::value);
  auto c2 = wait_new_child(sup, "c", nullptr);
  (void) c2;
  // Wait until the whole group is back.
  for (int i = 0; i < 500; ++i) {
    auto infos = children(sup);
    if (infos.size() == 3
        && std::all_of(infos.begin(), infos.end(),
                       [](const child_info& x) { return x.state == "running"; })
        && log->starts == 7)
      break;
    std::this_thread::sleep_for(5ms);
  }
  auto events = log->snapshot();
  // The others stop in reverse order, then all but the temporary child start in order.
  std::vector<std::string> expected{"start a", "start b", "start t", "start c",
                                    "stop b",  "stop c",  "stop t",  "stop a",
                                    "start a", "start b", "start c"};
  CHECK(events == expected);
  auto infos = children(sup);
  REQUIRE(infos.size() == 3);
  CHECK(infos[1].id == "b");
  CHECK(infos[1].restarts == 1);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "rest_for_one restarts the failed child and those after it") {
  auto sc = config();
  sc.strategy = supervision_strategy::rest_for_one;
  sc.children = {make_child("a", log), make_child("b", log), make_child("c", log)};
  auto sup = spawn_supervisor(*sys, sc);
  auto a = child(sup, "a");
  auto b = child(sup, "b");
  caf::anon_send(b, crash_atom::value);
  for (int i = 0; i < 500 && log->starts < 5; ++i)
    std::this_thread::sleep_for(5ms);
  wait_new_child(sup, "c", nullptr);
  auto events = log->snapshot();
  std::vector<std::string> expected{"start a", "start b", "start c", "stop b",
                                    "stop c",  "start b", "start c"};
  CHECK(events == expected);
  CHECK(child(sup, "a") == a);  // untouched
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "a sub-second intensity window and the restart back-off") {
  auto sc = config(1);
  sc.intensity = restart_intensity{1, 200ms};
  sc.backoff = restart_backoff{150ms, 1s};
  sc.children = {make_child("a", log)};
  auto sup = spawn_supervisor(*sys, sc);
  caf::scoped_actor self{*sys};
  self->monitor(sup);
  // Two failures more than 200 ms apart never exceed "1 within 200 ms".
  for (int i = 0; i < 2; ++i) {
    auto a = child(sup, "a");
    caf::anon_send(a, crash_atom::value);
    wait_new_child(sup, "a", a);
    std::this_thread::sleep_for(250ms);
  }
  // Two within the window: the second restart waits out the back-off (~150 ms)...
  auto a = child(sup, "a");
  caf::anon_send(a, crash_atom::value);
  auto a2 = wait_new_child(sup, "a", a);
  auto t0 = std::chrono::steady_clock::now();
  caf::anon_send(a2, crash_atom::value);
  // ... and exceeds the intensity: the supervisor gives up.
  auto reason = wait_down(self);
  CHECK(is(reason, errc::restart_intensity_exceeded));
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
}

TEST_CASE_FIXTURE(fixture, "a child with await_ready holds back the next start") {
  auto sc = config();
  auto slow = make_child("slow", log);
  // Reports ready 200 ms after start.
  slow.await_ready = [this](caf::actor_system& s, const caf::actor& c, const caf::actor& sup) {
    s.spawn([c, sup, l = log](caf::event_based_actor* w) {
      w->delayed_send(w, 200ms, done_atom::value);
      return caf::behavior{[w, c, sup, l](done_atom) {
        l->add("ready slow");
        caf::anon_send(sup, child_ready_atom::value, c.address(), caf::error{});
        w->quit();
      }};
    });
  };
  sc.children = {slow, make_child("next", log)};
  auto sup = spawn_supervisor(*sys, sc);
  caf::scoped_actor self{*sys};
  bool ready = false;
  self->request(sup, 5s, ready_atom::value)
    .receive([&](bool ok) { ready = ok; }, [&](caf::error& e) { FAIL(caf::to_string(e)); });
  CHECK(ready);
  CHECK(log->snapshot() == std::vector<std::string>{"start slow", "ready slow", "start next"});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

// -- OTP's semantics, to the letter ---------------------------------------------------

namespace {

template <class T>
caf::expected<T> ask(caf::actor_system& sys, const supervisor_actor& sup,
                     caf::message msg) {
  caf::scoped_actor self{sys};
  caf::expected<T> out{caf::error{}};
  self->request(caf::actor_cast<caf::actor>(sup), 5s, std::move(msg))
    .receive([&](T& x) { out = std::move(x); }, [&](caf::error& e) { out = std::move(e); });
  return out;
}

} // namespace

TEST_CASE_FIXTURE(fixture, "a start function that returns an empty handle is a start failure") {
  auto sc = config();
  auto empty = make_child("empty", log);
  empty.start = [](caf::actor_system&) -> caf::expected<caf::actor> { return caf::actor{}; };
  SUBCASE("a declared child: the supervisor fails to start, naming it") {
    sc.children = {make_child("a", log), empty};
    auto sup = spawn_supervisor(*sys, sc);
    caf::scoped_actor self{*sys};
    self->monitor(sup);
    auto reason = wait_down(self);
    CHECK(is(reason, errc::startup_failed));
    CHECK(describe(reason).message.find("child empty") != std::string::npos);
    CHECK(describe(reason).message.find("no actor") != std::string::npos);
  }
  SUBCASE("start_child: an error, and the supervisor lives on") {
    auto sup = spawn_supervisor(*sys, sc);
    auto r = ask<caf::actor>(*sys, sup, caf::make_message(start_child_atom::value, empty));
    REQUIRE(!r);
    CHECK(is(r.error(), errc::startup_failed));
    CHECK(children(sup).empty());
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  }
}

TEST_CASE_FIXTURE(fixture, "one_for_all: a failed restart in the group restarts the whole group") {
  auto sc = config(5);
  sc.strategy = supervision_strategy::one_for_all;
  auto flaky = make_child("b", log);
  auto fail_next = std::make_shared<std::atomic<int>>(0);
  flaky.start = [log = log, fail_next](caf::actor_system& system) -> caf::expected<caf::actor> {
    log->add("start b");
    if (fail_next->fetch_sub(1) > 0)
      return make_error(errc::startup_failed, "b cannot start now");
    return system.spawn(test_child, "b", log);
  };
  sc.children = {make_child("a", log), flaky, make_child("c", log)};
  auto sup = spawn_supervisor(*sys, sc);
  auto c = child(sup, "c");
  *fail_next = 1;  // the next start of b fails once
  auto before = log->snapshot().size();
  caf::anon_send(c, crash_atom::value);
  auto c2 = wait_new_child(sup, "c", c);
  for (int i = 0; i < 200 && children(sup).at(1).state != "running"; ++i)
    std::this_thread::sleep_for(5ms);
  auto events = log->snapshot();
  std::vector<std::string> tail(events.begin() + static_cast<std::ptrdiff_t>(before),
                                events.end());
  // c crashes; a and b stop; a starts, b fails: a (just restarted) stops again and the
  // whole group starts once more. (rest_for_one would have kept the new a.)
  CHECK(tail == std::vector<std::string>{"stop c", "stop b", "stop a", "start a", "start b",
                                         "stop a", "start a", "start b", "start c"});
  auto infos = children(sup);
  CHECK(std::all_of(infos.begin(), infos.end(),
                    [](const child_info& x) { return x.state == "running"; }));
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "a restart the intensity refuses is not reported as a restart") {
  auto sc = config(0);
  sc.children = {make_child("a", log)};
  std::atomic<int> restarts{0};
  std::atomic<int> escalations{0};
  auto r = telemetry::global().attach("snakepit.supervisor.restart",
                                      [&](const telemetry_event&) { ++restarts; });
  auto e = telemetry::global().attach("snakepit.supervisor.escalation",
                                      [&](const telemetry_event&) { ++escalations; });
  auto sup = spawn_supervisor(*sys, sc);
  caf::scoped_actor self{*sys};
  self->monitor(sup);
  caf::anon_send(child(sup, "a"), crash_atom::value);
  auto reason = wait_down(self);
  telemetry::global().detach(r);
  telemetry::global().detach(e);
  CHECK(is(reason, errc::restart_intensity_exceeded));
  CHECK(restarts == 0);
  CHECK(escalations == 1);
}

TEST_CASE_FIXTURE(fixture, "child admin: terminate keeps the spec; restart, delete, count, get") {
  auto sc = config();
  auto sub_spec = make_child("sub", log);
  sub_spec.kind = child_kind::supervisor;
  sc.children = {make_child("a", log), sub_spec, make_child("t", log, restart_type::temporary)};
  auto sup = spawn_supervisor(*sys, sc);
  auto& s = *sys;
  auto counts = ask<child_counts>(s, sup, caf::make_message(count_children_atom::value));
  REQUIRE(counts);
  CHECK(counts->specs == 3);
  CHECK(counts->active == 3);
  CHECK(counts->supervisors == 1);
  CHECK(counts->workers == 2);
  auto infos = children(sup);
  CHECK(infos[1].type == "supervisor");
  CHECK(infos[0].type == "worker");
  // Admin on a running child is refused.
  auto running = ask<caf::actor>(s, sup, caf::make_message(restart_child_atom::value,
                                                           std::string{"a"}));
  REQUIRE(!running);
  CHECK(is(running.error(), errc::child_running));
  auto del = ask<bool>(s, sup, caf::make_message(delete_child_atom::value, std::string{"a"}));
  REQUIRE(!del);
  CHECK(is(del.error(), errc::child_running));
  // terminate_child keeps a's spec (not running), forgets the temporary t.
  CHECK(ask<bool>(s, sup, caf::make_message(terminate_child_atom::value, std::string{"a"}))
        == true);
  CHECK(ask<bool>(s, sup, caf::make_message(terminate_child_atom::value, std::string{"t"}))
        == true);
  infos = children(sup);
  REQUIRE(infos.size() == 2);
  CHECK(infos[0].id == "a");
  CHECK(infos[0].state == "not running");
  counts = ask<child_counts>(s, sup, caf::make_message(count_children_atom::value));
  CHECK(counts->specs == 2);
  CHECK(counts->active == 1);
  // start_child with a's id: already present.
  auto dup = ask<caf::actor>(s, sup, caf::make_message(start_child_atom::value,
                                                       make_child("a", log)));
  REQUIRE(!dup);
  CHECK(is(dup.error(), errc::already_present));
  // get_childspec, restart_child.
  auto spec = ask<child_spec>(s, sup, caf::make_message(get_childspec_atom::value,
                                                        std::string{"a"}));
  REQUIRE(spec);
  CHECK(spec->id == "a");
  auto a2 = ask<caf::actor>(s, sup, caf::make_message(restart_child_atom::value,
                                                      std::string{"a"}));
  REQUIRE(a2);
  CHECK(*a2 == child(sup, "a"));
  CHECK(children(sup)[0].state == "running");
  // delete_child of a stopped spec; unknown ids.
  CHECK(ask<bool>(s, sup, caf::make_message(terminate_child_atom::value, std::string{"a"}))
        == true);
  CHECK(ask<bool>(s, sup, caf::make_message(delete_child_atom::value, std::string{"a"}))
        == true);
  CHECK(children(sup).size() == 1);
  auto unknown = ask<caf::actor>(s, sup, caf::make_message(restart_child_atom::value,
                                                           std::string{"a"}));
  REQUIRE(!unknown);
  CHECK(is(unknown.error(), errc::child_unknown));
  auto no_spec = ask<child_spec>(s, sup, caf::make_message(get_childspec_atom::value,
                                                           std::string{"zz"}));
  CHECK(is(no_spec.error(), errc::child_unknown));
  // Terminating by handle stops and forgets.
  auto handle = child(sup, "sub");
  CHECK(ask<bool>(s, sup, caf::make_message(terminate_child_atom::value, handle)) == true);
  CHECK(children(sup).empty());
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "a start function may answer ignore: nothing runs, the next child starts") {
  auto sc = config();
  auto quiet = make_child("quiet", log, restart_type::transient);
  quiet.start = [log = log](caf::actor_system&) -> caf::expected<caf::actor> {
    log->add("start quiet");
    return ignore_child();
  };
  auto gone = quiet;
  gone.id = "gone";
  gone.restart = restart_type::temporary;
  sc.children = {make_child("a", log), quiet, gone, make_child("b", log)};
  auto sup = spawn_supervisor(*sys, sc);
  caf::scoped_actor self{*sys};
  self->request(sup, 5s, ready_atom::value)
    .receive([](bool) {}, [](caf::error& e) { FAIL(caf::to_string(e)); });
  auto infos = children(sup);
  REQUIRE(infos.size() == 3);  // the temporary one that ignored is dropped
  CHECK(infos[1].id == "quiet");
  CHECK(infos[1].state == "not running");
  CHECK(infos[2].state == "running");
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "auto_shutdown ends the supervisor when significant children end on their own") {
  caf::scoped_actor self{*sys};
  auto significant = [&](const std::string& id) {
    auto spec = make_child(id, log, restart_type::transient);
    spec.significant = true;
    return spec;
  };
  SUBCASE("any_significant") {
    auto sc = config();
    sc.shutdown_when = auto_shutdown::any_significant;
    sc.children = {make_child("a", log), significant("s1"), significant("s2")};
    auto sup = spawn_supervisor(*sys, sc);
    self->monitor(sup);
    caf::anon_send(child(sup, "s1"), done_atom::value);
    CHECK(wait_down(self) == caf::exit_reason::user_shutdown);
  }
  SUBCASE("all_significant waits for the last one") {
    auto sc = config();
    sc.shutdown_when = auto_shutdown::all_significant;
    sc.children = {make_child("a", log), significant("s1"), significant("s2")};
    auto sup = spawn_supervisor(*sys, sc);
    self->monitor(sup);
    caf::anon_send(child(sup, "s1"), done_atom::value);
    for (int i = 0; i < 200 && children(sup).at(1).state != "not running"; ++i)
      std::this_thread::sleep_for(5ms);
    CHECK(children(sup).at(1).state == "not running");  // still up: s2 runs
    caf::anon_send(child(sup, "s2"), done_atom::value);
    CHECK(wait_down(self) == caf::exit_reason::user_shutdown);
  }
  SUBCASE("a child stopped by its supervisor never triggers it") {
    auto sc = config();
    sc.shutdown_when = auto_shutdown::any_significant;
    sc.children = {significant("s1"), make_child("a", log)};
    auto sup = spawn_supervisor(*sys, sc);
    CHECK(ask<bool>(*sys, sup, caf::make_message(terminate_child_atom::value,
                                                 std::string{"s1"}))
          == true);
    CHECK(children(sup).size() == 2);  // still running
    self->monitor(sup);
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
    wait_down(self);
  }
  SUBCASE("significant and permanent is a configuration error") {
    auto sc = config();
    auto bad = significant("s1");
    bad.restart = restart_type::permanent;
    sc.children = {make_child("a", log), bad};
    auto sup = spawn_supervisor(*sys, sc);
    self->monitor(sup);
    auto reason = wait_down(self);
    CHECK(is(reason, errc::bad_config));
    CHECK(log->starts == 0);  // checked before anything starts
  }
}

TEST_CASE_FIXTURE(fixture, "a nested supervisor that gives up is not restarted by a transient parent") {
  // The child supervisor gives up at once (intensity 0); it ends with its cause
  // (restart_intensity_exceeded), which a transient parent treats as OTP's shutdown.
  auto inner_cfg = config(0);
  inner_cfg.name = "inner";
  inner_cfg.children = {make_child("w", log)};
  child_spec inner;
  inner.id = "inner";
  inner.kind = child_kind::supervisor;
  inner.restart = restart_type::transient;
  inner.shutdown = shutdown_policy::infinity();
  inner.start = [inner_cfg](caf::actor_system& s) -> caf::expected<caf::actor> {
    return caf::actor_cast<caf::actor>(spawn_supervisor(s, inner_cfg));
  };
  auto sc = config();
  sc.children = {inner, make_child("a", log)};
  auto sup = spawn_supervisor(*sys, sc);
  // Started off the supervisor's thread (the default start_timeout): wait for it.
  auto inner_sup = caf::actor_cast<supervisor_actor>(wait_new_child(sup, "inner", nullptr));
  std::vector<child_info> inner_children;
  for (int i = 0; i < 200 && inner_children.empty(); ++i)
    inner_children = children(inner_sup);
  REQUIRE(!inner_children.empty());
  caf::scoped_actor self{*sys};
  self->monitor(inner_sup);
  caf::anon_send(inner_children[0].handle, crash_atom::value);
  CHECK(is(wait_down(self), errc::restart_intensity_exceeded));
  for (int i = 0; i < 200 && children(sup).at(0).state != "not running"; ++i)
    std::this_thread::sleep_for(5ms);
  auto infos = children(sup);
  CHECK(infos.at(0).state == "not running");
  CHECK(infos.at(0).restarts == 0);
  CHECK(infos.at(1).state == "running");
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "restarts count group restarts caused by a sibling") {
  auto sc = config();
  sc.strategy = supervision_strategy::one_for_all;
  sc.children = {make_child("a", log), make_child("b", log)};
  auto sup = spawn_supervisor(*sys, sc);
  auto a = child(sup, "a");
  auto b = child(sup, "b");
  caf::anon_send(b, crash_atom::value);
  wait_new_child(sup, "a", a);
  wait_new_child(sup, "b", b);
  auto infos = children(sup);
  CHECK(infos[0].restarts == 1);
  CHECK(infos[1].restarts == 1);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

namespace {

/// The actor a slow start function made, written on the starter's thread.
struct made_actor {
  std::mutex mtx;
  caf::actor handle;

  caf::actor get() {
    std::lock_guard<std::mutex> guard{mtx};
    return handle;
  }
};

/// A child whose start function takes `delay` (a slow registry factory, say);
/// the actor it made is kept in `made` so the test can see what became of it.
child_spec slow_child(const std::string& id, std::shared_ptr<journal> log,
                      std::chrono::milliseconds delay, caf::timespan timeout,
                      std::shared_ptr<made_actor> made = std::make_shared<made_actor>()) {
  auto spec = make_child(id, log);
  spec.start_timeout = timeout;
  spec.start = [id, log, delay, made](caf::actor_system& s) -> caf::expected<caf::actor> {
    log->add("start " + id);
    std::this_thread::sleep_for(delay);
    auto h = s.spawn(test_child, id, log);
    std::lock_guard<std::mutex> guard{made->mtx};
    made->handle = h;
    return h;
  };
  return spec;
}

} // namespace

TEST_CASE("a slow start runs off the supervisor's thread and does not hold the scheduler") {
  caf::actor_system_config cfg;
  add_message_types(cfg);
  cfg.set("scheduler.max-threads", 2);  // the recommended size for 2 cores
  caf::actor_system sys{cfg};
  auto log = std::make_shared<journal>();
  supervisor_config sc;
  sc.name = "slow-sup";
  sc.children = {make_child("a", log), slow_child("slow", log, 1000ms, 10s),
                 make_child("b", log)};
  // Two such supervisors at once: inline starts would take both scheduler threads.
  auto sup1 = spawn_supervisor(sys, sc);
  auto sup2 = spawn_supervisor(sys, sc);
  std::this_thread::sleep_for(200ms);
  caf::scoped_actor self{sys};
  for (auto& sup : {sup1, sup2}) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<child_info> infos;
    self->request(sup, 5s, which_children_atom::value)
      .receive([&](std::vector<child_info>& xs) { infos = std::move(xs); },
               [&](caf::error& e) { FAIL(caf::to_string(e)); });
    CHECK(std::chrono::steady_clock::now() - t0 < 300ms);
    REQUIRE(infos.size() == 3);
    CHECK(infos[0].state == "running");
    CHECK(infos[1].state == "starting");
    CHECK(!infos[2].handle);  // b waits its turn
  }
  for (auto& sup : {sup1, sup2})
    self->request(sup, 10s, ready_atom::value)
      .receive([](bool) {}, [](caf::error& e) { FAIL(caf::to_string(e)); });
  for (auto& sup : {sup1, sup2})
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "a start past start_timeout is a start failure; its late actor is killed") {
  auto made = std::make_shared<made_actor>();
  auto sc = config();
  sc.children = {make_child("a", log), slow_child("slow", log, 800ms, 200ms, made)};
  auto sup = spawn_supervisor(*sys, sc);
  caf::scoped_actor self{*sys};
  self->monitor(sup);
  auto reason = wait_down(self);
  CHECK(is(reason, errc::startup_failed));
  CHECK(describe(reason).message.find("did not start within 200 ms") != std::string::npos);
  for (int i = 0; i < 300 && !made->get(); ++i)
    std::this_thread::sleep_for(10ms);
  REQUIRE(made->get());
  self->monitor(made->get());
  CHECK(wait_down(self) == caf::exit_reason::kill);
}

TEST_CASE_FIXTURE(fixture, "one_for_all: a group restart also starts kept, not running specs (as OTP)") {
  auto sc = config();
  sc.strategy = supervision_strategy::one_for_all;
  sc.children = {make_child("a", log), make_child("b", log)};
  auto sup = spawn_supervisor(*sys, sc);
  CHECK(ask<bool>(*sys, sup, caf::make_message(terminate_child_atom::value, std::string{"b"}))
        == true);
  CHECK(children(sup).at(1).state == "not running");
  auto a = child(sup, "a");
  caf::anon_send(a, crash_atom::value);
  wait_new_child(sup, "a", a);
  CHECK(wait_new_child(sup, "b", nullptr));
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "a dynamic supervisor keeps to max_children; which_children tells why a child ended") {
  auto sc = config();
  sc.strategy = supervision_strategy::dynamic;
  sc.max_children = 2;
  auto sup = spawn_supervisor(*sys, sc);
  for (auto id : {"x", "y"})
    REQUIRE(ask<caf::actor>(*sys, sup, caf::make_message(start_child_atom::value,
                                                         make_child(id, log))));
  auto third = ask<caf::actor>(*sys, sup, caf::make_message(start_child_atom::value,
                                                            make_child("z", log)));
  REQUIRE(!third);
  CHECK(is(third.error(), errc::pool_saturated));
  CHECK(describe(third.error()).message.find("max_children = 2") != std::string::npos);
  auto x = child(sup, "x");
  caf::anon_send(x, crash_atom::value);
  wait_new_child(sup, "x", x);
  CHECK(children(sup).at(0).last_exit.find("runtime_error") != std::string::npos);
  CHECK(children(sup).at(1).last_exit.empty());
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "start_child and restart_child with a start_timeout start off the supervisor's thread") {
  auto sc = config();
  sc.strategy = supervision_strategy::dynamic;
  auto sup = spawn_supervisor(*sys, sc);
  caf::scoped_actor self{*sys};
  // Sent, not awaited: the answer arrives as a message once the start is done.
  self->send(sup, start_child_atom::value, slow_child("slow", log, 500ms, 5s));
  // Meanwhile the supervisor answers at once.
  auto t0 = std::chrono::steady_clock::now();
  auto infos = children(sup);
  CHECK(std::chrono::steady_clock::now() - t0 < 300ms);
  REQUIRE(infos.size() == 1);
  CHECK(infos[0].state == "starting");
  caf::actor started;
  self->receive([&](caf::actor& h) { started = h; },
                [&](caf::error& e) { FAIL(caf::to_string(e)); },
                caf::after(std::chrono::seconds{5}) >> [] { FAIL("no answer to start_child"); });
  CHECK(started);
  CHECK(child(sup, "slow") == started);
  // Past its start_timeout: an error, and the child is not kept.
  auto late = ask<caf::actor>(*sys, sup, caf::make_message(start_child_atom::value,
                                                           slow_child("late", log, 800ms, 100ms)));
  REQUIRE(!late);
  CHECK(describe(late.error()).message.find("did not start within 100 ms") != std::string::npos);
  CHECK(children(sup).size() == 1);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "rest_for_one: a failed restart restarts the failed child and those after it again") {
  auto sc = config(5);
  sc.strategy = supervision_strategy::rest_for_one;
  auto fail_next = std::make_shared<std::atomic<int>>(0);
  auto flaky = make_child("c", log);
  flaky.start = [log = log, fail_next](caf::actor_system& system) -> caf::expected<caf::actor> {
    log->add("start c");
    if (fail_next->fetch_sub(1) > 0)
      return make_error(errc::startup_failed, "c cannot start now");
    return system.spawn(test_child, "c", log);
  };
  sc.children = {make_child("a", log), make_child("b", log), flaky, make_child("d", log)};
  auto sup = spawn_supervisor(*sys, sc);
  auto b = child(sup, "b");
  *fail_next = 1;
  auto before = log->snapshot().size();
  caf::anon_send(b, crash_atom::value);
  wait_new_child(sup, "d", child(sup, "d"));
  for (int i = 0; i < 200 && children(sup).at(3).state != "running"; ++i)
    std::this_thread::sleep_for(5ms);
  auto events = log->snapshot();
  std::vector<std::string> tail(events.begin() + static_cast<std::ptrdiff_t>(before),
                                events.end());
  INFO(fmt::format("{}", fmt::join(tail, ", ")));
  // b crashes; d and c stop (after b, reverse order); b starts, c fails: as in OTP the
  // restart goes on from c (b comes before it and stays), then d. a is never touched.
  CHECK(tail == std::vector<std::string>{"stop b", "stop d", "stop c", "start b", "start c",
                                         "start c", "start d"});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "back-off: a child killed while running restarts at once, one failing "
                           "at start backs off") {
  auto sc = config(100);
  sc.backoff = restart_backoff{300ms, 2s};
  auto fail_next = std::make_shared<std::atomic<int>>(0);
  auto flaky = make_child("a", log);
  flaky.start = [log = log, fail_next](caf::actor_system& system) -> caf::expected<caf::actor> {
    log->add("start a");
    if (fail_next->fetch_sub(1) > 0)
      return make_error(errc::startup_failed, "a cannot start now");
    return system.spawn(test_child, std::string{"a"}, log);
  };
  sc.children = {flaky};
  auto sup = spawn_supervisor(*sys, sc);
  // A kill storm on a running child: every restart is immediate (it was up
  // and ready when it died), so the child keeps serving.
  for (int i = 0; i < 6; ++i) {
    auto a = child(sup, "a");
    auto t0 = std::chrono::steady_clock::now();
    caf::anon_send(a, crash_atom::value);
    wait_new_child(sup, "a", a);
    CHECK(std::chrono::steady_clock::now() - t0 < 250ms);
  }
  // Failing at start: each failed attempt waits longer (300 ms, then 600 ms).
  fail_next->store(2);
  auto a = child(sup, "a");
  auto t0 = std::chrono::steady_clock::now();
  caf::anon_send(a, crash_atom::value);
  wait_new_child(sup, "a", a);
  CHECK(std::chrono::steady_clock::now() - t0 >= 700ms);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}
