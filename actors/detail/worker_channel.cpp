#include "snakepit/actors/detail/worker_channel.hpp"

#include <climits>

namespace snakepit::detail {

worker_channel::worker_channel(const std::string& socket_path,
                               std::int64_t max_message_bytes) {
  grpc::ChannelArguments args;
  auto limit = static_cast<int>(std::min<std::int64_t>(max_message_bytes, INT_MAX));
  args.SetMaxReceiveMessageSize(limit);
  args.SetMaxSendMessageSize(limit);
  // Each worker has its own channel: never share a subchannel between workers.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  channel_ = grpc::CreateCustomChannel("unix:" + socket_path,
                                       grpc::InsecureChannelCredentials(), args);
  stub_ = bridge::v1::Worker::NewStub(channel_);
}

void worker_channel::execute(rpc_call_ptr call,
                             std::function<void(rpc_call_ptr)> done) {
  call->channel = channel_;
  auto* raw = call.get();
  stub_->async()->Execute(&raw->context, &raw->request, &raw->response,
                          [call = std::move(call), done = std::move(done)](
                            grpc::Status status) mutable {
                            call->status = std::move(status);
                            done(std::move(call));
                          });
}

} // namespace snakepit::detail
