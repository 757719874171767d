#pragma once

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "snakepit/client/call_options.hpp"
#include "snakepit/client/client_options.hpp"
#include "snakepit/client/pool_info.hpp"
#include "snakepit/client/stream_totals.hpp"
#include "snakepit/messages/result.hpp"
#include "snakepit/messages/value.hpp"

namespace snakepit {

/// A client of a running tree's gateway (`snakepit run`), for programs that
/// call Python tools without CAF: link `snakepit::client` only. Every failure
/// is a typed `error_info` with the same kinds an in-process caller gets
/// (`unknown_tool`, `python_exception`, `timeout`, ...), plus `unavailable`
/// (no gateway answers; the call may or may not have run) and
/// `unauthenticated` (the token).
///
/// Calls share one gRPC stream per client, whose frames carry every call
/// queued while the previous frame was on its way: many threads may call
/// through one client at once, and should (one client per process is the
/// intended use). Thread-safe; movable, not copyable.
class client {
public:
  /// A client of the gateway `options` names. Connecting is lazy: an absent
  /// gateway shows as `unavailable` on the first call. Errors here: an empty
  /// address, or a token, CA, certificate or key file that cannot be read
  /// (`bad_arguments`).
  [[nodiscard]] static result<client> connect(client_options options);

  /// A client of the gateway at `address` with no token and no TLS.
  [[nodiscard]] static result<client> connect(std::string address);

  client(client&&) noexcept;
  client& operator=(client&&) noexcept;
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Ends the client's stream: calls still open get their answers first (up
  /// to `answer_grace`), then fail `unavailable`.
  ~client();

  /// Calls `tool` of `pool` and waits for its result.
  [[nodiscard]] result<value> call(const std::string& pool, const std::string& tool,
                                   value::map arguments = {}, const call_options& options = {});

  /// Calls `tool` of `pool`; `done` runs once with the outcome, on a thread
  /// of the client's (keep it short; never wait there for another call).
  void call_async(const std::string& pool, const std::string& tool, value::map arguments,
                  const call_options& options, std::function<void(result<value>)> done);

  /// Calls `tool` of `pool`; the future holds the outcome.
  [[nodiscard]] std::future<result<value>> call_future(const std::string& pool,
                                                       const std::string& tool,
                                                       value::map arguments = {},
                                                       const call_options& options = {});

  /// Calls `tool` once per argument set, spread over the pool's workers in
  /// chunks (`chunk` sets per worker call; 0: 64). Outcomes come per item, in
  /// input order; the outer error is the gateway's (e.g. `unavailable`).
  [[nodiscard]] result<std::vector<result<value>>>
  map(const std::string& pool, const std::string& tool, std::vector<value::map> items,
      unsigned chunk = 0, const call_options& options = {});

  /// Runs a generator tool and hands each item to `on_item` as it comes (on
  /// the calling thread); `on_item` returns false to stop, which closes the
  /// generator in Python. An error ends the stream (items before it were
  /// delivered).
  [[nodiscard]] result<stream_totals> stream(const std::string& pool, const std::string& tool,
                                             value::map arguments,
                                             const std::function<bool(value&&)>& on_item,
                                             const call_options& options = {});

  /// Opens a session on `pool` (a fresh id when `id` is empty): calls with
  /// `call_options::session_id` set to it run on the same worker.
  [[nodiscard]] result<std::string> open_session(const std::string& pool, std::string id = {});

  /// Closes a session; false when it was not open.
  [[nodiscard]] result<bool> close_session(const std::string& pool, const std::string& id);

  /// The tree's pools with their state and tools.
  [[nodiscard]] result<std::vector<pool_info>> list_pools();

  /// The status document of one pool, or of every pool when `pool` is empty,
  /// as JSON (docs/telemetry.md, "Status document").
  [[nodiscard]] result<std::string> status(const std::string& pool = {});

  /// The gateway's address.
  [[nodiscard]] const std::string& address() const noexcept;

  struct impl;

private:
  explicit client(std::shared_ptr<impl> state);

  std::shared_ptr<impl> impl_;
};

} // namespace snakepit
