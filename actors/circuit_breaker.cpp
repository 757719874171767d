#include "snakepit/actors/circuit_breaker.hpp"

#include <algorithm>

namespace snakepit {

const char* to_cstr(breaker_state x) {
  switch (x) {
    case breaker_state::closed: return "closed";
    case breaker_state::open: return "open";
    default: return "half_open";
  }
}

breaker_state circuit_breaker::state(clock::time_point now) const {
  if (state_ == breaker_state::open && now >= open_until_)
    return breaker_state::half_open;
  return state_;
}

circuit_breaker::admission circuit_breaker::admit(clock::time_point now,
                                                  std::optional<breaker_state>* changed,
                                                  bool may_probe) {
  admission out;
  if (!enabled() || state_ == breaker_state::closed)
    return out;
  if (state_ == breaker_state::open) {
    if (now < open_until_) {
      out.allowed = false;
      out.retry_after = open_until_ - now;
      ++refused_;
      return out;
    }
    state_ = breaker_state::half_open;
    probe_running_ = false;
    if (changed != nullptr)
      *changed = state_;
  }
  if (probe_running_ || !may_probe) {
    // Half-open with its probe out: the others wait for its verdict, at most
    // about one open time.
    out.allowed = false;
    out.retry_after = std::max<caf::timespan>(settings_.open_time / 10,
                                              std::chrono::milliseconds{10});
    ++refused_;
    return out;
  }
  probe_running_ = true;
  out.probe = true;
  return out;
}

void circuit_breaker::open(clock::time_point now) {
  state_ = breaker_state::open;
  open_until_ = now + std::chrono::duration_cast<clock::duration>(settings_.open_time);
  probe_running_ = false;
  crashes_.clear();
  ++opened_;
}

std::optional<breaker_state> circuit_breaker::on_crash(clock::time_point now) {
  if (!enabled())
    return std::nullopt;
  switch (state(now)) {
    case breaker_state::open:
      // Calls admitted before it opened may still crash: they do not
      // extend it.
      return std::nullopt;
    case breaker_state::half_open:
      open(now);
      return state_;
    case breaker_state::closed:
      break;
  }
  crashes_.push_back(now);
  auto window = std::chrono::duration_cast<clock::duration>(settings_.window);
  while (!crashes_.empty() && now - crashes_.front() >= window)
    crashes_.pop_front();
  if (crashes_.size() < settings_.threshold)
    return std::nullopt;
  open(now);
  return state_;
}

std::optional<breaker_state> circuit_breaker::probe_done(bool crashed, clock::time_point now) {
  if (state_ != breaker_state::half_open || !probe_running_)
    return std::nullopt;
  probe_running_ = false;
  if (crashed) {
    open(now);
    return state_;
  }
  state_ = breaker_state::closed;
  crashes_.clear();
  return state_;
}

std::size_t circuit_breaker::recent_crashes(clock::time_point now) const {
  auto window = std::chrono::duration_cast<clock::duration>(settings_.window);
  return static_cast<std::size_t>(std::count_if(
    crashes_.begin(), crashes_.end(), [&](auto t) { return now - t < window; }));
}

} // namespace snakepit
