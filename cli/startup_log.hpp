#pragma once

// While a command's pool starts on a terminal, the log lines wait: when the
// start fails, the lines that only repeat the failure (a worker's "could not
// start: ...", the pool's "pool failed: ...") are dropped, and the person
// reads the failure once, from print_error. Any other line is printed.

#include <iostream>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "output.hpp"
#include "snakepit/snakepit.hpp"

namespace snakepit::cli {

class startup_log {
public:
  /// Holds the log lines back only where a person reads them (errors not as JSON).
  startup_log() : active_(!errors_as_json()) {
    if (!active_)
      return;
    set_log_record_sink([this](const log_record& r) {
      std::lock_guard<std::mutex> guard{mtx_};
      held_.emplace_back(std::string{r.message}, format_log_record(r, current_log_format()));
    });
  }

  ~startup_log() {
    end("");
  }

  startup_log(const startup_log&) = delete;
  startup_log& operator=(const startup_log&) = delete;

  /// Prints the lines held back, but those saying `failure` (empty: none),
  /// and logs as usual from now on.
  void end(const std::string& failure) {
    if (!active_)
      return;
    active_ = false;
    set_log_record_sink({});
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& [message, line] : held_)
      if (!repeats(message, failure))
        std::cerr << line << '\n';
    std::cerr << std::flush;
    held_.clear();
  }

private:
  /// Whether a log message says what `failure` says: it contains it ("pool
  /// failed: X" for X), or, past its "what: " prefix, is part of it (a tree's
  /// "supervisor app: child ml failed: X" for a pool's "could not start: X").
  static bool repeats(const std::string& message, const std::string& failure) {
    if (failure.empty())
      return false;
    if (message.find(failure) != std::string::npos)
      return true;
    auto colon = message.find(": ");
    auto said = colon == std::string::npos ? message : message.substr(colon + 2);
    constexpr std::size_t min_said = 16;  // not a word that any message may hold
    return said.size() >= min_said && failure.find(said) != std::string::npos;
  }

  bool active_;
  std::mutex mtx_;
  /// (message, formatted line), in order.
  std::vector<std::pair<std::string, std::string>> held_;
};

} // namespace snakepit::cli
