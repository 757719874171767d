#include "snakepit/messages/supervisor_actor.hpp"

#include "snakepit/messages/error.hpp"

namespace snakepit {

caf::error ignore_child() {
  return make_error(errc::ignored, "the start function answered ignore");
}

caf::actor started_child(const caf::error& err) {
  if (!is(err, errc::already_started))
    return nullptr;
  const auto& ctx = err.context();
  if (ctx.size() >= 2 && ctx.match_element<caf::actor>(1))
    return ctx.get_as<caf::actor>(1);
  return nullptr;
}

} // namespace snakepit
