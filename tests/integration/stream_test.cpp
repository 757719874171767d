// Streaming tools from C++: items in order, errors, cancellation, credit-based
// back-pressure and crashes, with real workers and the showcase adapter.

#include <csignal>
#include <optional>

#include "pool_fixture.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

/// What a consumer got from one stream.
struct stream_outcome {
  std::vector<value> items;
  /// Every item arrived with the next index.
  bool in_order = true;
  std::optional<stream_summary> end;
  caf::error error;
  /// Neither an end nor an error arrived in time.
  bool timed_out = false;
};

struct stream_fixture : system_fixture {
  /// Starts a stream whose consumer is `self`.
  caf::expected<stream_handle> open(caf::scoped_actor& self, const pool_actor& pool,
                                    execute_request req) {
    caf::expected<stream_handle> out{caf::error{}};
    self->request(pool, 10s, execute_stream_atom::value, std::move(req),
                  caf::actor_cast<caf::actor>(self))
      .receive([&](stream_handle& h) { out = std::move(h); },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  /// Receives the stream's messages up to the last one (or `max_items`
  /// items), granting one credit per item when `ack`; the first item expected
  /// is `first_index`.
  static stream_outcome drain(caf::scoped_actor& self, const stream_handle& h, bool ack = true,
                              std::size_t max_items = SIZE_MAX,
                              std::uint64_t first_index = 0) {
    stream_outcome out;
    bool done = false;
    while (!done && out.items.size() < max_items) {
      self->receive(
        [&](stream_item_atom, std::uint64_t id, std::uint64_t index, value& v) {
          REQUIRE(id == h.id);
          out.in_order = out.in_order && index == first_index + out.items.size();
          out.items.push_back(std::move(v));
          if (ack)
            caf::anon_send(h.worker, stream_ack_atom::value, id, std::uint32_t{1});
        },
        [&](stream_end_atom, std::uint64_t id, stream_summary& s) {
          REQUIRE(id == h.id);
          out.end = std::move(s);
          done = true;
        },
        [&](stream_error_atom, std::uint64_t id, caf::error& e) {
          REQUIRE(id == h.id);
          out.error = std::move(e);
          done = true;
        },
        caf::after(std::chrono::seconds{20}) >> [&] {
          out.timed_out = true;
          done = true;
        });
    }
    return out;
  }

  /// True when no stream message for `h` arrives within `wait`.
  static bool quiet(caf::scoped_actor& self, std::chrono::milliseconds wait) {
    bool got = false;
    self->receive([&](stream_item_atom, std::uint64_t, std::uint64_t, value&) { got = true; },
                  [&](stream_end_atom, std::uint64_t, stream_summary&) { got = true; },
                  [&](stream_error_atom, std::uint64_t, caf::error&) { got = true; },
                  caf::after(wait) >> [] {});
    return !got;
  }

  std::int64_t pulled(const pool_actor& pool, const std::string& key) {
    auto r = call(pool, make_request("pulled", {{"key", key}}));
    REQUIRE_MESSAGE(r, message_of(r));
    return *r->result.if_int();
  }
};

} // namespace

TEST_CASE_FIXTURE(stream_fixture, "a stream delivers every item in order, then its summary") {
  auto pool = start(showcase(1));
  caf::scoped_actor self{*sys};
  for (auto tool : {"count", "async_count"}) {
    auto h = open(self, pool, make_request(tool, {{"n", 200}}));
    REQUIRE_MESSAGE(h, describe(h.error()).message);
    auto got = drain(self, *h);
    REQUIRE(!got.timed_out);
    REQUIRE_MESSAGE(!got.error, describe(got.error).message);
    REQUIRE(got.items.size() == 200);
    CHECK(got.in_order);
    for (std::size_t i = 0; i < got.items.size(); ++i)
      CHECK(got.items[i] == value{static_cast<std::int64_t>(i)});
    REQUIRE(got.end);
    CHECK(got.end->items == 200);
    CHECK(got.end->worker_id == "test/w-1");
    CHECK(!h->request_id.empty());
  }
  // The slots came back: a unary call runs on the one worker.
  REQUIRE(call(pool, make_request("noop")));
  auto st = wait_status(pool, [](const pool_status& s) { return s.busy == 0; });
  CHECK(st.served >= 3);
}

TEST_CASE_FIXTURE(stream_fixture, "an error mid-stream comes after the items already sent") {
  auto pool = start(showcase(1));
  caf::scoped_actor self{*sys};
  auto h = open(self, pool, make_request("fail_after", {{"n", 5}}));
  REQUIRE(h);
  auto got = drain(self, *h);
  REQUIRE(!got.timed_out);
  CHECK(got.items.size() == 5);
  CHECK(got.in_order);
  CHECK(!got.end);
  auto info = describe(got.error);
  CHECK(info.kind == "python_exception");
  CHECK(info.python_type == "ValueError");
  CHECK(info.message.find("failed after 5 items") != std::string::npos);
  REQUIRE(call(pool, make_request("noop")));
}

TEST_CASE_FIXTURE(stream_fixture, "an unknown tool is one error and nothing else") {
  auto pool = start(showcase(1));
  caf::scoped_actor self{*sys};
  auto h = open(self, pool, make_request("no_such_tool"));
  REQUIRE(h);
  auto got = drain(self, *h);
  CHECK(got.items.empty());
  CHECK(describe(got.error).kind == "unknown_tool");
  CHECK(quiet(self, 200ms));
  REQUIRE(call(pool, make_request("noop")));
}

TEST_CASE_FIXTURE(stream_fixture, "a streaming tool called with execute is bad_arguments") {
  auto pool = start(showcase(1));
  auto r = call(pool, make_request("count", {{"n", 3}}));
  CHECK(kind_of(r) == "bad_arguments");
  CHECK(message_of(r).find("execute_stream") != std::string::npos);
}

TEST_CASE_FIXTURE(stream_fixture, "cancelling closes the generator and frees the slot") {
  auto pool = start(showcase(1));
  caf::scoped_actor self{*sys};
  auto req = make_request("tracked", {{"n", 1000}, {"delay_ms", 20}});
  req.correlation_id = "cancel-me";
  auto h = open(self, pool, std::move(req));
  REQUIRE(h);
  auto got = drain(self, *h, true, 3);
  REQUIRE(got.items.size() == 3);
  caf::anon_send(h->worker, stream_cancel_atom::value, h->id);
  // Nothing after the cancel but items already on their way.
  bool last_message = false;
  for (;;) {
    bool any = false;
    self->receive([&](stream_item_atom, std::uint64_t, std::uint64_t, value&) { any = true; },
                  [&](stream_end_atom, std::uint64_t, stream_summary&) { last_message = true; },
                  [&](stream_error_atom, std::uint64_t, caf::error&) { last_message = true; },
                  caf::after(300ms) >> [] {});
    if (!any)
      break;
  }
  CHECK(!last_message);
  // One worker of capacity 1: this call runs once the stream's slot is free.
  auto log = call(pool, make_request("stream_closed_log"));
  REQUIRE_MESSAGE(log, message_of(log));
  bool closed = false;
  for (auto& entry : *log->result.if_list()) {
    auto& m = *entry.if_map();
    if (m.at("request_id") == value{h->request_id}) {
      CHECK(m.at("how") == value{"closed"});
      CHECK(m.at("correlation_id") == value{"cancel-me"});
      closed = true;
    }
  }
  CHECK(closed);
  wait_status(pool, [](const pool_status& s) { return s.busy == 0; });
}

TEST_CASE_FIXTURE(stream_fixture, "a slow consumer holds the generator back") {
  constexpr std::int64_t window = 4;
  auto pool = start(showcase(1));
  caf::scoped_actor self{*sys};
  auto req = make_request("count_tracked", {{"n", 1000}, {"key", "slow"}});
  req.stream_window = window;
  auto h = open(self, pool, std::move(req));
  REQUIRE(h);
  std::int64_t granted = 0;  // credits given after the initial window
  std::size_t received = 0;
  for (int round = 0; round < 8; ++round) {
    // Take what the credit allows; nothing more arrives while the consumer
    // dawdles.
    auto got = drain(self, *h, false, static_cast<std::size_t>(window + granted) - received,
                     received);
    REQUIRE(!got.timed_out);
    CHECK(got.in_order);
    received += got.items.size();
    CHECK(static_cast<std::int64_t>(received) == window + granted);
    CHECK(quiet(self, 100ms));
    caf::anon_send(h->worker, stream_ack_atom::value, h->id, std::uint32_t{2});
    granted += 2;
  }
  // The open stream holds the worker's one slot.
  auto busy = status(pool);
  CHECK(busy.busy == 1);
  CHECK(busy.workers.at(0).in_flight == 1);
  caf::anon_send(h->worker, stream_cancel_atom::value, h->id);
  // One process: `pulled` runs there once the stream's slot is free. Python
  // produced at most one item beyond the credit it was given.
  auto produced = pulled(pool, "slow");
  CHECK(produced >= static_cast<std::int64_t>(received));
  CHECK(produced <= static_cast<std::int64_t>(received) + 2 + 1);
  CHECK(produced <= window + granted + 1);
}

TEST_CASE_FIXTURE(stream_fixture, "a worker dying mid-stream ends the stream with an error") {
  auto pool = start(showcase(1));
  caf::scoped_actor self{*sys};
  auto h = open(self, pool, make_request("count", {{"n", 100000}, {"delay_ms", 20}}));
  REQUIRE(h);
  auto first = drain(self, *h, true, 2);
  REQUIRE(first.items.size() == 2);
  auto pid = status(pool).workers.at(0).pid;
  REQUIRE(pid > 0);
  ::kill(pid, SIGKILL);
  auto rest = drain(self, *h, true, SIZE_MAX, 2);
  REQUIRE(!rest.timed_out);
  CHECK(rest.in_order);
  CHECK(!rest.end);
  CHECK(describe(rest.error).kind == "worker_crashed");
  CHECK(quiet(self, 200ms));
  // The pool replaces the worker; streams work on the new one.
  wait_status(pool, [](const pool_status& s) { return s.ready == 1 && s.busy == 0; });
  auto again = open(self, pool, make_request("count", {{"n", 3}}));
  REQUIRE(again);
  CHECK(drain(self, *again).items.size() == 3);
}

TEST_CASE_FIXTURE(stream_fixture, "with no free slot a stream waits in the queue like a call") {
  auto cfg = showcase(1);
  cfg.queue_timeout = 5s;
  auto pool = start(cfg);
  caf::scoped_actor self{*sys};
  auto h = open(self, pool, make_request("count", {{"n", 100000}, {"delay_ms", 20}}));
  REQUIRE(h);
  caf::scoped_actor other{*sys};
  auto pending = other->request(pool, 10s, execute_stream_atom::value,
                                make_request("count", {{"n", 1}}),
                                caf::actor_cast<caf::actor>(other));
  wait_status(pool, [](const pool_status& s) { return s.queued == 1; });
  caf::anon_send(h->worker, stream_cancel_atom::value, h->id);  // frees the slot
  caf::expected<stream_handle> second{caf::error{}};
  pending.receive([&](stream_handle& x) { second = std::move(x); },
                  [&](caf::error& e) { second = std::move(e); });
  REQUIRE_MESSAGE(second, describe(second.error()).message);
  auto got = drain(other, *second);
  CHECK(got.items.size() == 1);
  CHECK(got.end);
}

TEST_CASE_FIXTURE(stream_fixture, "a queued stream without a free slot in queue_timeout is refused") {
  auto cfg = showcase(1);
  cfg.queue_timeout = 300ms;
  auto pool = start(cfg);
  caf::scoped_actor self{*sys};
  auto h = open(self, pool, make_request("count", {{"n", 100000}, {"delay_ms", 20}}));
  REQUIRE(h);
  caf::scoped_actor other{*sys};
  auto t0 = std::chrono::steady_clock::now();
  auto second = open(other, pool, make_request("count", {{"n", 1}}));
  REQUIRE(!second);
  CHECK(describe(second.error()).kind == "pool_saturated");
  CHECK(std::chrono::steady_clock::now() - t0 >= 250ms);
  caf::anon_send(h->worker, stream_cancel_atom::value, h->id);
}

TEST_CASE_FIXTURE(stream_fixture, "stopping the pool ends an open stream with pool_stopped") {
  auto cfg = showcase(1);
  cfg.shutdown_timeout = 1s;
  auto pool = start(cfg);
  caf::scoped_actor self{*sys};
  auto h = open(self, pool, make_request("count", {{"n", 100000}, {"delay_ms", 20}}));
  REQUIRE(h);
  REQUIRE(drain(self, *h, true, 2).items.size() == 2);
  caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
  auto rest = drain(self, *h, true, SIZE_MAX, 2);
  REQUIRE(!rest.timed_out);
  CHECK(rest.in_order);
  CHECK(!rest.end);
  CHECK(describe(rest.error).kind == "pool_stopped");
}

TEST_CASE_FIXTURE(stream_fixture, "a session's stream runs on the session's worker") {
  auto pool = start(showcase(2));
  caf::scoped_actor self{*sys};
  std::string session;
  self->request(pool, 5s, open_session_atom::value, std::string{})
    .receive([&](std::string& id) { session = std::move(id); },
             [&](caf::error& e) { FAIL(describe(e).message); });
  auto first = make_request("worker_info");
  first.session_id = session;
  auto info = call(pool, first);
  REQUIRE(info);
  auto worker = info->worker_id;
  for (int i = 0; i < 3; ++i) {
    auto req = make_request("count", {{"n", 3}});
    req.session_id = session;
    auto h = open(self, pool, std::move(req));
    REQUIRE(h);
    auto got = drain(self, *h);
    REQUIRE(got.end);
    CHECK(got.end->worker_id == worker);
  }
  auto unknown = make_request("count", {{"n", 3}});
  unknown.session_id = "no-such-session";
  auto refused = open(self, pool, std::move(unknown));
  REQUIRE(!refused);
  CHECK(describe(refused.error()).kind == "session_unknown");
}

TEST_CASE_FIXTURE(stream_fixture, "the deadline covers the whole stream, waiting for credit too") {
  auto pool = start(showcase(1));
  caf::scoped_actor self{*sys};
  auto req = make_request("tracked", {{"n", 1000}, {"delay_ms", 0}}, 400ms);
  req.stream_window = 2;
  auto h = open(self, pool, std::move(req));
  REQUIRE(h);
  auto got = drain(self, *h, false);  // never acks
  REQUIRE(!got.timed_out);
  CHECK(got.items.size() == 2);
  CHECK(describe(got.error).kind == "timeout");
  auto log = call(pool, make_request("stream_closed_log"));
  REQUIRE(log);
  bool closed = false;
  for (auto& entry : *log->result.if_list())
    if (entry.if_map()->at("request_id") == value{h->request_id})
      closed = entry.if_map()->at("how") == value{"closed"};
  CHECK(closed);
}

TEST_CASE_FIXTURE(stream_fixture, "an item over the payload limit ends the stream") {
  auto cfg = showcase(1);
  cfg.max_payload_bytes = 4096;
  auto pool = start(cfg);
  caf::scoped_actor self{*sys};
  auto h = open(self, pool, make_request("blobs", {{"n", 3}, {"size", 8192}}));
  REQUIRE(h);
  auto got = drain(self, *h);
  CHECK(got.items.empty());
  CHECK(describe(got.error).kind == "payload_too_large");
  auto small = open(self, pool, make_request("blobs", {{"n", 3}, {"size", 16}}));
  REQUIRE(small);
  auto ok = drain(self, *small);
  REQUIRE(ok.items.size() == 3);
  CHECK(ok.items[2] == value{bytes{std::string(16, char{2})}});
  CHECK(ok.end);
}

TEST_CASE_FIXTURE(stream_fixture, "a generator stuck past its deadline gets its process replaced") {
  auto cfg = showcase(1);
  cfg.health_interval = 100ms;
  cfg.deadline_grace = 200ms;
  auto pool = start(cfg);
  auto old_pid = status(pool).workers.at(0).pid;
  caf::scoped_actor self{*sys};
  // The second step sleeps 5 s: far past the stream's 300 ms deadline.
  auto h = open(self, pool, make_request("count", {{"n", 3}, {"delay_ms", 5000}}, 300ms));
  REQUIRE(h);
  auto got = drain(self, *h);
  CHECK(got.items.size() == 1);
  CHECK(describe(got.error).kind == "timeout");
  // Python still holds its slot for the stuck step: the worker is replaced
  // (not counted as a crash) instead of looking free while it cannot serve.
  auto st = wait_status(pool, [&](const pool_status& s) {
    return s.ready == 1 && s.workers[0].pid != old_pid;
  }, 4s);
  CHECK(st.crashes == 0);
  CHECK(st.replacements == 1);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(call(pool, make_request("noop")));
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
}

TEST_CASE_FIXTURE(stream_fixture, "for_each_item consumes a stream with acks, in order, and ends cleanly") {
  auto pool = start(showcase(1));
  caf::scoped_actor self{*sys};
  SUBCASE("to the end") {
    std::vector<std::int64_t> got;
    auto summary = for_each_item(self, pool, make_request("count", {{"n", 100}}),
                                 [&](const value& item) {
                                   got.push_back(item.as_int());
                                   return true;
                                 });
    REQUIRE_MESSAGE(summary, describe(summary.error()).message);
    CHECK(summary->items == 100);
    REQUIRE(got.size() == 100);
    CHECK(got.front() == 0);
    CHECK(got.back() == 99);
  }
  SUBCASE("stopping early cancels the generator and frees the worker") {
    std::size_t seen = 0;
    auto summary = for_each_item(self, pool, make_request("count", {{"n", 1000000}}),
                                 [&](const value&) { return ++seen < 5; });
    REQUIRE(summary);
    CHECK(summary->items == 5);
    auto st = wait_status(pool, [](const pool_status& s) { return s.busy == 0; });
    CHECK(st.busy == 0);
    REQUIRE(call(pool, make_request("noop")));
  }
  SUBCASE("an error after some items") {
    std::size_t seen = 0;
    auto summary = for_each_item(self, pool, make_request("fail_after", {{"n", 3}}),
                                 [&](const value&) { return ++seen, true; });
    REQUIRE(!summary);
    CHECK(describe(summary.error()).kind == "python_exception");
    CHECK(seen == 3);
  }
  SUBCASE("an idle timeout cancels") {
    auto summary = for_each_item(self, pool, make_request("count", {{"n", 5}, {"delay_ms", 2000}}),
                                 [&](const value&) { return true; }, 200ms);
    REQUIRE(!summary);
    CHECK(describe(summary.error()).kind == "timeout");
  }
}
