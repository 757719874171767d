// Fuzz target: what a worker process sends back, read as the worker actor reads it. The first
// byte picks the message (a batch reply, a unary reply, a stream reply, the tool list); the rest
// is its wire form, as a hostile or broken Python process could send it. Results are decoded
// with the reader the worker uses (shared memory off: a segment reference must be an error,
// never a read), errors become typed errors, telemetry goes on the bus.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "bridge.pb.h"

#include "snakepit/actors/detail/python_events.hpp"
#include "snakepit/actors/detail/shm_value_proto.hpp"
#include "snakepit/actors/detail/stream_call.hpp"
#include "snakepit/actors/telemetry.hpp"
#include "snakepit/messages/detail/tool_spec_proto.hpp"

namespace {

namespace pb = snakepit::bridge::v1;
using namespace snakepit;

/// Events reach a handler, so that the publishing path runs in full.
std::uint64_t events_seen = 0;

void attach_handler_once() {
  static bool attached = [] {
    telemetry::global().attach("*", [](const telemetry_event& e) {
      events_seen += e.measurements.size() + e.metadata.size();
    });
    return true;
  }();
  (void) attached;
}

const detail::python_event_source source{"fuzz", "fuzz-1", 4242};

/// Whether `x` names a shared-memory segment anywhere.
bool names_segment(const pb::Value& x) {
  switch (x.kind_case()) {
    case pb::Value::kSharedBytes:
      return true;
    case pb::Value::kNdarrayValue:
      return x.ndarray_value().has_segment();
    case pb::Value::kListValue:
      for (auto& item : x.list_value().items())
        if (names_segment(item))
          return true;
      return false;
    case pb::Value::kMapValue:
      for (auto& entry : x.map_value().entries())
        if (names_segment(entry.value()))
          return true;
      return false;
    default:
      return false;
  }
}

/// As `finish_call`: a typed error, or the result and one outcome per item.
void read_response(pb::ExecuteResponse& resp) {
  if (resp.has_telemetry())
    detail::publish_python_events(resp.telemetry(), source);
  if (resp.has_error()) {
    auto err = detail::error_from_wire(resp.error());
    if (!err)
      std::abort(); // an error on the wire is never "no error"
    return;
  }
  detail::shm_reader shm; // no arena: shared memory is off
  shm.take = true;
  bool segment = names_segment(resp.result());
  (void) detail::from_proto(std::move(*resp.mutable_result()), shm);
  for (auto& item : *resp.mutable_items()) {
    if (item.has_error()) {
      (void) detail::error_from_wire(item.error());
    } else {
      segment = segment || names_segment(item.result());
      (void) detail::from_proto(std::move(*item.mutable_result()), shm);
    }
  }
  if (segment && !shm.error)
    std::abort(); // a segment reference without shared memory is an error
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0)
    return 0;
  attach_handler_once();
  auto kind = data[0] % 4;
  auto* body = data + 1;
  auto length = static_cast<int>(size - 1);
  switch (kind) {
    case 0: {
      pb::BatchReply reply;
      if (!reply.ParseFromArray(body, length))
        return 0;
      if (reply.has_telemetry())
        detail::publish_python_events(reply.telemetry(), source);
      for (auto& result : *reply.mutable_results())
        if (result.skipped() == pb::NOT_SKIPPED)
          read_response(*result.mutable_response());
      break;
    }
    case 1: {
      pb::ExecuteResponse resp;
      if (resp.ParseFromArray(body, length))
        read_response(resp);
      break;
    }
    case 2: {
      pb::StreamReply reply;
      if (!reply.ParseFromArray(body, length))
        return 0;
      if (reply.has_telemetry())
        detail::publish_python_events(reply.telemetry(), source);
      if (reply.has_item()) {
        detail::shm_reader shm;
        (void) detail::from_proto(std::move(*reply.mutable_item()), shm);
      } else if (reply.has_error() && !detail::error_from_wire(reply.error())) {
        std::abort();
      }
      break;
    }
    default: {
      pb::ListToolsResponse tools;
      if (tools.ParseFromArray(body, length))
        (void) detail::from_proto(tools);
      break;
    }
  }
  return 0;
}
