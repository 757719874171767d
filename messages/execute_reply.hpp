#pragma once

#include <string>

#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include <vector>

#include "snakepit/messages/item_outcome.hpp"
#include "snakepit/messages/value_inspect.hpp"

namespace snakepit {

/// The result of one tool call and where its time went.
struct execute_reply {
  /// What the tool returned.
  value result;
  /// Wall-clock time spent in the Python tool.
  caf::timespan python_wall{0};
  /// CPU time of the Python thread that ran the tool.
  caf::timespan python_cpu{0};
  /// Time the request waited in the pool's queue.
  caf::timespan queued{0};
  /// The request this answers.
  std::string request_id;
  /// The worker that ran it, e.g. "demo/w-2".
  std::string worker_id;
  /// A map request's outcomes, one per argument set, in order (`result`
  /// stays null; `python_wall` and `python_cpu` are their sums).
  std::vector<item_outcome> items;
  /// Attempts it took: 1, or more when its worker crashed and the pool
  /// retried it (idempotent calls only).
  std::uint32_t attempts = 1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, execute_reply& x) {
  return f(caf::meta::type_name("snakepit::execute_reply"), x.result,
           x.python_wall, x.python_cpu, x.queued, x.request_id, x.worker_id, x.items,
           x.attempts);
}

} // namespace snakepit
