#include "snakepit/actors/telemetry.hpp"

#include <atomic>
#include <exception>
#include <mutex>

#include "snakepit/actors/detail/log.hpp"

namespace snakepit {

struct telemetry::impl {
  struct entry {
    std::uint64_t id;
    std::string name;
    handler fn;
  };
  using list = std::vector<entry>;

  std::mutex mtx;  // writers only
  std::shared_ptr<const list> handlers = std::make_shared<const list>();
  std::atomic<std::size_t> count{0};
  std::atomic<std::uint64_t> next_id{0};
  std::atomic<std::uint64_t> thrown{0};

  std::shared_ptr<const list> snapshot() const {
    return std::atomic_load(&handlers);
  }
};

telemetry::telemetry() : impl_(std::make_unique<impl>()) {
  // nop
}

telemetry::~telemetry() = default;

telemetry& telemetry::global() {
  static auto* bus = new telemetry;  // never destroyed: emitters may run during exit
  return *bus;
}

std::uint64_t telemetry::attach(std::string event_name, handler h) {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  auto id = ++impl_->next_id;
  auto next = std::make_shared<impl::list>(*impl_->snapshot());
  next->push_back(impl::entry{id, std::move(event_name), std::move(h)});
  std::atomic_store(&impl_->handlers, std::shared_ptr<const impl::list>{std::move(next)});
  ++impl_->count;
  return id;
}

bool telemetry::detach(std::uint64_t id) {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  auto current = impl_->snapshot();
  auto next = std::make_shared<impl::list>();
  for (auto& e : *current)
    if (e.id != id)
      next->push_back(e);
  if (next->size() == current->size())
    return false;
  std::atomic_store(&impl_->handlers, std::shared_ptr<const impl::list>{std::move(next)});
  --impl_->count;
  return true;
}

bool telemetry::enabled() const noexcept {
  return impl_->count.load(std::memory_order_relaxed) > 0;
}

std::uint64_t telemetry::detached_for_throwing() const noexcept {
  return impl_->thrown.load();
}

void telemetry::emit(const telemetry_event& e) {
  if (!enabled())
    return;
  auto handlers = impl_->snapshot();
  for (auto& h : *handlers) {
    if (h.name != "*" && h.name != e.name)
      continue;
    std::string failure;
    try {
      h.fn(e);
      continue;
    } catch (const std::exception& ex) {
      failure = ex.what();
    } catch (...) {
      failure = "a non-standard exception";
    }
    detail::log_error("telemetry", "handler {} for '{}' threw on '{}' ({}): detached", h.id,
                      h.name, e.name, failure);
    if (detach(h.id))
      ++impl_->thrown;
  }
}

} // namespace snakepit
