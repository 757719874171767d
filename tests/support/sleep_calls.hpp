#pragma once
// Many slow calls at once, for tests that break something while they run.

#include <functional>
#include <vector>

#include <caf/all.hpp>

#include "snakepit/snakepit.hpp"

namespace snakepit::testing {

/// Sends `n` sleeps of `seconds` to `pool` at once, runs `meanwhile`, then
/// collects each outcome (an empty error: it succeeded). Each is awaited at
/// most 30 s, so a hung call fails the test instead of stalling it.
inline std::vector<caf::error> sleep_outcomes(caf::actor_system& sys, const pool_actor& pool,
                                              int n, double seconds,
                                              const std::function<void()>& meanwhile = {}) {
  caf::scoped_actor self{sys};
  using handle = decltype(self->request(pool, caf::infinite, execute_atom::value,
                                        make_request("sleep")));
  std::vector<handle> pending;
  for (int i = 0; i < n; ++i)
    pending.push_back(self->request(pool, std::chrono::seconds{30}, execute_atom::value,
                                    make_request("sleep", {{"seconds", seconds}})));
  if (meanwhile)
    meanwhile();
  std::vector<caf::error> out;
  for (auto& h : pending)
    h.receive([&](execute_reply&) { out.emplace_back(); },
              [&](caf::error& e) { out.push_back(std::move(e)); });
  return out;
}

} // namespace snakepit::testing
