// Preloaded pools (`preload = true`) with real workers: one fork server runs the adapter's
// preload() once and forks the workers; they serve, crash and are replaced from it, outlive
// its loss, and can use threads, BLAS and gRPC. A preload() that raises or leaves a thread
// running fails the start with the reason.

#include <csignal>
#include <fstream>
#include <set>
#include <sstream>

#include "pool_fixture.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

pool_config preloaded(std::uint32_t size) {
  auto cfg = system_fixture::showcase(size);
  cfg.name = "pre";
  cfg.adapter = "preload_adapter.PreloadAdapter";
  cfg.python_path = {source_dir() + "/tests/integration/adapters"};
  cfg.preload = true;
  return cfg;
}

/// Parent pid and process group of a live process, from /proc.
struct proc_ids {
  int ppid = 0;
  int pgid = 0;
};

proc_ids ids_of(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string text{std::istreambuf_iterator<char>{in}, {}};
  proc_ids out;
  auto close = text.rfind(')');
  if (close == std::string::npos)
    return out;
  std::istringstream rest{text.substr(close + 2)};
  char state = 0;
  rest >> state >> out.ppid >> out.pgid;
  return out;
}

bool alive(int pid) {
  return ::kill(pid, 0) == 0;
}

value where(system_fixture& fx, const pool_actor& pool) {
  auto r = fx.call(pool, make_request("where"));
  REQUIRE_MESSAGE(r, message_of(r));
  return r->result;
}

std::set<int> worker_pids(const pool_status& st) {
  std::set<int> out;
  for (auto& w : st.workers)
    out.insert(w.pid);
  return out;
}

} // namespace

TEST_CASE_FIXTURE(system_fixture, "a preloaded pool forks its workers from one fork server") {
  auto pool = start(preloaded(3));
  auto st = status(pool);
  REQUIRE(st.workers.size() == 3);
  auto w = where(*this, pool);
  auto server = static_cast<int>(w["preload_pid"].as_int());
  CHECK(server > 0);
  CHECK(w["preload_runs"].as_int() == 1);  // in the server, not again in the worker
  CHECK(w["setup_pid"].as_int() == w["pid"].as_int());  // setup() per worker
  CHECK(w["pid"].as_int() != server);
  for (int pid : worker_pids(st)) {
    auto ids = ids_of(pid);
    CHECK(ids.ppid == server);  // forked by the server...
    CHECK(ids.pgid == pid);     // ...each in a process group of its own
  }
  CHECK(ids_of(server).ppid == ::getpid());
  // Fork-safe: threads, BLAS and gRPC of the worker's own.
  auto threads = call(pool, make_request("use_threads", {{"n", 4}}));
  REQUIRE_MESSAGE(threads, message_of(threads));
  CHECK(threads->result.as_int() == 332833500);
  auto blas = call(pool, make_request("use_blas", {{"n", 100}}));
  REQUIRE_MESSAGE(blas, message_of(blas));
  CHECK(blas->result.as_double() == doctest::Approx(100.0 * 100 * 100));
  auto grpc = call(pool, make_request("use_grpc"));
  REQUIRE_MESSAGE(grpc, message_of(grpc));
  CHECK(grpc->result.as_string() == "pong");
  stop(pool);
  // The server goes with the pool.
  for (int i = 0; i < 100 && alive(server); ++i)
    std::this_thread::sleep_for(20ms);
  CHECK_FALSE(alive(server));
}

TEST_CASE_FIXTURE(system_fixture, "a crashed forked worker is replaced from the fork server") {
  auto cfg = preloaded(2);
  cfg.env = {{"SLOT", "{index}"}, {"FIXED", "same"}};
  auto pool = start(cfg);
  auto server = static_cast<int>(where(*this, pool)["preload_pid"].as_int());
  auto before = worker_pids(status(pool));
  auto crash = call(pool, make_request("crash", {{"exit_code", 9}}));
  REQUIRE_FALSE(crash);
  CHECK(describe(crash.error()).kind == "worker_crashed");
  auto st = wait_status(pool, [&](const pool_status& s) {
    return s.ready == 2 && worker_pids(s) != before;
  });
  for (int pid : worker_pids(st))
    CHECK(ids_of(pid).ppid == server);
  // Per-worker env: each slot its own value, the fixed one in the server too. Two slow
  // calls at once: the pool gives each free worker one.
  std::set<std::string> slots;
  {
    caf::scoped_actor self{*sys};
    for (int k = 0; k < 2; ++k)
      self->send(pool, execute_atom::value,
                 make_request("env", {{"name", "SLOT"}, {"delay_s", 0.5}}));
    for (int k = 0; k < 2; ++k) {
      auto r = await(self);
      REQUIRE_MESSAGE(r, message_of(r));
      slots.insert(std::string{r->result.as_string()});
    }
  }
  CHECK(slots == std::set<std::string>{"0", "1"});
  auto fixed = call(pool, make_request("env", {{"name", "FIXED"}}));
  REQUIRE(fixed);
  CHECK(fixed->result.as_string() == "same");
}

TEST_CASE_FIXTURE(system_fixture,
                  "workers keep serving when the fork server dies, and it is restarted") {
  auto pool = start(preloaded(2));
  auto server = static_cast<int>(where(*this, pool)["preload_pid"].as_int());
  REQUIRE(::kill(server, SIGKILL) == 0);
  // The running workers are not its to take along.
  for (int i = 0; i < 10; ++i) {
    auto r = call(pool, make_request("add", {{"a", i}, {"b", 1}}));
    REQUIRE_MESSAGE(r, message_of(r));
    CHECK(r->result.as_int() == i + 1);
  }
  CHECK(status(pool).ready == 2);
  // A replacement comes from the restarted server (or, while it restarts, from a plain
  // start that runs preload() itself); in the end forks resume.
  int new_server = 0;
  for (int round = 0; round < 20 && new_server == 0; ++round) {
    auto before = worker_pids(status(pool));
    static_cast<void>(call(pool, make_request("crash", {{"exit_code", 9}})));
    wait_status(pool, [&](const pool_status& s) {
      return s.ready == 2 && worker_pids(s) != before;
    });
    auto w = where(*this, pool);
    auto from = static_cast<int>(w["preload_pid"].as_int());
    if (from != server && from != w["pid"].as_int())
      new_server = from;
    else
      std::this_thread::sleep_for(200ms);
  }
  CHECK(new_server != 0);
  CHECK(new_server != server);
}

TEST_CASE_FIXTURE(system_fixture, "a preload() that raises fails the start with its traceback") {
  auto cfg = preloaded(2);
  cfg.env = {{"PRELOAD_FAIL", "/models/w.bin"}};
  auto pool = start_pool(*sys, cfg);
  REQUIRE_FALSE(pool);
  auto info = describe(pool.error());
  CHECK(info.kind == "startup_failed");
  CHECK_MESSAGE(info.message.find("preload() of adapter") != std::string::npos, info.message);
  CHECK(info.message.find("weights file missing: /models/w.bin") != std::string::npos);
  CHECK(info.python_type == "RuntimeError");
  CHECK(info.traceback.find("def preload") == std::string::npos);  // frames, not source dump
  CHECK(info.traceback.find("preload_adapter.py") != std::string::npos);
}

TEST_CASE_FIXTURE(system_fixture, "a preload() that leaves a thread running is refused") {
  auto cfg = preloaded(1);
  cfg.env = {{"PRELOAD_THREAD", "1"}};
  auto pool = start_pool(*sys, cfg);
  REQUIRE_FALSE(pool);
  auto info = describe(pool.error());
  CHECK(info.kind == "startup_failed");
  CHECK_MESSAGE(info.message.find("model-prefetch") != std::string::npos, info.message);
  CHECK(info.message.find("2 threads") != std::string::npos);
}

TEST_CASE_FIXTURE(system_fixture, "preload is refused in the thread profile") {
  auto cfg = preloaded(1);
  cfg.profile = worker_profile::thread;
  auto pool = start_pool(*sys, cfg);
  REQUIRE_FALSE(pool);
  CHECK(describe(pool.error()).kind == "bad_config");
  CHECK(describe(pool.error()).message.find("preload needs profile") != std::string::npos);
}
