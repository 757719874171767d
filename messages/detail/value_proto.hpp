#pragma once

#include "bridge.pb.h"

#include "snakepit/messages/value.hpp"

// Conversions between `snakepit::value` and the wire messages of
// bridge.proto. Internal: not installed, protobuf stays out of the public
// headers.
//
// `to_proto` overwrites `*out` (it clears it first). The rvalue overloads move
// strings, bytes and map keys into the message and leave the source in a
// valid but unspecified state. Reading a `Value` whose oneof is unset yields
// null; a shared-memory reference reads as null (actors/detail/shm_value_proto.hpp
// has the overloads that map segments). Duplicate keys in a `MapValue` (an
// error per bridge.proto): the last one wins.

namespace snakepit::detail {

/// Writes `x` into `out`, copying strings and bytes.
void to_proto(const value& x, bridge::v1::Value* out);

/// Writes `x` into `out`, moving strings, bytes and map keys.
void to_proto(value&& x, bridge::v1::Value* out);

/// Writes the entries of `xs` into `out` in key order, copying.
void to_proto(const value::map& xs, bridge::v1::MapValue* out);

/// Writes the entries of `xs` into `out` in key order, moving.
void to_proto(value::map&& xs, bridge::v1::MapValue* out);

/// Reads a value, copying strings and bytes.
[[nodiscard]] value from_proto(const bridge::v1::Value& x);

/// Reads a value, moving strings, bytes and keys out of `x`.
[[nodiscard]] value from_proto(bridge::v1::Value&& x);

/// Reads a map, copying strings and bytes. Duplicate keys: the last one wins.
[[nodiscard]] value::map from_proto(const bridge::v1::MapValue& x);

/// Reads a map, moving strings, bytes and keys out of `x`. Duplicate keys:
/// the last one wins.
[[nodiscard]] value::map from_proto(bridge::v1::MapValue&& x);

} // namespace snakepit::detail
