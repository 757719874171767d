#include "snakepit/supervision/plugin_loader.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "snakepit/actors/detail/trusted_files.hpp"
#include "snakepit/actors/python_command.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/supervision/detail/toml_limits.hpp"
#include "snakepit/supervision/plugin.hpp"

namespace snakepit {

caf::error load_plugins(const std::vector<std::string>& libraries, actor_registry& registry) {
  for (auto& path : libraries) {
    auto fail = [&path](std::string why) {
      return make_error(errc::bad_config, fmt::format("[plugins] {}: {}", path, why));
    };
    if (::access(path.c_str(), R_OK) != 0)
      return fail(std::string{"cannot load it: "} + std::strerror(errno));
    if (auto why = detail::unsafe_path_reason(path); !why.empty())
      return fail("refusing to load it: " + why
                  + "; loading a library runs its code, so it and its directories must be "
                    "yours (or root's) and not writable by others");
    // RTLD_LOCAL: plugins do not see each other's symbols. Never closed:
    // their code runs in actors until the process ends.
    auto* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr)
      return fail(std::string{"cannot load it: "} + ::dlerror());
    auto* abi = reinterpret_cast<int (*)()>(::dlsym(handle, "snakepit_plugin_abi"));
    auto* reg = reinterpret_cast<void (*)(actor_registry&)>(
      ::dlsym(handle, "snakepit_register_actors"));
    if (abi == nullptr || reg == nullptr)
      return fail("not a snakepit plugin (no snakepit_plugin_abi / snakepit_register_actors: "
                  "define them with SNAKEPIT_PLUGIN, see docs/plugins.md)");
    if (abi() != SNAKEPIT_PLUGIN_ABI)
      return fail(fmt::format("built for plugin ABI {}, this snakepit loads ABI {}: rebuild it "
                              "against this snakepit",
                              abi(), SNAKEPIT_PLUGIN_ABI));
    try {
      reg(registry);
    } catch (const std::exception& e) {
      return fail(std::string{"its registration threw: "} + e.what());
    }
  }
  return {};
}

caf::expected<std::vector<std::string>> plugin_libraries(const std::string& path) {
  // Any problem with the file itself (too big, too deep, bad syntax) the
  // tree loader reports, with positions: here only what parses safely.
  std::string unreadable;
  auto content = detail::read_tree_file(path, unreadable);
  if (!content || detail::check_toml_limits(*content))
    return std::vector<std::string>{};
  toml::table doc;
  try {
    doc = toml::parse(*content, std::string_view{path});
  } catch (const toml::parse_error&) {
    return std::vector<std::string>{};
  }
  std::vector<std::string> out;
  auto* plugins = doc.get("plugins");
  if (plugins == nullptr)
    return out;
  auto bad = [&path](std::string why) {
    return make_error(errc::bad_config, fmt::format("{}: [plugins] {}", path, why));
  };
  auto* table = plugins->as_table();
  if (table == nullptr)
    return bad("must be a table: [plugins] libraries = [\"libmy_actors.so\"]");
  for (auto& [key, node] : *table)
    if (key.str() != "libraries")
      return bad(fmt::format("has an unknown key '{}' (it takes libraries)", key.str()));
  auto* list = table->get_as<toml::array>("libraries");
  if (list == nullptr)
    return bad("needs libraries = [\"path/to/libx.so\", ...]");
  auto dir = path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
  for (auto& item : *list) {
    auto* text = item.as_string();
    if (text == nullptr || text->get().empty())
      return bad("libraries must be non-empty strings (paths of shared libraries)");
    out.push_back(absolute_path(text->get(), dir.empty() ? "." : dir));
  }
  return out;
}

} // namespace snakepit
