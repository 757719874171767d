#pragma once

#include <cstdint>
#include <string>

#include "bridge.pb.h"

namespace snakepit::detail {

/// Who emitted a batch of Python events: added to each event's metadata.
struct python_event_source {
  std::string pool;
  std::string worker;
  std::int32_t pid = 0;
};

/// Puts the events of `batch` on the telemetry bus as "python.<name>", with
/// `pool`, `worker` and `pid` added to their metadata (a key the adapter set
/// itself wins). Thread-safe: runs on actor and gRPC threads alike. Returns
/// the worker's count of dropped events.
std::uint64_t publish_python_events(const bridge::v1::TelemetryBatch& batch,
                                    const python_event_source& source);

} // namespace snakepit::detail
