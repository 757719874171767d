#pragma once

#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>

namespace snakepit::detail {

/// The last lines a worker wrote to stderr, kept for startup errors
/// (written on the launcher thread, read by the actor).
class stderr_tail {
public:
  void push(std::string_view line) {
    std::lock_guard<std::mutex> guard{mtx_};
    lines_.emplace_back(line.substr(0, 2000));
    if (lines_.size() > max_lines)
      lines_.pop_front();
  }

  std::string joined() const {
    std::lock_guard<std::mutex> guard{mtx_};
    std::string out;
    for (auto& l : lines_) {
      out += l;
      out += '\n';
    }
    return out;
  }

private:
  static constexpr size_t max_lines = 30;
  mutable std::mutex mtx_;
  std::deque<std::string> lines_;
};

} // namespace snakepit::detail
