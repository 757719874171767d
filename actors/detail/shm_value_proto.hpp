#pragma once

#include <memory>
#include <vector>

#include <caf/error.hpp>

#include "bridge.pb.h"

#include "snakepit/messages/detail/value_proto.hpp"

// The value conversions of messages/detail/value_proto.hpp for the two ends of
// a worker's wire, where bytes and array payloads above the arena's threshold
// travel in shared-memory segments instead of the message.

namespace snakepit::detail {

class shm_arena;
class shm_segment;

/// Where `to_proto` puts bytes and array payloads above the arena's
/// threshold: into shared-memory segments instead of the message.
struct shm_writer {
  /// Null: every payload stays inline.
  shm_arena* arena = nullptr;
  /// Results: the receiver owns (and removes) the segments once it has them.
  /// Otherwise (arguments) `segments` holds them until the call ends.
  bool hand_over = false;
  std::vector<std::shared_ptr<shm_segment>> segments;
  /// The first failure (e.g. `payload_too_large`); the message is unusable.
  caf::error error;
};

/// How `from_proto` reads segment references.
struct shm_reader {
  /// Null: a reference is an error.
  shm_arena* arena = nullptr;
  /// Results: remove each segment's name once it is mapped.
  bool take = false;
  /// The first failure (a bad reference, a missing segment).
  caf::error error;
};

/// Writes `x` into `out`, moving; payloads above the threshold go to `shm`.
void to_proto(value&& x, bridge::v1::Value* out, shm_writer& shm);

/// Writes the entries of `xs` into `out` in key order, moving; payloads above
/// the threshold go to `shm`.
void to_proto(value::map&& xs, bridge::v1::MapValue* out, shm_writer& shm);

/// Reads a value, moving out of `x` and mapping segments through `shm`.
[[nodiscard]] value from_proto(bridge::v1::Value&& x, shm_reader& shm);

/// Reads a map, moving out of `x` and mapping segments through `shm`.
[[nodiscard]] value::map from_proto(bridge::v1::MapValue&& x, shm_reader& shm);

/// Removes the segments `x` names without reading them (results nobody
/// waits for any more).
void drop_segments(const bridge::v1::Value& x, shm_arena& arena);

} // namespace snakepit::detail
