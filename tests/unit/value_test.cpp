#include "snakepit/messages/value.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include <doctest/doctest.h>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/binary_deserializer.hpp"
#include "caf/binary_serializer.hpp"
#include "caf/deep_to_string.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/scoped_actor.hpp"

#include "snakepit/messages/detail/value_proto.hpp"
#include "snakepit/messages/value_inspect.hpp"

using snakepit::bytes;
using snakepit::value;

using snakepit::error_info;
using snakepit::errc;

namespace {

using namespace std::string_literals;

constexpr auto int64_min = std::numeric_limits<std::int64_t>::min();
constexpr auto int64_max = std::numeric_limits<std::int64_t>::max();

/// The text of a parse error.
std::string error_text(const error_info& err) {
  return err.message;
}

value parse(std::string_view text) {
  auto result = value::from_json(text);
  REQUIRE_MESSAGE(result, "from_json failed: " << error_text(result.error()));
  return std::move(*result);
}

std::string parse_error(std::string_view text) {
  auto result = value::from_json(text);
  REQUIRE_MESSAGE(!result, "from_json accepted " << text);
  CHECK(result.error().code == errc::bad_arguments);
  return error_text(result.error());
}

value json_round_trip(const value& x) {
  return parse(x.to_json());
}

value proto_round_trip(const value& x) {
  snakepit::bridge::v1::Value msg;
  snakepit::detail::to_proto(x, &msg);
  snakepit::bridge::v1::Value parsed;
  REQUIRE(parsed.ParseFromString(msg.SerializeAsString()));
  return snakepit::detail::from_proto(parsed);
}

/// A value with every kind, nested.
value sample() {
  return value::make_map({
    {"null", nullptr},
    {"flag", true},
    {"int", int64_min},
    {"real", 2.5},
    {"text", "h\xC3\xA9llo \"w\"\n"},
    {"blob", bytes{"\0\xFF\x01"s}},
    {"list", {1, "two", 3.0, value::make_list(), value::make_map()}},
    {"map", {{"inner", {{"deep", bytes{"\xFF\0"s}}}}}},
  });
}

} // namespace

TEST_SUITE("value") {

TEST_CASE("scalar constructors pick the right kind") {
  CHECK(value().is_null());
  CHECK(value(nullptr).is_null());
  CHECK(value(static_cast<const char*>(nullptr)).is_null());
  CHECK(value(true).type() == value::kind::boolean);
  CHECK(value(42).type() == value::kind::integer);
  CHECK(value(std::int8_t{-3}).as_int() == -3);
  CHECK(value(std::uint8_t{200}).as_int() == 200);
  CHECK(value(short{-7}).as_int() == -7);
  CHECK(value(std::uint32_t{4000000000u}).as_int() == 4000000000);
  CHECK(value(int64_min).as_int() == int64_min);
  CHECK(value(2.5).type() == value::kind::real);
  CHECK(value(0.5f).as_double() == 0.5);
  CHECK(value("abc").as_string() == "abc");
  CHECK(value("abc"s).as_string() == "abc");
  CHECK(value(std::string_view{"abc"}).as_string() == "abc");
  CHECK(value(bytes{"\0x"s}).if_bytes()->data == "\0x"s);
  CHECK(value(value::list{1, 2}).is_list());
  CHECK(value(value::map{{"a", 1}}).is_map());
  // Compile-time choices: no 64-bit unsigned, no characters, no pointers.
  static_assert(std::is_convertible_v<std::uint32_t, value>);
  static_assert(!std::is_constructible_v<value, std::uint64_t>);
  static_assert(!std::is_constructible_v<value, std::size_t>);
  static_assert(!std::is_constructible_v<value, char>);
  static_assert(!std::is_constructible_v<value, const int*>);
  static_assert(std::is_constructible_v<value, char*>);
}

TEST_CASE("from_uint64 accepts up to INT64_MAX") {
  auto ok = value::from_uint64(static_cast<std::uint64_t>(int64_max));
  REQUIRE(ok);
  CHECK(ok->as_int() == int64_max);
  auto too_big = value::from_uint64(static_cast<std::uint64_t>(int64_max) + 1);
  REQUIRE(!too_big);
  CHECK(too_big.error().code == errc::bad_arguments);
  CHECK(error_text(too_big.error()).find("9223372036854775808")
        != std::string::npos);
}

TEST_CASE("initializer lists detect maps like nlohmann::json") {
  value m{{"a", 1}, {"b", "x"}};
  REQUIRE(m.is_map());
  CHECK(m.size() == 2);
  CHECK(m["a"] == 1);
  CHECK(m["b"] == "x");
  value l{1, "two", 3.0};
  REQUIRE(l.is_list());
  CHECK(l.size() == 3);
  // A pair whose first item is not a string keeps it a list.
  value pairs{{1, 2}, {"a", 1}};
  CHECK(pairs.is_list());
  // One element that is not a pair: that element, as braces read elsewhere.
  value single{5};
  CHECK(single == value(5));
  value copy{l};
  CHECK(copy == l);
  value one_entry{{"k", "v"}};
  REQUIRE(one_entry.is_map());
  CHECK(one_entry["k"] == "v");
  CHECK(value::make_list({5}).is_list());
  // Nested maps and lists.
  value nested{{"xs", {1, 2, 3}}, {"m", {{"k", nullptr}}}};
  REQUIRE(nested.is_map());
  CHECK(nested["xs"].is_list());
  CHECK(nested["xs"].size() == 3);
  CHECK(nested["m"].is_map());
  CHECK(nested["m"]["k"].is_null());
  // Empty braces are null; an explicitly empty list is an empty map.
  value empty{};
  CHECK(empty.is_null());
  CHECK(value(std::initializer_list<value>{}).is_map());
  // Duplicate keys: the last one wins.
  value dup{{"a", 1}, {"a", 2}};
  CHECK(dup.size() == 1);
  CHECK(dup["a"] == 2);
  // Braces around one value copy it (no nlohmann-style wrapping).
  value x = 7;
  value wrapped{x};
  CHECK(wrapped == x);
  value copied(x);
  CHECK(copied == x);
}

TEST_CASE("make_list and make_map choose the kind") {
  auto l = value::make_list({{"a", 1}, {"b", 2}});
  REQUIRE(l.is_list());
  CHECK(l.size() == 2);
  CHECK(l[0].is_list());
  CHECK(value::make_list().is_list());
  CHECK(value::make_list().size() == 0);
  auto m = value::make_map({{"x", {1, 2}}, {"y", "z"}, {"x", true}});
  REQUIRE(m.is_map());
  CHECK(m.size() == 2);
  CHECK(m["x"] == true);
  CHECK(value::make_map().is_map());
}

TEST_CASE("accessors return nullptr or the fallback on a mismatch") {
  value i = 3;
  REQUIRE(i.if_int() != nullptr);
  CHECK(*i.if_int() == 3);
  CHECK(i.if_double() == nullptr);
  CHECK(i.if_bool() == nullptr);
  CHECK(i.if_string() == nullptr);
  CHECK(i.if_bytes() == nullptr);
  CHECK(i.if_list() == nullptr);
  CHECK(i.if_map() == nullptr);
  CHECK(i.is_number());
  CHECK(i.as_double() == 3.0);
  CHECK(i.as_bool(true) == true);
  CHECK(i.as_string("fb") == "fb");
  value d = 1.5;
  CHECK(d.is_number());
  CHECK(d.as_int(-1) == -1);
  CHECK(d.as_double() == 1.5);
  CHECK(value("s").as_double(9) == 9);
  CHECK(value(false).as_bool(true) == false);
  CHECK_FALSE(value("x").is_number());
  // Lookups never throw and return a shared null.
  value m{{"a", {10, 20}}};
  CHECK(m["a"][1] == 20);
  CHECK(m["a"][2].is_null());
  CHECK(m["missing"].is_null());
  CHECK(m["missing"]["deeper"][3].is_null());
  CHECK(&m["missing"] == &value(5)["x"]);
  CHECK(value(5).size() == 0);
  CHECK(value("abc").size() == 0);
  // Mutable access to containers and strings.
  m.if_map()->insert_or_assign("b", "new");
  m.if_map()->at("a").if_list()->push_back(30);
  CHECK(m["b"] == "new");
  CHECK(m["a"].size() == 3);
  value s = "abc";
  *s.if_string() += "d";
  CHECK(s == "abcd");
}

TEST_CASE("equality compares kind and content") {
  CHECK(value(1) == value(1));
  CHECK(value(1) != value(1.0));
  CHECK(value(1) != value(true));
  CHECK(value("a") != value(bytes{"a"}));
  CHECK(value() == value(nullptr));
  CHECK(value::make_list() != value::make_map());
  CHECK(sample() == sample());
  auto other = sample();
  other.if_map()->at("list").if_list()->back() = 0;
  CHECK(sample() != other);
  CHECK(value(std::nan("")) != value(std::nan("")));
  CHECK(bytes{"a"} < bytes{"b"});
  CHECK(bytes{"a"} != bytes{"b"});
}

TEST_CASE("to_json prints compact JSON") {
  CHECK(value().to_json() == "null");
  CHECK(value(true).to_json() == "true");
  CHECK(value(-12).to_json() == "-12");
  CHECK(value(1.0).to_json() == "1.0");
  CHECK(value(0.1).to_json() == "0.1");
  CHECK(value(-0.0).to_json() == "-0.0");
  CHECK(value(1e300).to_json() == "1e+300");
  CHECK(value(std::numeric_limits<double>::infinity()).to_json() == "null");
  CHECK(value(std::nan("")).to_json() == "null");
  CHECK(value(bytes{"hi!"}).to_json() == R"({"$bytes":"aGkh"})");
  CHECK(value{{"b", 1}, {"a", {1, "x"}}}.to_json() == R"({"a":[1,"x"],"b":1})");
  CHECK(value("q\"b\\s/\b\f\n\r\t\x01\x7f").to_json()
        == R"("q\"b\\s/\b\f\n\r\t\u0001)"
             "\x7f\"");
  // Invalid UTF-8 becomes U+FFFD; valid multi-byte sequences stay.
  CHECK(value("a\xFF" "b\xC3\xA9").to_json() == "\"a\xEF\xBF\xBD" "b\xC3\xA9\"");
  CHECK(value("\xED\xA0\x80").to_json()
        == "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST_CASE("JSON round trips keep integers exact") {
  auto big = (std::int64_t{1} << 53) + 1;
  CHECK(parse("9007199254740993") == value(big));
  CHECK(parse("9007199254740993").is_int());
  CHECK(parse("-9223372036854775808") == value(int64_min));
  CHECK(parse("9223372036854775807") == value(int64_max));
  CHECK(json_round_trip(value(big)) == value(big));
  CHECK(json_round_trip(value(int64_min)) == value(int64_min));
  CHECK(json_round_trip(value(int64_max)) == value(int64_max));
  // Beyond int64: refused, naming the range (a double would silently drop
  // low digits); written as floats they are doubles.
  for (auto text : {"9223372036854775808", "-9223372036854775809", "18446744073709551615",
                    "18446744073709551616", "[1, {\"x\": 99999999999999999999999}]"}) {
    auto err = parse_error(text);
    CHECK_MESSAGE(err.find("outside the 64-bit range") != std::string::npos, err);
  }
  auto above = parse("9.223372036854775808e18");
  REQUIRE(above.is_double());
  CHECK(above.as_double() == 9223372036854775808.0);
  // Doubles stay doubles and survive exactly.
  for (double x : {0.1, 1.0, -0.0, 1e300, 5e-324, 1.0 / 3, 123456789.0}) {
    auto back = json_round_trip(value(x));
    REQUIRE(back.is_double());
    CHECK(*back.if_double() == x);
    CHECK(std::signbit(*back.if_double()) == std::signbit(x));
  }
  CHECK(parse("1e2").is_double());
  CHECK(parse("-0").is_int());
}

TEST_CASE("JSON round trips strings with unicode and escapes") {
  CHECK(parse(R"("\u00e9\ud83d\ude00")") == value("\xC3\xA9\xF0\x9F\x98\x80"));
  CHECK(parse("\"\xC3\xA9\xF0\x9F\x98\x80\"") == value("\xC3\xA9\xF0\x9F\x98\x80"));
  CHECK(parse(R"("a\"b\\c\/d\n\t\u0000e")") == value("a\"b\\c/d\n\t\0e"s));
  for (auto str : {"plain"s, "tab\tnew\nline"s, "nul\0inside"s,
                   "\x01\x1f control"s, "quote\" back\\slash"s,
                   "\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x90\x8D"s}) {
    CHECK(json_round_trip(value(str)) == value(str));
  }
  auto keys = value{{"\xC3\xA9", 1}, {"a\"b", 2}, {"", 3}};
  CHECK(json_round_trip(keys) == keys);
}

TEST_CASE("JSON round trips bytes as $bytes objects") {
  for (auto data : {""s, "a"s, "ab"s, "abc"s, "\0\xFF\x80\x01"s,
                    "\xFF\xFE\xFD\xFC\xFB"s}) {
    auto back = json_round_trip(value(bytes{data}));
    REQUIRE(back.is_bytes());
    CHECK(back.if_bytes()->data == data);
  }
  CHECK(parse(R"({"$bytes":"AP8="})") == value(bytes{"\0\xFF"s}));
  CHECK(parse(R"({"$bytes":"AP8"})") == value(bytes{"\0\xFF"s}));
  CHECK(json_round_trip(sample()) == sample());
  // Other shapes stay maps.
  CHECK(parse(R"({"$bytes":5})").is_map());
  CHECK(parse(R"({"$bytes":"AA==","x":1})").is_map());
  CHECK(parse(R"({"bytes":"AA=="})").is_map());
  auto err = parse_error(R"({"$bytes":"not base64!"})");
  CHECK(err.find("base64") != std::string::npos);
}

TEST_CASE("from_json reports errors with positions") {
  auto err = parse_error("[1, tru]");
  CHECK_MESSAGE(err.find("line 1, column 8") != std::string::npos, err);
  err = parse_error("{\n  \"a\": }");
  CHECK_MESSAGE(err.find("line 2, column 8") != std::string::npos, err);
  CHECK_MESSAGE(err.find("byte 9") != std::string::npos, err);
  err = parse_error("");
  CHECK_MESSAGE(err.find("line 1, column 1") != std::string::npos, err);
  err = parse_error("1 2");
  CHECK_MESSAGE(err.find("column 3") != std::string::npos, err);
  err = parse_error("\"unterminated");
  CHECK_MESSAGE(err.find("invalid JSON at line 1") != std::string::npos, err);
  err = parse_error("\"bad \xFF utf8\"");
  CHECK_MESSAGE(err.find("invalid JSON at line 1") != std::string::npos, err);
  // The message quotes the input, but stays valid UTF-8.
  CHECK(err.find('\xFF') == std::string::npos);
  err = parse_error("[1e999]");
  CHECK_MESSAGE(err.find("invalid JSON") != std::string::npos, err);
  // Two values for one key: which one was meant is not ours to guess.
  err = parse_error("{\"a\": 1, \"b\": {\"c\": 1, \"c\": 2}}");
  CHECK_MESSAGE(err.find("duplicate key \"c\"") != std::string::npos, err);
  parse_error("{\"a\" 1}");
  parse_error("[1,]");
  parse_error("NaN");
}

TEST_CASE("from_json limits nesting") {
  auto nest = [](std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
  };
  CHECK(parse(nest(value::max_depth)).is_list());
  auto err = parse_error(nest(value::max_depth + 1));
  CHECK_MESSAGE(err.find("deeper than") != std::string::npos, err);
  // Deep input far past the limit fails cleanly instead of overflowing.
  parse_error(nest(100000));
}

TEST_CASE("proto round trips every kind") {
  CHECK(proto_round_trip(value()).is_null());
  CHECK(proto_round_trip(value(false)) == value(false));
  CHECK(proto_round_trip(value(int64_min)) == value(int64_min));
  CHECK(proto_round_trip(value(int64_max)) == value(int64_max));
  CHECK(proto_round_trip(value(-0.25)) == value(-0.25));
  CHECK(proto_round_trip(value("\xC3\xA9")) == value("\xC3\xA9"));
  auto blob = value(bytes{"\0\xFF\0\xFE"s});
  CHECK(proto_round_trip(blob) == blob);
  CHECK(proto_round_trip(blob).if_bytes()->data.size() == 4);
  CHECK(proto_round_trip(value::make_list()) == value::make_list());
  CHECK(proto_round_trip(value::make_map()) == value::make_map());
  CHECK(proto_round_trip(sample()) == sample());
}

TEST_CASE("proto conversion details") {
  namespace pb = snakepit::bridge::v1;
  using snakepit::detail::from_proto;
  using snakepit::detail::to_proto;
  SUBCASE("bytes stay bytes on the wire") {
    pb::Value msg;
    to_proto(value(bytes{"\0\xFF"s}), &msg);
    REQUIRE(msg.kind_case() == pb::Value::kBytesValue);
    CHECK(msg.bytes_value() == "\0\xFF"s);
    to_proto(value("text"), &msg);
    CHECK(msg.kind_case() == pb::Value::kStringValue);
  }
  SUBCASE("null and unset") {
    pb::Value msg;
    CHECK(from_proto(msg).is_null());
    to_proto(value(), &msg);
    CHECK(msg.kind_case() == pb::Value::kNullValue);
    CHECK(from_proto(msg).is_null());
  }
  SUBCASE("to_proto overwrites the message") {
    pb::Value msg;
    to_proto(value{1, 2, 3}, &msg);
    to_proto(value::make_list({4}), &msg);
    CHECK(msg.list_value().items_size() == 1);
    pb::MapValue map_msg;
    to_proto(value::map{{"a", 1}}, &map_msg);
    to_proto(value::map{{"b", 2}}, &map_msg);
    REQUIRE(map_msg.entries_size() == 1);
    CHECK(map_msg.entries(0).key() == "b");
  }
  SUBCASE("maps are written in key order; duplicates from the wire: last wins") {
    pb::MapValue msg;
    to_proto(value::map{{"b", 2}, {"a", 1}}, &msg);
    REQUIRE(msg.entries_size() == 2);
    CHECK(msg.entries(0).key() == "a");
    CHECK(msg.entries(1).key() == "b");
    auto* dup = msg.add_entries();
    dup->set_key("a");
    dup->mutable_value()->set_string_value("later");
    msg.add_entries()->set_key("unset"); // value field absent: null
    auto xs = from_proto(msg);
    CHECK(xs.size() == 3);
    CHECK(xs.at("a") == "later");
    CHECK(xs.at("unset").is_null());
    auto moved = from_proto(pb::MapValue{msg});
    CHECK(moved == xs);
  }
  SUBCASE("rvalue overloads move strings and keys") {
    auto big = std::string(1000, 'x');
    value src{{"k", big}, {"b", bytes{big}}, {"l", {big}}};
    pb::Value msg;
    to_proto(value(src), &msg);
    CHECK(from_proto(msg) == src);
    auto copy = src;
    to_proto(std::move(copy), &msg);
    CHECK(from_proto(msg) == src);
    auto back = from_proto(std::move(msg));
    CHECK(back == src);
    value::map members = *src.if_map();
    pb::MapValue map_msg;
    to_proto(std::move(members), &map_msg);
    CHECK(value(from_proto(map_msg)) == src);
  }
}

TEST_CASE("to_string and deep_to_string print JSON") {
  value x{{"a", {1, 2.5, "s"}}, {"b", bytes{"\xFF"}}};
  auto expected = R"({"a":[1,2.5,"s"],"b":{"$bytes":"/w=="}})"s;
  CHECK(to_string(x) == expected);
  CHECK(caf::deep_to_string(x) == expected);
  CHECK(caf::deep_to_string(bytes{"\xFF"}) == R"({"$bytes":"/w=="})");
  // A list converts to a value, so CAF finds `to_string` for it too.
  CHECK(caf::deep_to_string(value::list{1, "a"}) == R"([1,"a"])");
}

TEST_CASE("CAF binary serialization round trips nested values") {
  caf::actor_system_config cfg;
  cfg.add_message_type<value>("snakepit::value");
  cfg.add_message_type<bytes>("snakepit::bytes");
  caf::actor_system sys{cfg};
  auto round_trip = [&sys](const value& x) {
    caf::binary_serializer::container_type buf;
    caf::binary_serializer sink{sys, buf};
    auto copy = x;
    REQUIRE(!sink(copy));
    value result = "garbage";
    caf::binary_deserializer source{sys, buf};
    REQUIRE(!source(result));
    return result;
  };
  CHECK(round_trip(value()).is_null());
  CHECK(round_trip(value(int64_min)) == value(int64_min));
  CHECK(round_trip(value(bytes{"\0\xFF"s})) == value(bytes{"\0\xFF"s}));
  CHECK(round_trip(sample()) == sample());
  SUBCASE("a bad kind tag is an error, not a crash") {
    caf::binary_serializer::container_type buf{char{42}};
    caf::binary_deserializer source{sys, buf};
    value result;
    CHECK(source(result) == caf::sec::invalid_argument);
  }
  SUBCASE("truncated input is an error") {
    caf::binary_serializer::container_type buf;
    caf::binary_serializer sink{sys, buf};
    auto x = sample();
    REQUIRE(!sink(x));
    buf.resize(buf.size() / 2);
    caf::binary_deserializer source{sys, buf};
    value result;
    CHECK(source(result));
  }
}

TEST_CASE("values travel between local actors") {
  caf::actor_system_config cfg;
  cfg.add_message_type<value>("snakepit::value");
  caf::actor_system sys{cfg};
  auto echo = sys.spawn([]() -> caf::behavior {
    return {
      [](const value& x) {
        // size_t is 64-bit unsigned: it needs an explicit choice.
        auto size = static_cast<std::int64_t>(x.size());
        return value::make_map({{"got", x}, {"size", size}});
      },
    };
  });
  caf::scoped_actor self{sys};
  auto received = false;
  self->request(echo, caf::infinite, sample())
    .receive(
      [&](const value& y) {
        received = true;
        CHECK(y["got"] == sample());
        CHECK(y["size"] == 8);
      },
      [&](const caf::error& err) { FAIL("request failed: " << caf::to_string(err)); });
  CHECK(received);
  self->send_exit(echo, caf::exit_reason::user_shutdown);
}

} // TEST_SUITE("value")

TEST_CASE("UTF-8 validation finds the first bad string by its argument path") {
  using snakepit::find_invalid_utf8;
  using snakepit::is_valid_utf8;
  CHECK(is_valid_utf8("plain"));
  CHECK(is_valid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x90\x8d"));
  CHECK_FALSE(is_valid_utf8("\xff"));
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));      // a surrogate
  CHECK_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
  value::map row;
  row.emplace("name", value{"b\xfe"});
  value::list rows;
  rows.emplace_back("a");
  rows.emplace_back(std::move(row));
  value::map args;
  args.emplace("ok", value{"fine"});
  args.emplace("rows", value(std::move(rows)));
  CHECK(find_invalid_utf8(args) == "rows[1].name");
  CHECK(find_invalid_utf8(value::map{{"x", value{"\xe2\x82\xac"}}}).empty());
  CHECK(find_invalid_utf8(value::map{{"bad\xff", value{1}}}) == "(an argument name)");
}

TEST_CASE("find_too_deep names the first argument nested past the limit") {
  value x = 1;
  for (int i = 0; i < 5; ++i)
    x = value::make_list({x});
  value::map args{{"flat", 1}, {"deep", x}};
  CHECK(find_too_deep(args, 5).empty());
  CHECK(find_too_deep(args, 4) == "deep[0][0][0][0]");
  value m = 1;
  for (int i = 0; i < 3; ++i)
    m = value::map{{"k", m}};
  CHECK(find_too_deep(value::map{{"m", m}}, 2) == "m.k.k");
  CHECK(find_too_deep(value::map{{"m", m}}, 3).empty());
}
