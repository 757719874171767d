#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace snakepit {

/// One telemetry event: a name (e.g. "snakepit.request.executed"),
/// measurements (numbers, durations in microseconds with a `_us` suffix) and
/// metadata (pool, worker, tool, outcome, reason ...).
struct telemetry_event {
  std::string name;
  std::map<std::string, double> measurements;
  std::map<std::string, std::string> metadata;
};

/// An in-process event bus. C++ code attaches handlers by event name (or
/// "*" for all) and detaches them by id. Handlers run synchronously on the
/// thread that emits (an actor's or the launcher's): keep them quick and
/// never block. A handler that throws is detached, with a log line, and never
/// breaks the runtime. With no handler attached, emitting costs one atomic
/// load: see `enabled()`.
class telemetry {
public:
  using handler = std::function<void(const telemetry_event&)>;

  /// The process-wide bus.
  static telemetry& global();

  /// Attaches `h` to events named `event_name` ("*": every event); returns
  /// an id for `detach`.
  std::uint64_t attach(std::string event_name, handler h);

  /// Detaches a handler; false if there is no such id.
  bool detach(std::uint64_t id);

  /// Whether any handler is attached (the emitters' fast path).
  bool enabled() const noexcept;

  /// Delivers `e` to the handlers of its name and to the "*" handlers.
  void emit(const telemetry_event& e);

  /// Handlers detached because they threw, since start.
  std::uint64_t detached_for_throwing() const noexcept;

  telemetry();
  ~telemetry();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace snakepit
