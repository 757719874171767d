// n-d arrays and large payloads with real workers: every dtype both ways,
// shapes, layouts, nesting, the shared-memory path (threshold edges, budget,
// threads, crashes, timeouts, streams, host tools) and who may open a segment.

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <numeric>

#include "pool_fixture.hpp"
#include "snakepit/actors/detail/shm_arena.hpp"

using namespace snakepit;
using namespace snakepit::testing;
using namespace std::chrono_literals;

namespace {

/// Public segment names in this host's shared-memory directory: payloads not
/// taken or withdrawn yet (idle files kept for reuse have private p... names).
std::vector<std::string> segment_files(std::string_view prefix = {}) {
  std::vector<std::string> out;
  auto dir = detail::shm_directory();
  REQUIRE(dir);
  if (auto* d = ::opendir(dir->c_str())) {
    while (auto* e = ::readdir(d))
      if (e->d_name[0] != '.' && (prefix.empty() ? e->d_name[0] != 'p'
                                                  : std::string_view{e->d_name}.substr(
                                                      0, prefix.size()) == prefix))
        out.emplace_back(e->d_name);
    ::closedir(d);
  }
  return out;
}

/// Whether the shared-memory directory empties within a few seconds (a call's
/// segments go right after its caller has the reply).
bool segments_drain() {
  for (int i = 0; i < 200; ++i) {
    if (segment_files().empty())
      return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

/// An array of `count` elements of `type` whose bytes count up (mod 251).
ndarray pattern(dtype type, ndarray::shape_type shape) {
  std::size_t count = 1;
  for (auto extent : shape)
    count *= static_cast<std::size_t>(extent);
  std::string data(count * itemsize(type), '\0');
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<char>(i % 251);
  if (type == dtype::boolean)  // numpy keeps bools 0 or 1
    for (auto& c : data)
      c = static_cast<char>(c & 1);
  return *ndarray::from_bytes(type, std::move(shape), std::move(data));
}

ndarray floats(std::size_t count, float first = 0) {
  std::vector<float> xs(count);
  std::iota(xs.begin(), xs.end(), first);
  return ndarray{std::move(xs)};
}

struct arrays_fixture : system_fixture {
  value info(const pool_actor& pool, value x) {
    auto r = call(pool, make_request("array_info", {{"value", std::move(x)}}));
    REQUIRE_MESSAGE(r, message_of(r));
    return r->result;
  }

  value echo(const pool_actor& pool, value x) {
    auto r = call(pool, make_request("echo", {{"value", std::move(x)}}));
    REQUIRE_MESSAGE(r, message_of(r));
    return r->result;
  }
};

constexpr dtype all_dtypes[] = {
  dtype::boolean, dtype::int8,    dtype::int16,   dtype::int32,     dtype::int64,
  dtype::uint8,   dtype::uint16,  dtype::uint32,  dtype::uint64,    dtype::float16,
  dtype::float32, dtype::float64, dtype::complex64, dtype::complex128,
};

} // namespace

TEST_CASE_FIXTURE(arrays_fixture, "every dtype crosses both ways as a numpy array") {
  auto pool = start(showcase(1));
  for (auto type : all_dtypes) {
    CAPTURE(to_string(type));
    auto a = pattern(type, {2, 3});
    auto got = info(pool, a);
    CHECK(got["type"] == value("ndarray"));
    CHECK(got["dtype"] == value(std::string{to_string(type)}));
    CHECK(got["shape"] == value::make_list({2, 3}));
    CHECK(got["writeable"] == value(false));  // a zero-copy view
    CHECK(echo(pool, a) == value(a));
    // Made in Python: arange(6) in that dtype.
    auto made = call(pool, make_request("make_array", {{"dtype", std::string{to_string(type)}},
                                                       {"shape", value::make_list({2, 3})}}));
    REQUIRE_MESSAGE(made, message_of(made));
    auto* m = made->result.if_ndarray();
    REQUIRE(m != nullptr);
    CHECK(m->type() == type);
    CHECK(m->shape() == ndarray::shape_type{2, 3});
  }
  auto ints = call(pool, make_request("make_array", {{"dtype", "int32"},
                                                     {"shape", value::make_list({2, 3})}}));
  REQUIRE(ints);
  auto view = *ints->result.if_ndarray()->as<std::int32_t>();
  CHECK(std::vector<std::int32_t>(view.begin(), view.end())
        == std::vector<std::int32_t>{0, 1, 2, 3, 4, 5});
  stop(pool);
}

TEST_CASE_FIXTURE(arrays_fixture, "0-d, empty, 1-d and 4-d arrays, and arrays nested in values") {
  auto pool = start(showcase(1));
  for (auto shape : {ndarray::shape_type{}, ndarray::shape_type{0}, ndarray::shape_type{0, 3},
                     ndarray::shape_type{7}, ndarray::shape_type{2, 1, 3, 2}}) {
    auto a = pattern(dtype::float64, shape);
    CHECK(echo(pool, a) == value(a));
    std::vector<value> extents(shape.begin(), shape.end());
    CHECK(info(pool, a)["shape"] == value(value::list(extents.begin(), extents.end())));
  }
  auto nested = value{{"a", value::make_list({pattern(dtype::int8, {3}),
                                              value{{"b", pattern(dtype::uint16, {2, 2})}}})},
                      {"c", 1}};
  CHECK(echo(pool, nested) == nested);
  stop(pool);
}

TEST_CASE_FIXTURE(arrays_fixture, "Fortran-order and strided results arrive C-contiguous") {
  auto pool = start(showcase(1));
  auto expected = *ndarray::from(std::vector<double>{0, 1, 2, 3, 4, 5}, {2, 3});
  auto fortran = call(pool, make_request("make_array", {{"dtype", "float64"},
                                                        {"shape", value::make_list({2, 3})},
                                                        {"order", "F"}}));
  REQUIRE_MESSAGE(fortran, message_of(fortran));
  CHECK(fortran->result == value(expected));
  auto strided = call(pool, make_request("make_array", {{"dtype", "float64"},
                                                        {"shape", value::make_list({2, 3})},
                                                        {"step", 3}}));
  REQUIRE_MESSAGE(strided, message_of(strided));
  auto want = *ndarray::from(std::vector<double>{0, 3, 6, 9, 12, 15}, {2, 3});
  CHECK(strided->result == value(want));
  stop(pool);
}

TEST_CASE_FIXTURE(arrays_fixture, "payloads over shm_threshold go through shared memory") {
  auto cfg = showcase(1);
  cfg.shm_threshold = 1000;
  auto pool = start(cfg);
  auto at = pattern(dtype::uint8, {1000});
  auto over = pattern(dtype::uint8, {1001});
  CHECK(info(pool, at)["shared"] == value(false));
  CHECK(info(pool, over)["shared"] == value(true));
  CHECK(echo(pool, over) == value(over));
  // bytes one over the threshold, both ways
  auto big = bytes{std::string(1001, 'z')};
  CHECK(echo(pool, big) == value(big));
  auto made = call(pool, make_request("make_bytes", {{"size", 5000}}));
  REQUIRE(made);
  CHECK(made->result == value(bytes{std::string(5000, '\0')}));
  // Nothing is left once the calls are over.
  CHECK(segments_drain());
  SUBCASE("shared_memory = false keeps everything inline") {
    auto inline_cfg = showcase(1);
    inline_cfg.name = "inline";
    inline_cfg.shm_threshold = 1000;
    inline_cfg.shared_memory = false;
    auto p2 = start(inline_cfg);
    CHECK(info(p2, over)["shared"] == value(false));
    stop(p2);
  }
  stop(pool);
}

TEST_CASE_FIXTURE(arrays_fixture, "shm_bytes_max bounds both directions with a typed error") {
  auto cfg = showcase(1);
  cfg.shm_bytes_max = 1 << 20;
  auto pool = start(cfg);
  auto big = call(pool, make_request("array_sum", {{"value", floats(512 * 1024)}}));  // 2 MiB
  CHECK(kind_of(big) == "payload_too_large");
  CHECK(message_of(big).find("shm_bytes_max") != std::string::npos);
  auto big_result = call(pool, make_request("make_bytes", {{"size", 2 << 20}}));
  CHECK(kind_of(big_result) == "payload_too_large");
  CHECK(message_of(big_result).find("shm_bytes_max") != std::string::npos);
  auto fits = call(pool, make_request("array_sum", {{"value", floats(1000, 1)}}));
  REQUIRE_MESSAGE(fits, message_of(fits));
  CHECK(fits->result == value(500500.0));
  CHECK(status(pool).crashes == 0);
  CHECK(segments_drain());
  stop(pool);
}

TEST_CASE_FIXTURE(arrays_fixture, "a thread worker moves many large arrays at once") {
  auto cfg = showcase(1);
  cfg.adapter = "snakepit_bridge.showcase.ThreadedShowcaseAdapter";
  cfg.profile = worker_profile::thread;
  cfg.threads_per_worker = 8;
  cfg.shm_threshold = 4096;
  auto pool = start(cfg);
  caf::scoped_actor self{*sys};
  constexpr int calls = 64;
  std::vector<value> sent;
  for (int i = 0; i < calls; ++i) {
    sent.emplace_back(floats(64 * 1024, static_cast<float>(i)));  // 256 KiB each
    auto req = make_request("echo", {{"value", sent.back()}});
    req.request_id = std::to_string(i);
    self->send(pool, execute_atom::value, std::move(req));
  }
  int ok = 0;
  for (int i = 0; i < calls; ++i) {
    auto r = await(self);
    REQUIRE_MESSAGE(r, message_of(r));
    auto index = std::stoi(r->request_id);
    CHECK(r->result == sent[static_cast<std::size_t>(index)]);
    ++ok;
  }
  CHECK(ok == calls);
  CHECK(segments_drain());
  stop(pool);
}

TEST_CASE_FIXTURE(arrays_fixture, "a worker SIGKILLed while it holds a large array leaves nothing") {
  auto cfg = showcase(1);
  cfg.shm_threshold = 4096;
  auto pool = start(cfg);
  auto who = call(pool, make_request("worker_info", {}));
  REQUIRE(who);
  auto pid = static_cast<pid_t>(who->result["pid"].as_int());
  caf::scoped_actor self{*sys};
  self->send(pool, execute_atom::value,
             make_request("array_sum", {{"value", floats(1 << 20)}, {"delay_s", 5.0}}));
  std::this_thread::sleep_for(500ms);  // it is reading (sleeping on) its segment
  CHECK(segment_files().size() == 1);
  ::kill(pid, SIGKILL);
  auto r = await(self);
  CHECK(kind_of(r) == "worker_crashed");
  wait_status(pool, [](const pool_status& s) { return s.ready == 1; });
  CHECK(segments_drain());
  // Nor anything the dead process kept for reuse.
  CHECK(segment_files("pw" + std::to_string(pid) + "-").empty());
  auto again = call(pool, make_request("array_sum", {{"value", floats(4096, 1)}}));
  REQUIRE_MESSAGE(again, message_of(again));
  CHECK(again->result == value(4096.0 * 4097 / 2));
  stop(pool);
}

TEST_CASE_FIXTURE(arrays_fixture, "a caller that times out while Python still reads its segment") {
  auto cfg = showcase(1);
  cfg.shm_threshold = 4096;
  cfg.kill_stuck_calls = false;  // Python goes on reading after the caller gave up
  auto pool = start(cfg);
  auto req = make_request("array_sum", {{"value", floats(1 << 20, 1)}, {"delay_s", 1.0}});
  req.deadline = caf::make_timestamp() + 200ms;
  auto r = call(pool, std::move(req));
  CHECK(kind_of(r) == "timeout");
  // The segment's name went with the call (before its caller heard back);
  // Python's mapping stays valid.
  CHECK(segment_files().empty());
  // The worker finished reading and serves the next call.
  auto next = call(pool, make_request("array_sum", {{"value", floats(4096, 1)}}));
  REQUIRE_MESSAGE(next, message_of(next));
  CHECK(next->result == value(4096.0 * 4097 / 2));
  CHECK(status(pool).crashes == 0);
  stop(pool);
}

TEST_CASE_FIXTURE(arrays_fixture, "stream items and host tools use shared memory too") {
  auto cfg = showcase(1);
  cfg.shm_threshold = 4096;
  host_tool mirror;
  mirror.name = "mirror";
  mirror.description = "returns its argument";
  mirror.parameters = {{"value", "any", true, ""}};
  mirror.returns = "any";
  mirror.handler = [](host_call call) { call.reply(call.arguments().at("value")); };
  cfg.host_tools.push_back(mirror);
  auto pool = start(cfg);
  // C++ -> Python -> host tool -> Python -> C++, every hop above the threshold.
  auto a = floats(100000, 3);
  auto r = call(pool, make_request("host_call", {{"name", "mirror"},
                                                 {"args", value{{"value", a}}}}));
  REQUIRE_MESSAGE(r, message_of(r));
  CHECK(r->result == value(a));
  // Stream items of 64 KiB each.
  caf::scoped_actor self{*sys};
  caf::expected<stream_handle> h{caf::error{}};
  self->request(pool, 10s, execute_stream_atom::value,
                make_request("blobs", {{"n", 5}, {"size", 65536}}),
                caf::actor_cast<caf::actor>(self))
    .receive([&](stream_handle& x) { h = std::move(x); }, [&](caf::error& e) { h = e; });
  REQUIRE(h);
  int items = 0;
  bool done = false;
  while (!done) {
    self->receive(
      [&](stream_item_atom, std::uint64_t, std::uint64_t, value& v) {
        CHECK(v.if_bytes() != nullptr);
        CHECK(v.if_bytes()->data.size() == 65536);
        ++items;
        caf::anon_send(h->worker, stream_ack_atom::value, h->id, std::uint32_t{1});
      },
      [&](stream_end_atom, std::uint64_t, stream_summary&) { done = true; },
      [&](stream_error_atom, std::uint64_t, caf::error& e) {
        FAIL(describe(e).message);
        done = true;
      },
      caf::after(20s) >> [&] {
        FAIL("stream timed out");
        done = true;
      });
  }
  CHECK(items == 5);
  CHECK(segments_drain());
  stop(pool);
}

TEST_CASE("another user cannot open a segment") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root to act as another user (CI runs as root)");
    return;
  }
  auto dir = detail::shm_directory();
  REQUIRE(dir);
  auto arena = detail::shm_arena::make(*dir, 0, 1 << 20);
  REQUIRE(arena);
  auto segment = (*arena)->write("secret", 6);
  REQUIRE(segment);
  auto path = *dir + "/" + (*segment)->name();
  auto child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // nobody:nogroup, as an unrelated local user would be
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)
      ::_exit(3);
    int fd = ::open(path.c_str(), O_RDONLY);
    ::_exit(fd < 0 && errno == EACCES ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
