// A plugin library for tests/cli/test_plugins.py: registers the actor kind
// "marker", whose actor writes "started <name> <args.text>" to the file
// `args.path` when it starts (so a test sees that `snakepit run` loaded the
// plugin and ran its factory with the node's args), and answers
// `(ready_atom) -> bool`.

#include <fstream>

#include <caf/all.hpp>

#include "snakepit/messages/atoms.hpp"
#include "snakepit/supervision/plugin.hpp"

namespace {

std::string arg(const snakepit::actor_context& ctx, const char* key) {
  auto i = ctx.args.find(key);
  return i == ctx.args.end() ? std::string{} : std::string{i->second.as_string()};
}

caf::behavior marker(caf::event_based_actor*, snakepit::actor_context ctx) {
  std::ofstream out{arg(ctx, "path"), std::ios::app};
  out << "started " << ctx.name << " " << arg(ctx, "text") << "\n";
  return {[](snakepit::ready_atom) { return true; }};
}

} // namespace

SNAKEPIT_PLUGIN(registry) {
  registry.add(
    "marker",
    [](caf::actor_system& sys, const snakepit::actor_context& ctx) -> caf::expected<caf::actor> {
      if (arg(ctx, "path").empty())
        return caf::make_error(caf::sec::invalid_argument, "marker needs args.path");
      return sys.spawn(marker, ctx);
    },
    snakepit::actor_readiness::await_ready);
}
