#pragma once

#include <cstdint>
#include <string>

// The kinds of failure snakepit reports, and their flat, printable form.
// Free of CAF: `snakepit::client` (no CAF) and the actors share them.

namespace snakepit {

/// Every failure snakepit reports to a caller. In-process it travels inside a
/// `caf::error` of category `snakepit` (messages/error.hpp); through the
/// gateway as a `Failure` whose kind is `to_string(errc)`.
enum class errc : std::uint8_t {
  /// The adapter has no tool of that name; the message lists the known ones.
  unknown_tool = 1,
  /// Arguments missing, unexpected or of the wrong type.
  bad_arguments,
  /// The tool raised; python_type and traceback say what and where.
  python_exception,
  /// A result (or argument) has no wire form; the message names the type.
  encode_failed,
  /// The worker process died during the call (exit code or signal in the message).
  worker_crashed,
  /// The request passed its deadline (in the queue or in a worker).
  timeout,
  /// No free worker and the queue is full, or the queue timeout passed.
  pool_saturated,
  /// A request or result is over the pool's `max_payload_bytes`.
  payload_too_large,
  /// A worker could not start: bad interpreter, adapter import error, timeout.
  startup_failed,
  /// The configuration is invalid; the message says which key and why.
  bad_config,
  /// The pool is stopping or stopped and takes no more requests.
  pool_stopped,
  /// A supervisor exceeded its restart intensity and gave up.
  restart_intensity_exceeded,
  /// A worker was replaced on purpose (deadline kill, recycle): an exit reason,
  /// not counted toward restart intensity.
  worker_replaced,
  /// A bug in snakepit or an unexpected transport failure.
  internal,
  /// The request names a session the pool does not have: never opened,
  /// closed, or expired after `session_ttl` without use.
  session_unknown,
  /// The session's worker is gone (crashed, recycled): its Python state is
  /// lost. Open a new session.
  session_lost,
  /// `strict_fail_fast` affinity: the session's worker is busy.
  session_busy,
  /// `start_child` with the id of a running child (OTP's already_started);
  /// `started_child(err)` gives its handle.
  already_started,
  /// `start_child` with the id of a kept, not running child spec (OTP's
  /// already_present): use restart_child or delete_child.
  already_present,
  /// restart_child / delete_child of a child that runs (OTP's running).
  child_running,
  /// The supervisor has no child of that id (OTP's not_found).
  child_unknown,
  /// A start function's answer "ignore" (OTP's `ignore`, see
  /// `ignore_child()`): nothing runs, the spec is kept (dropped if
  /// temporary), and the supervisor goes on with the next child.
  ignored,
  /// A client lost its gateway (connection refused or dropped, the tree
  /// stopped) before the call had an answer: it may or may not have run.
  unavailable,
  /// The gateway refused the client's token (or it sent none).
  unauthenticated,
  /// The node that runs the pool cannot be reached, or went down while the
  /// call was there: it may or may not have run.
  node_down,
  /// The request (same tool and arguments) crashed workers `poison_threshold`
  /// times within `poison_ttl_ms`: refused at once instead of killing another
  /// worker, until its taint expires. Fix the tool or its input.
  poison_request,
  /// The pool's circuit breaker is open after repeated worker crashes: the
  /// call was refused without running; the message says when to retry.
  circuit_open,
};

/// Stable lower-case name of a code, e.g. "unknown_tool".
std::string to_string(errc x);

/// Parses a name produced by `to_string(errc)`; `errc::internal` when unknown.
errc errc_from_string(const std::string& name);

/// A flat, printable view of any error a snakepit call can return: what an
/// in-process caller reads from a `caf::error` with `describe`, and what a
/// `snakepit::client` call returns.
struct error_info {
  std::string kind;
  std::string message;
  std::string python_type;
  std::string traceback;
  errc code = errc::internal;

  /// An error of `code` saying `message`.
  static error_info of(errc code, std::string message);

  /// `{"error": {"kind": ..., "message": ..., "python_type": ..., "traceback": ...}}`
  std::string to_json() const;
};

/// "kind: message" (and the Python type when there is one), for logs.
std::string to_string(const error_info& x);

} // namespace snakepit
