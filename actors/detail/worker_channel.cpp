#include "snakepit/actors/detail/worker_channel.hpp"

#include "snakepit/actors/detail/batch_stream.hpp"
#include "snakepit/actors/detail/stream_call.hpp"

#include <climits>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace snakepit::detail {

namespace {

/// Destroys retired channels on its own thread once no call uses them.
class channel_keeper {
public:
  static channel_keeper& instance() {
    // Never destroyed: calls may still complete while the process exits.
    static auto* keeper = new channel_keeper;
    return *keeper;
  }

  void retire(std::shared_ptr<channel_slot> slot) {
    slot->retired = true;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      retired_.push_back(std::move(slot));
    }
    cv_.notify_one();
  }

  void call_finished() {
    cv_.notify_one();
  }

private:
  channel_keeper() {
    std::thread{[this] { run(); }}.detach();
  }

  void run() {
    std::unique_lock<std::mutex> lock{mtx_};
    for (;;) {
      cv_.wait(lock, [this] { return has_idle(); });
      std::vector<std::shared_ptr<channel_slot>> idle;
      for (auto i = retired_.begin(); i != retired_.end();) {
        if ((*i)->calls.load() == 0) {
          idle.push_back(std::move(*i));
          i = retired_.erase(i);
        } else {
          ++i;
        }
      }
      lock.unlock();
      for (auto& slot : idle)
        slot->channel.reset();  // here, never on a gRPC thread
      idle.clear();
      lock.lock();
    }
  }

  bool has_idle() const {
    for (auto& slot : retired_)
      if (slot->calls.load() == 0)
        return true;
    return false;
  }

  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<channel_slot>> retired_;
};

} // namespace

void call_guard::attach(std::shared_ptr<channel_slot> slot) {
  slot_ = std::move(slot);
  slot_->calls.fetch_add(1);
}

call_guard::~call_guard() {
  if (slot_ && slot_->calls.fetch_sub(1) == 1 && slot_->retired.load())
    channel_keeper::instance().call_finished();
}

worker_channel::worker_channel(const std::string& socket_path,
                               std::int64_t max_message_bytes) {
  grpc::ChannelArguments args;
  auto limit = static_cast<int>(std::min<std::int64_t>(max_message_bytes, INT_MAX));
  args.SetMaxReceiveMessageSize(limit);
  args.SetMaxSendMessageSize(limit);
  // Each worker has its own channel: never share a subchannel between workers.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  slot_ = std::make_shared<channel_slot>();
  slot_->channel = grpc::CreateCustomChannel("unix:" + socket_path,
                                             grpc::InsecureChannelCredentials(), args);
  stub_ = bridge::v1::Worker::NewStub(slot_->channel);
  generic_ = std::make_unique<grpc::GenericStub>(slot_->channel);
}

worker_channel::~worker_channel() {
  stub_.reset();
  generic_.reset();
  channel_keeper::instance().retire(std::move(slot_));
}

namespace {

/// Calls `method` (e.g. "Execute") of service Worker with `request`, and parses the reply into
/// `response` before `done(status)` runs. gRPC's own callback unary call does not do for us:
/// a reply that does not parse is dropped and the call still reports the server's status, OK,
/// with `response` untouched (a garbage reply read as an empty success). A worker process is
/// not trusted, so its reply arrives as bytes (`reply_bytes`) and an unreadable one is INTERNAL,
/// like a broken transport. `request_bytes`, `reply_bytes` and `response` must live until
/// `done` has run (`done` owns the call that holds them).
template <class Request, class Response>
void call_parsed(grpc::GenericStub& stub, grpc::ClientContext* context, const char* method,
                 const Request& request, grpc::ByteBuffer* request_bytes,
                 grpc::ByteBuffer* reply_bytes, Response* response,
                 std::function<void(grpc::Status)> done) {
  bool own_buffer = false;
  auto written = grpc::SerializationTraits<Request>::Serialize(request, request_bytes, &own_buffer);
  if (!written.ok()) {
    done(std::move(written));
    return;
  }
  stub.UnaryCall(context, std::string{"/snakepit.bridge.v1.Worker/"} + method, grpc::StubOptions{},
                 request_bytes, reply_bytes,
                 [method, reply_bytes, response, done = std::move(done)](grpc::Status status) {
                   if (status.ok()) {
                     auto read = grpc::SerializationTraits<Response>::Deserialize(reply_bytes,
                                                                                  response);
                     if (!read.ok())
                       status = grpc::Status{grpc::StatusCode::INTERNAL,
                                             std::string{"the worker's reply to "} + method
                                               + " is unreadable: " + read.error_message()};
                   }
                   done(std::move(status));
                 });
}

} // namespace

void worker_channel::execute(rpc_call_ptr call, std::function<void(rpc_call_ptr)> done) {
  call->guard.attach(slot_);
  auto* raw = call.get();
  call_parsed(*generic_, &raw->context, "Execute", raw->request, &raw->request_bytes,
              &raw->response_bytes, &raw->response,
              [call = std::move(call), done = std::move(done)](grpc::Status status) mutable {
                call->status = std::move(status);
                done(std::move(call));
              });
}

std::shared_ptr<batch_stream> worker_channel::open_batches(std::uint64_t id,
                                                           caf::actor_addr worker) {
  auto stream = std::make_shared<batch_stream>(id, std::move(worker));
  stream->start(*stub_, slot_);
  return stream;
}

void worker_channel::execute_stream(const std::shared_ptr<stream_call>& call,
                                    bridge::v1::ExecuteRequest start,
                                    std::chrono::system_clock::time_point deadline) {
  call->start(*stub_, slot_, std::move(start), deadline);
}

namespace {

/// A small unary call in flight: everything gRPC needs until it completes.
template <class Request, class Response>
struct unary_call {
  call_guard guard;  // first: destroyed last
  grpc::ClientContext context;
  Request request;
  Response response;
  grpc::ByteBuffer request_bytes;
  grpc::ByteBuffer response_bytes;

  static std::shared_ptr<unary_call> make(const std::shared_ptr<channel_slot>& slot,
                                          std::chrono::milliseconds timeout) {
    auto call = std::make_shared<unary_call>();
    call->guard.attach(slot);
    call->context.set_deadline(std::chrono::system_clock::now() + timeout);
    return call;
  }
};

} // namespace

void worker_channel::ping(std::chrono::milliseconds timeout,
                          std::function<void(bool, const bridge::v1::PingResponse&)> done) {
  auto call = unary_call<bridge::v1::PingRequest, bridge::v1::PingResponse>::make(slot_, timeout);
  auto* raw = call.get();
  call_parsed(*generic_, &raw->context, "Ping", raw->request, &raw->request_bytes,
              &raw->response_bytes, &raw->response,
              [call, done = std::move(done)](grpc::Status status) {
                done(status.ok(), call->response);
              });
}

void worker_channel::list_tools(
  std::chrono::milliseconds timeout,
  std::function<void(bool, const bridge::v1::ListToolsResponse&)> done) {
  auto call = unary_call<bridge::v1::ListToolsRequest, bridge::v1::ListToolsResponse>::make(
    slot_, timeout);
  auto* raw = call.get();
  call_parsed(*generic_, &raw->context, "ListTools", raw->request, &raw->request_bytes,
              &raw->response_bytes, &raw->response,
              [call, done = std::move(done)](grpc::Status status) {
                done(status.ok(), call->response);
              });
}

void worker_channel::close_session(const std::string& session_id, const std::string& reason,
                                   std::chrono::milliseconds timeout,
                                   std::function<void(bool)> done) {
  auto call = unary_call<bridge::v1::CloseSessionRequest,
                         bridge::v1::CloseSessionResponse>::make(slot_, timeout);
  call->request.set_session_id(session_id);
  call->request.set_reason(reason);
  auto* raw = call.get();
  call_parsed(*generic_, &raw->context, "CloseSession", raw->request, &raw->request_bytes,
              &raw->response_bytes, &raw->response,
              [call, done = std::move(done)](grpc::Status status) { done(status.ok()); });
}

} // namespace snakepit::detail
