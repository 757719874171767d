// Fuzz target: the supervision tree loader (TOML text, docs/configuration.md), as `snakepit run`
// and `snakepit check` read a tree file. Every input is either a valid tree or a list of
// positioned problems, and the two entry points agree on which.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "snakepit/supervision/tree_loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  auto problems = snakepit::check_tree_string(text, "fuzz.toml");
  auto tree = snakepit::load_tree_string(text, "fuzz.toml");
  if (static_cast<bool>(tree) != problems.empty())
    std::abort(); // check and load disagree
  for (auto& p : problems)
    if (p.to_string().empty())
      std::abort(); // a problem that says nothing
  if (tree)
    (void) snakepit::describe_tree(*tree);
  return 0;
}
