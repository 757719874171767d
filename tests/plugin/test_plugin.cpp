// A plugin library for tests/cli/test_plugins.py: registers the actor kind
// "marker", whose actor writes "started <name> <args.text>" to the file
// `args.path` when it starts (so a test sees that `snakepit run` loaded the
// plugin and ran its factory with the node's args), and answers
// `(ready_atom) -> bool`. It also registers the kinds the docs' example trees
// name, so that tests/cli/test_doc_commands.py checks and runs those trees
// with this library in place of the one they name: "counter" (docs/plugins.md)
// and "metrics_sink" (docs/configuration.md).

#include <fstream>
#include <memory>

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

/// docs/plugins.md's counter: starts at `start`; `(int64 n) -> count` adds n.
caf::behavior counter(caf::event_based_actor*, std::int64_t start) {
  auto count = std::make_shared<std::int64_t>(start);
  return {[count](std::int64_t n) { return *count += n; }};
}

/// docs/configuration.md's metrics_sink: drops whatever it is sent.
caf::behavior metrics_sink(caf::event_based_actor* self) {
  self->set_default_handler(caf::drop);
  return {[](snakepit::ready_atom) { return true; }};
}

} // namespace

SNAKEPIT_PLUGIN(registry) {
  registry.add("counter", [](caf::actor_system& sys, const snakepit::value::map& args)
                 -> caf::expected<caf::actor> {
    auto i = args.find("start");
    return sys.spawn(counter, i == args.end() ? 0 : i->second.as_int());
  });
  registry.add("metrics_sink", [](caf::actor_system& sys, const snakepit::value::map&)
                 -> caf::expected<caf::actor> { return sys.spawn(metrics_sink); });
  registry.add(
    "marker",
    [](caf::actor_system& sys, const snakepit::actor_context& ctx) -> caf::expected<caf::actor> {
      if (arg(ctx, "path").empty())
        return caf::make_error(caf::sec::invalid_argument, "marker needs args.path");
      return sys.spawn(marker, ctx);
    },
    snakepit::actor_readiness::await_ready);
}
