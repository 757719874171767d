#include "snakepit/messages/ndarray.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <complex>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/binary_deserializer.hpp"
#include "caf/binary_serializer.hpp"

#include "snakepit/actors/detail/shm_arena.hpp"
#include "snakepit/actors/detail/shm_value_proto.hpp"
#include "snakepit/messages/value_inspect.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/messages/value.hpp"

using namespace snakepit;
using namespace std::string_literals;

namespace {

ndarray matrix() {
  return *ndarray::from(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
}

/// A private directory for segments, removed at the end.
struct scratch_dir {
  std::string path;

  scratch_dir() {
    char templ[] = "/tmp/snakepit-ndarray-test-XXXXXX";
    REQUIRE(::mkdtemp(templ) != nullptr);
    path = templ;
  }

  ~scratch_dir() {
    std::string cmd = "rm -rf -- '" + path + "'";
    CHECK(std::system(cmd.c_str()) == 0);
  }

  /// Public segment names (files kept for reuse have only a private p... name).
  std::size_t files() const {
    return count("ls -A '" + path + "' | grep -v '^p' | wc -l");
  }

  std::size_t private_files() const {
    return count("ls -A '" + path + "' | grep '^p' | wc -l");
  }

  static std::size_t count(const std::string& cmd) {
    std::size_t n = 0;
    auto* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    CHECK(std::fscanf(p, "%zu", &n) == 1);
    ::pclose(p);
    return n;
  }
};

} // namespace

TEST_CASE("ndarray: construction checks the shape against the data") {
  auto m = matrix();
  CHECK(m.type() == dtype::float32);
  CHECK(m.shape() == ndarray::shape_type{2, 3});
  CHECK(m.ndim() == 2);
  CHECK(m.size() == 6);
  CHECK(m.itemsize() == 4);
  CHECK(m.byte_size() == 24);
  CHECK(m.strides() == ndarray::shape_type{12, 4});
  auto wrong = ndarray::from(std::vector<double>{1, 2, 3}, {2, 2});
  REQUIRE(!wrong);
  CHECK(wrong.error().code == errc::bad_arguments);
  CHECK(!ndarray::from(std::vector<int>{1}, {-1}));
  CHECK(!ndarray::from(std::vector<int>{}, ndarray::shape_type(33, 1)));
  CHECK(!ndarray::from(std::vector<int>{1}, {1LL << 62, 1LL << 62}));
  SUBCASE("0-d, empty and 1-d") {
    auto scalar = *ndarray::from(std::vector<std::int64_t>{7}, {});
    CHECK(scalar.ndim() == 0);
    CHECK(scalar.size() == 1);
    CHECK(scalar.strides().empty());
    auto empty = *ndarray::from(std::vector<double>{}, {0, 3});
    CHECK(empty.size() == 0);
    CHECK(empty.byte_size() == 0);
    ndarray one{std::vector<std::int16_t>{5}};
    CHECK(one.shape() == ndarray::shape_type{1});
    CHECK(ndarray{}.shape() == ndarray::shape_type{0});
  }
  SUBCASE("bool vectors are stored one byte per element") {
    ndarray flags{std::vector<bool>{true, false, true}};
    CHECK(flags.type() == dtype::boolean);
    auto view = *flags.as<bool>();
    REQUIRE(view.size() == 3);
    CHECK(view[0]);
    CHECK(!view[1]);
    CHECK(view[2]);
  }
}

TEST_CASE("ndarray: typed access checks the dtype") {
  auto m = matrix();
  auto floats = m.as<float>();
  REQUIRE(floats);
  CHECK(floats->size() == 6);
  CHECK((*floats)[5] == 6.0f);
  auto doubles = m.as<double>();
  REQUIRE(!doubles);
  CHECK(doubles.error().code == errc::bad_arguments);
  CHECK(doubles.error().kind == "bad_arguments");
  auto c = *ndarray::copy_of(std::vector<std::complex<float>>{{1, 2}}.data(), 1, {1});
  CHECK(c.type() == dtype::complex64);
  CHECK((*c.as<std::complex<float>>())[0] == std::complex<float>{1, 2});
  auto h = *ndarray::from(std::vector<float16>{{0x3C00}}, {});
  CHECK(h.type() == dtype::float16);
  CHECK(h.itemsize() == 2);
}

TEST_CASE("ndarray: adopt keeps the owner alive and copies share the buffer") {
  auto buffer = std::make_shared<std::vector<std::uint8_t>>(std::vector<std::uint8_t>{1, 2, 3, 4});
  std::weak_ptr<std::vector<std::uint8_t>> watch = buffer;
  auto data = buffer->data();
  auto a = ndarray::adopt(dtype::uint8, {2, 2}, buffer, data, 4);
  REQUIRE(a);
  buffer.reset();
  CHECK(!watch.expired());
  auto copy = *a;
  CHECK(copy.bytes().data() == a->bytes().data());
  a = ndarray{};
  copy = ndarray{};
  CHECK(watch.expired());
  CHECK(!ndarray::adopt(dtype::uint8, {3}, nullptr, nullptr, 3));
}

TEST_CASE("ndarray: dtype names and equality") {
  for (int i = 1; i <= 14; ++i) {
    auto t = static_cast<dtype>(i);
    CHECK(is_valid(t));
    CHECK(parse_dtype(to_string(t)) == t);
  }
  CHECK(!is_valid(static_cast<dtype>(0)));
  CHECK(!is_valid(static_cast<dtype>(15)));
  CHECK(!parse_dtype("float128"));
  CHECK(matrix() == matrix());
  CHECK(matrix() != *ndarray::from(std::vector<float>{1, 2, 3, 4, 5, 6}, {3, 2}));
  CHECK(matrix() != *ndarray::from(std::vector<std::int32_t>{1, 2, 3, 4, 5, 6}, {2, 3}));
  CHECK(to_string(matrix()) == "ndarray(float32, [2, 3])");
  CHECK(value(matrix()) == value(matrix()));
  CHECK(value(matrix()) != value(1));
}

TEST_CASE("ndarray: JSON form") {
  auto v = value{{"x", matrix()}};
  auto text = v.to_json();
  CHECK(text
        == R"({"x":{"$ndarray":{"dtype":"float32","shape":[2,3],"data":"AACAPwAAAEAAAEBAAACAQAAAoEAAAMBA"}}})");
  auto back = value::from_json(text);
  REQUIRE(back);
  CHECK(*back == v);
  CHECK((*back)["x"].is_ndarray());
  SUBCASE("0-d and empty arrays round trip") {
    auto scalar = value{*ndarray::from(std::vector<std::uint64_t>{~0ULL}, {})};
    CHECK(*value::from_json(scalar.to_json()) == scalar);
    auto empty = value{*ndarray::from(std::vector<bool>{}, {0})};
    CHECK(*value::from_json(empty.to_json()) == empty);
  }
  SUBCASE("malformed $ndarray objects are errors that say what is wrong") {
    auto fails = [](const std::string& json, const std::string& why) {
      auto r = value::from_json(json);
      REQUIRE(!r);
      CHECK(to_string(r.error()).find(why) != std::string::npos);
    };
    fails(R"({"$ndarray": {"dtype": "float32", "shape": [2]}})", "needs exactly");
    fails(R"({"$ndarray": {"dtype": "float31", "shape": [1], "data": "AAAAAA=="}})",
          "unknown dtype");
    fails(R"({"$ndarray": {"dtype": "float32", "shape": [2], "data": "AAAAAA=="}})",
          "does not fit");
    fails(R"({"$ndarray": {"dtype": "float32", "shape": [1.5], "data": "AAAAAA=="}})",
          "list of integers");
    fails(R"({"$ndarray": {"dtype": "float32", "shape": [1], "data": "!!"}})", "base64");
    fails(R"({"$ndarray": 5})", "needs exactly");
  }
}

TEST_CASE("ndarray: CAF serialization round trips arrays inside values") {
  caf::actor_system_config cfg;
  cfg.add_message_type<value>("snakepit::value");
  caf::actor_system sys{cfg};
  auto x = value{{"m", matrix()}, {"l", value::make_list({ndarray{std::vector<std::int8_t>{-1}}})}};
  caf::binary_serializer::container_type buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE(!sink(x));
  value result;
  caf::binary_deserializer source{sys, buf};
  REQUIRE(!source(result));
  CHECK(result == x);
}

TEST_CASE("ndarray: protobuf round trip inline") {
  for (int i = 1; i <= 14; ++i) {
    auto t = static_cast<dtype>(i);
    std::string data(itemsize(t) * 6, '\x5A');
    auto a = value{*ndarray::from_bytes(t, {1, 2, 3}, data)};
    bridge::v1::Value msg;
    detail::to_proto(a, &msg);
    CHECK(msg.ndarray_value().dtype() == i);
    CHECK(msg.ndarray_value().data().size() == data.size());
    CHECK(detail::from_proto(msg) == a);
  }
  SUBCASE("an invalid array from the wire is an error") {
    bridge::v1::Value msg;
    msg.mutable_ndarray_value()->set_dtype(bridge::v1::DTYPE_FLOAT64);
    msg.mutable_ndarray_value()->add_shape(2);
    msg.mutable_ndarray_value()->set_data("short");
    detail::shm_reader reader;
    auto v = detail::from_proto(std::move(msg), reader);
    CHECK(v.is_null());
    REQUIRE(reader.error);
    CHECK(describe(reader.error).message.find("invalid") != std::string::npos);
  }
  SUBCASE("a dtype number past the enumerators is invalid, not wrapped into one") {
    // 257 once read as dtype 1 (bool): the number was cut to the enum's 8 bits.
    for (int number : {0, 15, 255, 257, 268, -1, 1 << 30}) {
      bridge::v1::Value msg;
      msg.mutable_ndarray_value()->set_dtype(static_cast<bridge::v1::DType>(number));
      msg.mutable_ndarray_value()->add_shape(1);
      msg.mutable_ndarray_value()->set_data(std::string(1, '\x01'));
      CHECK_MESSAGE(detail::from_proto(msg).is_null(), number);
      detail::shm_reader reader;
      CHECK_MESSAGE(detail::from_proto(std::move(msg), reader).is_null(), number);
      REQUIRE(reader.error);
      CHECK(describe(reader.error).message.find("invalid dtype") != std::string::npos);
    }
  }
}

TEST_CASE("shm_arena: payloads above the threshold travel in segments") {
  scratch_dir dir;
  auto arena = detail::shm_arena::make(dir.path, 100, 1000);
  REQUIRE(arena);
  auto& shm = **arena;
  SUBCASE("exactly at the threshold stays inline, one byte over goes to a segment") {
    detail::shm_writer w;
    w.arena = &shm;
    bridge::v1::MapValue msg;
    value::map args{{"at", bytes{std::string(100, 'a')}}, {"over", bytes{std::string(101, 'b')}}};
    detail::to_proto(std::move(args), &msg, w);
    REQUIRE(!w.error);
    CHECK(msg.entries(0).value().has_bytes_value());
    CHECK(msg.entries(1).value().has_shared_bytes());
    CHECK(w.segments.size() == 1);
    CHECK(shm.bytes_in_use() == 101);
    CHECK(dir.files() == 1);
    // The sender reads its own segments back without taking them.
    detail::shm_reader r;
    r.arena = &shm;
    auto back = detail::from_proto(bridge::v1::MapValue{msg}, r);
    REQUIRE(!r.error);
    CHECK(back["over"] == value(bytes{std::string(101, 'b')}));
    CHECK(dir.files() == 1);
    w.segments.clear();  // the call ended
    CHECK(dir.files() == 0);
    CHECK(shm.bytes_in_use() == 0);
  }
  SUBCASE("arrays map zero-copy and outlive their names when taken") {
    detail::shm_writer w;
    w.arena = &shm;
    w.hand_over = true;  // a result: the receiver owns the segment
    std::vector<double> data(40, 2.5);
    bridge::v1::Value msg;
    detail::to_proto(value{*ndarray::from(data, {4, 10})}, &msg, w);
    REQUIRE(!w.error);
    REQUIRE(msg.ndarray_value().has_segment());
    CHECK(w.segments.empty());
    CHECK(shm.bytes_in_use() == 0);
    detail::shm_reader r;
    r.arena = &shm;
    r.take = true;
    auto v = detail::from_proto(std::move(msg), r);
    REQUIRE(!r.error);
    CHECK(dir.files() == 0);  // taken: the name is gone, the mapping stays
    auto view = *v.if_ndarray()->as<double>();
    CHECK(view.size() == 40);
    CHECK(view[39] == 2.5);
  }
  SUBCASE("the budget is a typed error naming shm_bytes_max") {
    detail::shm_writer w;
    w.arena = &shm;
    bridge::v1::MapValue msg;
    value::map args{{"a", bytes{std::string(600, 'a')}}, {"b", bytes{std::string(600, 'b')}}};
    detail::to_proto(std::move(args), &msg, w);
    REQUIRE(w.error);
    CHECK(describe(w.error).kind == "payload_too_large");
    CHECK(describe(w.error).message.find("shm_bytes_max") != std::string::npos);
    w.segments.clear();
    CHECK(dir.files() == 0);
    CHECK(shm.bytes_in_use() == 0);
    CHECK(!shm.write("x", 1001));
  }
  SUBCASE("hostile references are errors, never files outside the directory") {
    auto outside = dir.path + "-outside";
    auto fd = ::open(outside.c_str(), O_CREAT | O_WRONLY, 0600);
    REQUIRE(fd >= 0);
    CHECK(::write(fd, "secret", 6) == 6);
    ::close(fd);
    for (auto name : {"../" + outside.substr(outside.rfind('/') + 1), "a/b"s, ""s, "."s,
                      std::string(65, 'a'), "ph1-2"s})
      CHECK(!shm.map(name, 1, false));
    CHECK(::symlink(outside.c_str(), (dir.path + "/link").c_str()) == 0);
    CHECK(!shm.map("link", 1, true));
    ::unlink(outside.c_str());
    auto short_fd = ::open((dir.path + "/w9-9").c_str(), O_CREAT | O_WRONLY, 0600);
    REQUIRE(short_fd >= 0);
    CHECK(::write(short_fd, "abc", 3) == 3);
    ::close(short_fd);
    auto too_big = shm.map("w9-9", 4, false);
    REQUIRE(!too_big);
    CHECK(describe(too_big.error()).message.find("fewer than") != std::string::npos);
    CHECK(!shm.map("missing", 1, false));
  }
  SUBCASE("files are reused once their reader lets go, never while it maps them") {
    auto first = shm.write("first", 5);
    REQUIRE(first);
    auto name = (*first)->name();
    auto held = shm.map(name, 5, true);  // a reader takes it and keeps the mapping
    REQUIRE(held);
    first->reset();  // the call is over
    auto second = shm.write("other", 5);
    REQUIRE(second);
    CHECK(shm.files_reused() == 0);  // the held file is locked: a new one
    CHECK(dir.private_files() == 2);
    CHECK(std::string(held->data, 5) == "first");
    *held = detail::shm_mapping{};  // the reader lets go
    second->reset();
    auto third = shm.write("third", 5);
    REQUIRE(third);
    CHECK(shm.files_reused() == 1);
    CHECK(dir.private_files() == 2);
    // The withdrawn names are gone: a late reader cannot see the new payload.
    CHECK(!shm.map(name, 5, false));
    auto read = shm.map((*third)->name(), 5, false);
    REQUIRE(read);
    CHECK(std::string(read->data, 5) == "third");
  }
  SUBCASE("a dead worker's leftovers are removed by pid") {
    for (auto name : {"w123-0", "w123-1", "w1234-0", "pw123-2"}) {
      auto fd = ::open((dir.path + "/" + name).c_str(), O_CREAT | O_WRONLY, 0600);
      REQUIRE(fd >= 0);
      ::close(fd);
    }
    CHECK(shm.remove_files_of(123) == 3);
    CHECK(dir.files() == 1);
    shm.drop("w1234-0");
    CHECK(dir.files() == 0);
  }
}
