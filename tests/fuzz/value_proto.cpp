// Fuzz target: `Value` messages from the wire (bridge.proto) into `snakepit::value`, as a
// worker's results and a gateway's arguments are read. Whatever the bytes, the copying and the
// moving reader agree, and the value written back and read again is the same value.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "bridge.pb.h"

#include "snakepit/messages/detail/value_proto.hpp"
#include "snakepit/messages/value.hpp"

namespace {

using snakepit::value;

/// NaN never equals itself: such values are compared by their JSON instead.
bool has_nan(const value& x) {
  if (auto d = x.if_double())
    return std::isnan(*d);
  if (auto xs = x.if_list()) {
    for (auto& item : *xs)
      if (has_nan(item))
        return true;
  } else if (auto m = x.if_map()) {
    for (auto& [key, item] : *m)
      if (has_nan(item))
        return true;
  } else if (x.if_ndarray() != nullptr) {
    return true; // floating arrays may hold NaN: compared by JSON
  }
  return false;
}

bool same(const value& x, const value& y) {
  return has_nan(x) ? x.to_json() == y.to_json() : x == y;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  snakepit::bridge::v1::Value msg;
  if (!msg.ParseFromArray(data, static_cast<int>(size)))
    return 0;
  auto copied = snakepit::detail::from_proto(static_cast<const snakepit::bridge::v1::Value&>(msg));
  auto moved = snakepit::detail::from_proto(snakepit::bridge::v1::Value{msg});
  if (!same(copied, moved))
    std::abort();
  snakepit::bridge::v1::Value back;
  snakepit::detail::to_proto(copied, &back);
  if (!same(snakepit::detail::from_proto(back), copied))
    std::abort();
  // The map reader on its own (arguments travel as a MapValue).
  snakepit::bridge::v1::MapValue map;
  if (map.ParseFromArray(data, static_cast<int>(size))) {
    auto args = snakepit::detail::from_proto(static_cast<const snakepit::bridge::v1::MapValue&>(map));
    snakepit::bridge::v1::MapValue written;
    snakepit::detail::to_proto(args, &written);
    if (!same(value(snakepit::detail::from_proto(written)), value(std::move(args))))
      std::abort();
  }
  return 0;
}
