#include "snakepit/messages/value.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

namespace snakepit {

// `type()` is the variant index: keep the kinds in storage order.
static_assert(static_cast<int>(value::kind::null) == 0);
static_assert(static_cast<int>(value::kind::boolean) == 1);
static_assert(static_cast<int>(value::kind::integer) == 2);
static_assert(static_cast<int>(value::kind::real) == 3);
static_assert(static_cast<int>(value::kind::string) == 4);
static_assert(static_cast<int>(value::kind::bytes) == 5);
static_assert(static_cast<int>(value::kind::list) == 6);
static_assert(static_cast<int>(value::kind::map) == 7);

static_assert(std::is_nothrow_move_constructible_v<value>);
static_assert(std::is_nothrow_move_assignable_v<value>);
static_assert(std::is_convertible_v<int, value>);
static_assert(std::is_convertible_v<std::uint32_t, value>);
static_assert(!std::is_convertible_v<std::uint64_t, value>);
static_assert(!std::is_convertible_v<char, value>);
static_assert(!std::is_convertible_v<const int*, value>);

namespace {

// -- base64 (RFC 4648, standard alphabet) -------------------------------------

constexpr char base64_alphabet[]
  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void append_base64(std::string& out, std::string_view in) {
  out.reserve(out.size() + (in.size() + 2) / 3 * 4);
  auto byte_at = [&in](size_t i) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(in[i]));
  };
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    auto bits = (byte_at(i) << 16) | (byte_at(i + 1) << 8) | byte_at(i + 2);
    out += base64_alphabet[(bits >> 18) & 0x3F];
    out += base64_alphabet[(bits >> 12) & 0x3F];
    out += base64_alphabet[(bits >> 6) & 0x3F];
    out += base64_alphabet[bits & 0x3F];
  }
  auto rest = in.size() - i;
  if (rest == 1) {
    auto bits = byte_at(i) << 16;
    out += base64_alphabet[(bits >> 18) & 0x3F];
    out += base64_alphabet[(bits >> 12) & 0x3F];
    out += "==";
  } else if (rest == 2) {
    auto bits = (byte_at(i) << 16) | (byte_at(i + 1) << 8);
    out += base64_alphabet[(bits >> 18) & 0x3F];
    out += base64_alphabet[(bits >> 12) & 0x3F];
    out += base64_alphabet[(bits >> 6) & 0x3F];
    out += '=';
  }
}

int base64_digit(char c) noexcept {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

/// Decodes standard base64; the trailing `=` padding is optional.
std::optional<std::string> decode_base64(std::string_view in) {
  while (!in.empty() && in.back() == '=' && in.size() % 4 != 1)
    in.remove_suffix(1);
  if (in.size() % 4 == 1)
    return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3 + 2);
  std::uint32_t bits = 0;
  int num_bits = 0;
  for (auto c : in) {
    auto digit = base64_digit(c);
    if (digit < 0)
      return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(digit);
    num_bits += 6;
    if (num_bits >= 8) {
      num_bits -= 8;
      out += static_cast<char>((bits >> num_bits) & 0xFF);
    }
  }
  return out;
}

// -- JSON output --------------------------------------------------------------

/// Returns the length of the valid UTF-8 sequence starting at `str[pos]`, or
/// 0 if none starts there (overlong forms, surrogates and code points above
/// U+10FFFF are invalid).
size_t utf8_sequence_length(std::string_view str, size_t pos) noexcept {
  auto at = [&str](size_t i) { return static_cast<unsigned char>(str[i]); };
  auto lead = at(pos);
  size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    len = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    len = 3;
    if (lead == 0xE0)
      lo = 0xA0;
    else if (lead == 0xED)
      hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    len = 4;
    if (lead == 0xF0)
      lo = 0x90;
    else if (lead == 0xF4)
      hi = 0x8F;
  } else {
    return 0;
  }
  if (pos + len > str.size())
    return 0;
  if (at(pos + 1) < lo || at(pos + 1) > hi)
    return 0;
  for (size_t i = 2; i < len; ++i)
    if (at(pos + i) < 0x80 || at(pos + i) > 0xBF)
      return 0;
  return len;
}

/// Returns `str` with each byte that starts no valid UTF-8 sequence replaced
/// by U+FFFD, so error messages can travel in protobuf strings.
std::string valid_utf8(std::string_view str) {
  std::string result;
  result.reserve(str.size());
  size_t pos = 0;
  while (pos < str.size()) {
    if (static_cast<unsigned char>(str[pos]) < 0x80) {
      result += str[pos++];
    } else if (auto len = utf8_sequence_length(str, pos); len > 0) {
      result.append(str.data() + pos, len);
      pos += len;
    } else {
      result += "\xEF\xBF\xBD";
      ++pos;
    }
  }
  return result;
}

void append_json_string(std::string& out, std::string_view str) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  size_t pos = 0;
  while (pos < str.size()) {
    auto c = static_cast<unsigned char>(str[pos]);
    if (c >= 0x80) {
      if (auto len = utf8_sequence_length(str, pos); len > 0) {
        out.append(str.data() + pos, len);
        pos += len;
      } else {
        out += "\xEF\xBF\xBD"; // U+FFFD REPLACEMENT CHARACTER
        ++pos;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0x0F];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++pos;
  }
  out += '"';
}

void append_json_double(std::string& out, double x) {
  if (!std::isfinite(x)) {
    out += "null";
    return;
  }
  std::array<char, 32> buf;
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), x);
  if (ec != std::errc{}) { // cannot happen: 32 chars fit any double
    out += "null";
    return;
  }
  std::string_view str{buf.data(), static_cast<size_t>(end - buf.data())};
  out += str;
  // Keep it a double when read back: "1" -> "1.0".
  if (str.find_first_of(".e") == std::string_view::npos)
    out += ".0";
}

void append_json(std::string& out, const value& x) {
  switch (x.type()) {
    case value::kind::null:
      out += "null";
      break;
    case value::kind::boolean:
      out += *x.if_bool() ? "true" : "false";
      break;
    case value::kind::integer: {
      std::array<char, 24> buf;
      auto res = std::to_chars(buf.data(), buf.data() + buf.size(),
                               *x.if_int());
      out.append(buf.data(), res.ptr);
      break;
    }
    case value::kind::real:
      append_json_double(out, *x.if_double());
      break;
    case value::kind::string:
      append_json_string(out, *x.if_string());
      break;
    case value::kind::bytes:
      out += R"({"$bytes":")";
      append_base64(out, x.if_bytes()->data);
      out += "\"}";
      break;
    case value::kind::list: {
      out += '[';
      auto first = true;
      for (auto& item : *x.if_list()) {
        if (!first)
          out += ',';
        first = false;
        append_json(out, item);
      }
      out += ']';
      break;
    }
    case value::kind::map: {
      out += '{';
      auto first = true;
      for (auto& [key, item] : *x.if_map()) {
        if (!first)
          out += ',';
        first = false;
        append_json_string(out, key);
        out += ':';
        append_json(out, item);
      }
      out += '}';
      break;
    }
    case value::kind::ndarray: {
      auto& array = *x.if_ndarray();
      out += R"({"$ndarray":{"dtype":")";
      out += to_string(array.type());
      out += R"(","shape":[)";
      for (std::size_t i = 0; i < array.shape().size(); ++i) {
        if (i > 0)
          out += ',';
        out += std::to_string(array.shape()[i]);
      }
      out += R"(],"data":")";
      append_base64(out, array.bytes());
      out += "\"}}";
      break;
    }
  }
}

// -- JSON input ---------------------------------------------------------------

using json = nlohmann::json;

constexpr std::string_view bytes_key = "$bytes";

constexpr std::string_view ndarray_key = "$ndarray";

/// The array that `{"$ndarray": spec}` describes; when it describes none,
/// `why` says what is wrong.
std::optional<ndarray> ndarray_from_json(const value& spec, std::string& why) {
  auto fail = [&why](std::string what) -> std::optional<ndarray> {
    why = "a {\"$ndarray\": ...} object " + std::move(what)
          + R"( (expected {"dtype": "float32", "shape": [2, 3], "data": "<base64>"}))";
    return std::nullopt;
  };
  auto* members = spec.if_map();
  if (members == nullptr || members->size() != 3 || !spec["dtype"].is_string()
      || !spec["shape"].is_list() || !spec["data"].is_string())
    return fail("needs exactly the members dtype (a string), shape (a list) and data (a string)");
  auto type = parse_dtype(spec["dtype"].as_string());
  if (!type)
    return fail("has an unknown dtype \"" + std::string{spec["dtype"].as_string()} + "\"");
  ndarray::shape_type shape;
  for (auto& extent : *spec["shape"].if_list()) {
    if (!extent.is_int())
      return fail("has a shape that is not a list of integers");
    shape.push_back(*extent.if_int());
  }
  auto data = decode_base64(spec["data"].as_string());
  if (!data)
    return fail("has data that is not valid base64");
  if (auto reason = ndarray::invalid_reason(*type, shape, data->size()); !reason.empty())
    return fail("does not fit: " + reason);
  auto result = ndarray::from_bytes(*type, std::move(shape), std::move(*data));
  return std::move(*result);
}

/// Builds a `value` directly from nlohmann's SAX events, without an
/// intermediate `nlohmann::json` tree.
class value_builder {
public:
  explicit value_builder(std::string_view text) : text_(text) {
    // nop
  }

  // -- SAX interface (see nlohmann::json_sax) ---------------------------------

  bool null() {
    return put(value());
  }

  bool boolean(bool x) {
    return put(value(x));
  }

  bool number_integer(json::number_integer_t x) {
    return put(value(static_cast<std::int64_t>(x)));
  }

  bool number_unsigned(json::number_unsigned_t x) {
    if (x <= static_cast<std::uint64_t>(
          std::numeric_limits<std::int64_t>::max()))
      return put(value(static_cast<std::int64_t>(x)));
    return too_big(std::to_string(x));
  }

  bool number_float(json::number_float_t x, const json::string_t& text) {
    // An integer literal beyond 64 bits arrives here: refuse it rather than
    // silently lose its low digits to a double.
    if (text.find_first_of(".eE") == std::string::npos)
      return too_big(text);
    return put(value(static_cast<double>(x)));
  }

  bool string(json::string_t& x) {
    // The lexer clears its buffer before reusing it: moving out is safe.
    return put(value(std::move(x)));
  }

  bool binary(json::binary_t&) {
    // Never called for JSON text.
    return fail("binary data is not JSON");
  }

  bool start_object(std::size_t) {
    return open(true);
  }

  bool key(json::string_t& x) {
    stack_.back().key = std::move(x);
    return true;
  }

  bool end_object() {
    auto top = std::move(stack_.back());
    stack_.pop_back();
    if (top.members.size() == 1) {
      auto& [key, member] = *top.members.begin();
      if (key == bytes_key && member.is_string()) {
        auto data = decode_base64(*member.if_string());
        if (!data)
          return fail("the string in a {\"$bytes\": ...} object is not "
                      "valid base64");
        return put(value(snakepit::bytes{std::move(*data)}));
      }
      if (key == ndarray_key) {
        std::string why;
        auto array = ndarray_from_json(member, why);
        if (!array)
          return fail(std::move(why));
        return put(value(std::move(*array)));
      }
    }
    return put(value(std::move(top.members)));
  }

  bool start_array(std::size_t) {
    return open(false);
  }

  bool end_array() {
    auto top = std::move(stack_.back());
    stack_.pop_back();
    return put(value(std::move(top.items)));
  }

  bool parse_error(std::size_t position, const std::string&,
                   const json::exception& ex) {
    // nlohmann counts the offending character as read: step back onto it.
    auto offset = std::min(position > 0 ? position - 1 : 0, text_.size());
    auto before = text_.substr(0, offset);
    auto line = 1 + std::count(before.begin(), before.end(), '\n');
    auto line_start = before.rfind('\n');
    auto column = line_start == std::string_view::npos
                    ? offset + 1
                    : offset - line_start;
    error_ = "invalid JSON at line " + std::to_string(line) + ", column "
             + std::to_string(column) + " (byte " + std::to_string(offset)
             + "): " + describe(ex);
    return false;
  }

  // -- results ----------------------------------------------------------------

  result<value> finish(bool ok) {
    if (!ok || !error_.empty()) {
      if (error_.empty())
        error_ = "invalid JSON";
      return error_info::of(errc::bad_arguments, std::move(error_));
    }
    return std::move(root_);
  }

  /// Strips nlohmann's "[json.exception.parse_error.101] parse error at line
  /// 1, column 2: " prefix, keeping the description (as valid UTF-8: it may
  /// quote the offending input).
  static std::string describe(const json::exception& ex) {
    std::string_view what = ex.what();
    if (auto pos = what.find("] "); pos != std::string_view::npos)
      what.remove_prefix(pos + 2);
    constexpr std::string_view parse_error_prefix = "parse error";
    if (what.substr(0, parse_error_prefix.size()) == parse_error_prefix)
      if (auto pos = what.find(": "); pos != std::string_view::npos)
        what.remove_prefix(pos + 2);
    return valid_utf8(what);
  }

private:
  struct frame {
    bool is_map;
    value::list items;
    value::map members;
    std::string key;
  };

  bool open(bool is_map) {
    if (stack_.size() >= value::max_depth)
      return fail("lists and maps nest deeper than "
                  + std::to_string(value::max_depth) + " levels");
    stack_.push_back(frame{is_map, {}, {}, {}});
    return true;
  }

  bool put(value x) {
    if (stack_.empty()) {
      root_ = std::move(x);
      return true;
    }
    auto& top = stack_.back();
    if (top.is_map) {
      // Which of two values the caller meant is not ours to guess.
      if (!top.members.emplace(top.key, std::move(x)).second)
        return fail("duplicate key \"" + valid_utf8(top.key) + "\" in an object");
    } else
      top.items.push_back(std::move(x));
    return true;
  }

  bool fail(std::string what) {
    error_ = "invalid JSON: " + std::move(what);
    return false;
  }

  bool too_big(const std::string& digits) {
    return fail("integer " + digits.substr(0, 64) + " is outside the 64-bit range (-2^63 to "
                "2^63-1) that values hold; send it as a string, or as a float such as "
                "1.5e19 if rounding is fine");
  }

  std::string_view text_;
  std::vector<frame> stack_;
  value root_;
  std::string error_;
};

} // namespace

// -- value: constructors and factories ----------------------------------------

value::value(const char* x) {
  if (x != nullptr)
    data_.emplace<4>(x);
}

value::value(std::initializer_list<value> xs) {
  auto is_pair = [](const value& x) {
    auto ys = x.if_list();
    return ys != nullptr && ys->size() == 2 && (*ys)[0].is_string();
  };
  if (std::all_of(xs.begin(), xs.end(), is_pair)) {
    auto& members = data_.emplace<7>();
    for (auto& x : xs) {
      auto& pair = *x.if_list();
      members.insert_or_assign(*pair[0].if_string(), pair[1]);
    }
  } else if (xs.size() == 1) {
    // `value{x}` is x, as brace initialization reads everywhere else in C++;
    // a one-element list is `make_list({x})`.
    data_ = xs.begin()->data_;
  } else {
    data_.emplace<6>(xs.begin(), xs.end());
  }
}

value value::make_list(std::initializer_list<value> xs) {
  return value(list(xs.begin(), xs.end()));
}

value
value::make_map(std::initializer_list<std::pair<const std::string, value>> xs) {
  map members;
  for (auto& [key, x] : xs)
    members.insert_or_assign(key, x);
  return value(std::move(members));
}

result<value> value::from_uint64(std::uint64_t x) {
  if (x > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return error_info::of(errc::bad_arguments,
                          "integer " + std::to_string(x)
                             + " does not fit in a signed 64-bit integer");
  return value(static_cast<std::int64_t>(x));
}

// -- value: accessors ---------------------------------------------------------

bool value::as_bool(bool fallback) const noexcept {
  auto x = if_bool();
  return x != nullptr ? *x : fallback;
}

std::int64_t value::as_int(std::int64_t fallback) const noexcept {
  auto x = if_int();
  return x != nullptr ? *x : fallback;
}

double value::as_double(double fallback) const noexcept {
  if (auto x = if_double())
    return *x;
  if (auto x = if_int())
    return static_cast<double>(*x);
  return fallback;
}

std::string_view value::as_string(std::string_view fallback) const noexcept {
  auto x = if_string();
  return x != nullptr ? std::string_view{*x} : fallback;
}

namespace {

const value& shared_null() noexcept {
  static const value instance;
  return instance;
}

} // namespace

const value& value::operator[](std::string_view key) const {
  if (auto xs = if_map())
    if (auto i = xs->find(key); i != xs->end())
      return i->second;
  return shared_null();
}

const value& value::operator[](std::size_t index) const noexcept {
  if (auto xs = if_list(); xs != nullptr && index < xs->size())
    return (*xs)[index];
  return shared_null();
}

std::size_t value::size() const noexcept {
  if (auto xs = if_list())
    return xs->size();
  if (auto xs = if_map())
    return xs->size();
  return 0;
}

bool operator==(const value& x, const value& y) {
  return x.data_ == y.data_;
}

// -- value: JSON --------------------------------------------------------------

std::string value::to_json() const {
  std::string result;
  append_json(result, *this);
  return result;
}

result<value> value::from_json(std::string_view text) {
  value_builder builder{text};
  try {
    auto ok = json::sax_parse(text.begin(), text.end(), &builder);
    return builder.finish(ok);
  } catch (const json::exception& ex) {
    // Not expected with a SAX handler; never let it escape.
    return error_info::of(errc::bad_arguments,
                          "invalid JSON: " + value_builder::describe(ex));
  }
}

// -- free functions -----------------------------------------------------------

std::string to_string(const value& x) {
  return x.to_json();
}

std::string to_string(const bytes& x) {
  std::string result = R"({"$bytes":")";
  append_base64(result, x.data);
  result += "\"}";
  return result;
}

bool is_valid_utf8(std::string_view text) noexcept {
  auto* p = reinterpret_cast<const unsigned char*>(text.data());
  auto* end = p + text.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p < len)
      return false;
    for (int i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr std::uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += len;
  }
  return true;
}

namespace {

bool find_invalid_utf8_in(const value& x, std::string& path) {
  if (auto* s = x.if_string())
    return !is_valid_utf8(*s);
  if (auto* xs = x.if_list()) {
    for (std::size_t i = 0; i < xs->size(); ++i) {
      auto mark = path.size();
      path += "[" + std::to_string(i) + "]";
      if (find_invalid_utf8_in((*xs)[i], path))
        return true;
      path.resize(mark);
    }
    return false;
  }
  if (auto* m = x.if_map()) {
    for (auto& [key, member] : *m) {
      auto mark = path.size();
      if (!is_valid_utf8(key)) {
        path += path.empty() ? "(a key)" : ".(a key)";
        return true;
      }
      path += (path.empty() ? "" : ".") + key;
      if (find_invalid_utf8_in(member, path))
        return true;
      path.resize(mark);
    }
  }
  return false;
}

/// Whether `x` nests lists and maps more than `left` deep; `path` then
/// leads to the level past the limit.
bool too_deep_in(const value& x, std::size_t left, std::string& path) {
  auto* xs = x.if_list();
  auto* m = x.if_map();
  if (xs == nullptr && m == nullptr)
    return false;
  if (left == 0)
    return true;
  if (xs != nullptr) {
    for (std::size_t i = 0; i < xs->size(); ++i) {
      auto mark = path.size();
      path += "[" + std::to_string(i) + "]";
      if (too_deep_in((*xs)[i], left - 1, path))
        return true;
      path.resize(mark);
    }
    return false;
  }
  for (auto& [key, member] : *m) {
    auto mark = path.size();
    path += "." + key;
    if (too_deep_in(member, left - 1, path))
      return true;
    path.resize(mark);
  }
  return false;
}

} // namespace

std::string find_too_deep(const value::map& args, std::size_t max_levels) {
  std::string path;
  for (auto& [key, member] : args) {
    path = key;
    if (too_deep_in(member, max_levels, path))
      return path;
  }
  return {};
}

std::string find_invalid_utf8(const value::map& args) {
  std::string path;
  for (auto& [key, member] : args) {
    if (!is_valid_utf8(key))
      return "(an argument name)";
    path = key;
    if (find_invalid_utf8_in(member, path))
      return path;
  }
  return {};
}

} // namespace snakepit
