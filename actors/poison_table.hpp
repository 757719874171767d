#pragma once

// Requests that crash workers: each crash of a call counts against the hash
// of its tool and arguments; at `threshold` crashes the request is tainted
// and the pool refuses it at once (`poison_request`) instead of sending it to
// another worker to kill. Taints expire `ttl` after the last crash; the table
// holds at most `max_entries` (the one whose last crash is oldest goes
// first). Pure logic: the pool supplies the clock.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/timespan.hpp>

#include "snakepit/messages/value.hpp"

namespace snakepit {

/// A pool's poison bounds (TOML `poison_threshold`, `poison_ttl_ms`,
/// `poison_max_entries`).
struct poison_settings {
  /// Crashes of one request (tool and arguments) after which it is refused;
  /// 0: never refused.
  std::uint32_t threshold = 3;
  /// A request's crashes are forgotten this long after its last one.
  caf::timespan ttl = std::chrono::minutes{10};
  /// Requests the table remembers at once.
  std::uint32_t max_entries = 10000;
};

/// The identity of a request for the poison table: a 64-bit hash of its tool
/// and arguments (or a map's argument sets). Strings and small blobs are
/// hashed whole; `bytes` and array data over 64 KiB by their size, their
/// first and last 4 KiB and 64 samples in between, so a large payload costs
/// the pool no pass over all of it.
std::uint64_t request_key(std::string_view tool, const value::map& arguments,
                          const std::vector<value::map>& items = {});

class poison_table {
public:
  using clock = std::chrono::steady_clock;

  struct entry {
    std::string tool;
    std::uint32_t crashes = 0;
    clock::time_point last_crash;
  };

  explicit poison_table(poison_settings s = {}) : settings_(s) {
  }

  const poison_settings& settings() const noexcept {
    return settings_;
  }

  bool enabled() const noexcept {
    return settings_.threshold > 0;
  }

  /// A call of request `key` (tool `tool`) crashed its worker at `now`: its
  /// crash count within the ttl, this one included.
  std::uint32_t record_crash(std::uint64_t key, const std::string& tool, clock::time_point now);

  /// The request's entry when it is tainted (refuse it); null otherwise. An
  /// expired entry is dropped here.
  const entry* tainted(std::uint64_t key, clock::time_point now);

  /// Its crashes within the ttl (0: none remembered).
  std::uint32_t crashes(std::uint64_t key, clock::time_point now) const;

  /// Drops the expired entries; how many went.
  std::size_t expire(clock::time_point now);

  /// Requests remembered (some may have expired since the last `expire`).
  std::size_t size() const noexcept {
    return entries_.size();
  }

  /// Requests tainted now.
  std::size_t tainted_count(clock::time_point now) const;

  /// Entries dropped to stay within `max_entries`.
  std::uint64_t evicted() const noexcept {
    return evicted_;
  }

private:
  bool expired(const entry& e, clock::time_point now) const {
    return now - e.last_crash >= settings_.ttl;
  }

  poison_settings settings_;
  std::unordered_map<std::uint64_t, entry> entries_;
  std::uint64_t evicted_ = 0;
};

} // namespace snakepit
