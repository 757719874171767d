#pragma once

// A real tree for the client's tests: `snakepit run --print-address TREE.toml`
// in a fresh temporary directory, started with fork/exec (no shell), its
// first stdout line read as the gateway's address, stopped with SIGTERM (and
// SIGKILL after 30 s) when the fixture goes. No CAF, no snakepit library: the
// tree is another process, as for any client.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace snakepit::testing {

/// The `snakepit` binary: $SNAKEPIT_BIN, else the one this build made
/// (ctest passes only the first entry of the test environment).
inline std::string snakepit_bin() {
  if (auto* env = std::getenv("SNAKEPIT_BIN"); env && *env)
    return env;
  return SNAKEPIT_TEST_BIN;
}

/// One showcase pool of `size` process workers in a tree named "app".
inline std::string showcase_tree(unsigned size = 2) {
  return "[supervisors.app]\n"
         "strategy = \"one_for_one\"\n"
         "children = [\"showcase\"]\n"
         "\n"
         "[pools.showcase]\n"
         "adapter = \"snakepit_bridge.showcase.ShowcaseAdapter\"\n"
         "size = "
         + std::to_string(size)
         + "\n"
           "request_timeout_ms = 30000\n";
}

/// A scratch directory (mode 0700), removed with everything in it.
class temp_dir {
public:
  temp_dir() {
    std::string pattern
      = (std::filesystem::temp_directory_path() / "snakepit-client-test-XXXXXX").string();
    std::vector<char> buf{pattern.begin(), pattern.end()};
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr)
      throw std::runtime_error{std::string{"mkdtemp failed: "} + std::strerror(errno)};
    path_ = buf.data();
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const noexcept {
    return path_;
  }

  /// Writes `name` in the directory with `mode`; returns its path.
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    auto file = path_ + "/" + name;
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
      throw std::runtime_error{"cannot create " + file + ": " + std::strerror(errno)};
    std::size_t done = 0;
    while (done < text.size()) {
      auto n = ::write(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        ::close(fd);
        throw std::runtime_error{"cannot write " + file + ": " + std::strerror(errno)};
      }
      done += static_cast<std::size_t>(n);
    }
    ::fchmod(fd, mode); // the umask may have taken bits away
    ::close(fd);
    return file;
  }

private:
  std::string path_;
};

/// `snakepit run --print-address` of a tree file in its own directory.
class running_tree {
public:
  /// Starts the tree `toml` (written as tree.toml in `dir`) and waits for its
  /// address (at most `startup`). Throws, with the tree's stderr, when it
  /// prints none.
  running_tree(const temp_dir& dir, const std::string& toml,
               std::chrono::seconds startup = std::chrono::seconds{60})
    : tree_file_(dir.write("tree.toml", toml)), log_file_(dir.path() + "/tree.log") {
    start(startup);
  }

  /// A tree of one showcase pool plus `extra` (e.g. a `[gateway]` table).
  running_tree(const temp_dir& dir, unsigned size, const std::string& extra = {})
    : running_tree(dir, showcase_tree(size) + extra) {
  }

  ~running_tree() {
    stop();
  }

  running_tree(const running_tree&) = delete;
  running_tree& operator=(const running_tree&) = delete;

  /// What `snakepit run --print-address` printed first, e.g.
  /// "unix:/tmp/snakepit-.../gateway.sock".
  const std::string& address() const noexcept {
    return address_;
  }

  pid_t pid() const noexcept {
    return pid_;
  }

  /// Sends SIGTERM and waits for the process (SIGKILL after `patience`).
  /// Returns its wait status (as waitpid gives it); idempotent.
  int stop(std::chrono::seconds patience = std::chrono::seconds{30}) {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      auto deadline = std::chrono::steady_clock::now() + patience;
      for (;;) {
        auto got = ::waitpid(pid_, &wait_status_, WNOHANG);
        if (got == pid_ || (got < 0 && errno != EINTR))
          break;
        if (std::chrono::steady_clock::now() >= deadline) {
          ::kill(pid_, SIGKILL);
          while (::waitpid(pid_, &wait_status_, 0) < 0 && errno == EINTR) {
          }
          killed_ = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{20});
      }
      pid_ = -1;
    }
    draining_ = false;
    if (drain_.joinable())
      drain_.join();
    if (out_fd_ >= 0) {
      ::close(out_fd_);
      out_fd_ = -1;
    }
    return wait_status_;
  }

  /// Whether `stop` had to use SIGKILL.
  bool killed() const noexcept {
    return killed_;
  }

  /// The tree's stderr so far (its log).
  std::string log() const {
    std::ifstream in{log_file_};
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

private:
  void start(std::chrono::seconds startup) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0)
      throw std::runtime_error{std::string{"pipe2 failed: "} + std::strerror(errno)};
    int log_fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0) {
      ::close(out[0]);
      ::close(out[1]);
      throw std::runtime_error{"cannot create " + log_file_ + ": " + std::strerror(errno)};
    }
    // Everything the child needs, made before fork: only async-signal-safe
    // calls happen between fork and exec.
    auto bin = snakepit_bin();
    std::vector<std::string> args{bin, "run", "--print-address", tree_file_};
    std::vector<char*> argv;
    for (auto& arg : args)
      argv.push_back(arg.data());
    argv.push_back(nullptr);
    static constexpr char exec_failed[] = "running_tree: execve of the snakepit binary failed\n";
    auto parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
      auto err = errno;
      ::close(out[0]);
      ::close(out[1]);
      ::close(log_fd);
      throw std::runtime_error{std::string{"fork failed: "} + std::strerror(err)};
    }
    if (pid_ == 0) {
      // The tree goes when this test process does, even after a crash.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent)
        ::_exit(126);
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      int null_fd = ::open("/dev/null", O_RDONLY);
      if (null_fd >= 0)
        ::dup2(null_fd, STDIN_FILENO);
      ::execve(bin.c_str(), argv.data(), environ);
      auto ignored = ::write(STDERR_FILENO, exec_failed, sizeof(exec_failed) - 1);
      (void) ignored;
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(log_fd);
    out_fd_ = out[0];
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + startup;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        break;
      pollfd p{out_fd_, POLLIN, 0};
      auto ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR)
        continue;
      if (ready <= 0)
        break;
      char buf[512];
      auto n = ::read(out_fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break; // the tree exited without its address
      line.append(buf, static_cast<std::size_t>(n));
      if (auto nl = line.find('\n'); nl != std::string::npos) {
        line.resize(nl);
        address_ = line;
        break;
      }
    }
    if (address_.empty()) {
      stop(std::chrono::seconds{10});
      throw std::runtime_error{"`" + bin + " run --print-address " + tree_file_
                               + "` printed no address; its stderr:\n" + log()};
    }
    // Whatever else it prints is read, so that it never blocks on a full pipe
    // (until `stop`: a worker that outlived a killed tree may hold the pipe).
    draining_ = true;
    drain_ = std::thread{[this, fd = out_fd_] {
      char buf[512];
      while (draining_) {
        pollfd p{fd, POLLIN, 0};
        auto ready = ::poll(&p, 1, 100);
        if (ready <= 0)
          continue;
        auto n = ::read(fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR))
          return;
      }
    }};
  }

  std::string tree_file_;
  std::string log_file_;
  std::string address_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int wait_status_ = 0;
  bool killed_ = false;
  std::atomic<bool> draining_{false};
  std::thread drain_;
};

/// "exited 0", "killed by signal 9", ...
inline std::string describe_wait_status(int status) {
  if (WIFEXITED(status))
    return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

/// Runs `args` (no shell) with stdout and stderr into `log_file` and waits
/// for it, at most `limit` (then SIGKILL, and `timed_out`). Returns its wait
/// status, or -1 when it could not start.
inline int run_process(const std::vector<std::string>& args, const std::string& log_file,
                       std::chrono::seconds limit, bool& timed_out) {
  timed_out = false;
  int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0)
    return -1;
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& arg : copy)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  auto parent = ::getpid();
  auto pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return -1;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)
      ::_exit(126);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execve(argv[0], argv.data(), environ);
    ::_exit(127);
  }
  ::close(log_fd);
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid)
      return status;
    if (got < 0 && errno != EINTR)
      return -1;
    if (std::chrono::steady_clock::now() >= deadline) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
}

/// The text of a file (empty when it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in{path};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

} // namespace snakepit::testing
