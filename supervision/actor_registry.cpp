#include "snakepit/supervision/actor_registry.hpp"

#include <cassert>
#include <utility>

namespace snakepit {

void actor_registry::add(std::string kind, factory f) {
  assert(!kind.empty());
  assert(f != nullptr);
  factories_.insert_or_assign(std::move(kind), std::move(f));
}

const actor_registry::factory* actor_registry::find(std::string_view kind) const {
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
