#include "snakepit/actors/stream_consumer.hpp"

#include <caf/all.hpp>
#include <fmt/format.h>

#include "snakepit/messages/atoms.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

caf::expected<stream_summary>
for_each_item(caf::scoped_actor& self, const pool_actor& pool, execute_request req,
              const std::function<bool(const value& item)>& on_item,
              std::chrono::milliseconds idle_timeout) {
  caf::expected<stream_handle> handle{caf::error{}};
  auto consumer = caf::actor_cast<caf::actor>(self);
  self->request(pool, caf::infinite, execute_stream_atom::value, std::move(req), consumer)
    .receive([&](stream_handle& h) { handle = std::move(h); },
             [&](caf::error& e) { handle = std::move(e); });
  if (!handle)
    return std::move(handle.error());
  auto cancel = [&] {
    caf::anon_send(handle->worker, stream_cancel_atom::value, handle->id);
  };
  stream_summary consumed;
  caf::expected<stream_summary> out{caf::error{}};
  bool done = false;
  auto wait = idle_timeout.count() > 0 ? caf::duration{idle_timeout} : caf::duration{};
  while (!done) {
    self->receive(
      [&](stream_item_atom, std::uint64_t id, std::uint64_t index, const value& item) {
        if (id != handle->id)
          return;  // another stream's leftover: not ours
        if (index != consumed.items) {
          cancel();
          out = make_error(errc::internal,
                           fmt::format("stream {}: item {} arrived when {} was expected",
                                       handle->request_id, index, consumed.items));
          done = true;
          return;
        }
        ++consumed.items;
        bool more = true;
        try {
          more = on_item(item);
        } catch (...) {
          cancel();
          throw;
        }
        if (!more) {
          cancel();
          out = consumed;
          done = true;
          return;
        }
        caf::anon_send(handle->worker, stream_ack_atom::value, handle->id, std::uint32_t{1});
      },
      [&](stream_end_atom, std::uint64_t id, stream_summary& summary) {
        if (id != handle->id)
          return;
        out = std::move(summary);
        done = true;
      },
      [&](stream_error_atom, std::uint64_t id, caf::error& err) {
        if (id != handle->id)
          return;
        out = std::move(err);
        done = true;
      },
      caf::after(wait) >> [&] {
        cancel();
        out = make_error(errc::timeout,
                         fmt::format("stream {}: no item for {} ms", handle->request_id,
                                     idle_timeout.count()));
        done = true;
      });
  }
  return out;
}

} // namespace snakepit
