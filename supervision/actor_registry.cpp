#include "snakepit/supervision/actor_registry.hpp"

#include <cassert>
#include <utility>

namespace snakepit {

void actor_registry::add(std::string kind, factory f) {
  assert(f != nullptr);
  add(std::move(kind),
      [f = std::move(f)](caf::actor_system& sys, const actor_context& ctx) {
        return f(sys, ctx.args);
      });
}

void actor_registry::add(std::string kind, context_factory f, actor_readiness readiness) {
  assert(!kind.empty());
  assert(f != nullptr);
  factories_.insert_or_assign(std::move(kind), registration{std::move(f), readiness});
}

const actor_registry::registration* actor_registry::find(std::string_view kind) const {
  auto i = factories_.find(kind);
  return i != factories_.end() ? &i->second : nullptr;
}

std::vector<std::string> actor_registry::kinds() const {
  std::vector<std::string> result;
  result.reserve(factories_.size());
  for (const auto& entry : factories_)
    result.push_back(entry.first);
  return result;
}

} // namespace snakepit
