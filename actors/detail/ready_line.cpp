#include "snakepit/actors/detail/ready_line.hpp"

#include <type_traits>

#include <nlohmann/json.hpp>

namespace snakepit::detail {

namespace {

using json = nlohmann::json;

/// Reads `doc[key]` into `out` when present (null counts as absent); false, with `why`, when
/// it has another JSON type than `T` (std::string or bool).
template <class T>
bool read_field(const json& doc, const char* key, T& out, std::string& why) {
  auto i = doc.find(key);
  if (i == doc.end() || i->is_null())
    return true;
  constexpr bool is_string = std::is_same_v<T, std::string>;
  if (is_string ? !i->is_string() : !i->is_boolean()) {
    why = std::string{"\""} + key + "\" is a " + i->type_name() + ", not a "
          + (is_string ? "string" : "boolean");
    return false;
  }
  out = i->get<T>();
  return true;
}

} // namespace

std::optional<ready_line> parse_ready_line(std::string_view line, std::string& why) {
  auto doc = json::parse(line, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    why = "not a JSON object";
    return std::nullopt;
  }
  ready_line out;
  std::string status;
  if (!read_field(doc, "status", status, why))
    return std::nullopt;
  out.ready = status == "ready";
  if (!out.ready) {
    out.message = "unknown startup error";
    if (!read_field(doc, "message", out.message, why)
        || !read_field(doc, "python_type", out.python_type, why)
        || !read_field(doc, "traceback", out.traceback, why))
      return std::nullopt;
    return out;
  }
  if (!read_field(doc, "python_version", out.python_version, why)
      || !read_field(doc, "implementation", out.implementation, why)
      || !read_field(doc, "gil_enabled", out.gil_enabled, why)
      || !read_field(doc, "free_threaded", out.free_threaded, why))
    return std::nullopt;
  if (auto w = doc.find("warnings"); w != doc.end() && !w->is_null()) {
    if (!w->is_array()) {
      why = std::string{"\"warnings\" is a "} + w->type_name() + ", not an array";
      return std::nullopt;
    }
    for (auto& item : *w)
      if (item.is_string())
        out.warnings.push_back(item.get<std::string>());
  }
  if (auto t = doc.find("idempotent_tools"); t != doc.end() && !t->is_null()) {
    if (!t->is_array()) {
      why = std::string{"\"idempotent_tools\" is a "} + t->type_name() + ", not an array";
      return std::nullopt;
    }
    for (auto& item : *t)
      if (item.is_string())
        out.idempotent_tools.push_back(item.get<std::string>());
  }
  return out;
}

} // namespace snakepit::detail
