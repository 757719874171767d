#pragma once

// Latencies of many calls in constant memory, and the summary text of their
// failures, for the commands that make many calls (`map`, `call --repeat`).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>

#include <fmt/format.h>

namespace snakepit::cli {

/// Latencies in log buckets (5% wide): p50/p99 for any number of calls in
/// constant memory.
class latency_histogram {
public:
  void add(double us) {
    auto b = us <= 1 ? 0 : static_cast<std::size_t>(std::log(us) / std::log(growth));
    ++buckets_[std::min(b, buckets_.size() - 1)];
    ++count_;
  }

  /// The `q` quantile (0..1) in microseconds, to the bucket's middle; 0 when empty.
  double quantile(double q) const {
    if (count_ == 0)
      return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      seen += buckets_[b];
      if (seen >= rank)
        return std::pow(growth, static_cast<double>(b) + 0.5);
    }
    return std::pow(growth, static_cast<double>(buckets_.size()));
  }

private:
  static constexpr double growth = 1.05;
  std::array<std::uint64_t, 500> buckets_{};  // up to 1.05^500 us: years
  std::uint64_t count_ = 0;
};

/// " (timeout: 3, python_exception: 1)", or "" without failures.
template <class Count>
std::string failures_by_kind(const std::map<std::string, Count>& failures) {
  std::string kinds;
  for (auto& [kind, n] : failures)
    kinds += fmt::format("{}{}: {}", kinds.empty() ? " (" : ", ", kind, n);
  return kinds.empty() ? kinds : kinds + ")";
}

} // namespace snakepit::cli
