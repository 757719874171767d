#include "snakepit/actors/detail/python_events.hpp"

#include <string>

#include "snakepit/actors/telemetry.hpp"

namespace snakepit::detail {

std::uint64_t publish_python_events(const bridge::v1::TelemetryBatch& batch,
                                    const python_event_source& source) {
  auto& bus = telemetry::global();
  if (batch.events_size() == 0 || !bus.enabled())
    return batch.dropped_total();
  for (const auto& in : batch.events()) {
    telemetry_event e;
    e.name = "python." + in.name();
    e.measurements.insert(in.measurements().begin(), in.measurements().end());
    e.metadata.insert(in.metadata().begin(), in.metadata().end());
    e.metadata.emplace("pool", source.pool);
    e.metadata.emplace("worker", source.worker);
    e.metadata.emplace("pid", std::to_string(source.pid));
    bus.emit(e);
  }
  return batch.dropped_total();
}

} // namespace snakepit::detail
