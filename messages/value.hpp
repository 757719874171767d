#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>


#include "snakepit/messages/ndarray.hpp"
#include "snakepit/messages/result.hpp"

namespace snakepit {

/// Raw bytes, kept as bytes end to end (never base64 on the wire).
struct bytes {
  /// The bytes; may hold any value, including NUL.
  std::string data;

  friend bool operator==(const bytes& x, const bytes& y) noexcept {
    return x.data == y.data;
  }

  friend bool operator!=(const bytes& x, const bytes& y) noexcept {
    return x.data != y.data;
  }

  friend bool operator<(const bytes& x, const bytes& y) noexcept {
    return x.data < y.data;
  }
};

namespace detail {

template <class T>
inline constexpr bool is_char_type_v
  = std::is_same_v<T, char> || std::is_same_v<T, wchar_t>
    || std::is_same_v<T, char16_t> || std::is_same_v<T, char32_t>
#ifdef __cpp_char8_t
    || std::is_same_v<T, char8_t>
#endif
  ;

/// Integers a `value` accepts implicitly: every signed integer type and
/// unsigned ones of at most 32 bits, but neither `bool` nor character types.
template <class T>
inline constexpr bool is_value_integer_v
  = std::is_integral_v<T> && !std::is_same_v<T, bool> && !is_char_type_v<T>
    && (std::is_signed_v<T> || sizeof(T) <= 4);

/// Types a `value` refuses at compile time: character types (`value('a')`
/// is almost always a mistake) and unsigned integers wider than 32 bits (use
/// `value::from_uint64`).
template <class T>
inline constexpr bool is_rejected_value_integer_v
  = std::is_integral_v<T> && !std::is_same_v<T, bool> && !is_value_integer_v<T>;

} // namespace detail

/// JSON-like data plus raw bytes: the arguments and results of Python tools.
///
/// A value is null, a boolean, a 64-bit signed integer, a double, a UTF-8
/// string, raw `bytes`, a list of values, a map from strings to values
/// (sorted by key) or an n-d array of numbers (`ndarray`). Different kinds never compare equal (`1 != 1.0`).
///
/// Braces: `value{x}` is `x` (a copy when x is a value), `value{{"k", v}}` a
/// one-entry map, `value{a, b}` a list; a one-element list is `make_list({x})`.
class value {
public:
  // -- member types -----------------------------------------------------------

  /// A list of values.
  using list = std::vector<value>;

  /// A map from strings to values, with lookup by `std::string_view`.
  using map = std::map<std::string, value, std::less<>>;

  /// The kind of data a value holds; also the index into its storage.
  enum class kind : std::uint8_t {
    null,
    boolean,
    integer,
    real,
    string,
    bytes,
    list,
    map,
    ndarray,
  };

  // -- constants --------------------------------------------------------------

  /// Deepest nesting of lists and maps that `from_json` accepts.
  static constexpr std::size_t max_depth = 128;

  /// Deepest nesting of lists and maps inside one argument of a call:
  /// Python's protobuf decoder refuses messages nested past 100 levels; one
  /// map level costs three (value, map, entry) on top of the frames around
  /// a call, so 24 leaves room on both sides. Deeper is `bad_arguments`
  /// naming the limit.
  static constexpr std::size_t max_wire_depth = 24;

  // -- constructors, destructors, and assignment operators --------------------

  /// Constructs null.
  value() noexcept = default;

  /// Constructs null.
  value(std::nullptr_t) noexcept {
    // nop
  }

  /// Constructs a boolean.
  value(bool x) noexcept : data_(std::in_place_index<1>, x) {
    // nop
  }

  /// Constructs an integer from any signed integer type or an unsigned one of
  /// at most 32 bits.
  template <class T,
            std::enable_if_t<detail::is_value_integer_v<T>, int> = 0>
  value(T x) noexcept
    : data_(std::in_place_index<2>, static_cast<std::int64_t>(x)) {
    // nop
  }

  /// Deleted: 64-bit unsigned integers need `value::from_uint64`, characters
  /// need a string (`value("a")`) or an explicit integer cast.
  template <class T,
            std::enable_if_t<detail::is_rejected_value_integer_v<T>, int> = 0>
  value(T x) = delete;

  /// Deleted: keeps pointers from silently converting to `bool`.
  template <class T,
            std::enable_if_t<!std::is_same_v<std::remove_cv_t<T>, char>, int>
            = 0>
  value(T* x) = delete;

  /// Constructs a double.
  value(double x) noexcept : data_(std::in_place_index<3>, x) {
    // nop
  }

  /// Constructs a double.
  value(float x) noexcept
    : data_(std::in_place_index<3>, static_cast<double>(x)) {
    // nop
  }

  /// Constructs a string; a null pointer constructs null.
  value(const char* x);

  /// Constructs a string.
  value(std::string x) noexcept : data_(std::in_place_index<4>, std::move(x)) {
    // nop
  }

  /// Constructs a string.
  value(std::string_view x) : data_(std::in_place_index<4>, x) {
    // nop
  }

  /// Constructs bytes.
  value(snakepit::bytes x) noexcept
    : data_(std::in_place_index<5>, std::move(x)) {
    // nop
  }

  /// Constructs a list.
  value(list xs) noexcept : data_(std::in_place_index<6>, std::move(xs)) {
    // nop
  }

  /// Constructs a map.
  value(map xs) noexcept : data_(std::in_place_index<7>, std::move(xs)) {
    // nop
  }

  /// Constructs an n-d array.
  value(snakepit::ndarray x) noexcept
    : data_(std::in_place_index<8>, std::move(x)) {
    // nop
  }

  /// nlohmann-style: a map when every element is a two-element list whose
  /// first item is a string, else a list. `{{"a", 1}, {"b", 2}}` is a map,
  /// `{1, 2}` a list, `{x}` x itself, `{}` null; an explicitly empty
  /// initializer list is an empty map. Duplicate keys: the last one wins. Use `make_list` and
  /// `make_map` to choose the kind yourself.
  value(std::initializer_list<value> xs);

  value(const value&) = default;

  value(value&&) noexcept = default;

  value& operator=(const value&) = default;

  value& operator=(value&&) noexcept = default;

  ~value() = default;

  // -- factories --------------------------------------------------------------

  /// Returns a list of `xs`, even when they look like key-value pairs.
  [[nodiscard]] static value make_list(std::initializer_list<value> xs = {});

  /// Returns a map of `xs`. Duplicate keys: the last one wins.
  [[nodiscard]] static value
  make_map(std::initializer_list<std::pair<const std::string, value>> xs = {});

  /// Returns an integer, or `bad_arguments` when `x` exceeds
  /// `INT64_MAX`.
  [[nodiscard]] static result<value> from_uint64(std::uint64_t x);

  // -- kind -------------------------------------------------------------------

  /// Returns the kind of data this value holds.
  [[nodiscard]] kind type() const noexcept {
    return static_cast<kind>(data_.index());
  }

  /// Checks whether this value is null.
  [[nodiscard]] bool is_null() const noexcept {
    return type() == kind::null;
  }

  /// Checks whether this value is a boolean.
  [[nodiscard]] bool is_bool() const noexcept {
    return type() == kind::boolean;
  }

  /// Checks whether this value is an integer.
  [[nodiscard]] bool is_int() const noexcept {
    return type() == kind::integer;
  }

  /// Checks whether this value is a double.
  [[nodiscard]] bool is_double() const noexcept {
    return type() == kind::real;
  }

  /// Checks whether this value is an integer or a double.
  [[nodiscard]] bool is_number() const noexcept {
    return is_int() || is_double();
  }

  /// Checks whether this value is a string.
  [[nodiscard]] bool is_string() const noexcept {
    return type() == kind::string;
  }

  /// Checks whether this value holds bytes.
  [[nodiscard]] bool is_bytes() const noexcept {
    return type() == kind::bytes;
  }

  /// Checks whether this value is a list.
  [[nodiscard]] bool is_list() const noexcept {
    return type() == kind::list;
  }

  /// Checks whether this value is a map.
  [[nodiscard]] bool is_map() const noexcept {
    return type() == kind::map;
  }

  /// Checks whether this value is an n-d array.
  [[nodiscard]] bool is_ndarray() const noexcept {
    return type() == kind::ndarray;
  }

  // -- pointer accessors: `nullptr` on a kind mismatch ------------------------

  /// Returns the boolean or `nullptr`.
  [[nodiscard]] const bool* if_bool() const noexcept {
    return std::get_if<1>(&data_);
  }

  /// Returns the integer or `nullptr`.
  [[nodiscard]] const std::int64_t* if_int() const noexcept {
    return std::get_if<2>(&data_);
  }

  /// Returns the double or `nullptr` (an integer yields `nullptr`).
  [[nodiscard]] const double* if_double() const noexcept {
    return std::get_if<3>(&data_);
  }

  /// Returns the string or `nullptr`.
  [[nodiscard]] const std::string* if_string() const noexcept {
    return std::get_if<4>(&data_);
  }

  /// Returns the string or `nullptr`.
  [[nodiscard]] std::string* if_string() noexcept {
    return std::get_if<4>(&data_);
  }

  /// Returns the bytes or `nullptr`.
  [[nodiscard]] const snakepit::bytes* if_bytes() const noexcept {
    return std::get_if<5>(&data_);
  }

  /// Returns the bytes or `nullptr`.
  [[nodiscard]] snakepit::bytes* if_bytes() noexcept {
    return std::get_if<5>(&data_);
  }

  /// Returns the list or `nullptr`.
  [[nodiscard]] const list* if_list() const noexcept {
    return std::get_if<6>(&data_);
  }

  /// Returns the list or `nullptr`.
  [[nodiscard]] list* if_list() noexcept {
    return std::get_if<6>(&data_);
  }

  /// Returns the map or `nullptr`.
  [[nodiscard]] const map* if_map() const noexcept {
    return std::get_if<7>(&data_);
  }

  /// Returns the map or `nullptr`.
  [[nodiscard]] map* if_map() noexcept {
    return std::get_if<7>(&data_);
  }

  /// Returns the n-d array or `nullptr`.
  [[nodiscard]] const snakepit::ndarray* if_ndarray() const noexcept {
    return std::get_if<8>(&data_);
  }

  // -- convenience accessors with a fallback ----------------------------------

  /// Returns the boolean or `fallback`.
  [[nodiscard]] bool as_bool(bool fallback = false) const noexcept;

  /// Returns the integer or `fallback` (a double yields `fallback`).
  [[nodiscard]] std::int64_t as_int(std::int64_t fallback = 0) const noexcept;

  /// Returns the double, the integer converted to double, or `fallback`.
  [[nodiscard]] double as_double(double fallback = 0) const noexcept;

  /// Returns a view of the string or `fallback`. The view dangles once this
  /// value changes or dies.
  [[nodiscard]] std::string_view
  as_string(std::string_view fallback = {}) const noexcept;

  // -- lookup -----------------------------------------------------------------

  /// Map lookup: the member or a shared null value when absent or not a map.
  [[nodiscard]] const value& operator[](std::string_view key) const;

  /// List element or a shared null value when out of range / not a list.
  [[nodiscard]] const value& operator[](std::size_t index) const noexcept;

  /// Returns the number of list or map elements, 0 for any other kind.
  [[nodiscard]] std::size_t size() const noexcept;

  // -- comparison -------------------------------------------------------------

  /// Checks kind and content; a NaN double never equals anything.
  friend bool operator==(const value& x, const value& y);

  friend bool operator!=(const value& x, const value& y) {
    return !(x == y);
  }

  // -- JSON -------------------------------------------------------------------

  /// JSON text without whitespace, map keys sorted. bytes become
  /// `{"$bytes": "<base64>"}`, arrays `{"$ndarray": {"dtype": "float32",
  /// "shape": [2, 3], "data": "<base64>"}}`; non-finite doubles become null; invalid UTF-8
  /// in strings becomes U+FFFD; doubles always carry a `.` or an exponent so
  /// they read back as doubles.
  [[nodiscard]] std::string to_json() const;

  /// Parses JSON text; `{"$bytes": "<base64>"}` (an object with exactly that
  /// one key and a string) becomes bytes, so a map of that single shape does
  /// not survive a JSON round trip; likewise `{"$ndarray": {...}}` with
  /// exactly the members `dtype`, `shape` and `data` becomes an array (an
  /// invalid one is an error). Integers that fit int64 stay integers,
  /// others become doubles. Duplicate keys: the last one wins. Errors (with
  /// line, column and byte offset) as `bad_arguments`; nesting deeper
  /// than `max_depth` is an error.
  [[nodiscard]] static result<value> from_json(std::string_view text);

private:
  std::variant<std::monostate, bool, std::int64_t, double, std::string,
               snakepit::bytes, list, map, snakepit::ndarray>
    data_;
};

/// Returns `x.to_json()`, so CAF's `deep_to_string` prints JSON.
std::string to_string(const value& x);

/// Returns `value(x).to_json()`: `{"$bytes":"<base64>"}`.
std::string to_string(const bytes& x);

/// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates,
/// nothing above U+10FFFF): what the wire's string fields require.
[[nodiscard]] bool is_valid_utf8(std::string_view text) noexcept;

/// The path of the first string (or map key) in `args` that is not valid
/// UTF-8, e.g. "text", "rows[2].name" or "opts{key}"; empty when all are.
/// Binary data belongs in `bytes` values.
[[nodiscard]] std::string find_invalid_utf8(const value::map& args);

/// The path of the first place in `args` where lists and maps nest more than
/// `max_levels` deep (`"x[0].a[3]"`), or empty.
[[nodiscard]] std::string find_too_deep(const value::map& args, std::size_t max_levels);

} // namespace snakepit
