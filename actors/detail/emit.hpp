#pragma once

#include <chrono>

#include <caf/timespan.hpp>

#include "snakepit/actors/telemetry.hpp"

namespace snakepit::detail {

/// Builds and emits an event only when some handler listens.
template <class MakeEvent>
void emit(MakeEvent&& make) {
  auto& bus = telemetry::global();
  if (bus.enabled())
    bus.emit(make());
}

inline double micros(caf::timespan t) {
  return std::chrono::duration<double, std::micro>(t).count();
}

} // namespace snakepit::detail
