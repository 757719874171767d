#include "snakepit/observability/http_endpoint.hpp"

#include <sys/socket.h>

#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "snakepit/actors/detail/log.hpp"
#include "snakepit/messages/error.hpp"

namespace snakepit {

struct http_endpoint::impl {
  httplib::Server server;
  std::thread thread;
  std::string bind;
  std::uint16_t port = 0;
};

http_endpoint::http_endpoint(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}

http_endpoint::~http_endpoint() {
  impl_->server.stop();
  if (impl_->thread.joinable())
    impl_->thread.join();
}

std::uint16_t http_endpoint::port() const noexcept {
  return impl_->port;
}

std::string http_endpoint::base_url() const {
  auto host = impl_->bind.find(':') != std::string::npos ? "[" + impl_->bind + "]"
                                                         : impl_->bind;
  return fmt::format("http://{}:{}", host, impl_->port);
}

caf::expected<std::unique_ptr<http_endpoint>> http_endpoint::start(options opts,
                                                                   std::vector<route> routes) {
  auto p = std::make_unique<impl>();
  auto& srv = p->server;
  srv.new_task_queue = [] { return new httplib::ThreadPool(http_threads); };
  srv.set_payload_max_length(max_request_bytes);
  srv.set_read_timeout(5, 0);
  srv.set_write_timeout(5, 0);
  srv.set_keep_alive_max_count(100);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a
  // second server on a port in use would silently share it.
  srv.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  auto token = opts.token;
  std::vector<std::string> paths;
  for (auto& r : routes) {
    paths.push_back(r.path);
    srv.Get(r.path, [r, token](const httplib::Request& req, httplib::Response& res) {
      if (!token.empty() && req.get_header_value("Authorization") != "Bearer " + token) {
        res.status = 401;
        res.set_content("missing or wrong token\n", "text/plain");
        return;
      }
      try {
        res.set_content(r.body(), r.content_type.c_str());
      } catch (const std::exception& e) {
        // Never let an exception take the server thread down.
        res.status = 500;
        res.set_content(std::string{"internal error: "} + e.what() + "\n", "text/plain");
      }
    });
  }
  srv.set_error_handler([paths](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404) {
      std::string known;
      for (auto& path : paths)
        known += (known.empty() ? "" : ", ") + path;
      res.set_content("no such endpoint; there are: " + known + "\n", "text/plain");
    }
  });
  int port = opts.port == 0 ? srv.bind_to_any_port(opts.bind)
                            : (srv.bind_to_port(opts.bind, opts.port) ? opts.port : -1);
  if (port <= 0)
    return make_error(errc::bad_config,
                      fmt::format("cannot listen on {}:{} (address in use, not an address "
                                  "of this machine, or no permission); choose another "
                                  "bind or port, or port 0 for any free one",
                                  opts.bind, opts.port));
  p->bind = opts.bind;
  p->port = static_cast<std::uint16_t>(port);
  auto* raw = p.get();
  p->thread = std::thread{[raw] { raw->server.listen_after_bind(); }};
  // stop() is a no-op until the loop runs: wait for it, so that a server
  // destroyed right away still ends.
  while (!raw->server.is_running())
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  return std::unique_ptr<http_endpoint>{new http_endpoint(std::move(p))};
}

} // namespace snakepit
