#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "snakepit/messages/result.hpp"

namespace snakepit {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "snakepit's arrays are little-endian on the wire and in memory");

/// The bits of an IEEE 754 half-precision float (C++17 has no such type).
struct float16 {
  std::uint16_t bits = 0;

  friend bool operator==(float16 x, float16 y) noexcept {
    return x.bits == y.bits;
  }

  friend bool operator!=(float16 x, float16 y) noexcept {
    return x.bits != y.bits;
  }
};

/// The element type of an `ndarray`; the numbers match the wire's `DType`.
enum class dtype : std::uint8_t {
  boolean = 1,
  int8,
  int16,
  int32,
  int64,
  uint8,
  uint16,
  uint32,
  uint64,
  float16,
  float32,
  float64,
  complex64,
  complex128,
};

/// Bytes per element of `x`.
[[nodiscard]] std::size_t itemsize(dtype x) noexcept;

/// numpy's name of `x`: "bool", "int8" ... "float16", "complex128".
[[nodiscard]] std::string_view to_string(dtype x) noexcept;

/// The dtype named `name` (numpy's names, as `to_string` prints them).
[[nodiscard]] std::optional<dtype> parse_dtype(std::string_view name) noexcept;

/// Whether `x` is one of the enumerators (e.g. of a number read off a wire).
[[nodiscard]] bool is_valid(dtype x) noexcept;

/// The dtype of the C++ element type `T`: bool, (u)int8_t ... (u)int64_t,
/// `float16`, float, double, std::complex<float>, std::complex<double>.
template <class T>
struct dtype_of;

#define SNAKEPIT_DTYPE_OF(type, tag)                                           \
  template <>                                                                  \
  struct dtype_of<type> {                                                      \
    static constexpr dtype value = dtype::tag;                                 \
  };

SNAKEPIT_DTYPE_OF(bool, boolean)
SNAKEPIT_DTYPE_OF(std::int8_t, int8)
SNAKEPIT_DTYPE_OF(std::int16_t, int16)
SNAKEPIT_DTYPE_OF(std::int32_t, int32)
SNAKEPIT_DTYPE_OF(std::int64_t, int64)
SNAKEPIT_DTYPE_OF(std::uint8_t, uint8)
SNAKEPIT_DTYPE_OF(std::uint16_t, uint16)
SNAKEPIT_DTYPE_OF(std::uint32_t, uint32)
SNAKEPIT_DTYPE_OF(std::uint64_t, uint64)
SNAKEPIT_DTYPE_OF(snakepit::float16, float16)
SNAKEPIT_DTYPE_OF(float, float32)
SNAKEPIT_DTYPE_OF(double, float64)
SNAKEPIT_DTYPE_OF(std::complex<float>, complex64)
SNAKEPIT_DTYPE_OF(std::complex<double>, complex128)

#undef SNAKEPIT_DTYPE_OF

template <class T>
inline constexpr dtype dtype_of_v = dtype_of<std::remove_cv_t<T>>::value;

/// A read-only view of contiguous elements (C++17 has no std::span).
template <class T>
class array_view {
public:
  array_view() noexcept = default;

  array_view(const T* data, std::size_t size) noexcept : data_(data), size_(size) {
    // nop
  }

  [[nodiscard]] const T* data() const noexcept {
    return data_;
  }

  [[nodiscard]] std::size_t size() const noexcept {
    return size_;
  }

  [[nodiscard]] bool empty() const noexcept {
    return size_ == 0;
  }

  [[nodiscard]] const T* begin() const noexcept {
    return data_;
  }

  [[nodiscard]] const T* end() const noexcept {
    return data_ + size_;
  }

  [[nodiscard]] const T& operator[](std::size_t i) const noexcept {
    return data_[i];
  }

private:
  const T* data_ = nullptr;
  std::size_t size_ = 0;
};

/// An n-d array of numbers: a dtype, a shape and C-contiguous (row-major)
/// little-endian elements, as numpy's `ndarray` holds them. Python tools get
/// a `numpy.ndarray`; a tool returning one gives back an `ndarray`.
///
/// The elements are immutable and shared: copies of an ndarray share one
/// buffer, which lives as long as the last copy (a vector it adopted, a
/// shared-memory mapping, or any buffer whose owner the caller hands over).
/// Two arrays are equal when dtype, shape and bytes are (bitwise: a NaN
/// equals the same NaN).
class ndarray {
public:
  /// Extents, outermost first; empty for a 0-d array (one element).
  using shape_type = std::vector<std::int64_t>;

  /// The most dimensions an array may have (numpy's limit).
  static constexpr std::size_t max_ndim = 32;

  /// An empty 1-d float64 array (shape {0}).
  ndarray();

  /// A 1-d array holding `data`, adopted without copying.
  template <class T>
  explicit ndarray(std::vector<T> data)
    : ndarray(adopt_vector(std::move(data), std::nullopt)) {
    // nop
  }

  /// An array of `shape` holding `data` (adopted without copying); an error
  /// when the element count does not match the shape.
  template <class T>
  [[nodiscard]] static result<ndarray> from(std::vector<T> data, shape_type shape) {
    if (auto err = check(dtype_of_v<T>, shape, data.size() * sizeof(T)))
      return std::move(*err);
    return adopt_vector(std::move(data), std::move(shape));
  }

  /// An array of `shape` copying `count` elements from `data`.
  template <class T>
  [[nodiscard]] static result<ndarray> copy_of(const T* data, std::size_t count,
                                                      shape_type shape) {
    return from(std::vector<T>(data, data + count), std::move(shape));
  }

  /// An array over `bytes` bytes at `data` without copying; `owner` keeps
  /// them alive (and immutable) for as long as any copy of the array lives.
  [[nodiscard]] static result<ndarray> adopt(dtype type, shape_type shape,
                                                    std::shared_ptr<const void> owner,
                                                    const void* data, std::size_t bytes);

  /// An array whose elements are the bytes of `data` (moved in).
  [[nodiscard]] static result<ndarray> from_bytes(dtype type, shape_type shape,
                                                         std::string data);

  /// Checks that `bytes` bytes of `type` elements fill `shape` exactly; the
  /// error (`bad_arguments`) says what does not fit.
  [[nodiscard]] static std::optional<error_info> check(dtype type, const shape_type& shape,
                                        std::size_t bytes);

  /// What `check` finds wrong, as text; empty when nothing is.
  [[nodiscard]] static std::string invalid_reason(dtype type, const shape_type& shape,
                                                  std::size_t bytes);

  // -- properties -------------------------------------------------------------

  [[nodiscard]] snakepit::dtype type() const noexcept {
    return type_;
  }

  [[nodiscard]] const shape_type& shape() const noexcept {
    return shape_;
  }

  [[nodiscard]] std::size_t ndim() const noexcept {
    return shape_.size();
  }

  /// Bytes between consecutive elements along each dimension (C order).
  [[nodiscard]] shape_type strides() const;

  /// Number of elements (1 for a 0-d array).
  [[nodiscard]] std::size_t size() const noexcept {
    return byte_size_ / snakepit::itemsize(type_);
  }

  [[nodiscard]] std::size_t itemsize() const noexcept {
    return snakepit::itemsize(type_);
  }

  /// Bytes of element data: itemsize() x size().
  [[nodiscard]] std::size_t byte_size() const noexcept {
    return byte_size_;
  }

  /// The raw element bytes.
  [[nodiscard]] std::string_view bytes() const noexcept {
    return {static_cast<const char*>(data_), byte_size_};
  }

  /// The elements as `T`, or `bad_arguments` naming both dtypes when `T`
  /// is not this array's element type.
  template <class T>
  [[nodiscard]] result<array_view<T>> as() const {
    if (dtype_of_v<T> != type_)
      return type_mismatch(dtype_of_v<T>);
    return array_view<T>{static_cast<const T*>(data_), size()};
  }

  friend bool operator==(const ndarray& x, const ndarray& y) noexcept;

  friend bool operator!=(const ndarray& x, const ndarray& y) noexcept {
    return !(x == y);
  }

private:
  ndarray(snakepit::dtype type, shape_type shape, std::shared_ptr<const void> owner,
          const void* data, std::size_t bytes) noexcept;

  // No shape: 1-d.
  template <class T>
  static ndarray adopt_vector(std::vector<T> data, std::optional<shape_type> given) {
    auto shape = given ? std::move(*given)
                       : shape_type{static_cast<std::int64_t>(data.size())};
    if constexpr (std::is_same_v<T, bool>) {
      // std::vector<bool> packs bits: store one byte (0 or 1) per element.
      auto owner = std::make_shared<std::vector<std::uint8_t>>(data.begin(), data.end());
      const void* ptr = owner->data();
      auto bytes = owner->size();
      return ndarray{dtype::boolean, std::move(shape), std::move(owner), ptr, bytes};
    } else {
      auto owner = std::make_shared<std::vector<T>>(std::move(data));
      const void* ptr = owner->data();
      auto bytes = owner->size() * sizeof(T);
      return ndarray{dtype_of_v<T>, std::move(shape), std::move(owner), ptr, bytes};
    }
  }

  error_info type_mismatch(snakepit::dtype wanted) const;

  snakepit::dtype type_ = dtype::float64;
  shape_type shape_;
  std::shared_ptr<const void> owner_;
  const void* data_ = nullptr;
  std::size_t byte_size_ = 0;
};

/// The numbers of `x` for logs: "ndarray(float32, [2, 3])".
std::string to_string(const ndarray& x);

} // namespace snakepit
