#pragma once

// Helpers shared by the benchmarks (header-only; bench/CMakeLists.txt builds
// one executable per bench/*.cpp).
//
// - statistics: percentiles, medians;
// - host cost: getrusage of this process, per-thread context switches of any
//   process from /proc (the "hops": every voluntary switch is a thread that
//   went to sleep and had to be woken again);
// - floors: a raw gRPC client (callback API, no actors) and a way to start a
//   Python worker exactly as the host does, without the library;
// - output: aligned tables and machine-readable "RESULT" lines for run_all.sh.

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>
#include <thread>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "bridge.grpc.pb.h"
#include "bridge.pb.h"

extern char** environ;

namespace bench {

using clk = std::chrono::steady_clock;

inline double us_between(clk::time_point a, clk::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

inline double ms_between(clk::time_point a, clk::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// -- statistics -----------------------------------------------------------------------

/// Nearest-rank percentile (p in [0, 100]); NaN for an empty sample.
inline double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return std::nan("");
  std::sort(xs.begin(), xs.end());
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(xs.size())));
  rank = std::clamp<size_t>(rank, 1, xs.size());
  return xs[rank - 1];
}

inline double median(std::vector<double> xs) {
  if (xs.empty())
    return std::nan("");
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 == 1 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2.0;
}

// -- host cost ------------------------------------------------------------------------

/// CPU time and context switches of this whole process (all threads, including
/// threads that have ended).
struct proc_usage {
  double cpu_s = 0;
  long vol_switches = 0;
  long invol_switches = 0;

  static proc_usage now() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    proc_usage out;
    out.cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
                + static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    out.vol_switches = ru.ru_nvcsw;
    out.invol_switches = ru.ru_nivcsw;
    return out;
  }

  proc_usage operator-(const proc_usage& other) const {
    return {cpu_s - other.cpu_s, vol_switches - other.vol_switches,
            invol_switches - other.invol_switches};
  }
};

/// One thread of a process as /proc shows it.
struct thread_info {
  std::string comm;
  long vol = 0;    // voluntary context switches: it blocked, someone woke it
  long invol = 0;  // preempted
  double cpu_s = 0;
};

inline std::string read_first_line(const std::string& path) {
  std::ifstream in{path};
  std::string line;
  std::getline(in, line);
  return line;
}

/// True once `pid` is gone or a zombie (its parent has not reaped it yet).
inline bool process_gone(int pid) {
  auto stat = read_first_line("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return stat.empty()
         || (close != std::string::npos && stat.size() > close + 2 && stat[close + 2] == 'Z');
}

/// Waits until every one of `pids` is gone, at most `limit` in all.
inline void wait_processes_gone(const std::vector<int>& pids, std::chrono::milliseconds limit) {
  auto t0 = clk::now();
  for (auto pid : pids)
    while (!process_gone(pid) && ms_between(t0, clk::now()) < limit.count())
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
}

/// Per-thread counters of process `pid` (tid -> info). Threads that end between
/// two samples drop out; use `proc_usage` for exact totals of this process.
inline std::map<int, thread_info> sample_threads(int pid) {
  std::map<int, thread_info> out;
  auto dir_path = "/proc/" + std::to_string(pid) + "/task";
  auto* dir = ::opendir(dir_path.c_str());
  if (dir == nullptr)
    return out;
  static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  while (auto* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.')
      continue;
    int tid = std::atoi(entry->d_name);
    auto base = dir_path + "/" + entry->d_name;
    thread_info info;
    info.comm = read_first_line(base + "/comm");
    std::ifstream status{base + "/status"};
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0)
        info.vol = std::atol(line.c_str() + 24);
      else if (line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
        info.invol = std::atol(line.c_str() + 27);
    }
    // utime and stime: fields 14 and 15 of stat, after the ")" that ends comm.
    auto stat = read_first_line(base + "/stat");
    auto close = stat.rfind(')');
    if (close != std::string::npos) {
      std::istringstream fields{stat.substr(close + 2)};
      std::string field;
      long utime = 0, stime = 0;
      for (int i = 3; i <= 15 && (fields >> field); ++i) {
        if (i == 14)
          utime = std::atol(field.c_str());
        if (i == 15)
          stime = std::atol(field.c_str());
      }
      info.cpu_s = static_cast<double>(utime + stime) / ticks;
    }
    out.emplace(tid, std::move(info));
  }
  ::closedir(dir);
  return out;
}

/// Adds `after - before` per thread into `acc` (keyed by tid).
inline void accumulate_threads(std::map<int, thread_info>& acc,
                               const std::map<int, thread_info>& before,
                               const std::map<int, thread_info>& after) {
  for (auto& [tid, a] : after) {
    auto& slot = acc[tid];
    slot.comm = a.comm;
    auto i = before.find(tid);
    slot.vol += a.vol - (i == before.end() ? 0 : i->second.vol);
    slot.invol += a.invol - (i == before.end() ? 0 : i->second.invol);
    slot.cpu_s += a.cpu_s - (i == before.end() ? 0 : i->second.cpu_s);
  }
}

/// CPU seconds of all threads of the processes `pids` alive now (threads
/// that ended drop out).
inline double threads_cpu_s(const std::vector<int>& pids) {
  double total = 0;
  for (auto pid : pids)
    for (auto& [tid, info] : sample_threads(pid))
      total += info.cpu_s;
  return total;
}

/// CPU seconds the whole machine has been busy so far, all CPUs (/proc/stat):
/// with our own CPU time subtracted, what other processes took.
inline double machine_busy_s() {
  std::ifstream in{"/proc/stat"};
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return (user + nice + system + irq + softirq + steal)
         / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

inline int gettid_now() {
  return static_cast<int>(::syscall(SYS_gettid));
}

/// Remembers which threads did what (actor handlers, gRPC callbacks, ...), so
/// the per-thread switch counts can be labelled.
class thread_roles {
public:
  static thread_roles& get() {
    static thread_roles instance;
    return instance;
  }

  /// Records the calling thread under `role`; cheap after the first call per
  /// thread and role (a thread-local check).
  void mark(const char* role) {
    thread_local std::set<const char*> seen;
    if (!seen.insert(role).second)
      return;
    std::lock_guard<std::mutex> guard{mtx_};
    roles_[gettid_now()].insert(role);
  }

  std::string label(int tid, const std::string& comm) const {
    std::lock_guard<std::mutex> guard{mtx_};
    std::string out;
    if (tid == ::getpid())
      out = "main";
    if (auto i = roles_.find(tid); i != roles_.end())
      for (auto* r : i->second)
        out += (out.empty() ? "" : "+") + std::string{r};
    if (out.empty())
      out = comm;
    return out;
  }

private:
  mutable std::mutex mtx_;
  std::map<int, std::set<const char*>> roles_;
};

// -- output ---------------------------------------------------------------------------

inline std::string fixed(double x, int digits = 0) {
  if (std::isnan(x))
    return "-";
  return fmt::format("{:.{}f}", x, digits);
}

/// A plain text table with aligned columns.
class table {
public:
  explicit table(std::vector<std::string> header) {
    rows_.push_back(std::move(header));
  }

  void add(std::vector<std::string> row) {
    rows_.push_back(std::move(row));
  }

  void print() const {
    std::vector<size_t> width;
    for (auto& r : rows_)
      for (size_t i = 0; i < r.size(); ++i) {
        if (width.size() <= i)
          width.push_back(0);
        width[i] = std::max(width[i], r[i].size());
      }
    for (size_t k = 0; k < rows_.size(); ++k) {
      std::string line;
      for (size_t i = 0; i < rows_[k].size(); ++i) {
        auto& cell = rows_[k][i];
        // first column left-aligned, the others right-aligned
        if (i == 0)
          line += cell + std::string(width[i] - cell.size(), ' ');
        else
          line += "  " + std::string(width[i] - cell.size(), ' ') + cell;
      }
      fmt::print("{}\n", line);
      if (k == 0) {
        size_t total = 0;
        for (auto w : width)
          total += w + 2;
        fmt::print("{}\n", std::string(total - 2, '-'));
      }
    }
  }

private:
  std::vector<std::vector<std::string>> rows_;
};

/// A line run_all.sh collects: `RESULT <bench> <key> <value>`.
inline void result_line(const std::string& bench, const std::string& key, double x) {
  fmt::print("RESULT {} {} {:.4f}\n", bench, key, x);
}

inline std::string verdict(bool pass) {
  return pass ? "PASS" : "FAIL";
}

// -- raw gRPC client (the floor without actors) -------------------------------------------

/// A channel to one worker socket, configured as the library configures its own
/// (message limits, a subchannel of its own).
inline std::shared_ptr<grpc::Channel> make_channel(const std::string& socket_path,
                                                   int max_message_bytes = 64 * 1024 * 1024
                                                                           + 65536) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel("unix:" + socket_path, grpc::InsecureChannelCredentials(),
                                   args);
}

/// A wire request for `tool`; with `string_arg`, one argument `value` holding it.
inline snakepit::bridge::v1::ExecuteRequest make_wire_request(const std::string& tool,
                                                              const std::string* string_arg
                                                              = nullptr) {
  snakepit::bridge::v1::ExecuteRequest req;
  req.set_tool(tool);
  if (string_arg != nullptr) {
    auto* entry = req.mutable_arguments()->add_entries();
    entry->set_key("value");
    entry->mutable_value()->set_string_value(*string_arg);
  }
  return req;
}

/// Like `make_wire_request` with one double argument `name`.
inline snakepit::bridge::v1::ExecuteRequest make_wire_request(const std::string& tool,
                                                              const std::string& name,
                                                              double arg) {
  snakepit::bridge::v1::ExecuteRequest req;
  req.set_tool(tool);
  auto* entry = req.mutable_arguments()->add_entries();
  entry->set_key(name);
  entry->mutable_value()->set_double_value(arg);
  return req;
}

/// The result of driving calls: per-call latencies and the wall time of the batch.
struct run_result {
  std::vector<double> lat_us;
  double wall_s = 0;
  std::uint64_t failures = 0;
  std::uint64_t calls = 0;

  double calls_per_s() const {
    return wall_s > 0 ? static_cast<double>(calls) / wall_s : 0;
  }
};

/// The latencies and failures of `parts` (e.g. one per caller thread) as one
/// run that took `wall_s`.
inline run_result merge_runs(const std::vector<run_result>& parts, double wall_s) {
  run_result out;
  out.wall_s = wall_s;
  for (auto& p : parts) {
    out.lat_us.insert(out.lat_us.end(), p.lat_us.begin(), p.lat_us.end());
    out.failures += p.failures;
  }
  out.calls = out.lat_us.size();
  return out;
}

/// One variant's samples over rounds: calls/s, p50 and p99 of each round, and
/// the calls and failures of all rounds. Tables show medians of the samples.
struct round_samples {
  std::vector<double> rate, p50, p99;
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;

  void add(const run_result& r) {
    rate.push_back(r.calls_per_s());
    p50.push_back(percentile(r.lat_us, 50));
    p99.push_back(percentile(r.lat_us, 99));
    calls += r.calls;
    failures += r.failures;
  }
};

/// Prints one row per variant: medians of its rounds' calls/s, p50 and p99,
/// and its failures over all rounds.
inline void print_variants(const std::vector<std::string>& names,
                           const std::vector<round_samples>& samples) {
  table t({"variant", "calls/s", "p50 us", "p99 us", "failures"});
  for (std::size_t k = 0; k < names.size(); ++k)
    t.add({names[k], fixed(median(samples[k].rate)), fixed(median(samples[k].p50)),
           fixed(median(samples[k].p99)), std::to_string(samples[k].failures)});
  t.print();
}

/// Unary calls one after another on one channel with the callback API: each
/// completion callback (on a gRPC thread) starts the next call. No thread of
/// ours sits in between: this is the floor for one call in flight.
class raw_chain {
public:
  /// With `deadline`, every call carries a gRPC deadline 60 s ahead, as the
  /// library's calls do (requests should then carry timeout_ms as well).
  raw_chain(snakepit::bridge::v1::Worker::Stub* stub,
            const snakepit::bridge::v1::ExecuteRequest* req, int calls, bool deadline = false)
    : stub_(stub), req_(req), remaining_(calls), deadline_(deadline) {
    lat_.reserve(static_cast<size_t>(calls));
  }

  /// Starts the chain; `done()` becomes ready when the last call finished.
  void start() {
    issue();
  }

  std::future<void> done() {
    return done_.get_future();
  }

  std::vector<double>& latencies() {
    return lat_;
  }

  std::uint64_t failures() const {
    return failures_;
  }

private:
  void issue() {
    // Two contexts in turn: the one of the call whose callback is running stays
    // alive until that callback returns.
    auto& slot = slots_[next_slot_];
    next_slot_ ^= 1;
    slot.ctx = std::make_unique<grpc::ClientContext>();
    if (deadline_)
      slot.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds{61});
    slot.resp.Clear();
    slot.t0 = clk::now();
    stub_->async()->Execute(slot.ctx.get(), req_, &slot.resp,
                            [this, s = &slot](grpc::Status status) { on_done(s, status); });
  }

  struct slot_t {
    std::unique_ptr<grpc::ClientContext> ctx;
    snakepit::bridge::v1::ExecuteResponse resp;
    clk::time_point t0;
  };

  void on_done(slot_t* s, const grpc::Status& status) {
    thread_roles::get().mark("grpc-cb");
    lat_.push_back(us_between(s->t0, clk::now()));
    if (!status.ok() || s->resp.has_error())
      ++failures_;
    if (--remaining_ > 0)
      issue();
    else
      done_.set_value();
  }

  snakepit::bridge::v1::Worker::Stub* stub_;
  const snakepit::bridge::v1::ExecuteRequest* req_;
  int remaining_;
  bool deadline_;
  slot_t slots_[2];
  int next_slot_ = 0;
  std::vector<double> lat_;
  std::uint64_t failures_ = 0;
  std::promise<void> done_;
};

/// `calls` calls through each of `stubs` at once (one chain per stub, so one
/// call in flight per stub).
inline run_result raw_run(const std::vector<snakepit::bridge::v1::Worker::Stub*>& stubs,
                          const snakepit::bridge::v1::ExecuteRequest& req, int calls_each,
                          bool deadline = false) {
  std::vector<std::unique_ptr<raw_chain>> chains;
  std::vector<std::future<void>> futures;
  for (auto* stub : stubs) {
    chains.push_back(std::make_unique<raw_chain>(stub, &req, calls_each, deadline));
    futures.push_back(chains.back()->done());
  }
  auto t0 = clk::now();
  for (auto& c : chains)
    c->start();
  for (auto& f : futures)
    f.wait();
  run_result out;
  out.wall_s = ms_between(t0, clk::now()) / 1000.0;
  for (auto& c : chains) {
    auto& l = c->latencies();
    out.lat_us.insert(out.lat_us.end(), l.begin(), l.end());
    out.failures += c->failures();
  }
  out.calls = out.lat_us.size();
  return out;
}

/// Blocking calls (the synchronous stub) from the calling thread.
inline run_result raw_sync_run(snakepit::bridge::v1::Worker::Stub* stub,
                               const snakepit::bridge::v1::ExecuteRequest& req, int calls) {
  run_result out;
  out.lat_us.reserve(static_cast<size_t>(calls));
  auto start = clk::now();
  for (int i = 0; i < calls; ++i) {
    grpc::ClientContext ctx;
    snakepit::bridge::v1::ExecuteResponse resp;
    auto t0 = clk::now();
    auto status = stub->Execute(&ctx, req, &resp);
    out.lat_us.push_back(us_between(t0, clk::now()));
    if (!status.ok() || resp.has_error())
      ++out.failures;
  }
  out.wall_s = ms_between(start, clk::now()) / 1000.0;
  out.calls = out.lat_us.size();
  return out;
}

// -- sockets of a running pool ----------------------------------------------------------

/// Worker sockets (`w<N>.sock`) in `dir`, by N.
inline std::vector<std::string> list_worker_sockets(const std::string& dir) {
  std::vector<std::pair<int, std::string>> found;
  if (auto* d = ::opendir(dir.c_str())) {
    while (auto* entry = ::readdir(d)) {
      std::string name = entry->d_name;
      if (name.size() > 6 && name[0] == 'w' && name.substr(name.size() - 5) == ".sock")
        found.emplace_back(std::atoi(name.c_str() + 1), dir + "/" + name);
    }
    ::closedir(d);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found)
    out.push_back(f.second);
  return out;
}

// -- starting a Python process as the host does, without the library ------------------------

/// A child process with a ready pipe (fd 3 in the child) and a lifeline (fd 4
/// in the child: it exits when we go away).
class child_process {
public:
  child_process() = default;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  ~child_process() {
    kill_and_reap();
  }

  /// Starts `argv` with `env_extra` on top of our environment; fd 3 is the write
  /// end of the ready pipe, fd 4 the read end of the lifeline. stdout and
  /// stderr are inherited.
  void start(const std::vector<std::string>& argv,
             const std::vector<std::pair<std::string, std::string>>& env_extra) {
    int ready[2], life[2];
    if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(life, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2 failed");
    std::vector<std::string> env_strings;
    std::set<std::string> overridden;
    for (auto& [k, v] : env_extra) {
      env_strings.push_back(k + "=" + v);
      overridden.insert(k);
    }
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      auto eq = kv.find('=');
      if (eq != std::string::npos && overridden.count(kv.substr(0, eq)) == 0)
        env_strings.push_back(kv);
    }
    std::vector<char*> envp, args;
    for (auto& s : env_strings)
      envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_copy = argv;
    for (auto& s : argv_copy)
      args.push_back(s.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, ready[1], 3);
    posix_spawn_file_actions_adddup2(&actions, life[0], 4);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    auto rc = ::posix_spawn(&pid_, argv_copy[0].c_str(), &actions, &attr, args.data(),
                            envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(ready[1]);
    ::close(life[0]);
    ready_fd_ = ready[0];
    lifeline_fd_ = life[1];
    if (rc != 0) {
      pid_ = 0;
      throw std::runtime_error(std::string{"posix_spawn: "} + std::strerror(rc));
    }
  }

  /// Blocks until the child wrote its ready line (returned without "\n"), or
  /// closed the pipe (empty string).
  std::string wait_ready_line() {
    std::string line;
    char buf[4096];
    for (;;) {
      auto n = ::read(ready_fd_, buf, sizeof(buf));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      line.append(buf, static_cast<size_t>(n));
      if (auto pos = line.find('\n'); pos != std::string::npos) {
        line.resize(pos);
        break;
      }
    }
    return line;
  }

  int pid() const {
    return pid_;
  }

  void kill_and_reap() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = 0;
    }
    if (ready_fd_ >= 0)
      ::close(ready_fd_);
    if (lifeline_fd_ >= 0)
      ::close(lifeline_fd_);
    ready_fd_ = lifeline_fd_ = -1;
  }

private:
  pid_t pid_ = 0;
  int ready_fd_ = -1;
  int lifeline_fd_ = -1;
};

/// The environment the host gives a worker of capacity 1 (actors/worker.cpp).
inline std::vector<std::pair<std::string, std::string>>
worker_env(const std::string& python_dir) {
  std::string pythonpath = python_dir;
  if (auto* existing = std::getenv("PYTHONPATH"); existing && *existing)
    pythonpath += std::string{":"} + existing;
  return {{"PYTHONPATH", pythonpath},  {"PYTHONUNBUFFERED", "1"},
          {"OMP_NUM_THREADS", "1"},    {"OPENBLAS_NUM_THREADS", "1"},
          {"MKL_NUM_THREADS", "1"},    {"NUMEXPR_NUM_THREADS", "1"}};
}

/// The command line the host gives a worker of capacity 1 (actors/worker.cpp).
inline std::vector<std::string> worker_argv(const std::string& python,
                                            const std::string& socket_path,
                                            const std::string& worker_id) {
  return {python,
          "-m",
          "snakepit_bridge.worker",
          "--adapter",
          "snakepit_bridge.showcase.ShowcaseAdapter",
          "--socket",
          socket_path,
          "--concurrency",
          "1",
          "--max-message-bytes",
          std::to_string(64LL * 1024 * 1024),
          "--ready-fd",
          "3",
          "--lifeline-fd",
          "4",
          "--parent-pid",
          std::to_string(::getpid()),
          "--worker-id",
          worker_id};
}

inline std::string python_from_env() {
  auto* env = std::getenv("SNAKEPIT_PYTHON");
  return env && *env ? env : "/usr/bin/python3";
}

/// Reads `--name value` style options: `int_option(argc, argv, "--calls", 2000)`.
inline std::string string_option(int argc, char** argv, const std::string& name,
                                 std::string fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name)
      return argv[i + 1];
  return fallback;
}

inline int int_option(int argc, char** argv, const std::string& name, int fallback) {
  auto s = string_option(argc, argv, name, "");
  return s.empty() ? fallback : std::atoi(s.c_str());
}

} // namespace bench
