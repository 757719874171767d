#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gateway.grpc.pb.h"
#include "snakepit/messages/result.hpp"
#include "snakepit/messages/value.hpp"

namespace snakepit::detail {

/// A client's calls over one `Calls` stream (messages/gateway.proto): calls
/// queued while a frame is on its way leave together in the next one, and
/// answers come back matched by id. A stream that fails fails its open calls
/// (`unavailable` and the like) and the next call opens a new one.
class call_mux {
public:
  using callback = std::function<void(result<value>)>;

  call_mux(std::shared_ptr<snakepit::gateway::v1::Gateway::Stub> stub, std::string token,
           std::string address, std::chrono::milliseconds close_grace);

  /// Half-closes the stream and waits for its open calls' answers for up to
  /// the grace period, then cancels it. Streams are destroyed here, before
  /// the stub: the last reference to a gRPC channel must never go on one of
  /// gRPC's own callback threads (it would shut down the callback queue
  /// that thread runs). From inside a callback, a thread of its own waits.
  ~call_mux();

  call_mux(const call_mux&) = delete;
  call_mux& operator=(const call_mux&) = delete;

  /// Sends `call` (its id is set here); `done` runs once, on a gRPC thread.
  void submit(snakepit::gateway::v1::MuxCall call, callback done);

  class stream;

private:
  std::shared_ptr<snakepit::gateway::v1::Gateway::Stub> stub_;
  std::string token_;
  std::string address_;
  std::chrono::milliseconds close_grace_;
  std::mutex mtx_;
  /// The stream new calls go to (also in `streams_`).
  std::shared_ptr<stream> current_;
  /// Every stream not yet destroyed: ended ones are destroyed by the next
  /// `submit` or the destructor, on a thread that is not gRPC's.
  std::vector<std::shared_ptr<stream>> streams_;
  std::uint64_t next_id_ = 1;
};

} // namespace snakepit::detail
