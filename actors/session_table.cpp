#include "snakepit/actors/session_table.hpp"

#include <random>

#include <fmt/format.h>

#include "snakepit/messages/error.hpp"

namespace snakepit {

std::optional<affinity_mode> parse_affinity_mode(const std::string& name) {
  for (auto mode : {affinity_mode::hint, affinity_mode::strict_queue,
                    affinity_mode::strict_fail_fast})
    if (name == to_string(mode))
      return mode;
  return std::nullopt;
}

const char* to_string(affinity_mode mode) {
  switch (mode) {
    case affinity_mode::hint: return "hint";
    case affinity_mode::strict_queue: return "strict_queue";
    default: return "strict_fail_fast";
  }
}

session_table::session_table(std::size_t max_sessions, caf::timespan ttl)
  : max_sessions_(max_sessions), ttl_(ttl) {
}

caf::expected<std::string> session_table::open(std::string id, caf::timestamp now) {
  if (sessions_.size() >= max_sessions_)
    return make_error(errc::pool_saturated,
                      fmt::format("{} sessions are open (max_sessions); close sessions you "
                                  "no longer need, or raise max_sessions",
                                  sessions_.size()));
  if (id.empty()) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    do
      id = fmt::format("s-{:016x}", rng());
    while (sessions_.count(id) > 0);
  } else if (sessions_.count(id) > 0) {
    return make_error(errc::bad_arguments,
                      fmt::format("session '{}' is already open; close it first or "
                                  "use another id",
                                  id));
  }
  session_entry e;
  e.id = id;
  e.opened = now;
  e.last_used = now;
  sessions_.emplace(id, std::move(e));
  return id;
}

std::optional<session_entry> session_table::close(const std::string& id) {
  auto i = sessions_.find(id);
  if (i == sessions_.end())
    return std::nullopt;
  auto out = std::move(i->second);
  sessions_.erase(i);
  return out;
}

session_entry* session_table::find(const std::string& id) {
  auto i = sessions_.find(id);
  return i == sessions_.end() ? nullptr : &i->second;
}

std::vector<session_entry> session_table::expire(caf::timestamp now) {
  std::vector<session_entry> out;
  for (auto i = sessions_.begin(); i != sessions_.end();) {
    if (now - i->second.last_used >= ttl_) {
      out.push_back(std::move(i->second));
      i = sessions_.erase(i);
    } else {
      ++i;
    }
  }
  return out;
}

void session_table::worker_gone(const std::string& worker) {
  for (auto& [id, e] : sessions_)
    if (e.worker == worker)
      e.lost = true;
}

std::size_t session_table::bound_to(const std::string& worker) const {
  std::size_t n = 0;
  for (auto& [id, e] : sessions_)
    if (e.worker == worker && !e.lost)
      ++n;
  return n;
}

} // namespace snakepit
