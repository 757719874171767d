// Tests for the process launcher with real /bin/sh children. Every wait is on a callback
// (condition variable with a generous timeout) or on a descriptor (poll with a timeout);
// nothing sleeps to "let things happen".

#include "snakepit/actors/process_launcher.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <caf/error.hpp>

using namespace std::chrono_literals;
using snakepit::process_events;
using snakepit::process_exit;
using snakepit::process_launcher;
using snakepit::process_spec;

namespace {

constexpr auto wait_timeout = std::chrono::seconds(30);

/// Everything one child reported, filled in by callbacks on the launcher thread.
struct recorder {
  std::mutex mtx;
  std::condition_variable cv;
  std::optional<caf::expected<int>> spawned;
  std::vector<std::string> ready_lines;
  std::vector<std::string> out;
  std::vector<std::string> err;
  std::optional<process_exit> exit;
  int exit_calls = 0;
  std::vector<std::string> order; // callback names in arrival order
  bool keep_out = true;           // false: count stdout lines instead of storing them
  std::size_t out_lines = 0;
  std::size_t out_bytes = 0;
  bool out_all_expected = true;
  std::string expected_line;

  template <class F>
  void update(const char* what, F&& fn) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      order.emplace_back(what);
      fn();
    }
    cv.notify_all();
  }

  template <class Pred>
  [[nodiscard]] bool wait(Pred pred) {
    std::unique_lock<std::mutex> guard{mtx};
    return cv.wait_for(guard, wait_timeout, pred);
  }

  [[nodiscard]] bool wait_spawned() {
    return wait([this] { return spawned.has_value(); });
  }

  [[nodiscard]] bool wait_ready() {
    return wait([this] { return !ready_lines.empty() || exit.has_value(); })
           && !ready_lines.empty();
  }

  [[nodiscard]] bool wait_exit() {
    return wait([this] { return exit.has_value(); });
  }

  [[nodiscard]] int pid() {
    std::lock_guard<std::mutex> guard{mtx};
    return spawned && *spawned ? **spawned : -1;
  }
};

/// Callbacks that record into `rec` (kept alive by the callbacks).
process_events record(const std::shared_ptr<recorder>& rec) {
  process_events ev;
  ev.on_spawned = [rec](caf::expected<int> pid) {
    rec->update("spawned", [&] { rec->spawned = std::move(pid); });
  };
  ev.on_ready_line = [rec](std::string line) {
    rec->update("ready", [&] { rec->ready_lines.push_back(std::move(line)); });
  };
  ev.on_output = [rec](bool is_stderr, std::string_view line) {
    std::lock_guard<std::mutex> guard{rec->mtx};
    if (is_stderr) {
      rec->err.emplace_back(line);
    } else if (rec->keep_out) {
      rec->out.emplace_back(line);
    } else {
      ++rec->out_lines;
      rec->out_bytes += line.size() + 1;
      if (line != rec->expected_line)
        rec->out_all_expected = false;
    }
    if (rec->order.empty() || rec->order.back() != "output")
      rec->order.emplace_back("output");
  };
  ev.on_exit = [rec](process_exit x) {
    rec->update("exit", [&] {
      rec->exit = x;
      ++rec->exit_calls;
    });
  };
  return ev;
}

process_spec sh(std::string script, std::string tag = "test/sh") {
  process_spec spec;
  spec.executable = "/bin/sh";
  spec.args = {"-c", std::move(script)};
  spec.tag = std::move(tag);
  return spec;
}

/// Spawns a /bin/sh script and returns its recorder and id.
std::pair<std::shared_ptr<recorder>, std::uint64_t>
run_sh(process_launcher& launcher, std::string script, std::string tag = "test/sh") {
  auto rec = std::make_shared<recorder>();
  auto id = launcher.spawn(sh(std::move(script), std::move(tag)), record(rec));
  return {rec, id};
}

int pidfd_of(int pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u));
}

/// Waits until the fd is readable (or hung up); false on timeout.
bool poll_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd pfd{fd, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  } while (rc < 0 && errno == EINTR);
  return rc > 0;
}

/// Waits for a process that is not our child to exit (via its pidfd).
bool wait_gone(int pid) {
  auto fd = pidfd_of(pid);
  if (fd < 0)
    return errno == ESRCH;
  auto gone = poll_readable(fd, std::chrono::duration_cast<std::chrono::milliseconds>(
                                  wait_timeout));
  ::close(fd);
  return gone;
}

std::vector<std::string> sorted(std::vector<std::string> xs) {
  std::sort(xs.begin(), xs.end());
  return xs;
}

/// One string of all lines, so a failed CHECK shows the values.
std::string joined(const std::vector<std::string>& xs) {
  std::string result;
  for (const auto& x : xs) {
    result += x;
    result += '|';
  }
  return result;
}

} // namespace

TEST_SUITE("process_launcher") {

TEST_CASE("process_exit::describe names exit codes and signals") {
  CHECK(process_exit{42, false, 3}.describe() == "exited with code 3");
  CHECK(process_exit{42, false, 0}.describe() == "exited with code 0");
  CHECK(process_exit{42, true, 9}.describe() == "killed by signal 9 (SIGKILL)");
  CHECK(process_exit{42, true, 15}.describe() == "killed by signal 15 (SIGTERM)");
}

TEST_CASE("the ready line arrives once, from fd 3, without its newline") {
  auto launcher = snakepit::make_process_launcher();
  auto [rec, id] = run_sh(*launcher, "echo 'READY port=1234' >&3; echo again >&3; echo x");
  REQUIRE(rec->wait_exit());
  std::lock_guard<std::mutex> guard{rec->mtx};
  REQUIRE(rec->spawned);
  CHECK(static_cast<bool>(*rec->spawned));
  CHECK(rec->ready_lines == std::vector<std::string>{"READY port=1234"});
  CHECK(rec->exit->code == 0);
  CHECK_FALSE(rec->exit->signaled);
  CHECK(rec->exit->pid == **rec->spawned);
  CHECK(rec->exit_calls == 1);
  CHECK(rec->order.front() == "spawned");
  CHECK(rec->order.back() == "exit");
}

TEST_CASE("a ready line longer than 1 MiB is truncated; EOF without a line reports none") {
  auto launcher = snakepit::make_process_launcher();
  auto [big, big_id] = run_sh(*launcher, "head -c 3000000 /dev/zero | tr '\\0' r >&3; echo >&3");
  auto [none, none_id] = run_sh(*launcher, "printf 'no newline' >&3; exit 0");
  REQUIRE(big->wait_exit());
  REQUIRE(none->wait_exit());
  {
    std::lock_guard<std::mutex> guard{big->mtx};
    REQUIRE(big->ready_lines.size() == 1);
    CHECK(big->ready_lines[0].size() == 1024u * 1024u);
    CHECK(big->ready_lines[0].find_first_not_of('r') == std::string::npos);
    CHECK(big->exit->code == 0); // the child was not hurt by our drop of the rest
  }
  std::lock_guard<std::mutex> guard{none->mtx};
  CHECK(none->ready_lines.empty());
  CHECK(none->exit->code == 0);
}

TEST_CASE("stdout and stderr lines arrive separated and complete") {
  auto launcher = snakepit::make_process_launcher();
  auto [rec, id] = run_sh(*launcher,
                          "echo out1; echo err1 >&2; echo out2; echo err2 >&2; echo; "
                          "printf 'partial'");
  REQUIRE(rec->wait_exit());
  std::lock_guard<std::mutex> guard{rec->mtx};
  CHECK(rec->out == std::vector<std::string>{"out1", "out2", "", "partial"});
  CHECK(rec->err == std::vector<std::string>{"err1", "err2"});
  CHECK(rec->order.back() == "exit");
}

TEST_CASE("long lines are split at 64 KiB without inventing empty lines") {
  auto launcher = snakepit::make_process_launcher();
  auto [rec, id] = run_sh(*launcher,
                          "head -c 200000 /dev/zero | tr '\\0' x; echo; "
                          "head -c 65536 /dev/zero | tr '\\0' y; echo; echo next");
  REQUIRE(rec->wait_exit());
  std::lock_guard<std::mutex> guard{rec->mtx};
  REQUIRE(rec->out.size() == 6);
  CHECK(rec->out[0] == std::string(65536, 'x'));
  CHECK(rec->out[1] == std::string(65536, 'x'));
  CHECK(rec->out[2] == std::string(65536, 'x'));
  CHECK(rec->out[3] == std::string(200000 - 3 * 65536, 'x'));
  CHECK(rec->out[4] == std::string(65536, 'y'));
  CHECK(rec->out[5] == "next");
}

TEST_CASE("10 MB of output flows while other children are served") {
  auto launcher = snakepit::make_process_launcher();
  auto line = std::string(99, 'z');
  auto big = std::make_shared<recorder>();
  big->keep_out = false;
  big->expected_line = line;
  auto big_id = launcher->spawn(sh("yes " + line + " | head -n 100000; echo done >&2",
                                   "test/big"),
                                record(big));
  // Children started after the writer still get served (and finish) meanwhile.
  std::vector<std::shared_ptr<recorder>> small;
  for (int i = 0; i < 4; ++i)
    small.push_back(run_sh(*launcher, "echo small-" + std::to_string(i)).first);
  for (auto& rec : small) {
    REQUIRE(rec->wait_exit());
    std::lock_guard<std::mutex> guard{rec->mtx};
    CHECK(rec->out.size() == 1);
  }
  REQUIRE(big->wait_exit());
  std::lock_guard<std::mutex> guard{big->mtx};
  CHECK(big->out_lines == 100000u);
  CHECK(big->out_bytes == 10'000'000u);
  CHECK(big->out_all_expected);
  CHECK(big->err == std::vector<std::string>{"done"});
  CHECK(big->exit->code == 0);
  static_cast<void>(big_id);
}

TEST_CASE("exit codes and deaths by signal are reported") {
  auto launcher = snakepit::make_process_launcher();
  auto [code3, id3] = run_sh(*launcher, "exit 3");
  auto [killed, id9] = run_sh(*launcher, "kill -9 $$");
  REQUIRE(code3->wait_exit());
  REQUIRE(killed->wait_exit());
  CHECK(code3->exit->describe() == "exited with code 3");
  CHECK(killed->exit->signaled);
  CHECK(killed->exit->code == SIGKILL);
  CHECK(killed->exit->describe() == "killed by signal 9 (SIGKILL)");
  CHECK(launcher->live_count() == 0);
}

TEST_CASE("signal() reaches the whole process group, grandchildren included") {
  auto launcher = snakepit::make_process_launcher();
  auto [rec, id] = run_sh(*launcher, "sleep 100 & echo $! >&3; wait");
  REQUIRE(rec->wait_ready());
  auto grandchild = std::stoi(rec->ready_lines.at(0));
  REQUIRE(grandchild > 0);
  CHECK(launcher->live_count() == 1);
  launcher->signal(id, SIGTERM);
  REQUIRE(rec->wait_exit());
  CHECK(rec->exit->signaled);
  CHECK(rec->exit->code == SIGTERM);
  CHECK(wait_gone(grandchild));
  CHECK(launcher->live_count() == 0);
  // After the exit: a no-op, no crash, no callback.
  launcher->signal(id, SIGKILL);
  launcher->terminate(id, 0ms);
  launcher->signal(987654321, SIGKILL);
}

TEST_CASE("terminate() escalates to SIGKILL after the grace for a child ignoring TERM") {
  auto launcher = snakepit::make_process_launcher();
  auto [stubborn, stubborn_id] = run_sh(*launcher, "trap '' TERM; echo up >&3; exec sleep 100");
  auto [polite, polite_id] = run_sh(*launcher, "echo up >&3; exec sleep 100");
  REQUIRE(stubborn->wait_ready());
  REQUIRE(polite->wait_ready());
  constexpr auto grace = 300ms;
  auto start = std::chrono::steady_clock::now();
  launcher->terminate(stubborn_id, grace);
  launcher->terminate(polite_id, 20s);
  REQUIRE(polite->wait_exit());
  CHECK(polite->exit->signaled);
  CHECK(polite->exit->code == SIGTERM);
  REQUIRE(stubborn->wait_exit());
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(stubborn->exit->signaled);
  CHECK(stubborn->exit->code == SIGKILL);
  CHECK(elapsed >= grace);
}

TEST_CASE("signal() and terminate() right after spawn() apply to the new process") {
  auto launcher = snakepit::make_process_launcher();
  auto [rec, id] = run_sh(*launcher, "exec sleep 100");
  launcher->terminate(id, 20s); // queued behind the spawn: no pid needed yet
  REQUIRE(rec->wait_exit());
  std::lock_guard<std::mutex> guard{rec->mtx};
  CHECK(static_cast<bool>(*rec->spawned));
  CHECK(rec->exit->signaled);
  CHECK(rec->exit->code == SIGTERM);
}

TEST_CASE("every spawn gets exactly one on_spawned, even when the launcher goes away") {
  constexpr int n = 16;
  std::vector<std::shared_ptr<recorder>> recs;
  {
    auto launcher = snakepit::make_process_launcher();
    for (int i = 0; i < n; ++i)
      recs.push_back(run_sh(*launcher, "exec sleep 100").first);
  } // destroyed at once: some spawns may still be queued
  for (auto& rec : recs) {
    std::lock_guard<std::mutex> guard{rec->mtx};
    REQUIRE(rec->spawned.has_value());
    CHECK(std::count(rec->order.begin(), rec->order.end(), "spawned") == 1);
    if (*rec->spawned)
      CHECK(::kill(**rec->spawned, 0) == -1); // killed and reaped
    else
      CHECK(caf::to_string(rec->spawned->error()).find("shut down") != std::string::npos);
    CHECK_FALSE(rec->exit.has_value());
  }
}

TEST_CASE("terminate() kills group members that outlive a leader obeying TERM") {
  auto launcher = snakepit::make_process_launcher();
  auto [rec, id] = run_sh(*launcher, "(trap '' TERM; exec sleep 100) & echo $! >&3; wait");
  REQUIRE(rec->wait_ready());
  auto grandchild = std::stoi(rec->ready_lines.at(0));
  launcher->terminate(id, 20s);
  REQUIRE(rec->wait_exit());
  CHECK(rec->exit->code == SIGTERM);
  CHECK(wait_gone(grandchild)); // long before the 20 s grace
}

TEST_CASE("the child sees only fds 0-4, its own group, and a clean signal state") {
  auto launcher = snakepit::make_process_launcher();
  // A descriptor leaked by other host code (no O_CLOEXEC) must not reach the child.
  int leaked = ::open("/dev/null", O_RDONLY);
  REQUIRE(leaked >= 0);
  // The host ignores SIGPIPE (as gRPC hosts do); the child must get the default back.
  auto old_pipe = std::signal(SIGPIPE, SIG_IGN);
  auto [rec, id] = run_sh(*launcher,
                          "ls -1 /proc/$$/fd; "
                          "echo $$ $(cut -d' ' -f5 /proc/$$/stat) >&3; "
                          "exec grep -E '^Sig(Blk|Ign):' /proc/self/status >&2");
  REQUIRE(rec->wait_exit());
  std::signal(SIGPIPE, old_pipe);
  ::close(leaked);
  std::lock_guard<std::mutex> guard{rec->mtx};
  CHECK(joined(sorted(rec->out)) == "0|1|2|3|4|");
  // Signal state of the exec'd program: nothing blocked, nothing ignored. glibc's
  // posix_spawn always leaves its two internal signals (32 and 33, SIGCANCEL and SIGSETXID)
  // ignored in the child, whatever the flags; a glibc program re-installs them on use.
  REQUIRE(rec->err.size() == 2);
  auto& err_lines = rec->err; // a lambda may not capture a structured binding (clang, C++17)
  auto mask_of = [&](std::string_view name) -> unsigned long long {
    for (const auto& line : err_lines)
      if (line.rfind(name, 0) == 0)
        return std::stoull(line.substr(name.size()), nullptr, 16);
    FAIL("no " << name << " line in " << joined(err_lines));
    return 0;
  };
  constexpr unsigned long long glibc_internal = (1ull << (32 - 1)) | (1ull << (33 - 1));
  CHECK(mask_of("SigBlk:") == 0u);
  CHECK((mask_of("SigIgn:") & ~glibc_internal) == 0u);
  // pgid == pid: the child leads its own process group.
  REQUIRE(rec->ready_lines.size() == 1);
  std::istringstream in{rec->ready_lines[0]};
  int pid = 0;
  int pgid = -1;
  in >> pid >> pgid;
  CHECK(pid == **rec->spawned);
  CHECK(pgid == pid);
}

TEST_CASE("fd 0 is /dev/null and the environment is the host's plus overrides") {
  auto launcher = snakepit::make_process_launcher();
  auto rec = std::make_shared<recorder>();
  auto spec = sh("cat; echo \"$SNAKEPIT_T1/$SNAKEPIT_T2\"; echo \"$PATH\"");
  spec.env = {{"SNAKEPIT_T1", "one"}, {"SNAKEPIT_T2", "x"}, {"SNAKEPIT_T2", "two"}};
  launcher->spawn(std::move(spec), record(rec));
  REQUIRE(rec->wait_exit());
  std::lock_guard<std::mutex> guard{rec->mtx};
  const char* path = std::getenv("PATH");
  CHECK(rec->out
        == std::vector<std::string>{"one/two", path != nullptr ? std::string{path} : ""});
  CHECK(rec->exit->code == 0);
}

TEST_CASE("fd 4 stays open while the host lives and reaches EOF when its launcher is gone") {
  auto launcher = snakepit::make_process_launcher();
  // Intact while the host lives: the child's fd 4 is a read end that is neither readable
  // nor hung up, and it is read-only (no write end reaches a child).
  auto [rec, id] = run_sh(*launcher, "echo up >&3; exec cat <&4");
  REQUIRE(rec->wait_ready());
  auto pid = rec->pid();
  auto fd4 = "/proc/" + std::to_string(pid) + "/fd/4";
  int probe = ::open(fd4.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  REQUIRE(probe >= 0);
  CHECK_FALSE(poll_readable(probe, 0ms));
  ::close(probe);
  std::ifstream fdinfo{"/proc/" + std::to_string(pid) + "/fdinfo/4"};
  std::string key;
  std::string flags;
  while (fdinfo >> key && key != "flags:") {
    // skip
  }
  fdinfo >> flags;
  CHECK((std::stoi(flags, nullptr, 8) & O_ACCMODE) == O_RDONLY);
  CHECK(launcher->live_count() == 1);
  CHECK_FALSE(rec->exit.has_value());

  // EOF once the host side is gone: a grandchild that escaped the process group (so the
  // launcher's SIGKILL does not reach it) reports through a FIFO when fd 4 hits EOF.
  char dir_template[] = "/tmp/snakepit-lifeline-XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  std::string dir = dir_template;
  auto fifo = dir + "/eof";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  REQUIRE(reader >= 0);
  auto [esc, esc_id] = run_sh(*launcher,
                              "setsid /bin/sh -c 'echo $$ >&3; exec 1>&- 2>&- 3>&-; "
                              "cat <&4 >/dev/null; echo eof > \"$0\"' \"" + fifo + "\" & wait");
  REQUIRE(esc->wait_ready());
  auto escaped = std::stoi(esc->ready_lines.at(0));
  REQUIRE(escaped > 0);
  CHECK_FALSE(poll_readable(reader, 0ms));
  launcher.reset(); // SIGKILLs and reaps both groups, closes the lifeline's write end
  CHECK(::kill(pid, 0) == -1); // reaped, not a zombie
  REQUIRE(poll_readable(reader, std::chrono::duration_cast<std::chrono::milliseconds>(
                                  wait_timeout)));
  char buf[16] = {};
  auto n = ::read(reader, buf, sizeof(buf) - 1);
  CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0u) == "eof\n");
  ::close(reader);
  CHECK(wait_gone(escaped));
  ::unlink(fifo.c_str());
  ::rmdir(dir.c_str());
  std::lock_guard<std::mutex> guard{rec->mtx};
  CHECK_FALSE(rec->exit.has_value()); // no callbacks at teardown
}

TEST_CASE("spawning a missing executable reports the errno text and nothing else") {
  auto launcher = snakepit::make_process_launcher();
  auto rec = std::make_shared<recorder>();
  process_spec spec;
  spec.executable = "/nonexistent/snakepit-no-such-program";
  spec.tag = "test/missing";
  launcher->spawn(std::move(spec), record(rec));
  REQUIRE(rec->wait_spawned());
  // A later child's exit fences every callback the failed spawn could still produce.
  auto [fence, fence_id] = run_sh(*launcher, "exit 0");
  REQUIRE(fence->wait_exit());
  std::lock_guard<std::mutex> guard{rec->mtx};
  REQUIRE_FALSE(static_cast<bool>(*rec->spawned));
  auto text = caf::to_string(rec->spawned->error());
  CHECK(text.find("No such file or directory") != std::string::npos);
  CHECK(text.find("/nonexistent/snakepit-no-such-program") != std::string::npos);
  CHECK(rec->order == std::vector<std::string>{"spawned"});
  CHECK(launcher->live_count() == 0);
}

TEST_CASE("a throwing callback does not kill the launcher thread") {
  auto launcher = snakepit::make_process_launcher();
  auto rec = std::make_shared<recorder>();
  process_events ev = record(rec);
  auto record_spawned = ev.on_spawned;
  ev.on_spawned = [record_spawned](caf::expected<int> pid) {
    record_spawned(std::move(pid));
    throw std::runtime_error("on_spawned throws (expected in this test)");
  };
  ev.on_ready_line = [](std::string) { throw 42; };
  ev.on_output = [](bool, std::string_view) {
    throw std::runtime_error("on_output throws (expected in this test)");
  };
  auto record_exit = ev.on_exit;
  ev.on_exit = [record_exit](process_exit x) {
    record_exit(x);
    throw std::logic_error("on_exit throws (expected in this test)");
  };
  launcher->spawn(sh("echo r >&3; echo a; echo b >&2"), std::move(ev));
  REQUIRE(rec->wait_exit());
  CHECK(rec->exit->code == 0);
  // Still serving.
  auto [next, next_id] = run_sh(*launcher, "echo alive");
  REQUIRE(next->wait_exit());
  std::lock_guard<std::mutex> guard{next->mtx};
  CHECK(next->out == std::vector<std::string>{"alive"});
}

TEST_CASE("several children at once") {
  auto launcher = snakepit::make_process_launcher();
  constexpr int n = 12;
  std::vector<std::pair<std::shared_ptr<recorder>, std::uint64_t>> children;
  for (int i = 0; i < n; ++i)
    children.push_back(run_sh(*launcher,
                              "echo ready-" + std::to_string(i) + " >&3; echo out-"
                                + std::to_string(i) + "; exit " + std::to_string(i),
                              "test/w-" + std::to_string(i)));
  for (int i = 0; i < n; ++i) {
    auto& rec = children[static_cast<std::size_t>(i)].first;
    REQUIRE(rec->wait_exit());
    std::lock_guard<std::mutex> guard{rec->mtx};
    CHECK(rec->ready_lines == std::vector<std::string>{"ready-" + std::to_string(i)});
    CHECK(rec->out == std::vector<std::string>{"out-" + std::to_string(i)});
    CHECK(rec->exit->code == i);
  }
  CHECK(launcher->live_count() == 0);
}

TEST_CASE("without on_output, lines go to the default sink, tagged") {
  struct captured {
    std::string tag;
    bool is_stderr;
    std::string line;
  };
  auto mtx = std::make_shared<std::mutex>();
  auto lines = std::make_shared<std::vector<captured>>();
  snakepit::set_default_output_sink(
    [mtx, lines](std::string_view tag, bool is_stderr, std::string_view line) {
      std::lock_guard<std::mutex> guard{*mtx};
      lines->push_back(captured{std::string{tag}, is_stderr, std::string{line}});
    });
  auto launcher = snakepit::make_process_launcher();
  auto rec = std::make_shared<recorder>();
  auto ev = record(rec);
  ev.on_output = nullptr;
  launcher->spawn(sh("echo hello; echo oops >&2", "demo/w-3"), std::move(ev));
  REQUIRE(rec->wait_exit());
  snakepit::set_default_output_sink(nullptr); // back to "[tag] line" on stderr
  std::lock_guard<std::mutex> guard{*mtx};
  REQUIRE(lines->size() == 2);
  auto out = std::find_if(lines->begin(), lines->end(), [](auto& x) { return !x.is_stderr; });
  auto err = std::find_if(lines->begin(), lines->end(), [](auto& x) { return x.is_stderr; });
  REQUIRE(out != lines->end());
  REQUIRE(err != lines->end());
  CHECK(out->tag == "demo/w-3");
  CHECK(out->line == "hello");
  CHECK(err->tag == "demo/w-3");
  CHECK(err->line == "oops");
}

TEST_CASE("destroying a launcher SIGKILLs and reaps its children without callbacks") {
  auto launcher = snakepit::make_process_launcher();
  auto [rec, id] = run_sh(*launcher, "trap '' TERM; sleep 100 & echo $! >&3; wait");
  REQUIRE(rec->wait_ready());
  auto pid = rec->pid();
  auto grandchild = std::stoi(rec->ready_lines.at(0));
  launcher.reset();
  CHECK(::kill(pid, 0) == -1); // reaped
  CHECK(wait_gone(grandchild));
  std::lock_guard<std::mutex> guard{rec->mtx};
  CHECK_FALSE(rec->exit.has_value());
}

TEST_CASE("the default launcher is one long-lived instance") {
  auto& launcher = snakepit::default_process_launcher();
  CHECK(&launcher == &snakepit::default_process_launcher());
  auto [rec, id] = run_sh(launcher, "echo from-default; exit 7", "test/default");
  REQUIRE(rec->wait_exit());
  std::lock_guard<std::mutex> guard{rec->mtx};
  CHECK(rec->out == std::vector<std::string>{"from-default"});
  CHECK(rec->exit->code == 7);
}

} // TEST_SUITE
