// Orphan cleanup: workers of a dead run are killed, unrelated processes never.

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "snakepit/actors/run_registry.hpp"
#include "snakepit/actors/telemetry.hpp"

extern char** environ;

using namespace snakepit;

namespace {

pid_t spawn(std::vector<std::string> args) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, argv[0], nullptr, &attr, argv.data(), environ) == 0);
  posix_spawnattr_destroy(&attr);
  return pid;
}

} // namespace

TEST_CASE("a dead run's workers are killed, matched by pid and start time") {
  auto dir = std::string{"/tmp/snakepit-registry-test-"} + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0700);
  auto worker = spawn({"/bin/sleep", "1000"});
  auto dead_host = spawn({"/bin/true"});
  int status = 0;
  ::waitpid(dead_host, &status, 0);
  auto started = process_start_time(worker);
  REQUIRE(started > 0);
  CHECK(process_start_time(dead_host) == 0);
  SUBCASE("a reused pid (other start time) is left alone") {
    std::ofstream{dir + "/old.run"} << dead_host << " 12345\n+ " << worker << ' '
                                    << started + 1 << '\n';
    CHECK(cleanup_dead_runs(dir) == 0);
    CHECK(::waitpid(worker, &status, WNOHANG) == 0);  // still running
    ::kill(worker, SIGKILL);
    ::waitpid(worker, &status, 0);
  }
  SUBCASE("a recorded, still-running worker of a dead host is killed") {
    std::ofstream{dir + "/old.run"} << dead_host << " 12345\n+ " << worker << ' ' << started
                                    << "\n+ 999999 1\n- 999999\n";
    std::vector<telemetry_event> seen;
    auto id = telemetry::global().attach("snakepit.orphans.cleaned",
                                         [&](const telemetry_event& e) { seen.push_back(e); });
    CHECK(cleanup_dead_runs(dir) == 1);
    telemetry::global().detach(id);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].measurements.at("killed") == 1);
    CHECK(seen[0].metadata.at("host_pid") == std::to_string(dead_host));
    REQUIRE(::waitpid(worker, &status, 0) == worker);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
  }
  SUBCASE("a live host's run is left alone") {
    std::ofstream{dir + "/live.run"} << ::getppid() << ' ' << process_start_time(::getppid())
                                     << "\n+ " << worker << ' ' << started << '\n';
    CHECK(cleanup_dead_runs(dir) == 0);
    CHECK(::waitpid(worker, &status, WNOHANG) == 0);
    ::kill(worker, SIGKILL);
    ::waitpid(worker, &status, 0);
  }
  // Dead runs' files are removed; live ones stay.
  std::remove((dir + "/live.run").c_str());
  std::remove((dir + "/old.run").c_str());
  ::rmdir(dir.c_str());
}
