// Crashes, kills, deadlines and broken start-ups with real worker processes.

#include <signal.h>
#include <sys/stat.h>

#include <fstream>

#include "pool_fixture.hpp"
#include "snakepit/actors/process_launcher.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

TEST_CASE_FIXTURE(system_fixture, "a worker that exits mid-call fails only that call") {
  auto pool = start(showcase(2));
  caf::scoped_actor other{*sys};
  // Keep the other worker busy while the first one crashes.
  other->send(caf::actor_cast<caf::actor>(pool), execute_atom::value,
              make_request("sleep", {{"seconds", 0.5}}));
  auto crashed = call(pool, make_request("crash", {{"exit_code", 13}}));
  REQUIRE(!crashed);
  auto info = describe(crashed.error());
  CHECK(info.kind == "worker_crashed");
  CHECK(info.message.find("code 13") != std::string::npos);
  // The unaffected call completes normally.
  auto slept = await(other);
  REQUIRE_MESSAGE(slept, message_of(slept));
  CHECK(slept->result.as_double() == doctest::Approx(0.5).epsilon(0.05));
  // The supervisor replaces the worker; the pool uses it once ready.
  auto st = wait_status(pool, [](const pool_status& s) { return s.ready == 2; });
  CHECK(st.crashes == 1);
  CHECK(call(pool, make_request("noop")));
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "SIGKILL of a worker mid-call reports the signal") {
  auto pool = start(showcase(1));
  auto info = call(pool, make_request("worker_info"));
  REQUIRE(info);
  auto pid = static_cast<pid_t>(info->result["pid"].as_int());
  caf::scoped_actor self{*sys};
  self->send(caf::actor_cast<caf::actor>(pool), execute_atom::value,
             make_request("sleep", {{"seconds", 10.0}}));
  // Wait until the call is running, then kill the process.
  wait_status(pool, [](const pool_status& s) { return s.busy == 1; });
  REQUIRE(::kill(pid, SIGKILL) == 0);
  auto r = await(self);
  REQUIRE(!r);
  CHECK(describe(r.error()).kind == "worker_crashed");
  CHECK(describe(r.error()).message.find("signal 9") != std::string::npos);
  wait_status(pool, [pid](const pool_status& s) {
    return s.ready == 1 && s.workers[0].pid != pid;
  });
  auto again = call(pool, make_request("worker_info"));
  REQUIRE(again);
  CHECK(again->result["pid"].as_int() != pid);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a call past its deadline times out and the stuck worker is replaced") {
  auto cfg = showcase(1);
  cfg.deadline_grace = 200ms;
  auto pool = start(cfg);
  auto before = call(pool, make_request("worker_info"));
  REQUIRE(before);
  auto t0 = std::chrono::steady_clock::now();
  auto r = call(pool, make_request("sleep", {{"seconds", 30.0}}, 300ms));
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(!r);
  CHECK(describe(r.error()).kind == "timeout");
  CHECK(took < 2s);
  // Killed after the grace and replaced, without counting as a crash.
  auto st = wait_status(pool, [](const pool_status& s) {
    return s.replacements == 1 && s.ready == 1;
  });
  CHECK(st.crashes == 0);
  // Start-new-then-terminate-old: a new child, not a restart of the old one.
  REQUIRE(st.workers.size() == 1);
  CHECK(st.workers[0].id == "test/w-2");
  auto after = call(pool, make_request("worker_info"));
  REQUIRE(after);
  CHECK(after->result["pid"].as_int() != before->result["pid"].as_int());
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a call that finishes within the grace keeps its worker") {
  auto cfg = showcase(1);
  cfg.deadline_grace = 2s;
  auto pool = start(cfg);
  auto r = call(pool, make_request("sleep", {{"seconds", 0.4}}, 200ms));
  CHECK(kind_of(r) == "timeout");
  // The worker finishes the sleep inside the grace and serves again.
  auto next = call(pool, make_request("noop"));
  CHECK_MESSAGE(next, message_of(next));
  CHECK(status(pool).replacements == 0);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "an adapter that fails to import fails the start with its traceback") {
  auto cfg = showcase(2);
  cfg.adapter = "no_such_module_xyz.Adapter";
  auto t0 = std::chrono::steady_clock::now();
  auto pool = start_pool(*sys, cfg);
  REQUIRE(!pool);
  auto info = describe(pool.error());
  CHECK(info.kind == "startup_failed");
  CHECK(info.message.find("no_such_module_xyz") != std::string::npos);
  CHECK(info.python_type == "ModuleNotFoundError");
  CHECK(info.traceback.find("Traceback") != std::string::npos);
  // No busy restart loop: the start fails at once and leaves no process.
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  auto until = std::chrono::steady_clock::now() + 5s;
  while (default_process_launcher().live_count() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  CHECK(default_process_launcher().live_count() == 0);
}

TEST_CASE_FIXTURE(system_fixture, "extra import directories make user adapters importable") {
  auto dir = std::string{"/tmp/snakepit-test-adapter-"} + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0700);
  std::ofstream{dir + "/my_adapter.py"}
    << "from snakepit_bridge import BaseAdapter, tool\n"
       "class Greeter(BaseAdapter):\n"
       "    def setup(self) -> None:\n"
       "        self.greeting = 'hello'\n"
       "    @tool(description='Greets someone')\n"
       "    def greet(self, name: str) -> str:\n"
       "        return f'{self.greeting}, {name}'\n";
  auto cfg = showcase(1);
  cfg.adapter = "my_adapter.Greeter";
  cfg.python_path = {dir};
  auto pool = start(cfg);
  auto r = call(pool, make_request("greet", {{"name", "C++"}}));
  REQUIRE_MESSAGE(r, message_of(r));
  CHECK(r->result == value{"hello, C++"});
  stop(pool);
  std::remove((dir + "/my_adapter.py").c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("a Python without grpc gives a clear startup error") {
  auto script = std::string{"/tmp/snakepit-nogrpc-"} + std::to_string(::getpid());
  {
    std::ofstream out{script};
    out << "#!/bin/sh\nexec /usr/bin/python3 -S \"$@\"\n";  // -S: no dist-packages
  }
  ::chmod(script.c_str(), 0755);
  auto r = locate_python(script);
  REQUIRE(!r);
  auto info = describe(r.error());
  CHECK(info.kind == "startup_failed");
  CHECK(info.message.find("grpc") != std::string::npos);
  CHECK(info.message.find("apt-get install python3-grpcio") != std::string::npos);
  auto missing = locate_python("/nonexistent/python3");
  REQUIRE(!missing);
  CHECK(describe(missing.error()).message.find("not found") != std::string::npos);
  std::remove(script.c_str());
}

TEST_CASE_FIXTURE(system_fixture, "stopping a pool lets calls in flight finish within the shutdown timeout") {
  auto cfg = showcase(2);
  cfg.shutdown_timeout = 1s;
  auto pool = start(cfg);
  auto info = call(pool, make_request("worker_info"));
  REQUIRE(info);
  caf::scoped_actor quick{*sys}, stuck{*sys};
  quick->send(caf::actor_cast<caf::actor>(pool), execute_atom::value,
              make_request("sleep", {{"seconds", 0.3}}));
  stuck->send(caf::actor_cast<caf::actor>(pool), execute_atom::value,
              make_request("sleep", {{"seconds", 30.0}}));
  wait_status(pool, [](const pool_status& s) { return s.busy == 2; });
  // Let both calls reach Python: a call still in transit when the stop begins
  // is refused by the worker (it never ran) rather than drained.
  std::this_thread::sleep_for(150ms);
  auto t0 = std::chrono::steady_clock::now();
  stop(pool);
  auto took = std::chrono::steady_clock::now() - t0;
  // The short call drained; the long one was cut at the shutdown timeout.
  auto q = await(quick);
  CHECK_MESSAGE(q, message_of(q));
  auto s = await(stuck);
  REQUIRE(!s);
  CHECK(describe(s.error()).kind == "pool_stopped");
  CHECK(took >= 900ms);
  CHECK(took < 4s);
  CHECK(default_process_launcher().live_count() == 0);
}

TEST_CASE_FIXTURE(system_fixture, "a string argument that is not UTF-8 is bad_arguments naming it") {
  auto pool = start(showcase(1));
  value::map inner;
  inner.emplace("label", value{std::string{"caf\xe9"}});  // Latin-1, not UTF-8
  auto bad = call(pool, make_request("echo", {{"value", value(std::move(inner))}}));
  REQUIRE(!bad);
  auto info = describe(bad.error());
  CHECK(info.kind == "bad_arguments");
  CHECK(info.message.find("argument value.label") != std::string::npos);
  CHECK(info.message.find("UTF-8") != std::string::npos);
  // Nothing was sent: the worker serves the next call as usual.
  auto ok = call(pool, make_request("echo", {{"value", value{std::string{"caf\xc3\xa9"}}}}));
  REQUIRE_MESSAGE(ok, message_of(ok));
  CHECK(ok->result.as_string() == "caf\xc3\xa9");
  CHECK(status(pool).crashes == 0);
  stop(pool);
}

TEST_CASE_FIXTURE(system_fixture, "a crash error says what is true: restart unless the pool gives up") {
  auto pool = start(showcase(1));
  auto crashed = call(pool, make_request("crash", {{"exit_code", 13}}));
  REQUIRE(!crashed);
  auto message = describe(crashed.error()).message;
  CHECK(message.find("retry the call") == std::string::npos);
  CHECK(message.find("restart intensity") != std::string::npos);
  stop(pool);
}
