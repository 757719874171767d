#include "snakepit/actors/detail/shm_value_proto.hpp"

#include <optional>
#include <string>
#include <utility>

#include "snakepit/actors/detail/shm_arena.hpp"
#include "snakepit/messages/detail/value_proto_impl.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit::detail {

namespace {

namespace pb = bridge::v1;

/// value_proto_impl.hpp's policy for writing through a `shm_writer`.
struct writer_policy {
  shm_writer& shm;

  bool write_segment(const void* data, std::size_t size, pb::SharedSegment* out) {
    if (shm.arena == nullptr || size <= shm.arena->threshold())
      return false;
    if (shm.error)
      return true; // the message is lost anyway: write nothing more
    auto segment = shm.arena->write(data, size);
    if (!segment) {
      shm.error = std::move(segment.error());
      return true;
    }
    out->set_name((*segment)->name());
    out->set_size(size);
    if (shm.hand_over)
      (*segment)->release();
    else
      shm.segments.push_back(std::move(*segment));
    return true;
  }

  std::optional<shm_mapping> read_segment(const pb::SharedSegment&) {
    return std::nullopt;
  }

  void fail(std::string why) {
    if (!shm.error)
      shm.error = make_error(errc::internal, std::move(why));
  }
};

/// value_proto_impl.hpp's policy for reading through a `shm_reader`.
struct reader_policy {
  shm_reader& shm;

  bool write_segment(const void*, std::size_t, pb::SharedSegment*) {
    return false;
  }

  std::optional<shm_mapping> read_segment(const pb::SharedSegment& ref) {
    if (shm.error)
      return std::nullopt;
    if (shm.arena == nullptr) {
      shm.error = make_error(errc::internal, "a message names a shared-memory segment, but "
                                             "shared memory is off here");
      return std::nullopt;
    }
    auto mapping = shm.arena->map(ref.name(), static_cast<std::size_t>(ref.size()), shm.take);
    if (!mapping) {
      shm.error = std::move(mapping.error());
      return std::nullopt;
    }
    return std::move(*mapping);
  }

  void fail(std::string why) {
    if (!shm.error)
      shm.error = make_error(errc::internal, std::move(why));
  }
};

} // namespace

void drop_segments(const bridge::v1::Value& x, shm_arena& arena) {
  switch (x.kind_case()) {
    case pb::Value::kSharedBytes:
      arena.drop(x.shared_bytes().name());
      break;
    case pb::Value::kNdarrayValue:
      if (x.ndarray_value().has_segment())
        arena.drop(x.ndarray_value().segment().name());
      break;
    case pb::Value::kListValue:
      for (auto& item : x.list_value().items())
        drop_segments(item, arena);
      break;
    case pb::Value::kMapValue:
      for (auto& entry : x.map_value().entries())
        drop_segments(entry.value(), arena);
      break;
    default:
      break;
  }
}

void to_proto(value&& x, bridge::v1::Value* out, shm_writer& shm) {
  out->Clear();
  writer_policy policy{shm};
  proto_impl::write(x, out, &policy);
}

void to_proto(value::map&& xs, bridge::v1::MapValue* out, shm_writer& shm) {
  out->Clear();
  writer_policy policy{shm};
  proto_impl::write_map(xs, out, &policy);
}

value from_proto(bridge::v1::Value&& x, shm_reader& shm) {
  reader_policy policy{shm};
  return proto_impl::read(x, &policy);
}

value::map from_proto(bridge::v1::MapValue&& x, shm_reader& shm) {
  reader_policy policy{shm};
  return proto_impl::read_map(x, &policy);
}

} // namespace snakepit::detail
