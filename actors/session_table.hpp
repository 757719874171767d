#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <caf/timespan.hpp>
#include <caf/timestamp.hpp>

namespace snakepit {

/// How strongly a pool keeps a session's requests on its worker.
enum class affinity_mode {
  /// Prefer the session's worker; when it is busy or gone, use any free one
  /// and mark the session moved (the tool sees `ctx.session_moved`).
  hint,
  /// Wait in the queue for the session's worker; fail when it is gone.
  strict_queue,
  /// Fail at once when the session's worker is busy or gone.
  strict_fail_fast,
};

std::optional<affinity_mode> parse_affinity_mode(const std::string& name);
const char* to_string(affinity_mode mode);

/// One open session as the pool sees it.
struct session_entry {
  std::string id;
  /// The worker holding its Python state; empty until its first call.
  std::string worker;
  /// That worker is gone (crashed, recycled): its state is lost.
  bool lost = false;
  /// Its next call goes to a worker that has not seen it.
  bool moved = false;
  caf::timestamp opened;
  caf::timestamp last_used;
  std::uint64_t calls = 0;
};

/// The host's session store of one pool: open sessions, the worker each is
/// bound to, expiry after `ttl` without use, at most `max_sessions` at once.
/// Plain data owned by the pool actor (not thread-safe).
class session_table {
public:
  session_table(std::size_t max_sessions, caf::timespan ttl);

  /// Opens a session; `id` empty: a fresh random one. Fails when
  /// `max_sessions` are open or the id is taken.
  caf::expected<std::string> open(std::string id, caf::timestamp now);

  /// Removes a session; returns it (to tell its worker), or nothing.
  std::optional<session_entry> close(const std::string& id);

  session_entry* find(const std::string& id);

  /// Removes and returns the sessions unused for `ttl` before `now`.
  std::vector<session_entry> expire(caf::timestamp now);

  /// Marks the sessions bound to `worker` lost (its process is gone).
  void worker_gone(const std::string& worker);

  /// Sessions bound to `worker` and not lost.
  std::size_t bound_to(const std::string& worker) const;

  std::size_t size() const noexcept {
    return sessions_.size();
  }

  std::size_t max_sessions() const noexcept {
    return max_sessions_;
  }

  caf::timespan ttl() const noexcept {
    return ttl_;
  }

private:
  std::size_t max_sessions_;
  caf::timespan ttl_;
  std::map<std::string, session_entry> sessions_;
};

} // namespace snakepit
