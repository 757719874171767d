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
  auto chunk = std::max<std::uint32_t>(1, settings.chunk);
  // Responses are awaited in send order: results come out in input order,
  // and at most `in_flight` requests (and their replies) exist at once.
  using handle = decltype(self->request(pool, caf::infinite, execute_atom::value,
                                        execute_request{}));
  struct sent {
    handle h;
    std::size_t items;  // 0: a plain call
  };
  std::deque<sent> pending;
  bool more = true;
  auto fill = [&] {
    while (more && pending.size() < in_flight) {
      auto req = make_request(tool, {}, settings.timeout);
      while (req.items.size() < chunk) {
        auto args = next();
        if (!args) {
          more = false;
          break;
        }
        req.items.push_back(std::move(*args));
      }
      if (req.items.empty())
        break;
      auto items = chunk == 1 ? std::size_t{0} : req.items.size();
      if (chunk == 1) {
        req.arguments = std::move(req.items.front());
        req.items.clear();
      }
      pending.push_back({self->request(pool, caf::infinite, execute_atom::value, std::move(req)),
                         items});
    }
  };
  auto deliver = [&](caf::expected<execute_reply>& outcome) {
    if (!outcome) {
      ++out.failed;
      ++out.failures[describe(outcome.error()).kind];
    }
    on_result(out.items++, outcome);
  };
  fill();
  while (!pending.empty()) {
    caf::expected<execute_reply> outcome{caf::error{}};
    pending.front().h.receive([&](execute_reply& reply) { outcome = std::move(reply); },
                              [&](caf::error& err) { outcome = std::move(err); });
    auto items = pending.front().items;
    pending.pop_front();
    if (items == 0) {
      deliver(outcome);
    } else if (!outcome) {  // the whole call failed: so did each of its items
      for (std::size_t i = 0; i < items; ++i) {
        caf::expected<execute_reply> each{outcome.error()};
        deliver(each);
      }
    } else {
      for (auto& item : outcome->items) {
        caf::expected<execute_reply> each{caf::error{}};
        if (item.error) {
          each = std::move(item.error);
        } else {
          execute_reply reply;
          reply.result = std::move(item.result);
          reply.python_wall = item.python_wall;
          reply.queued = outcome->queued;
          reply.request_id = outcome->request_id;
          reply.worker_id = outcome->worker_id;
          each = std::move(reply);
        }
        deliver(each);
      }
    }
    fill();
  }
  return out;
}

} // namespace snakepit
