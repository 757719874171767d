// Fuzz target: the one JSON line a worker process writes on its ready fd, as the worker actor
// reads it (`parse_ready_line`). No input may throw or crash; a refusal says why.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "snakepit/actors/detail/ready_line.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string why;
  auto line = snakepit::detail::parse_ready_line(
    std::string_view{reinterpret_cast<const char*>(data), size}, why);
  if (!line && why.empty())
    std::abort();
  return 0;
}
