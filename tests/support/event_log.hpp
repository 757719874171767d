#pragma once
// The telemetry events a test saw, for checking what fired.

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "snakepit/actors/telemetry.hpp"

namespace snakepit::testing {

/// Events matching `pattern` seen on the global bus while it lives.
class event_log {
public:
  explicit event_log(std::string pattern) {
    id_ = telemetry::global().attach(std::move(pattern), [this](const telemetry_event& e) {
      std::lock_guard<std::mutex> guard{mtx_};
      events_.push_back(e);
    });
  }
  ~event_log() {
    telemetry::global().detach(id_);
  }
  std::vector<telemetry_event> named(const std::string& name) {
    std::lock_guard<std::mutex> guard{mtx_};
    std::vector<telemetry_event> out;
    for (auto& e : events_)
      if (e.name == name)
        out.push_back(e);
    return out;
  }
  void clear() {
    std::lock_guard<std::mutex> guard{mtx_};
    events_.clear();
  }

private:
  std::mutex mtx_;
  std::vector<telemetry_event> events_;
  std::uint64_t id_ = 0;
};

} // namespace snakepit::testing
