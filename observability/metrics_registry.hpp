#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "snakepit/actors/telemetry.hpp"

namespace snakepit {

/// Label names and values of one series, in a fixed order.
using metric_labels = std::vector<std::pair<std::string, std::string>>;

/// A latency histogram with fixed bucket bounds (seconds).
struct histogram_sample {
  /// Upper bounds of the buckets, ascending; +Inf is implied.
  std::vector<double> bounds;
  /// Observations per bucket (not cumulative); one more than `bounds` (+Inf).
  std::vector<std::uint64_t> counts;
  double sum = 0;
  std::uint64_t count = 0;

  void observe(double value);
};

/// One metric with all its series.
struct metric_family {
  enum class kind { counter, gauge, histogram };
  std::string name;
  std::string help;
  kind type = kind::counter;
  std::map<metric_labels, double> values;
  std::map<metric_labels, histogram_sample> histograms;
};

/// Turns telemetry events into counters and latency histograms per pool and
/// tool (one "*" handler on the bus, attached while it lives). Thread-safe;
/// a snapshot copies under a mutex. Gauges (workers, load, queue, RSS) are not
/// kept here: they come from the pools' status when scraped.
class metrics_registry {
public:
  /// Bucket bounds of the latency histograms, in seconds.
  static const std::vector<double>& latency_bounds();

  explicit metrics_registry(telemetry& bus = telemetry::global());
  ~metrics_registry();

  metrics_registry(const metrics_registry&) = delete;
  metrics_registry& operator=(const metrics_registry&) = delete;

  /// Feeds one event (what the bus handler does).
  void record(const telemetry_event& e);

  /// The families so far, sorted by name.
  std::vector<metric_family> snapshot() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
  telemetry* bus_;
  std::uint64_t handler_id_ = 0;
};

} // namespace snakepit
