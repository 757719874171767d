#include "snakepit/observability/http_endpoint.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "snakepit/messages/error.hpp"

namespace snakepit {

namespace {

using clock_type = std::chrono::steady_clock;

std::string reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

std::string make_response(int status, std::string_view content_type, std::string_view body) {
  auto out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
                         "Connection: close\r\nCache-Control: no-store\r\n\r\n",
                         status, reason_phrase(status), content_type, body.size());
  out.append(body);
  return out;
}

std::string text_response(int status, std::string_view text) {
  return make_response(status, "text/plain; charset=utf-8", text);
}

/// Compares without an early exit, so the time taken does not tell how much
/// of a guessed token was right.
bool same_secret(std::string_view given, std::string_view expected) {
  if (expected.empty())
    return false;
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < given.size(); ++i)
    diff |= static_cast<unsigned char>(given[i] ^ expected[i % expected.size()]);
  return diff == 0;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i]))
        != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

/// The parts of a request head we use.
struct request_head {
  std::string method;
  std::string path;
  std::string authorization;
};

bool parse_head(std::string_view head, request_head& out) {
  auto eol = head.find("\r\n");
  auto line = head.substr(0, eol);
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1)
    return false;
  out.method = std::string{line.substr(0, sp1)};
  auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (line.substr(sp2 + 1).compare(0, 5, "HTTP/") != 0 || target.empty()
      || target.front() != '/')
    return false;
  out.path = std::string{target.substr(0, target.find('?'))};
  while (eol != std::string_view::npos) {
    auto start = eol + 2;
    eol = head.find("\r\n", start);
    auto header = head.substr(start, eol == std::string_view::npos ? head.npos : eol - start);
    auto colon = header.find(':');
    if (colon == std::string_view::npos)
      continue;
    if (iequals(trim(header.substr(0, colon)), "authorization"))
      out.authorization = std::string{trim(header.substr(colon + 1))};
  }
  return true;
}

void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

} // namespace

struct http_endpoint::impl {
  enum class phase { reading, handling, writing };

  struct connection {
    int fd = -1;
    std::string client;
    phase state = phase::reading;
    std::string in;
    std::string out;
    std::size_t out_sent = 0;
    clock_type::time_point deadline;
  };

  struct job {
    std::uint64_t conn = 0;
    request_head head;
  };

  struct done {
    std::uint64_t conn = 0;
    std::string response;
  };

  options opts;
  std::vector<route> routes;
  std::string bind;
  std::uint16_t port = 0;
  int listen_fd = -1;
  int epoll_fd = -1;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};
  std::thread loop_thread;
  std::vector<std::thread> handlers;

  // Loop thread only.
  std::unordered_map<std::uint64_t, connection> conns;
  std::map<std::string, std::size_t> per_client;
  std::uint64_t next_conn = 1;

  // Between the loop and the handler threads.
  std::mutex mtx;
  std::condition_variable jobs_ready;
  std::deque<job> jobs;
  std::deque<done> finished;

  ~impl() {
    for (int fd : {listen_fd, epoll_fd, wake_fd})
      if (fd >= 0)
        ::close(fd);
    for (auto& [id, c] : conns)
      ::close(c.fd);
  }

  void wake() {
    std::uint64_t one = 1;
    auto n = ::write(wake_fd, &one, sizeof one);
    (void) n;
  }

  void close_conn(std::uint64_t id) {
    auto i = conns.find(id);
    if (i == conns.end())
      return;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, i->second.fd, nullptr);
    ::close(i->second.fd);
    if (auto pc = per_client.find(i->second.client); pc != per_client.end() && --pc->second == 0)
      per_client.erase(pc);
    conns.erase(i);
  }

  /// Queues `response` on the connection and watches it for writability.
  void respond(std::uint64_t id, std::string response) {
    auto i = conns.find(id);
    if (i == conns.end())
      return;
    auto& c = i->second;
    // A connection being handled is out of the epoll set (see on_readable).
    auto op = c.state == phase::handling ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    c.state = phase::writing;
    c.out = std::move(response);
    c.out_sent = 0;
    c.deadline = clock_type::now() + opts.write_timeout;
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = id;
    ::epoll_ctl(epoll_fd, op, c.fd, &ev);
    on_writable(id);
  }

  void on_writable(std::uint64_t id) {
    auto i = conns.find(id);
    if (i == conns.end() || i->second.state != phase::writing)
      return;
    auto& c = i->second;
    while (c.out_sent < c.out.size()) {
      auto n = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent,
                      MSG_NOSIGNAL);
      if (n > 0) {
        c.out_sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;  // wait for EPOLLOUT
      break;      // the client is gone
    }
    ::shutdown(c.fd, SHUT_WR);
    close_conn(id);
  }

  void on_readable(std::uint64_t id) {
    auto i = conns.find(id);
    if (i == conns.end() || i->second.state != phase::reading)
      return;
    auto& c = i->second;
    char buf[4096];
    bool eof = false;
    for (;;) {
      auto n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        c.in.append(buf, static_cast<std::size_t>(n));
        if (c.in.size() > max_request_bytes)
          break;
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      eof = !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
      break;
    }
    auto end = c.in.find("\r\n\r\n");
    if (end == std::string::npos || end + 4 > max_request_bytes) {
      if (c.in.size() > max_request_bytes)
        respond(id, text_response(431, fmt::format("a request head may have at most {} bytes\n",
                                                   max_request_bytes)));
      else if (eof)
        close_conn(id);  // gone before a whole request
      return;
    }
    request_head head;
    if (!parse_head(std::string_view{c.in}.substr(0, end + 2), head)) {
      respond(id, text_response(400, "malformed request\n"));
      return;
    }
    if (head.method != "GET") {
      respond(id, text_response(405, "only GET is served here\n"));
      return;
    }
    c.state = phase::handling;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
    {
      std::lock_guard<std::mutex> guard{mtx};
      jobs.push_back({id, std::move(head)});
    }
    jobs_ready.notify_one();
  }

  void on_accept() {
    for (;;) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0)
        return;
      char host[INET6_ADDRSTRLEN] = "?";
      if (addr.ss_family == AF_INET)
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, host, sizeof host);
      else if (addr.ss_family == AF_INET6)
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, host,
                    sizeof host);
      std::string client = host;
      std::string refusal;
      // Full: make room by dropping the connection that has waited longest
      // for its request head. Any local user can open connections from many
      // loopback addresses; this way they cannot hold the endpoint, since a
      // real client's head arrives at once and is then no longer evictable.
      if (conns.size() >= opts.max_connections)
        evict_oldest_reader();
      if (conns.size() >= opts.max_connections)
        refusal = text_response(503, fmt::format("too many connections (max_connections = {}); "
                                                 "retry shortly\n", opts.max_connections));
      else if (per_client[client] >= opts.max_connections_per_client)
        refusal = text_response(429, fmt::format("too many connections from {} "
                                                 "(max_connections_per_client = {})\n",
                                                 client, opts.max_connections_per_client));
      if (!refusal.empty()) {
        if (per_client[client] == 0)
          per_client.erase(client);
        // Best effort, never waiting: the socket buffer takes a short answer.
        auto n = ::send(fd, refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        (void) n;
        ::close(fd);
        continue;
      }
      auto id = next_conn++;
      auto& c = conns[id];
      c.fd = fd;
      c.client = client;
      c.deadline = clock_type::now() + opts.request_timeout;
      ++per_client[client];
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.u64 = id;
      ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    }
  }

  void evict_oldest_reader() {
    std::uint64_t oldest = 0;
    clock_type::time_point oldest_deadline = clock_type::time_point::max();
    for (auto& [id, c] : conns)
      if (c.state == phase::reading && c.deadline < oldest_deadline) {
        oldest = id;
        oldest_deadline = c.deadline;
      }
    if (oldest != 0)
      close_conn(oldest);
  }

  /// Drops connections past their deadline; returns the wait until the next one.
  int expire() {
    auto now = clock_type::now();
    std::vector<std::uint64_t> late_readers;
    std::vector<std::uint64_t> late_writers;
    auto next = now + std::chrono::seconds{1};
    for (auto& [id, c] : conns) {
      if (c.state == phase::handling)
        continue;
      if (c.deadline <= now)
        (c.state == phase::reading ? late_readers : late_writers).push_back(id);
      else if (c.deadline < next)
        next = c.deadline;
    }
    for (auto id : late_writers)
      close_conn(id);
    for (auto id : late_readers) {
      auto& c = conns[id];
      // One non-blocking try; whoever cannot take it is dropped.
      auto text = text_response(408, fmt::format("the request did not arrive within {} ms\n",
                                                 opts.request_timeout.count()));
      auto n = ::send(c.fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      (void) n;
      close_conn(id);
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
    return static_cast<int>(std::max<long long>(1, wait + 1));
  }

  void run_loop() {
    constexpr std::uint64_t listen_id = 0;
    constexpr std::uint64_t wake_id = ~std::uint64_t{0};
    epoll_event evs[64];
    while (!stopping.load()) {
      int n = ::epoll_wait(epoll_fd, evs, 64, expire());
      for (int i = 0; i < n; ++i) {
        auto id = evs[i].data.u64;
        if (id == listen_id) {
          on_accept();
        } else if (id == wake_id) {
          std::uint64_t count = 0;
          auto r = ::read(wake_fd, &count, sizeof count);
          (void) r;
          std::deque<done> ready;
          {
            std::lock_guard<std::mutex> guard{mtx};
            ready.swap(finished);
          }
          for (auto& d : ready)
            respond(d.conn, std::move(d.response));
        } else if ((evs[i].events & EPOLLOUT) != 0) {
          on_writable(id);
        } else if ((evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
          on_readable(id);
        }
      }
    }
  }

  std::string answer(const request_head& head) {
    if (!opts.token.empty() && !same_secret(head.authorization, "Bearer " + opts.token))
      return text_response(401, "missing or wrong token\n");
    for (auto& r : routes) {
      if (r.path != head.path)
        continue;
      try {
        return make_response(200, r.content_type, r.body());
      } catch (const std::exception& e) {
        // Never let an exception take a server thread down.
        return text_response(500, std::string{"internal error: "} + e.what() + "\n");
      }
    }
    std::string known;
    for (auto& r : routes)
      known += (known.empty() ? "" : ", ") + r.path;
    return text_response(404, "no such endpoint; there are: " + known + "\n");
  }

  void run_handler() {
    for (;;) {
      job next;
      {
        std::unique_lock<std::mutex> guard{mtx};
        jobs_ready.wait(guard, [this] { return stopping.load() || !jobs.empty(); });
        if (stopping.load())
          return;
        next = std::move(jobs.front());
        jobs.pop_front();
      }
      auto response = answer(next.head);
      {
        std::lock_guard<std::mutex> guard{mtx};
        finished.push_back({next.conn, std::move(response)});
      }
      wake();
    }
  }
};

http_endpoint::http_endpoint(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}

http_endpoint::~http_endpoint() {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->stopping = true;
  }
  impl_->jobs_ready.notify_all();
  impl_->wake();
  if (impl_->loop_thread.joinable())
    impl_->loop_thread.join();
  for (auto& t : impl_->handlers)
    t.join();
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
  auto cannot_listen = [&](const std::string& why) {
    return make_error(errc::bad_config,
                      fmt::format("cannot listen on {}:{} ({}); choose another bind or port, "
                                  "or port 0 for any free one",
                                  opts.bind, opts.port, why));
  };
  if (opts.max_connections == 0 || opts.max_connections_per_client == 0)
    return make_error(errc::bad_config, "max_connections and max_connections_per_client "
                                        "must be at least 1");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  auto service = std::to_string(opts.port);
  if (int rc = ::getaddrinfo(opts.bind.c_str(), service.c_str(), &hints, &found); rc != 0)
    return cannot_listen(std::string{"not an address of this machine: "} + ::gai_strerror(rc));
  auto p = std::make_unique<impl>();
  std::string last_error = "no address";
  for (auto* ai = found; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
      continue;
    // SO_REUSEADDR only: with SO_REUSEPORT a second server on a port in use
    // would silently share it.
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 64) == 0) {
      p->listen_fd = fd;
      break;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (p->listen_fd < 0)
    return cannot_listen(last_error);
  set_nonblocking(p->listen_fd);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(p->listen_fd, reinterpret_cast<sockaddr*>(&bound), &len);
  p->port = ntohs(bound.ss_family == AF_INET6
                    ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                    : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  p->epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  p->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->epoll_fd < 0 || p->wake_fd < 0)
    return make_error(errc::internal, std::string{"http endpoint: "} + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  ::epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->listen_fd, &ev);
  ev.data.u64 = ~std::uint64_t{0};
  ::epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->wake_fd, &ev);
  p->bind = opts.bind;
  p->opts = std::move(opts);
  p->routes = std::move(routes);
  auto* raw = p.get();
  p->loop_thread = std::thread{[raw] { raw->run_loop(); }};
  for (int i = 0; i < http_threads; ++i)
    p->handlers.emplace_back([raw] { raw->run_handler(); });
  return std::unique_ptr<http_endpoint>{new http_endpoint(std::move(p))};
}

} // namespace snakepit
