#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace snakepit {

/// "host:port" split at its last ':' into a non-empty host and a port of 0
/// to 65535 (digits only); nothing when `text` is not that. What `[node]
/// listen` and `[remote_pools] node` say.
inline std::optional<std::pair<std::string, std::uint16_t>>
split_host_port(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()
      || colon + 6 < text.size())
    return std::nullopt;
  std::uint32_t port = 0;
  for (auto c : text.substr(colon + 1)) {
    if (c < '0' || c > '9')
      return std::nullopt;
    port = port * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (port > 65535)
    return std::nullopt;
  return std::make_pair(std::string{text.substr(0, colon)}, static_cast<std::uint16_t>(port));
}

} // namespace snakepit
