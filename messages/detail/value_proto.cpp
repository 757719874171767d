#include "snakepit/messages/detail/value_proto.hpp"

#include "snakepit/messages/detail/value_proto_impl.hpp"

namespace snakepit::detail {

namespace {

using proto_impl::no_segments;

// Every payload inline, every segment reference read as null.
constexpr no_segments* inline_only = nullptr;

} // namespace

void to_proto(const value& x, bridge::v1::Value* out) {
  out->Clear();
  proto_impl::write(x, out, inline_only);
}

void to_proto(value&& x, bridge::v1::Value* out) {
  out->Clear();
  proto_impl::write(x, out, inline_only);
}

void to_proto(const value::map& xs, bridge::v1::MapValue* out) {
  out->Clear();
  proto_impl::write_map(xs, out, inline_only);
}

void to_proto(value::map&& xs, bridge::v1::MapValue* out) {
  out->Clear();
  proto_impl::write_map(xs, out, inline_only);
}

value from_proto(const bridge::v1::Value& x) {
  return proto_impl::read(x, inline_only);
}

value from_proto(bridge::v1::Value&& x) {
  return proto_impl::read(x, inline_only);
}

value::map from_proto(const bridge::v1::MapValue& x) {
  return proto_impl::read_map(x, inline_only);
}

value::map from_proto(bridge::v1::MapValue&& x) {
  return proto_impl::read_map(x, inline_only);
}

} // namespace snakepit::detail
