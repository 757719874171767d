#pragma once

// The conversions between `snakepit::value` and bridge.proto's messages,
// written once for both kinds of caller: `Shm` is `no_segments` (payloads
// always inline: value_proto.cpp, the client) or a policy that puts large
// payloads into shared-memory segments (actors/detail/shm_value_proto.cpp):
//   bool write_segment(const void* data, size_t size, SharedSegment* out):
//     true when the payload went (or failed to go: the policy keeps why) into
//     a segment, false to keep it inline;
//   std::optional<M> read_segment(const SharedSegment& ref), where M has
//     `owner`, `data` and `size`: the mapped bytes, nothing on failure;
//   void fail(std::string why): the message is unusable.
// A null `Shm*` keeps everything inline and reads references as null.
// Included by those two files only.

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "bridge.pb.h"

#include "snakepit/messages/value.hpp"

namespace snakepit::detail::proto_impl {

namespace pb = bridge::v1;

/// The policy of a side without shared memory.
struct no_segments {};

/// Bytes of a mapped segment (what `read_segment` gives).
struct segment_bytes {
  std::shared_ptr<const void> owner;
  const char* data = nullptr;
  std::size_t size = 0;
};

// `Source` is `value` to move strings out of `x`, `const value` to copy them.
// Both assume `out` is empty.
template <class Source, class Shm>
void write(Source& x, pb::Value* out, Shm* shm);

/// Puts `size` bytes at `data` into a segment when `shm` wants them there;
/// false to keep them inline.
template <class Shm>
bool write_segment(const void* data, std::size_t size, pb::SharedSegment* out, Shm* shm) {
  if constexpr (std::is_same_v<Shm, no_segments>)
    return false;
  else
    return shm != nullptr && shm->write_segment(data, size, out);
}

template <class Map, class Shm>
void write_map(Map& xs, pb::MapValue* out, Shm* shm) {
  constexpr bool moving = !std::is_const_v<Map>;
  auto* entries = out->mutable_entries();
  entries->Reserve(static_cast<int>(xs.size()));
  if constexpr (moving) {
    // Node handles give mutable keys: move them instead of copying.
    while (!xs.empty()) {
      auto node = xs.extract(xs.begin());
      auto* entry = entries->Add();
      entry->set_key(std::move(node.key()));
      write(node.mapped(), entry->mutable_value(), shm);
    }
  } else {
    for (auto& [key, item] : xs) {
      auto* entry = entries->Add();
      entry->set_key(key);
      write(item, entry->mutable_value(), shm);
    }
  }
}

template <class Source, class Shm>
void write(Source& x, pb::Value* out, Shm* shm) {
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
    case value::kind::bytes: {
      auto& data = x.if_bytes()->data;
      if (!write_segment(data.data(), data.size(), out->mutable_shared_bytes(), shm)) {
        out->clear_shared_bytes();
        out->set_bytes_value(pass(data));
      }
      break;
    }
    case value::kind::list: {
      auto& xs = *x.if_list();
      auto* items = out->mutable_list_value()->mutable_items();
      items->Reserve(static_cast<int>(xs.size()));
      for (auto& item : xs)
        write(item, items->Add(), shm);
      break;
    }
    case value::kind::map:
      write_map(*x.if_map(), out->mutable_map_value(), shm);
      break;
    case value::kind::ndarray: {
      auto& array = *x.if_ndarray();
      auto* msg = out->mutable_ndarray_value();
      msg->set_dtype(static_cast<pb::DType>(array.type()));
      for (auto extent : array.shape())
        msg->add_shape(extent);
      auto data = array.bytes();
      if (!write_segment(data.data(), data.size(), msg->mutable_segment(), shm)) {
        msg->clear_segment();
        msg->set_data(data.data(), data.size());
      }
      break;
    }
  }
}

// `Message` is `pb::Value` to move strings out of `x`, `const pb::Value` to
// copy them.
template <class Message, class Shm>
value read(Message& x, Shm* shm);

/// Maps the segment `ref` names; nothing on failure (then `shm` holds why),
/// or when this side takes no segments.
template <class Shm>
auto read_segment(const pb::SharedSegment& ref, Shm* shm) {
  if constexpr (std::is_same_v<Shm, no_segments>) {
    (void) ref;
    (void) shm;
    return std::optional<segment_bytes>{};
  } else {
    return shm == nullptr ? decltype(shm->read_segment(ref)){} : shm->read_segment(ref);
  }
}

template <class Message, class Shm>
value read_ndarray(Message& x, Shm* shm) {
  constexpr bool moving = !std::is_const_v<Message>;
  auto fail = [&](std::string why) {
    if constexpr (!std::is_same_v<Shm, no_segments>)
      if (shm != nullptr)
        shm->fail("an n-d array on the wire is invalid: " + why);
    return value();
  };
  // The wire's number, checked before it becomes the 8-bit enum (257 would wrap to 1).
  auto number = static_cast<int>(x.dtype());
  if (number < 0 || number > 255 || !is_valid(static_cast<dtype>(number)))
    return fail("invalid dtype " + std::to_string(number));
  auto type = static_cast<dtype>(number);
  ndarray::shape_type shape(x.shape().begin(), x.shape().end());
  if (x.has_segment()) {
    auto mapping = read_segment(x.segment(), shm);
    if (!mapping)
      return value();
    if (auto why = ndarray::invalid_reason(type, shape, mapping->size); !why.empty())
      return fail(std::move(why));
    auto result = ndarray::adopt(type, std::move(shape), std::move(mapping->owner),
                                 mapping->data, mapping->size);
    return value(std::move(*result));
  }
  if (auto why = ndarray::invalid_reason(type, shape, x.data().size()); !why.empty())
    return fail(std::move(why));
  std::string data;
  if constexpr (moving)
    data = std::move(*x.mutable_data());
  else
    data = x.data();
  return value(std::move(*ndarray::from_bytes(type, std::move(shape), std::move(data))));
}

template <class Message, class Shm>
value::map read_map(Message& x, Shm* shm) {
  constexpr bool moving = !std::is_const_v<Message>;
  value::map result;
  if constexpr (moving) {
    for (auto& entry : *x.mutable_entries()) {
      auto item = entry.has_value() ? read(*entry.mutable_value(), shm) : value();
      result.insert_or_assign(std::move(*entry.mutable_key()), std::move(item));
    }
  } else {
    for (auto& entry : x.entries())
      result.insert_or_assign(entry.key(), read(entry.value(), shm));
  }
  return result;
}

template <class Message, class Shm>
value read(Message& x, Shm* shm) {
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
          xs.push_back(read(item, shm));
      } else {
        auto& items = x.list_value().items();
        xs.reserve(static_cast<size_t>(items.size()));
        for (auto& item : items)
          xs.push_back(read(item, shm));
      }
      return value(std::move(xs));
    }
    case pb::Value::kMapValue:
      if constexpr (moving)
        return value(read_map(*x.mutable_map_value(), shm));
      else
        return value(read_map(x.map_value(), shm));
    case pb::Value::kNdarrayValue:
      if constexpr (moving)
        return read_ndarray(*x.mutable_ndarray_value(), shm);
      else
        return read_ndarray(x.ndarray_value(), shm);
    case pb::Value::kSharedBytes: {
      auto mapping = read_segment(x.shared_bytes(), shm);
      if (!mapping)
        return value();
      return value(bytes{std::string{mapping->data, mapping->size}});
    }
    case pb::Value::kNullValue:
    case pb::Value::KIND_NOT_SET:
      break;
  }
  return value();
}

} // namespace snakepit::detail::proto_impl
