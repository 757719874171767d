#pragma once

// Starts worker processes, reads their output, learns of their deaths at once and signals
// them, all from one long-lived thread per host process. Actors never block on it: they
// call the non-blocking methods of `process_launcher`, and the launcher reports back
// through callbacks that run on its own thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/expected.hpp>

namespace snakepit {

/// How a child process ended.
struct process_exit {
  /// Process id of the child (no longer valid: the child has been reaped).
  int pid = 0;
  /// Whether a signal killed the child.
  bool signaled = false;
  /// Exit status, or the signal number when `signaled`. -1 when the status could not be
  /// collected (someone else reaped the child, e.g. because SIGCHLD is ignored).
  int code = 0;

  /// Renders the outcome: "exited with code 3" / "killed by signal 9 (SIGKILL)".
  [[nodiscard]] std::string describe() const;
};

/// What to start. The child gets: fd 0 = /dev/null, fd 1 and 2 = pipes the launcher reads,
/// fd 3 = write end of a fresh "ready" pipe, fd 4 = read end of the host's lifeline pipe
/// (its write end stays in the host only, so EOF on fd 4 means the host is gone). Nothing
/// else: every other descriptor is closed in the child. The child runs in its own process
/// group (pgid = pid) with an empty signal mask and default signal dispositions.
struct process_spec {
  /// Absolute path of the program (no PATH search).
  std::string executable;
  /// `argv[1..]`; `argv[0]` is `executable`.
  std::vector<std::string> args;
  /// Set on top of the host's environment (overrides; the last of duplicate keys wins).
  std::vector<std::pair<std::string, std::string>> env;
  /// Names the process in logs, e.g. "demo/w-3".
  std::string tag;
  /// The child's working directory; empty: the host's.
  std::string working_dir;
  /// Start a fork server (see `spawn_from`): the child also gets fd 5, its end of a
  /// SOCK_SEQPACKET control socket.
  bool fork_server = false;
};

/// Callbacks, all invoked on the launcher thread, never concurrently for one process.
/// A callback that throws is logged to stderr and otherwise ignored. Callbacks may call
/// back into the launcher (`spawn`, `signal`, `terminate` only queue work).
struct process_events {
  /// The pid, or why spawning failed (an error whose context carries the errno text).
  /// Always the first callback; after an error no other callback follows.
  std::function<void(caf::expected<int> pid)> on_spawned;
  /// The first line written to fd 3, without its "\n"; at most once. A line longer than
  /// 1 MiB is truncated to 1 MiB. An unterminated line at EOF does not count.
  std::function<void(std::string line)> on_ready_line;
  /// Each line of stdout / stderr, without its "\n"; lines longer than 64 KiB are split
  /// into pieces of 64 KiB. An unterminated last line is delivered before `on_exit`.
  /// When empty, lines go to the default output sink (see `set_default_output_sink`).
  std::function<void(bool is_stderr, std::string_view line)> on_output;
  /// Exactly once, last, after the process is reaped and its pipes drained.
  std::function<void(process_exit)> on_exit;
};

/// Starts and watches child processes without blocking its callers.
class process_launcher {
public:
  virtual ~process_launcher() = default;

  /// Queues a start; returns at once with an id the caller uses for the calls below
  /// (the pid is not known yet). Reports through `events.on_spawned`.
  /// On a launcher that has shut down (static teardown), `on_spawned` receives an error
  /// at once, on the calling thread.
  virtual std::uint64_t spawn(process_spec spec, process_events events) = 0;

  /// Has the fork server `server` (a child spawned with `process_spec::fork_server`, see
  /// python/snakepit_bridge/fork_server.py) fork a child that runs with `spec.args`,
  /// `spec.env` applied on top of the server's environment, and `spec.working_dir`
  /// (`spec.executable` is not used). The child gets fds 1-4 as a spawned one does, and its
  /// own process group; reports come through `events` as for `spawn`. Its exit status comes
  /// from the server: if the server is gone by then, `on_exit` has `code` -1. A server that
  /// is unknown, gone, or does not answer the request fails it through `on_spawned`. Requests
  /// sent while the server still starts wait in its control socket.
  virtual std::uint64_t spawn_from(std::uint64_t server, process_spec spec,
                                   process_events events) = 0;

  /// Sends `sig` to the process group of the process (`kill(-pgid, sig)`); no-op after
  /// exit or for an unknown id.
  virtual void signal(std::uint64_t id, int sig) = 0;

  /// SIGTERM (followed by SIGCONT, so a stopped group can act on it) to the group now;
  /// SIGKILL to the group after `grace` if the process has not exited by then. When the
  /// process exits while a terminate is pending, the rest of its group gets SIGKILL too.
  /// A grace of zero or less sends SIGKILL at once.
  virtual void terminate(std::uint64_t id, std::chrono::milliseconds grace) = 0;

  /// Number of live children (spawned and not yet reaped).
  [[nodiscard]] virtual std::size_t live_count() const = 0;
};

/// The launcher of this host process: started on first use, lives until exit (its thread
/// is the parent of every worker, so a worker's parent-death signal fires only when the
/// host process dies). At static destruction it SIGKILLs every remaining process group and
/// reaps it; callbacks of processes still alive then are not called, and spawns still
/// queued get an error through `on_spawned`. Safe to call first from a static initializer
/// or after `main` returns (once torn down, `spawn` answers with an error at once).
[[nodiscard]] process_launcher& default_process_launcher();

/// Creates a separate launcher with its own thread and lifeline pipe. Destroying it
/// SIGKILLs and reaps its remaining children without calling their callbacks (spawns still
/// queued get an error through `on_spawned`), and closes its lifeline. Meant for tests and embedders that want isolation; note that the
/// parent-death signal of its children fires when it is destroyed (its thread ends).
/// Must not be destroyed from inside one of its own callbacks.
[[nodiscard]] std::unique_ptr<process_launcher> make_process_launcher();

/// Where output lines go when a spawn gives no `on_output`: "[tag] line" to stderr by
/// default. An empty function restores the default. May be called from any thread;
/// the sink runs on a launcher thread.
void set_default_output_sink(
  std::function<void(std::string_view tag, bool is_stderr, std::string_view line)> sink);

} // namespace snakepit

// Sent between local actors only (a launcher reports to its own process).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(snakepit::process_exit)
