#include "snakepit/actors/map_calls.hpp"

#include <algorithm>
#include <deque>

#include <caf/all.hpp>

#include "snakepit/messages/atoms.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/messages/execute_request.hpp"

namespace snakepit {

map_summary map_calls(caf::actor_system& sys, const pool_actor& pool, const std::string& tool,
                      const std::function<std::optional<value::map>()>& next,
                      const std::function<void(std::uint64_t index,
                                               caf::expected<execute_reply>& outcome)>& on_result,
                      map_settings settings) {
  caf::scoped_actor self{sys};
  map_summary out;
  auto in_flight = std::max<std::uint32_t>(1, settings.in_flight);
  // Responses are awaited in send order: results come out in input order,
  // and at most `in_flight` requests (and their replies) exist at once.
  using handle = decltype(self->request(pool, caf::infinite, execute_atom::value,
                                        execute_request{}));
  std::deque<handle> pending;
  bool more = true;
  auto fill = [&] {
    while (more && pending.size() < in_flight) {
      auto args = next();
      if (!args) {
        more = false;
        break;
      }
      pending.push_back(self->request(pool, caf::infinite, execute_atom::value,
                                      make_request(tool, std::move(*args), settings.timeout)));
    }
  };
  fill();
  while (!pending.empty()) {
    caf::expected<execute_reply> outcome{caf::error{}};
    pending.front().receive([&](execute_reply& reply) { outcome = std::move(reply); },
                            [&](caf::error& err) { outcome = std::move(err); });
    pending.pop_front();
    if (!outcome) {
      ++out.failed;
      ++out.failures[describe(outcome.error()).kind];
    }
    on_result(out.items++, outcome);
    fill();
  }
  return out;
}

} // namespace snakepit
