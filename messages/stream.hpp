#pragma once

#include <cstdint>
#include <string>

#include <caf/actor.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include "snakepit/messages/value_inspect.hpp"

namespace snakepit {

/// What `(execute_stream_atom, execute_request, consumer)` answers: the stream
/// runs, its messages go to the consumer.
///
/// The consumer receives, in order, `(stream_item_atom, id, index, value)` for
/// each item (index from 0), then exactly one of `(stream_end_atom, id,
/// stream_summary)` or `(stream_error_atom, id, caf::error)`. Flow control is
/// end to end: the worker runs the generator only while it has credit, the
/// initial credit is the request's `stream_window` (or the pool's), and each
/// `(stream_ack_atom, id, n)` sent to `worker` grants `n` more. So at most a
/// window of items sits in the consumer's mailbox. Acking one per consumed
/// item is the usual pattern (the end marker needs one credit too: the worker
/// learns the generator is finished by advancing it once more).
/// `(stream_cancel_atom, id)` to `worker` closes the generator; the consumer
/// then receives nothing more (items already in its mailbox stay there).
///
/// The reply reaches the requester before the consumer's first item.
struct stream_handle {
  /// Unique within the process.
  std::uint64_t id = 0;
  /// The worker running the stream: acks and cancel go here.
  caf::actor worker;
  /// The request's id (assigned by the pool when empty).
  std::string request_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stream_handle& x) {
  return f(caf::meta::type_name("snakepit::stream_handle"), x.id, x.worker, x.request_id);
}

/// The end marker of a stream.
struct stream_summary {
  /// Items the generator produced.
  std::uint64_t items = 0;
  /// Time spent inside the generator's steps, wall clock and CPU.
  caf::timespan python_wall{0};
  caf::timespan python_cpu{0};
  /// The worker that ran it, e.g. "demo/w-2".
  std::string worker_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stream_summary& x) {
  return f(caf::meta::type_name("snakepit::stream_summary"), x.items, x.python_wall,
           x.python_cpu, x.worker_id);
}

} // namespace snakepit
