#include "snakepit/actors/process_launcher.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <variant>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/error.hpp>
#include <caf/sec.hpp>

#include "snakepit/actors/detail/fork_protocol.hpp"
#include "snakepit/actors/detail/unique_fd.hpp"

extern char** environ;

namespace snakepit {

namespace {

// -- limits -------------------------------------------------------------------------------

/// Longest stdout/stderr line delivered in one piece.
constexpr std::size_t output_line_bytes_max = 64 * 1024;
/// Longest ready line; the rest is dropped.
constexpr std::size_t ready_line_bytes_max = 1024 * 1024;
/// One read() from a pipe.
constexpr std::size_t read_chunk_bytes = 64 * 1024;
/// Bytes read from one pipe per wakeup, so a chatty child cannot starve the others.
constexpr std::size_t read_bytes_per_wakeup_max = 4 * read_chunk_bytes;
/// Bytes read from one pipe after its process exited (a grandchild may keep writing).
constexpr std::size_t final_drain_bytes_max = 4 * 1024 * 1024;
/// Commands executed per wakeup, so a flood of spawns cannot starve the pipes.
constexpr std::size_t commands_per_wakeup_max = 64;
/// Events taken from epoll per wakeup.
constexpr int epoll_events_max = 64;
/// How long teardown waits for SIGKILLed children to die before giving up on reaping.
constexpr auto teardown_wait = std::chrono::seconds(5);
/// Child-side descriptors are moved at or above this number before spawning, so that the
/// dup2 actions onto 0..5 cannot clobber one another.
constexpr int child_fd_floor = 6;
/// Longest sleep of the loop (keeps timeouts within int milliseconds).
constexpr std::chrono::milliseconds loop_timeout_max{60'000};

using clock_type = std::chrono::steady_clock;

// -- small helpers ------------------------------------------------------------------------

std::string errno_text(int err) {
  std::array<char, 256> buf{};
  // GNU strerror_r: returns a pointer to the message (maybe not into buf).
  return ::strerror_r(err, buf.data(), buf.size());
}

void write_all(int fd, std::string_view text) noexcept {
  while (!text.empty()) {
    auto n = ::write(fd, text.data(), text.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

/// Logs one line to stderr with a single write (safe at static teardown).
void log_line(std::string_view text) noexcept {
  try {
    std::string msg;
    msg.reserve(text.size() + 32);
    msg += "[snakepit launcher] ";
    msg += text;
    msg += '\n';
    write_all(STDERR_FILENO, msg);
  } catch (...) {
    write_all(STDERR_FILENO, "[snakepit launcher] (out of memory while logging)\n");
  }
}

caf::error make_launch_error(std::string text) {
  return caf::make_error(caf::sec::runtime_error, std::move(text));
}

/// Storage for an object that is never destroyed (usable during and after static teardown).
template <class T>
class no_destroy {
public:
  template <class... Ts>
  explicit no_destroy(Ts&&... xs) {
    new (storage_) T(std::forward<Ts>(xs)...);
  }
  ~no_destroy() = default;
  no_destroy(const no_destroy&) = delete;
  no_destroy& operator=(const no_destroy&) = delete;

  [[nodiscard]] T& get() noexcept {
    return *std::launder(reinterpret_cast<T*>(storage_));
  }

private:
  alignas(T) unsigned char storage_[sizeof(T)];
};

using detail::unique_fd;

/// A pipe: both ends close-on-exec.
struct pipe_pair {
  unique_fd read_end;
  unique_fd write_end;
};

[[nodiscard]] caf::expected<pipe_pair> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return make_launch_error("pipe2: " + errno_text(errno));
  return pipe_pair{unique_fd{fds[0]}, unique_fd{fds[1]}};
}

[[nodiscard]] bool set_nonblocking(int fd) noexcept {
  auto flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

/// Moves fd to a number >= child_fd_floor (close-on-exec), so dup2 onto 0..5 is safe.
[[nodiscard]] bool raise_fd(unique_fd& fd) noexcept {
  if (fd.get() >= child_fd_floor)
    return true;
  auto moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, child_fd_floor);
  if (moved < 0)
    return false;
  fd.reset(moved);
  return true;
}

[[nodiscard]] int pidfd_open_compat(pid_t pid) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u));
}

/// Splits a byte stream into lines of at most `max` bytes (without the "\n").
class line_splitter {
public:
  explicit line_splitter(std::size_t max) : max_(max) {
    // nop
  }

  /// Feeds bytes, calling `emit(std::string_view)` for each complete line.
  template <class F>
  void feed(std::string_view data, F&& emit) {
    if (just_split_ && !data.empty()) {
      // A line of exactly max bytes was already emitted: its "\n" ends nothing new.
      just_split_ = false;
      if (data.front() == '\n')
        data.remove_prefix(1);
    }
    while (!data.empty()) {
      auto room = max_ - partial_.size();
      auto scan = std::min(data.size(), room);
      auto pos = data.substr(0, scan).find('\n');
      if (pos != std::string_view::npos) {
        emit_line(data.substr(0, pos), emit);
        data.remove_prefix(pos + 1);
      } else if (scan == room) {
        emit_line(data.substr(0, room), emit);
        data.remove_prefix(room);
        if (data.empty())
          just_split_ = true;
        else if (data.front() == '\n')
          data.remove_prefix(1);
      } else {
        partial_.append(data);
        data = {};
      }
    }
  }

  /// Emits an unterminated last line, if any.
  template <class F>
  void flush(F&& emit) {
    just_split_ = false;
    if (!partial_.empty()) {
      std::string line;
      line.swap(partial_);
      emit(std::string_view{line});
    }
  }

private:
  template <class F>
  void emit_line(std::string_view tail, F& emit) {
    if (partial_.empty()) {
      emit(tail);
      return;
    }
    partial_.append(tail);
    std::string line;
    line.swap(partial_);
    emit(std::string_view{line});
  }

  std::size_t max_;
  std::string partial_;
  bool just_split_ = false;
};

// -- default output sink ------------------------------------------------------------------

using sink_fn = std::function<void(std::string_view, bool, std::string_view)>;

struct sink_registry {
  std::mutex mtx;
  std::shared_ptr<const sink_fn> sink; // nullptr: the default sink
};

sink_registry& sinks() {
  // Never destroyed: launcher threads may use it during static teardown.
  static no_destroy<sink_registry> registry;
  return registry.get();
}

std::shared_ptr<const sink_fn> current_sink() {
  auto& reg = sinks();
  std::lock_guard<std::mutex> guard{reg.mtx};
  return reg.sink;
}

void default_sink(std::string_view tag, bool, std::string_view line) {
  std::string text;
  text.reserve(tag.size() + line.size() + 4);
  text += '[';
  text += tag;
  text += "] ";
  text += line;
  text += '\n';
  write_all(STDERR_FILENO, text);
}

/// Calls a user callback; an exception is logged and swallowed.
template <class F, class... Ts>
void invoke_guarded(const char* what, std::string_view tag, F& fn, Ts&&... xs) noexcept {
  if (!fn)
    return;
  try {
    fn(std::forward<Ts>(xs)...);
  } catch (const std::exception& ex) {
    try {
      log_line(std::string{what} + " callback of [" + std::string{tag}
               + "] threw: " + ex.what());
    } catch (...) {
      log_line("a callback threw");
    }
  } catch (...) {
    try {
      log_line(std::string{what} + " callback of [" + std::string{tag}
               + "] threw a non-standard exception");
    } catch (...) {
      log_line("a callback threw");
    }
  }
}

// -- commands -----------------------------------------------------------------------------

struct spawn_cmd {
  std::uint64_t id;
  process_spec spec;
  process_events events;
  /// Non-zero: fork the child from this fork server instead of spawning it.
  std::uint64_t server = 0;
};

struct signal_cmd {
  std::uint64_t id;
  int sig;
};

struct terminate_cmd {
  std::uint64_t id;
  std::chrono::milliseconds grace;
};

using command = std::variant<spawn_cmd, signal_cmd, terminate_cmd>;

// -- children -----------------------------------------------------------------------------

/// Which descriptor of a child an epoll event is for (low 3 bits of the event data).
enum class fd_kind : std::uint64_t { pidfd = 0, out = 1, err = 2, ready = 3, control = 4 };
constexpr unsigned fd_kind_bits = 3;

constexpr std::uint64_t wake_token = 0; // ids start at 1, so no child encodes to 0

[[nodiscard]] std::uint64_t encode(std::uint64_t id, fd_kind kind) noexcept {
  return (id << fd_kind_bits) | static_cast<std::uint64_t>(kind);
}

struct child {
  std::uint64_t id = 0;
  std::string tag;
  pid_t pid = -1;
  unique_fd pidfd;
  unique_fd out;
  unique_fd err;
  unique_fd ready;
  line_splitter out_lines{output_line_bytes_max};
  line_splitter err_lines{output_line_bytes_max};
  std::string ready_buf;
  bool ready_done = false;
  bool terminating = false;
  int reap_attempts = 0;
  process_events events;
  /// A fork server's end of its control socket.
  unique_fd control;
  /// A forked child: its fork server (0: spawned by us, so we reap it).
  std::uint64_t server = 0;
  /// Forked, but the server has not answered yet (no pid).
  bool fork_pending = false;
  /// A terminate that arrived while the fork was pending.
  std::optional<std::chrono::milliseconds> pending_grace;
  /// Forked: the exit status the server reported, and whether its pidfd fired already.
  std::optional<process_exit> reported_exit;
  bool pidfd_fired = false;
};

/// A started process, before it is registered.
struct started_process {
  pid_t pid = -1;
  unique_fd pidfd;
  unique_fd out;
  unique_fd err;
  unique_fd ready;
  unique_fd control;
};

enum class timer_kind { kill, reap_retry, exit_report };

/// How long a forked child's end waits for its server's exit report.
constexpr auto exit_report_wait = std::chrono::seconds(2);

struct timer_entry {
  std::uint64_t id;
  timer_kind kind;
};

/// RAII for posix_spawn attributes and file actions.
struct spawn_attrs {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  spawn_attrs() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~spawn_attrs() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  spawn_attrs(const spawn_attrs&) = delete;
  spawn_attrs& operator=(const spawn_attrs&) = delete;
};

/// Builds the environment: the host's, with `overrides` replacing or adding entries.
[[nodiscard]] caf::expected<std::vector<std::string>>
make_environment(const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::map<std::string, std::string, std::less<>> extra;
  for (const auto& [key, value] : overrides) {
    if (key.empty() || key.find('=') != std::string::npos
        || key.find('\0') != std::string::npos || value.find('\0') != std::string::npos)
      return make_launch_error("invalid environment variable: \"" + key + "\"");
    extra[key] = value;
  }
  std::vector<std::string> result;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view kv{*entry};
    auto key = kv.substr(0, kv.find('='));
    if (extra.find(key) == extra.end())
      result.emplace_back(kv);
  }
  for (const auto& [key, value] : extra)
    result.emplace_back(key + "=" + value);
  return result;
}

[[nodiscard]] std::vector<char*> make_c_array(std::vector<std::string>& strings) {
  std::vector<char*> result;
  result.reserve(strings.size() + 1);
  for (auto& str : strings)
    result.push_back(str.data());
  result.push_back(nullptr);
  return result;
}

/// Kills a just-spawned process that we cannot watch, and reaps it.
void kill_and_reap(pid_t pid) noexcept {
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    // retry
  }
}

// -- the launcher -------------------------------------------------------------------------

class epoll_launcher final : public process_launcher {
public:
  epoll_launcher() {
    if (auto err = init(); !err.empty())
      init_error_ = std::move(err);
  }

  ~epoll_launcher() override {
    if (thread_.joinable() && std::this_thread::get_id() == thread_.get_id()) {
      log_line("FATAL: process launcher destroyed from one of its own callbacks");
      std::abort();
    }
    shutdown();
  }

  epoll_launcher(const epoll_launcher&) = delete;
  epoll_launcher& operator=(const epoll_launcher&) = delete;

  std::uint64_t spawn(process_spec spec, process_events events) override {
    return submit(0, std::move(spec), std::move(events));
  }

  std::uint64_t submit(std::uint64_t server, process_spec spec, process_events events) {
    auto id = next_id_.fetch_add(1, std::memory_order_relaxed);
    std::string refusal;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!init_error_.empty()) {
        refusal = "process launcher unavailable: " + init_error_;
      } else if (stopping_) {
        refusal = "process launcher is shut down";
      } else {
        queue_.emplace_back(spawn_cmd{id, std::move(spec), std::move(events), server});
      }
    }
    if (refusal.empty()) {
      wake();
    } else {
      caf::expected<int> result{make_launch_error(std::move(refusal))};
      invoke_guarded("on_spawned", spec.tag, events.on_spawned, std::move(result));
    }
    return id;
  }

  std::uint64_t spawn_from(std::uint64_t server, process_spec spec,
                           process_events events) override {
    return submit(server, std::move(spec), std::move(events));
  }

  void signal(std::uint64_t id, int sig) override {
    enqueue(signal_cmd{id, sig});
  }

  void terminate(std::uint64_t id, std::chrono::milliseconds grace) override {
    enqueue(terminate_cmd{id, grace});
  }

  std::size_t live_count() const override {
    return live_.load(std::memory_order_acquire);
  }

  /// Stops the thread after SIGKILLing and reaping every child; idempotent. Callbacks of
  /// children still alive are not called and are kept (never destroyed while the object
  /// lives), since what they capture may already be gone at static teardown.
  void shutdown() noexcept {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopping_)
        return;
      stopping_ = true;
    }
    if (!thread_.joinable()) {
      lifeline_write_.reset();
      return;
    }
    if (std::this_thread::get_id() == thread_.get_id()) {
      // exit() called from one of our callbacks: the loop never resumes, so kill and reap
      // from here without touching the bookkeeping the interrupted frame still uses.
      kill_all_and_reap();
      thread_.detach();
    } else {
      wake();
      thread_.join();
    }
    lifeline_write_.reset();
  }

private:
  // -- setup ------------------------------------------------------------------------------

  /// Returns an error text, or an empty string on success.
  std::string init() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_)
      return "epoll_create1: " + errno_text(errno);
    wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_fd_)
      return "eventfd: " + errno_text(errno);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = wake_token;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev) != 0)
      return "epoll_ctl: " + errno_text(errno);
    auto lifeline = make_pipe();
    if (!lifeline)
      return caf::to_string(lifeline.error());
    // The read end stays blocking: children share its open file description.
    lifeline_read_ = std::move(lifeline->read_end);
    lifeline_write_ = std::move(lifeline->write_end);
    if (!raise_fd(lifeline_read_))
      return "fcntl(F_DUPFD_CLOEXEC): " + errno_text(errno);
    // The thread starts with every signal blocked: process-directed signals are for the
    // host's other threads. Children get an empty mask through posix_spawn.
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    std::string result;
    try {
      thread_ = std::thread{[this] { run(); }};
      pthread_setname_np(thread_.native_handle(), "snakepit-launch");
    } catch (const std::exception& ex) {
      result = std::string{"cannot start the launcher thread: "} + ex.what();
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return result;
  }

  // -- called from any thread -------------------------------------------------------------

  void enqueue(command cmd) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopping_ || !init_error_.empty())
        return;
      queue_.emplace_back(std::move(cmd));
    }
    wake();
  }

  void wake() noexcept {
    std::uint64_t one = 1;
    while (::write(wake_fd_.get(), &one, sizeof(one)) < 0 && errno == EINTR) {
      // retry (EAGAIN means the counter is already non-zero: the loop will wake)
    }
  }

  // -- the loop ---------------------------------------------------------------------------

  void run() {
    std::array<epoll_event, epoll_events_max> events{};
    while (!stop_seen_) {
      auto n = ::epoll_wait(epoll_.get(), events.data(), epoll_events_max, next_timeout_ms());
      if (n < 0) {
        if (errno == EINTR)
          continue;
        log_line("FATAL: epoll_wait: " + errno_text(errno));
        std::abort();
      }
      for (int i = 0; i < n; ++i)
        dispatch(events[static_cast<std::size_t>(i)]);
      fire_timers();
    }
    kill_all_and_reap();
    for (auto& [id, c] : children_)
      graveyard_.push_back(std::move(c.events));
    children_.clear();
    live_.store(0, std::memory_order_release);
    // Spawns queued before the stop: answer them like spawns after it.
    std::deque<command> rest;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      rest.swap(queue_);
    }
    for (auto& cmd : rest) {
      if (auto* x = std::get_if<spawn_cmd>(&cmd)) {
        caf::expected<int> result{make_launch_error("process launcher is shut down")};
        invoke_guarded("on_spawned", x->spec.tag, x->events.on_spawned, std::move(result));
        graveyard_.push_back(std::move(x->events));
      }
    }
  }

  void dispatch(const epoll_event& ev) {
    if (ev.data.u64 == wake_token) {
      run_commands();
      return;
    }
    auto id = ev.data.u64 >> fd_kind_bits;
    auto kind = static_cast<fd_kind>(ev.data.u64 & ((1u << fd_kind_bits) - 1));
    auto i = children_.find(id);
    if (i == children_.end())
      return; // stale event of a child finished earlier in this batch
    auto& c = i->second;
    if (kind == fd_kind::pidfd) {
      on_pidfd_ready(c);
    } else if (kind == fd_kind::control) {
      on_control_ready(c);
    } else if (fd_of(c, kind)) {
      if (!read_pipe(c, kind, read_bytes_per_wakeup_max))
        close_pipe(c, kind);
    }
  }

  void run_commands() {
    std::uint64_t counter = 0;
    while (::read(wake_fd_.get(), &counter, sizeof(counter)) < 0 && errno == EINTR) {
      // retry
    }
    std::vector<command> batch;
    bool more = false;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopping_) {
        stop_seen_ = true;
        return; // what is still queued is answered after the loop
      }
      auto n = std::min(queue_.size(), commands_per_wakeup_max);
      batch.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        batch.emplace_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      more = !queue_.empty();
    }
    if (more)
      wake();
    for (auto& cmd : batch)
      std::visit([this](auto& x) { execute(x); }, cmd);
  }

  [[nodiscard]] int next_timeout_ms() const {
    if (timers_.empty())
      return -1;
    auto delta = timers_.begin()->first - clock_type::now();
    if (delta <= clock_type::duration::zero())
      return 0;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(delta);
    return static_cast<int>(std::min(ms, loop_timeout_max).count());
  }

  void fire_timers() {
    auto now = clock_type::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      auto entry = timers_.begin()->second;
      timers_.erase(timers_.begin());
      auto i = children_.find(entry.id);
      if (i == children_.end())
        continue; // already reaped
      if (entry.kind == timer_kind::kill)
        send_group(i->second, SIGKILL);
      else if (entry.kind == timer_kind::exit_report)
        on_exit_report_overdue(i->second);
      else
        on_pidfd_ready(i->second);
    }
  }

  // -- commands ---------------------------------------------------------------------------

  /// Registers a child under a fresh id.
  child& add_child(std::uint64_t id, std::string tag) {
    auto [i, added] = children_.try_emplace(id);
    if (!added) {
      log_line("FATAL: duplicate process id " + std::to_string(id));
      std::abort();
    }
    i->second.id = id;
    i->second.tag = std::move(tag);
    return i->second;
  }

  void execute(spawn_cmd& cmd) {
    if (cmd.server != 0) {
      execute_fork(cmd);
      return;
    }
    auto tag = cmd.spec.tag.empty() ? cmd.spec.executable : cmd.spec.tag;
    auto started = start_process(cmd.spec);
    if (!started) {
      caf::expected<int> result{std::move(started.error())};
      invoke_guarded("on_spawned", tag, cmd.events.on_spawned, std::move(result));
      return;
    }
    auto pid = started->pid;
    auto& c = add_child(cmd.id, std::move(tag));
    c.pid = pid;
    c.pidfd = std::move(started->pidfd);
    c.out = std::move(started->out);
    c.err = std::move(started->err);
    c.ready = std::move(started->ready);
    c.control = std::move(started->control);
    c.events = std::move(cmd.events);
    for (auto kind : {fd_kind::pidfd, fd_kind::out, fd_kind::err, fd_kind::ready,
                      fd_kind::control}) {
      if (kind == fd_kind::control && !c.control)
        continue;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = encode(c.id, kind);
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd_of(c, kind).get(), &ev) != 0) {
        auto err = errno;
        kill_and_reap(pid);
        auto events = std::move(c.events);
        auto tag_copy = std::move(c.tag);
        children_.erase(std::uint64_t{c.id});  // a copy: c dies with the erase
        caf::expected<int> result{make_launch_error("epoll_ctl: " + errno_text(err))};
        invoke_guarded("on_spawned", tag_copy, events.on_spawned, std::move(result));
        return;
      }
    }
    live_.fetch_add(1, std::memory_order_acq_rel);
    invoke_guarded("on_spawned", c.tag, c.events.on_spawned, caf::expected<int>{pid});
  }

  void execute(signal_cmd& cmd) {
    if (auto i = children_.find(cmd.id); i != children_.end() && !i->second.fork_pending)
      send_group(i->second, cmd.sig);
  }

  void execute(terminate_cmd& cmd) {
    auto i = children_.find(cmd.id);
    if (i == children_.end())
      return;
    auto& c = i->second;
    if (c.fork_pending) {  // no pid yet: act once the server answers
      c.pending_grace = cmd.grace;
      return;
    }
    start_terminate(c, cmd.grace);
  }

  void start_terminate(child& c, std::chrono::milliseconds grace) {
    c.terminating = true;
    if (grace <= std::chrono::milliseconds::zero()) {
      send_group(c, SIGKILL);
      return;
    }
    send_group(c, SIGTERM);
    send_group(c, SIGCONT);
    timers_.emplace(clock_type::now() + grace, timer_entry{c.id, timer_kind::kill});
  }

  /// Signals the child's process group. Only called while the child is not reaped, so its
  /// pid (and thereby the group id) cannot have been reused.
  void send_group(const child& c, int sig) noexcept {
    if (c.pid <= 0)
      return;  // a fork not answered yet: kill(-(-1)) would be everyone
    if (::kill(-c.pid, sig) != 0 && errno != ESRCH)
      log_line("kill(-" + std::to_string(c.pid) + ", " + std::to_string(sig) + ") for ["
               + c.tag + "]: " + errno_text(errno));
  }

  [[nodiscard]] caf::expected<started_process> start_process(const process_spec& spec) {
    if (spec.executable.empty())
      return make_launch_error("posix_spawn: empty executable path");
    auto env = make_environment(spec.env);
    if (!env)
      return std::move(env.error());
    std::vector<std::string> args;
    args.reserve(spec.args.size() + 1);
    args.push_back(spec.executable);
    args.insert(args.end(), spec.args.begin(), spec.args.end());
    auto argv = make_c_array(args);
    auto envp = make_c_array(*env);
    auto out = make_pipe();
    if (!out)
      return std::move(out.error());
    auto err = make_pipe();
    if (!err)
      return std::move(err.error());
    auto ready = make_pipe();
    if (!ready)
      return std::move(ready.error());
    for (auto* p : {&*out, &*err, &*ready}) {
      if (!raise_fd(p->write_end) || !set_nonblocking(p->read_end.get()))
        return make_launch_error("fcntl: " + errno_text(errno));
    }
    unique_fd control;
    unique_fd control_child;
    if (spec.fork_server) {
      int pair[2];
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) != 0)
        return make_launch_error("socketpair: " + errno_text(errno));
      control.reset(pair[0]);
      control_child.reset(pair[1]);
      // The server's end blocks: it waits for requests.
      if (!raise_fd(control_child) || ::fcntl(control_child.get(), F_SETFL, 0) != 0)
        return make_launch_error("fcntl: " + errno_text(errno));
    }
    spawn_attrs sa;
    short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    sigset_t empty;
    sigemptyset(&empty);
    sigset_t defaults;
    sigfillset(&defaults);
    sigdelset(&defaults, SIGKILL);
    sigdelset(&defaults, SIGSTOP);
    int rc = posix_spawnattr_setflags(&sa.attr, flags);
    if (rc == 0)
      rc = posix_spawnattr_setpgroup(&sa.attr, 0);
    if (rc == 0)
      rc = posix_spawnattr_setsigmask(&sa.attr, &empty);
    if (rc == 0)
      rc = posix_spawnattr_setsigdefault(&sa.attr, &defaults);
    if (rc == 0)
      rc = posix_spawn_file_actions_addopen(&sa.actions, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
      rc = posix_spawn_file_actions_adddup2(&sa.actions, out->write_end.get(), 1);
    if (rc == 0)
      rc = posix_spawn_file_actions_adddup2(&sa.actions, err->write_end.get(), 2);
    if (rc == 0)
      rc = posix_spawn_file_actions_adddup2(&sa.actions, ready->write_end.get(), 3);
    if (rc == 0)
      rc = posix_spawn_file_actions_adddup2(&sa.actions, lifeline_read_.get(), 4);
    if (rc == 0 && control_child)
      rc = posix_spawn_file_actions_adddup2(&sa.actions, control_child.get(), 5);
    if (rc == 0 && !spec.working_dir.empty())
      rc = posix_spawn_file_actions_addchdir_np(&sa.actions, spec.working_dir.c_str());
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
    // Also drops descriptors other code in the host opened without O_CLOEXEC.
    if (rc == 0)
      rc = posix_spawn_file_actions_addclosefrom_np(&sa.actions, control_child ? 6 : 5);
#endif
    if (rc != 0)
      return make_launch_error("posix_spawn setup: " + errno_text(rc));
    pid_t pid = -1;
    rc = ::posix_spawn(&pid, spec.executable.c_str(), &sa.actions, &sa.attr, argv.data(),
                       envp.data());
    // The child's ends live in the child only.
    out->write_end.reset();
    err->write_end.reset();
    ready->write_end.reset();
    control_child.reset();
    if (rc != 0)
      return make_launch_error("posix_spawn " + spec.executable + ": " + errno_text(rc));
    unique_fd pidfd{pidfd_open_compat(pid)};
    if (!pidfd) {
      auto e = errno;
      kill_and_reap(pid);
      return make_launch_error("pidfd_open: " + errno_text(e));
    }
    return started_process{pid,
                           std::move(pidfd),
                           std::move(out->read_end),
                           std::move(err->read_end),
                           std::move(ready->read_end),
                           std::move(control)};
  }

  // -- pipes ------------------------------------------------------------------------------

  [[nodiscard]] static unique_fd& fd_of(child& c, fd_kind kind) noexcept {
    switch (kind) {
      case fd_kind::out:
        return c.out;
      case fd_kind::err:
        return c.err;
      case fd_kind::ready:
        return c.ready;
      case fd_kind::control:
        return c.control;
      default:
        return c.pidfd;
    }
  }

  /// Reads up to `budget` bytes; returns false at EOF (or on a read error).
  [[nodiscard]] bool read_pipe(child& c, fd_kind kind, std::size_t budget) {
    auto fd = fd_of(c, kind).get();
    while (budget > 0) {
      auto n = ::read(fd, buf_.data(), std::min(buf_.size(), budget));
      if (n > 0) {
        auto len = static_cast<std::size_t>(n);
        budget -= len;
        consume(c, kind, std::string_view{buf_.data(), len});
      } else if (n == 0) {
        return false;
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return true;
      } else {
        log_line("read from [" + c.tag + "]: " + errno_text(errno));
        return false;
      }
    }
    return true;
  }

  void consume(child& c, fd_kind kind, std::string_view data) {
    switch (kind) {
      case fd_kind::out:
        c.out_lines.feed(data, [&](std::string_view line) { deliver(c, false, line); });
        break;
      case fd_kind::err:
        c.err_lines.feed(data, [&](std::string_view line) { deliver(c, true, line); });
        break;
      case fd_kind::ready:
        consume_ready(c, data);
        break;
      default:
        break;
    }
  }

  void consume_ready(child& c, std::string_view data) {
    if (c.ready_done)
      return; // keep draining (a closed pipe would hand the child EPIPE / SIGPIPE)
    auto room = ready_line_bytes_max - c.ready_buf.size();
    auto scan = data.substr(0, std::min(data.size(), room));
    auto pos = scan.find('\n');
    if (pos == std::string_view::npos && scan.size() < room) {
      c.ready_buf.append(scan);
      return;
    }
    c.ready_buf.append(scan.substr(0, pos)); // npos: the whole (truncated) scan
    c.ready_done = true;
    std::string line;
    line.swap(c.ready_buf);
    invoke_guarded("on_ready_line", c.tag, c.events.on_ready_line, std::move(line));
  }

  void deliver(child& c, bool is_stderr, std::string_view line) {
    if (c.events.on_output) {
      invoke_guarded("on_output", c.tag, c.events.on_output, is_stderr, line);
      return;
    }
    if (auto sink = current_sink()) {
      invoke_guarded("output sink", c.tag, *sink, std::string_view{c.tag}, is_stderr, line);
      return;
    }
    default_sink(c.tag, is_stderr, line);
  }

  /// Flushes what is left of a pipe's partial line and closes it.
  void close_pipe(child& c, fd_kind kind) {
    auto& fd = fd_of(c, kind);
    if (!fd)
      return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd.get(), nullptr);
    fd.reset();
    if (kind == fd_kind::out)
      c.out_lines.flush([&](std::string_view line) { deliver(c, false, line); });
    else if (kind == fd_kind::err)
      c.err_lines.flush([&](std::string_view line) { deliver(c, true, line); });
    // An unterminated ready line does not count.
  }

  // -- exits ------------------------------------------------------------------------------

  void on_pidfd_ready(child& c) {
    if (c.terminating)
      send_group(c, SIGKILL); // the leader is a zombie now, still holding the group id
    if (c.server != 0) {
      on_forked_pidfd_ready(c);
      return;
    }
    int status = 0;
    pid_t rc;
    do {
      rc = ::waitpid(c.pid, &status, WNOHANG);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
      // Not reapable yet (should not happen): retry soon instead of spinning on the
      // level-triggered pidfd.
      if (c.pidfd)
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.pidfd.get(), nullptr);
      auto delay = std::chrono::milliseconds{1 << std::min(c.reap_attempts++, 7)};
      timers_.emplace(clock_type::now() + delay, timer_entry{c.id, timer_kind::reap_retry});
      return;
    }
    process_exit result;
    result.pid = c.pid;
    if (rc < 0) {
      log_line("waitpid(" + std::to_string(c.pid) + ") for [" + c.tag
               + "]: " + errno_text(errno) + " (is SIGCHLD ignored?)");
      result.code = -1;
    } else if (WIFSIGNALED(status)) {
      result.signaled = true;
      result.code = WTERMSIG(status);
    } else {
      result.code = WEXITSTATUS(status);
    }
    finish(c, result);
  }

  // -- fork servers and their children ------------------------------------------------------

  void execute_fork(spawn_cmd& cmd) {
    auto tag = cmd.spec.tag.empty() ? std::string{"forked"} : cmd.spec.tag;
    auto fail = [&](std::string why) {
      caf::expected<int> result{make_launch_error(std::move(why))};
      invoke_guarded("on_spawned", tag, cmd.events.on_spawned, std::move(result));
    };
    auto srv = children_.find(cmd.server);
    if (srv == children_.end() || !srv->second.control) {
      fail("fork server " + std::to_string(cmd.server) + " is gone");
      return;
    }
    auto request = detail::encode_fork_request(cmd.id, cmd.spec);
    if (!request) {
      fail(caf::to_string(request.error()));
      return;
    }
    auto out = make_pipe();
    auto err = make_pipe();
    auto ready = make_pipe();
    if (!out || !err || !ready) {
      fail("pipe2: " + errno_text(errno));
      return;
    }
    for (auto* p : {&*out, &*err, &*ready}) {
      if (!set_nonblocking(p->read_end.get())) {
        fail("fcntl: " + errno_text(errno));
        return;
      }
    }
    std::array<int, detail::fork_request_fds> fds{out->write_end.get(), err->write_end.get(),
                                                 ready->write_end.get(), lifeline_read_.get()};
    if (auto rc = detail::send_fork_message(srv->second.control.get(), *request, fds.data(),
                                            fds.size());
        rc != 0) {
      fail("fork server [" + srv->second.tag + "]: "
           + (rc == EAGAIN ? std::string{"its request queue is full"} : errno_text(rc)));
      return;
    }
    // The write ends now live in the server (and then in the child) only.
    auto& c = add_child(cmd.id, std::move(tag));
    c.server = cmd.server;
    c.fork_pending = true;
    c.out = std::move(out->read_end);
    c.err = std::move(err->read_end);
    c.ready = std::move(ready->read_end);
    c.events = std::move(cmd.events);
    for (auto kind : {fd_kind::out, fd_kind::err, fd_kind::ready})
      watch(c, kind);
  }

  void watch(child& c, fd_kind kind) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = encode(c.id, kind);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd_of(c, kind).get(), &ev) != 0)
      log_line("epoll_ctl for [" + c.tag + "]: " + errno_text(errno));
  }

  /// Messages from a fork server.
  void on_control_ready(child& srv) {
    auto server_id = srv.id;
    for (int budget = 64; budget > 0; --budget) {
      auto msg = detail::receive_fork_message(srv.control.get());
      if (!msg)
        return;
      using kind = detail::fork_message::kind;
      if (msg->what == kind::closed) {
        close_control(srv);
        return;
      }
      if (msg->what == kind::invalid) {
        log_line("fork server [" + srv.tag + "]: " + msg->text);
        continue;
      }
      if (msg->what == kind::exited) {
        if (auto* c = forked_child(server_id, msg->pid)) {
          process_exit how;
          how.pid = msg->pid;
          how.signaled = msg->signaled;
          how.code = msg->code;
          c->reported_exit = how;
          if (c->pidfd_fired)
            finish(*c, how);
        }
        continue;
      }
      auto i = children_.find(msg->req);
      if (i == children_.end() || i->second.server != server_id || !i->second.fork_pending) {
        if (msg->what == kind::forked)  // its actor is gone: nobody will stop it
          ::kill(-msg->pid, SIGKILL);
        continue;
      }
      auto& c = i->second;
      if (msg->what == kind::failed) {
        abandon_fork(c, "fork server [" + srv.tag + "]: " + msg->text);
        continue;
      }
      c.fork_pending = false;
      c.pid = msg->pid;
      c.pidfd = std::move(msg->pidfd);
      watch(c, fd_kind::pidfd);
      live_.fetch_add(1, std::memory_order_acq_rel);
      invoke_guarded("on_spawned", c.tag, c.events.on_spawned, caf::expected<int>{c.pid});
      if (c.pending_grace)
        start_terminate(c, *c.pending_grace);
    }
    // Budget spent: epoll is level-triggered, so the rest comes at the next wakeup.
  }

  [[nodiscard]] child* forked_child(std::uint64_t server, int pid) {
    for (auto& [id, c] : children_)
      if (c.server == server && c.pid == pid && !c.fork_pending)
        return &c;
    return nullptr;
  }

  /// A pending fork that will not happen: report it and forget the child.
  void abandon_fork(child& c, std::string why) {
    for (auto kind : {fd_kind::out, fd_kind::err, fd_kind::ready})
      close_pipe(c, kind);
    auto events = std::move(c.events);
    auto tag = std::move(c.tag);
    children_.erase(std::uint64_t{c.id});  // a copy: c dies with the erase
    caf::expected<int> result{make_launch_error(std::move(why))};
    invoke_guarded("on_spawned", tag, events.on_spawned, std::move(result));
  }

  /// The server's control socket ended (it exited or closed it): its pending forks fail,
  /// and its running children end without a status.
  void close_control(child& srv) {
    if (!srv.control)
      return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, srv.control.get(), nullptr);
    srv.control.reset();
    std::vector<std::uint64_t> pending;
    std::vector<std::uint64_t> waiting;
    for (auto& [id, c] : children_) {
      if (c.server != srv.id)
        continue;
      if (c.fork_pending)
        pending.push_back(id);
      else if (c.pidfd_fired)
        waiting.push_back(id);
    }
    auto tag = srv.tag;
    for (auto id : pending)
      abandon_fork(children_.at(id), "fork server [" + tag + "] exited before forking");
    for (auto id : waiting)
      finish(children_.at(id), unknown_exit(children_.at(id)));
  }

  [[nodiscard]] static process_exit unknown_exit(const child& c) {
    process_exit how;
    how.pid = c.pid;
    how.code = -1;
    return how;
  }

  [[nodiscard]] bool server_alive(const child& c) const {
    auto i = children_.find(c.server);
    return i != children_.end() && i->second.control;
  }

  void on_forked_pidfd_ready(child& c) {
    if (c.pidfd) {  // level-triggered: once is enough
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.pidfd.get(), nullptr);
      c.pidfd.reset();
    }
    c.pidfd_fired = true;
    if (c.reported_exit) {
      finish(c, *c.reported_exit);
    } else if (!server_alive(c)) {
      finish(c, unknown_exit(c));
    } else {
      timers_.emplace(clock_type::now() + exit_report_wait,
                      timer_entry{c.id, timer_kind::exit_report});
    }
  }

  void on_exit_report_overdue(child& c) {
    log_line("no exit status for [" + c.tag + "] from its fork server");
    finish(c, unknown_exit(c));
  }

  /// Drains the pipes of a reaped child, then reports its exit and forgets it.
  void finish(child& c, const process_exit& result) {
    if (c.server != 0) {  // let the server reap it now that we are done with its pid
      if (auto srv = children_.find(c.server); srv != children_.end() && srv->second.control) {
        auto reap = detail::encode_reap(c.pid);
        static_cast<void>(detail::send_fork_message(srv->second.control.get(), reap, nullptr, 0));
      }
    }
    if (c.control)
      close_control(c);
    live_.fetch_sub(1, std::memory_order_acq_rel);
    for (auto kind : {fd_kind::out, fd_kind::err, fd_kind::ready}) {
      if (fd_of(c, kind)) {
        // Bounded: a surviving grandchild may hold the pipe open and keep writing.
        static_cast<void>(read_pipe(c, kind, final_drain_bytes_max));
        close_pipe(c, kind);
      }
    }
    if (c.pidfd) {
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.pidfd.get(), nullptr);
      c.pidfd.reset();
    }
    invoke_guarded("on_exit", c.tag, c.events.on_exit, result);
    auto id = c.id; // c dies with the erase
    children_.erase(id);
  }

  /// SIGKILLs every group and reaps what dies within `teardown_wait`. Leaves the
  /// bookkeeping alone (may run inside a callback frame when exit() is called there).
  void kill_all_and_reap() noexcept {
    for (auto& [id, c] : children_)
      send_group(c, SIGKILL);
    auto deadline = clock_type::now() + teardown_wait;
    for (auto& [id, c] : children_) {
      if (c.server != 0 || c.pid <= 0)
        continue;  // a fork server's child: the server reaps it (or init, once it is gone)
      for (;;) {
        auto rc = ::waitpid(c.pid, nullptr, WNOHANG);
        if (rc != 0 && !(rc < 0 && errno == EINTR))
          break; // reaped, or not ours to reap
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock_type::now());
        if (left <= std::chrono::milliseconds::zero() || !c.pidfd) {
          log_line("could not reap [" + c.tag + "] (pid " + std::to_string(c.pid)
                   + ") at shutdown");
          break;
        }
        pollfd pfd{c.pidfd.get(), POLLIN, 0};
        ::poll(&pfd, 1, static_cast<int>(left.count()));
      }
    }
  }

  // -- state ------------------------------------------------------------------------------

  // Shared with other threads (guarded by mtx_ unless atomic).
  mutable std::mutex mtx_;
  std::deque<command> queue_;
  bool stopping_ = false;
  std::string init_error_; // written before the thread starts, then read-only
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<std::size_t> live_{0};

  // Descriptors (set up before the thread starts).
  unique_fd epoll_;
  unique_fd wake_fd_;
  unique_fd lifeline_read_;
  unique_fd lifeline_write_;

  // Owned by the launcher thread.
  bool stop_seen_ = false;
  std::unordered_map<std::uint64_t, child> children_;
  std::multimap<clock_type::time_point, timer_entry> timers_;
  std::array<char, read_chunk_bytes> buf_{};
  std::vector<process_events> graveyard_;

  std::thread thread_; // last: starts after everything above exists
};

std::atomic<epoll_launcher*> default_instance{nullptr};

void shut_down_default_launcher() {
  if (auto* instance = default_instance.load())
    instance->shutdown();
}

} // namespace

// -- public API ---------------------------------------------------------------------------

std::string process_exit::describe() const {
  if (!signaled)
    return "exited with code " + std::to_string(code);
  auto result = "killed by signal " + std::to_string(code);
  if (const char* abbrev = ::sigabbrev_np(code)) {
    result += " (SIG";
    result += abbrev;
    result += ')';
  }
  return result;
}

process_launcher& default_process_launcher() {
  // Never destroyed, so that a call during or after static teardown still finds a valid
  // (shut down) object; the teardown itself runs as an exit handler registered right
  // after construction, ordered like the destructor of a static constructed here.
  static no_destroy<epoll_launcher> instance;
  static const bool registered = [] {
    default_instance.store(&instance.get());
    if (std::atexit(shut_down_default_launcher) != 0)
      log_line("cannot register the process launcher's exit handler");
    return true;
  }();
  static_cast<void>(registered);
  return instance.get();
}

std::unique_ptr<process_launcher> make_process_launcher() {
  return std::make_unique<epoll_launcher>();
}

void set_default_output_sink(
  std::function<void(std::string_view tag, bool is_stderr, std::string_view line)> sink) {
  std::shared_ptr<const sink_fn> ptr;
  if (sink)
    ptr = std::make_shared<const sink_fn>(std::move(sink));
  auto& reg = sinks();
  std::lock_guard<std::mutex> guard{reg.mtx};
  reg.sink.swap(ptr);
  // The old sink is destroyed after the lock is released (ptr leaves scope after guard).
}

} // namespace snakepit
