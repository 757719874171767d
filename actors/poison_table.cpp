#include "snakepit/actors/poison_table.hpp"

#include <algorithm>
#include <functional>

namespace snakepit {

namespace {

/// Blobs up to this size are hashed whole; larger ones by samples.
constexpr std::size_t whole_blob = 64 * 1024;
constexpr std::size_t edge = 4096;
constexpr std::size_t samples = 64;
constexpr std::size_t sample_size = 64;

struct hasher {
  std::uint64_t h = 0x9e3779b97f4a7c15ULL;

  void mix(std::uint64_t x) {
    // splitmix64's finaliser over the running state.
    h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
  }

  void text(std::string_view s) {
    mix(s.size());
    mix(std::hash<std::string_view>{}(s));
  }

  void blob(std::string_view s) {
    if (s.size() <= whole_blob) {
      text(s);
      return;
    }
    mix(s.size());
    mix(std::hash<std::string_view>{}(s.substr(0, edge)));
    mix(std::hash<std::string_view>{}(s.substr(s.size() - edge)));
    auto middle = s.size() - 2 * edge - sample_size;
    for (std::size_t i = 0; i < samples; ++i)
      mix(std::hash<std::string_view>{}(s.substr(edge + middle * i / samples, sample_size)));
  }

  void add(const value& x) {
    mix(static_cast<std::uint64_t>(x.type()) + 1);
    if (auto* b = x.if_bool()) {
      mix(*b ? 1 : 0);
    } else if (auto* i = x.if_int()) {
      mix(static_cast<std::uint64_t>(*i));
    } else if (auto* d = x.if_double()) {
      mix(std::hash<double>{}(*d));
    } else if (auto* s = x.if_string()) {
      text(*s);
    } else if (auto* by = x.if_bytes()) {
      blob(by->data);
    } else if (auto* xs = x.if_list()) {
      mix(xs->size());
      for (auto& item : *xs)
        add(item);
    } else if (auto* m = x.if_map()) {
      add(*m);
    } else if (auto* a = x.if_ndarray()) {
      mix(static_cast<std::uint64_t>(a->type()));
      mix(a->shape().size());
      for (auto dim : a->shape())
        mix(static_cast<std::uint64_t>(dim));
      blob(a->bytes());
    }
  }

  void add(const value::map& m) {
    mix(m.size());
    for (auto& [key, member] : m) {
      text(key);
      add(member);
    }
  }
};

} // namespace

std::uint64_t request_key(std::string_view tool, const value::map& arguments,
                          const std::vector<value::map>& items) {
  hasher h;
  h.text(tool);
  h.add(arguments);
  h.mix(items.size());
  for (auto& set : items)
    h.add(set);
  return h.h;
}

std::uint32_t poison_table::record_crash(std::uint64_t key, const std::string& tool,
                                         clock::time_point now) {
  auto i = entries_.find(key);
  if (i != entries_.end() && expired(i->second, now)) {
    entries_.erase(i);
    i = entries_.end();
  }
  if (i == entries_.end()) {
    if (entries_.size() >= std::max<std::uint32_t>(settings_.max_entries, 1)) {
      expire(now);
      while (entries_.size() >= std::max<std::uint32_t>(settings_.max_entries, 1)) {
        auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                       [](const auto& x, const auto& y) {
                                         return x.second.last_crash < y.second.last_crash;
                                       });
        entries_.erase(oldest);
        ++evicted_;
      }
    }
    i = entries_.emplace(key, entry{tool, 0, now}).first;
  }
  auto& e = i->second;
  ++e.crashes;
  e.last_crash = now;
  return e.crashes;
}

const poison_table::entry* poison_table::tainted(std::uint64_t key, clock::time_point now) {
  if (!enabled() || entries_.empty())
    return nullptr;
  auto i = entries_.find(key);
  if (i == entries_.end())
    return nullptr;
  if (expired(i->second, now)) {
    entries_.erase(i);
    return nullptr;
  }
  return i->second.crashes >= settings_.threshold ? &i->second : nullptr;
}

std::uint32_t poison_table::crashes(std::uint64_t key, clock::time_point now) const {
  auto i = entries_.find(key);
  return i == entries_.end() || expired(i->second, now) ? 0 : i->second.crashes;
}

std::size_t poison_table::expire(clock::time_point now) {
  std::size_t n = 0;
  for (auto i = entries_.begin(); i != entries_.end();) {
    if (expired(i->second, now)) {
      i = entries_.erase(i);
      ++n;
    } else {
      ++i;
    }
  }
  return n;
}

std::size_t poison_table::tainted_count(clock::time_point now) const {
  if (!enabled())
    return 0;
  return static_cast<std::size_t>(
    std::count_if(entries_.begin(), entries_.end(), [&](const auto& x) {
      return !expired(x.second, now) && x.second.crashes >= settings_.threshold;
    }));
}

} // namespace snakepit
