#include "snakepit/messages/detail/value_proto.hpp"

#include <type_traits>
#include <utility>

namespace snakepit::detail {

namespace {

namespace pb = bridge::v1;

// `Source` is `value` to move strings out of `x`, `const value` to copy them.
// Both assume `out` is empty.
template <class Source>
void write(Source& x, pb::Value* out);

template <class Map>
void write_map(Map& xs, pb::MapValue* out) {
  constexpr bool moving = !std::is_const_v<Map>;
  auto* entries = out->mutable_entries();
  entries->Reserve(static_cast<int>(xs.size()));
  if constexpr (moving) {
    // Node handles give mutable keys: move them instead of copying.
    while (!xs.empty()) {
      auto node = xs.extract(xs.begin());
      auto* entry = entries->Add();
      entry->set_key(std::move(node.key()));
      write(node.mapped(), entry->mutable_value());
    }
  } else {
    for (auto& [key, item] : xs) {
      auto* entry = entries->Add();
      entry->set_key(key);
      write(item, entry->mutable_value());
    }
  }
}

template <class Source>
void write(Source& x, pb::Value* out) {
  constexpr bool moving = !std::is_const_v<Source>;
  auto pass = [](auto& y) -> decltype(auto) {
    if constexpr (moving)
      return std::move(y);
    else
      return y;
  };
  switch (x.type()) {
    case value::kind::null:
      out->set_null_value(pb::NULL_VALUE);
      break;
    case value::kind::boolean:
      out->set_bool_value(*x.if_bool());
      break;
    case value::kind::integer:
      out->set_int_value(*x.if_int());
      break;
    case value::kind::real:
      out->set_double_value(*x.if_double());
      break;
    case value::kind::string:
      out->set_string_value(pass(*x.if_string()));
      break;
    case value::kind::bytes:
      out->set_bytes_value(pass(x.if_bytes()->data));
      break;
    case value::kind::list: {
      auto& xs = *x.if_list();
      auto* items = out->mutable_list_value()->mutable_items();
      items->Reserve(static_cast<int>(xs.size()));
      for (auto& item : xs)
        write(item, items->Add());
      break;
    }
    case value::kind::map:
      write_map(*x.if_map(), out->mutable_map_value());
      break;
  }
}

// `Message` is `pb::Value` to move strings out of `x`, `const pb::Value` to
// copy them.
template <class Message>
value read(Message& x);

template <class Message>
value::map read_map(Message& x) {
  constexpr bool moving = !std::is_const_v<Message>;
  value::map result;
  if constexpr (moving) {
    for (auto& entry : *x.mutable_entries()) {
      auto item = entry.has_value() ? read(*entry.mutable_value()) : value();
      result.insert_or_assign(std::move(*entry.mutable_key()), std::move(item));
    }
  } else {
    for (auto& entry : x.entries())
      result.insert_or_assign(entry.key(), read(entry.value()));
  }
  return result;
}

template <class Message>
value read(Message& x) {
  constexpr bool moving = !std::is_const_v<Message>;
  switch (x.kind_case()) {
    case pb::Value::kBoolValue:
      return value(x.bool_value());
    case pb::Value::kIntValue:
      return value(static_cast<std::int64_t>(x.int_value()));
    case pb::Value::kDoubleValue:
      return value(x.double_value());
    case pb::Value::kStringValue:
      if constexpr (moving)
        return value(std::move(*x.mutable_string_value()));
      else
        return value(x.string_value());
    case pb::Value::kBytesValue:
      if constexpr (moving)
        return value(bytes{std::move(*x.mutable_bytes_value())});
      else
        return value(bytes{x.bytes_value()});
    case pb::Value::kListValue: {
      value::list xs;
      if constexpr (moving) {
        auto* items = x.mutable_list_value()->mutable_items();
        xs.reserve(static_cast<size_t>(items->size()));
        for (auto& item : *items)
          xs.push_back(read(item));
      } else {
        auto& items = x.list_value().items();
        xs.reserve(static_cast<size_t>(items.size()));
        for (auto& item : items)
          xs.push_back(read(item));
      }
      return value(std::move(xs));
    }
    case pb::Value::kMapValue:
      if constexpr (moving)
        return value(read_map(*x.mutable_map_value()));
      else
        return value(read_map(x.map_value()));
    case pb::Value::kNullValue:
    case pb::Value::KIND_NOT_SET:
      break;
  }
  return value();
}

} // namespace

void to_proto(const value& x, bridge::v1::Value* out) {
  out->Clear();
  write(x, out);
}

void to_proto(value&& x, bridge::v1::Value* out) {
  out->Clear();
  write(x, out);
}

void to_proto(const value::map& xs, bridge::v1::MapValue* out) {
  out->Clear();
  write_map(xs, out);
}

void to_proto(value::map&& xs, bridge::v1::MapValue* out) {
  out->Clear();
  write_map(xs, out);
}

value from_proto(const bridge::v1::Value& x) {
  return read(x);
}

value from_proto(bridge::v1::Value&& x) {
  return read(x);
}

value::map from_proto(const bridge::v1::MapValue& x) {
  return read_map(x);
}

value::map from_proto(bridge::v1::MapValue&& x) {
  return read_map(x);
}

} // namespace snakepit::detail
