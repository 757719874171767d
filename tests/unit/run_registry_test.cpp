// Orphan cleanup: workers of a dead run are killed, unrelated processes never,
// and nothing in a registry another user could have touched is believed.

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "snakepit/actors/detail/trusted_files.hpp"
#include "snakepit/actors/run_registry.hpp"
#include "snakepit/actors/telemetry.hpp"
#include "snakepit/observability/control_file.hpp"

extern char** environ;

using namespace snakepit;

namespace {

/// An unprivileged uid ("nobody") to play the other local user (root only).
constexpr uid_t other_uid = 65534;

/// Starts `args` in a process group of its own, with `extra_env` added.
pid_t spawn(std::vector<std::string> args, std::vector<std::string> extra_env = {}) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e)
    env_strings.emplace_back(*e);
  for (auto& e : extra_env)
    env_strings.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_strings)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, argv[0], nullptr, &attr, argv.data(), envp.data()) == 0);
  posix_spawnattr_destroy(&attr);
  // posix_spawn returns once the child is in execve, before the kernel has
  // laid out its new environment: wait until /proc shows the program's argv.
  auto cmdline = "/proc/" + std::to_string(pid) + "/cmdline";
  for (int i = 0; i < 500; ++i) {
    std::ifstream in{cmdline};
    std::string first;
    std::getline(in, first, '\0');
    if (first == args[0])
      break;
    ::usleep(2000);
  }
  return pid;
}

bool still_running(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == 0;
}

void reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

/// A pid that just exited: a dead host.
pid_t dead_pid() {
  auto pid = spawn({"/bin/true"});
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

struct scratch {
  std::string root = "/tmp/snakepit-registry-test-" + std::to_string(::getpid());
  std::string dir = root + "/runs";
  scratch() {
    ::mkdir(root.c_str(), 0700);
    ::mkdir(dir.c_str(), 0700);
  }
  ~scratch() {
    std::string cmd = "rm -rf '" + root + "'";  // a fixed path of our own
    CHECK(std::system(cmd.c_str()) == 0);
  }
};

std::string run_id_of(pid_t host) {
  return std::to_string(host) + "-12345";
}

} // namespace

TEST_CASE("a dead run's workers are killed, matched by pid, start time and run marker") {
  scratch s;
  auto host = dead_pid();
  auto marker = std::string{run_registry::run_id_env} + "=" + run_id_of(host);
  auto worker = spawn({"/bin/sleep", "1000"}, {marker});
  auto started = process_start_time(worker);
  REQUIRE(started > 0);
  CHECK(process_start_time(host) == 0);
  SUBCASE("a reused pid (other start time) is left alone") {
    std::ofstream{s.dir + "/old.run"} << host << " 12345\n+ " << worker << ' ' << started + 1
                                      << '\n';
    CHECK(cleanup_dead_runs(s.dir) == 0);
    CHECK(still_running(worker));
  }
  SUBCASE("a recorded, still-running worker of a dead host is killed") {
    std::ofstream{s.dir + "/old.run"} << host << " 12345\n+ " << worker << ' ' << started
                                      << "\n+ 999999 1\n- 999999\n";
    // What the cleanup will judge, should it not kill the worker (taken now:
    // INFO alone would be evaluated after the cleanup).
    auto judged = fmt::format("worker {} start {} (now {}), ours: {}, host {} start now {}",
                              worker, started, process_start_time(worker),
                              is_our_worker(worker, started, run_id_of(host)), host,
                              process_start_time(host));
    INFO(judged);
    std::vector<telemetry_event> seen;
    auto id = telemetry::global().attach("snakepit.orphans.cleaned",
                                         [&](const telemetry_event& e) { seen.push_back(e); });
    CHECK(cleanup_dead_runs(s.dir) == 1);
    telemetry::global().detach(id);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].measurements.at("killed") == 1);
    CHECK(seen[0].metadata.at("host_pid") == std::to_string(host));
    int status = 0;
    pid_t reaped = 0;
    for (int i = 0; i < 200 && reaped == 0; ++i) {  // never hang: at most 2 s
      reaped = ::waitpid(worker, &status, WNOHANG);
      if (reaped == 0)
        ::usleep(10000);
    }
    REQUIRE(reaped == worker);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK(::access((s.dir + "/old.run").c_str(), F_OK) != 0);  // a dead run's file goes
  }
  SUBCASE("a live host's run is left alone") {
    std::ofstream{s.dir + "/live.run"} << ::getppid() << ' ' << process_start_time(::getppid())
                                       << "\n+ " << worker << ' ' << started << '\n';
    CHECK(cleanup_dead_runs(s.dir) == 0);
    CHECK(still_running(worker));
    CHECK(::access((s.dir + "/live.run").c_str(), F_OK) == 0);
  }
  reap(worker);
}

TEST_CASE("a planted entry naming a process that is not our worker kills nothing") {
  scratch s;
  auto host = dead_pid();
  // Ours by uid and start time, but it does not carry the dead run's marker
  // (or carries another run's).
  auto victim = spawn({"/bin/sleep", "1000"});
  auto other_run = spawn({"/bin/sleep", "1000"},
                         {std::string{run_registry::run_id_env} + "=" + run_id_of(host + 1)});
  std::ofstream{s.dir + "/planted.run"}
    << host << " 12345\n+ " << victim << ' ' << process_start_time(victim) << "\n+ "
    << other_run << ' ' << process_start_time(other_run) << "\n+ 1 "
    << process_start_time(1) << "\n+ 0 0\n+ -1 0\n";
  CHECK(cleanup_dead_runs(s.dir) == 0);
  CHECK(still_running(victim));
  CHECK(still_running(other_run));
  // Never pid 1 (kill(-1) would signal every process), never ourselves.
  CHECK_FALSE(is_our_worker(1, process_start_time(1), run_id_of(host)));
  CHECK_FALSE(is_our_worker(::getpid(), process_start_time(::getpid()),
                            run_registry::this_run_id()));
  reap(victim);
  reap(other_run);
}

TEST_CASE("a registry directory or file another user could have written is not believed") {
  scratch s;
  auto host = dead_pid();
  auto marker = std::string{run_registry::run_id_env} + "=" + run_id_of(host);
  auto worker = spawn({"/bin/sleep", "1000"}, {marker});
  auto record = [&](const std::string& path) {
    std::ofstream{path} << host << " 12345\n+ " << worker << ' ' << process_start_time(worker)
                        << '\n';
  };
  SUBCASE("a directory writable by others") {
    record(s.dir + "/old.run");
    ::chmod(s.dir.c_str(), 0777);
    CHECK(cleanup_dead_runs(s.dir) == 0);
    CHECK(::access((s.dir + "/old.run").c_str(), F_OK) == 0);
    CHECK_FALSE(detail::trusted_dir::open(s.dir, false));
  }
  SUBCASE("a directory that is a symlink") {
    record(s.dir + "/old.run");
    auto link = s.root + "/link";
    REQUIRE(::symlink(s.dir.c_str(), link.c_str()) == 0);
    CHECK(cleanup_dead_runs(link) == 0);
  }
  SUBCASE("a run file that is a symlink, or writable by others") {
    record(s.root + "/elsewhere.run");
    REQUIRE(::symlink((s.root + "/elsewhere.run").c_str(), (s.dir + "/link.run").c_str()) == 0);
    record(s.dir + "/loose.run");
    ::chmod((s.dir + "/loose.run").c_str(), 0666);
    CHECK(cleanup_dead_runs(s.dir) == 0);
  }
  if (::geteuid() == 0) {
    SUBCASE("a directory owned by another user") {
      record(s.dir + "/old.run");
      REQUIRE(::chown(s.dir.c_str(), other_uid, other_uid) == 0);
      CHECK(cleanup_dead_runs(s.dir) == 0);
    }
    SUBCASE("a run file owned by another user") {
      record(s.dir + "/theirs.run");
      REQUIRE(::chown((s.dir + "/theirs.run").c_str(), other_uid, other_uid) == 0);
      CHECK(cleanup_dead_runs(s.dir) == 0);
    }
  }
  CHECK(still_running(worker));
  reap(worker);
}

TEST_CASE("a dead run's runtime directory and sockets are removed, nothing else") {
  scratch s;
  auto host = dead_pid();
  auto runtime = s.root + "/snakepit-AbC123";
  REQUIRE(::mkdir(runtime.c_str(), 0700) == 0);
  REQUIRE(::mkdir((runtime + "/tree-1").c_str(), 0700) == 0);
  std::ofstream{runtime + "/w1.sock"} << "";
  std::ofstream{runtime + "/tree-1/w2.sock"} << "";
  // A symlink inside is removed, never followed.
  auto keep = s.root + "/keep";
  std::ofstream{keep} << "precious";
  REQUIRE(::symlink(keep.c_str(), (runtime + "/tree-1/link").c_str()) == 0);
  auto wrong_name = s.root + "/important";
  REQUIRE(::mkdir(wrong_name.c_str(), 0700) == 0);
  std::ofstream{s.dir + "/old.run"} << host << " 12345\nd " << runtime << "\nd " << wrong_name
                                    << "\nd /etc\n";
  CHECK(cleanup_dead_runs(s.dir) == 0);
  CHECK(::access(runtime.c_str(), F_OK) != 0);
  CHECK(::access(keep.c_str(), F_OK) == 0);
  CHECK(::access(wrong_name.c_str(), F_OK) == 0);
  CHECK(::access("/etc/passwd", F_OK) == 0);
}

TEST_CASE("trusted files: created exclusively, never through a symlink") {
  scratch s;
  auto dir = detail::trusted_dir::open(s.dir, false);
  REQUIRE(dir);
  auto victim = s.root + "/victim";
  std::ofstream{victim} << "keep me";
  REQUIRE(::symlink(victim.c_str(), (s.dir + "/link").c_str()) == 0);
  CHECK(dir->create_file("link") < 0);
  CHECK_FALSE(dir->read_file("link", 1024));
  std::string why;
  std::ofstream{s.dir + "/big"} << std::string(2048, 'x');
  CHECK_FALSE(dir->read_file("big", 1024, &why));
  CHECK(why.find("larger") != std::string::npos);
  SUBCASE("a planted control file symlink is replaced, its target untouched") {
    control_info info;
    info.pid = 424242;
    info.url = "http://127.0.0.1:1";
    REQUIRE(::symlink(victim.c_str(), (s.dir + "/424242.control").c_str()) == 0);
    auto written = write_control_file(s.dir, info);
    REQUIRE(written);
    std::ifstream in{victim};
    std::string text;
    std::getline(in, text);
    CHECK(text == "keep me");
    struct stat st {};
    REQUIRE(::lstat(written->c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);
  }
}

TEST_CASE("a long-lived host's run file is compacted to what is still true") {
  auto& reg = run_registry::instance();
  REQUIRE(reg.trusted());
  auto path = reg.dir() + "/" + run_registry::this_run_id() + ".run";
  // 100k worker starts and ends (a host recycling workers for weeks), one still running.
  for (int i = 0; i < 100000; ++i) {
    reg.record_spawn(4000000 + i);
    if (i != 777)
      reg.record_exit(4000000 + i);
  }
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(st.st_size < (1 << 20) + 64);  // never far past the compaction threshold
  std::ifstream in{path};
  std::string text{std::istreambuf_iterator<char>{in}, {}};
  CHECK(text.rfind(std::to_string(::getpid()) + " ", 0) == 0);  // the header survives
  CHECK(text.find("+ 4000777 ") != std::string::npos);           // the live worker too
  CHECK(text.find("+ 4000001 ") == std::string::npos);           // ended ones are dropped
}
