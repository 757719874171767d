#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <caf/timestamp.hpp>

namespace snakepit::detail {

/// Deadlines of many calls behind one timer: an actor arms a single delayed
/// message for the earliest deadline instead of one per call (a CAF timer per
/// call costs a timer-thread wake-up and lingers until it fires).
class deadline_set {
public:
  /// Adds a deadline; returns the time to arm a timer for when it is earlier
  /// than every timer armed so far.
  std::optional<caf::timestamp> add(caf::timestamp at, std::uint64_t key) {
    entries_.emplace(at, key);
    if (armed_.empty() || at < *armed_.begin()) {
      armed_.insert(at);
      return at;
    }
    return std::nullopt;
  }

  void remove(caf::timestamp at, std::uint64_t key) {
    entries_.erase({at, key});
  }

  /// A timer armed for `tick_at` fired at `now`: returns the keys now due
  /// (removed from the set) and sets `rearm_at` when a new timer is needed.
  std::vector<std::uint64_t> on_tick(caf::timestamp tick_at, caf::timestamp now,
                                     std::optional<caf::timestamp>& rearm_at) {
    if (auto i = armed_.find(tick_at); i != armed_.end())
      armed_.erase(i);
    std::vector<std::uint64_t> due;
    while (!entries_.empty() && entries_.begin()->first <= now) {
      due.push_back(entries_.begin()->second);
      entries_.erase(entries_.begin());
    }
    rearm_at.reset();
    if (!entries_.empty() && (armed_.empty() || entries_.begin()->first < *armed_.begin())) {
      rearm_at = entries_.begin()->first;
      armed_.insert(*rearm_at);
    }
    return due;
  }

  bool empty() const noexcept {
    return entries_.empty();
  }

private:
  std::set<std::pair<caf::timestamp, std::uint64_t>> entries_;
  /// Times of the timers armed and not yet fired.
  std::multiset<caf::timestamp> armed_;
};

} // namespace snakepit::detail
