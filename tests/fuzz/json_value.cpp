// Fuzz target: the JSON argument parser (`value::from_json`: `snakepit call`'s and `map`'s
// arguments, the gateway's JSON). Whatever it accepts must print back (`to_json`) as JSON that
// reads back as the same value; whatever it refuses must be refused with a message.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "snakepit/messages/value.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  auto parsed = snakepit::value::from_json(text);
  if (!parsed) {
    if (parsed.error().message.empty())
      std::abort(); // every refusal says why
    return 0;
  }
  auto printed = parsed->to_json();
  auto again = snakepit::value::from_json(printed);
  if (!again || *again != *parsed || again->to_json() != printed)
    std::abort(); // to_json wrote something from_json reads differently
  return 0;
}
