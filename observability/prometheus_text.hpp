#pragma once

#include <string>
#include <vector>

#include "snakepit/messages/pool_status.hpp"
#include "snakepit/observability/metrics_registry.hpp"

namespace snakepit {

/// Renders the Prometheus text exposition format (version 0.0.4): the
/// counters and histograms of `families`, plus gauges read from the pools'
/// status at scrape time (workers, capacity, load, queue, per-worker RSS and
/// age) and the telemetry bus's own counters.
std::string render_prometheus(const std::vector<metric_family>& families,
                              const std::vector<pool_status>& pools);

/// Escapes a label value (backslash, double quote, newline).
std::string escape_label_value(const std::string& value);

} // namespace snakepit
