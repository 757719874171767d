#include "progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <mutex>

#include <fmt/format.h>

#include "snakepit/actors/telemetry.hpp"

namespace snakepit::cli {

struct startup_progress::impl {
  std::mutex mtx;
  std::map<std::string, std::uint32_t> sizes;
  std::map<std::string, std::uint32_t> ready;
  std::uint32_t min_workers = 4;
  bool tty = ::isatty(STDERR_FILENO) == 1;
  bool line_open = false;
  bool done = false;

  void on_started(const std::string& pool) {
    std::lock_guard<std::mutex> guard{mtx};
    auto size = sizes.find(pool);
    if (done || size == sizes.end() || size->second < min_workers)
      return;
    auto n = ++ready[pool];
    if (n > size->second)
      return;  // a restart after start-up: not progress
    auto text = fmt::format("snakepit: pool {}: {}/{} workers ready", pool, n, size->second);
    if (tty) {
      std::fprintf(stderr, "\r%s\033[K", text.c_str());
      line_open = n < size->second;
      if (!line_open)
        std::fputc('\n', stderr);
    } else {
      auto quarter = std::max<std::uint32_t>(1, size->second / 4);
      if (n % quarter == 0 || n == size->second)
        std::fprintf(stderr, "%s\n", text.c_str());
    }
    std::fflush(stderr);
  }

  void finish() {
    std::lock_guard<std::mutex> guard{mtx};
    if (line_open)
      std::fputc('\n', stderr);
    line_open = false;
    done = true;
  }
};

startup_progress::startup_progress(std::map<std::string, std::uint32_t> sizes,
                                   std::uint32_t min_workers)
  : impl_(std::make_shared<impl>()) {
  impl_->sizes = std::move(sizes);
  impl_->min_workers = min_workers;
  handler_ = telemetry::global().attach(
    "snakepit.worker.started", [p = impl_](const telemetry_event& e) {
      if (auto i = e.metadata.find("pool"); i != e.metadata.end())
        p->on_started(i->second);
    });
}

startup_progress::~startup_progress() {
  telemetry::global().detach(handler_);
  impl_->finish();
}

void startup_progress::finish() {
  telemetry::global().detach(handler_);
  impl_->finish();
}

} // namespace snakepit::cli
