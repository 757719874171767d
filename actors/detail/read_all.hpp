#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>

namespace snakepit::detail {

/// Reads `fd` to its end (retrying EINTR), keeping at most `max_bytes`.
/// With `drain`, reads on past the limit and discards the rest (a child's
/// pipe must be emptied, or the child blocks); without, stops there.
/// `*over` (when given) says whether there was more than `max_bytes`.
inline std::string read_all(int fd, std::size_t max_bytes, bool drain, bool* over = nullptr) {
  std::string out;
  bool more = false;
  char buf[4096];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      auto room = max_bytes - out.size();
      auto take = static_cast<std::size_t>(n) < room ? static_cast<std::size_t>(n) : room;
      out.append(buf, take);
      if (take < static_cast<std::size_t>(n)) {
        more = true;
        if (!drain)
          break;
      }
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    break;
  }
  if (over != nullptr)
    *over = more;
  return out;
}

} // namespace snakepit::detail
