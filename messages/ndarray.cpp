#include "snakepit/messages/ndarray.hpp"

#include <array>
#include <cstring>
#include <limits>

namespace snakepit {

namespace {

struct dtype_info {
  std::string_view name;
  std::size_t itemsize;
};

// Indexed by the enumerator's number; 0 is unused.
constexpr std::array<dtype_info, 15> dtype_table{{
  {"", 1},
  {"bool", 1},
  {"int8", 1},
  {"int16", 2},
  {"int32", 4},
  {"int64", 8},
  {"uint8", 1},
  {"uint16", 2},
  {"uint32", 4},
  {"uint64", 8},
  {"float16", 2},
  {"float32", 4},
  {"float64", 8},
  {"complex64", 8},
  {"complex128", 16},
}};

} // namespace

bool is_valid(dtype x) noexcept {
  auto n = static_cast<std::size_t>(x);
  return n >= 1 && n < dtype_table.size();
}

std::size_t itemsize(dtype x) noexcept {
  return is_valid(x) ? dtype_table[static_cast<std::size_t>(x)].itemsize : 1;
}

std::string_view to_string(dtype x) noexcept {
  return is_valid(x) ? dtype_table[static_cast<std::size_t>(x)].name : "invalid";
}

std::optional<dtype> parse_dtype(std::string_view name) noexcept {
  for (std::size_t i = 1; i < dtype_table.size(); ++i)
    if (dtype_table[i].name == name)
      return static_cast<dtype>(i);
  return std::nullopt;
}

ndarray::ndarray() : shape_{0} {
  // nop
}

ndarray::ndarray(snakepit::dtype type, shape_type shape, std::shared_ptr<const void> owner,
                 const void* data, std::size_t bytes) noexcept
  : type_(type), shape_(std::move(shape)), owner_(std::move(owner)), data_(data),
    byte_size_(bytes) {
  // nop
}

std::optional<error_info> ndarray::check(snakepit::dtype type, const shape_type& shape,
                                        std::size_t bytes) {
  auto reason = invalid_reason(type, shape, bytes);
  if (reason.empty())
    return std::nullopt;
  return error_info::of(errc::bad_arguments, "ndarray: " + std::move(reason));
}

std::string ndarray::invalid_reason(snakepit::dtype type, const shape_type& shape,
                                    std::size_t bytes) {
  auto fail = [](std::string what) { return what; };
  if (!is_valid(type))
    return fail("invalid dtype " + std::to_string(static_cast<int>(type)));
  if (shape.size() > max_ndim)
    return fail(std::to_string(shape.size()) + " dimensions (at most "
                + std::to_string(max_ndim) + ")");
  std::size_t count = 1;
  for (auto extent : shape) {
    if (extent < 0)
      return fail("negative extent " + std::to_string(extent) + " in the shape");
    auto n = static_cast<std::size_t>(extent);
    if (n != 0 && count > std::numeric_limits<std::size_t>::max() / n / snakepit::itemsize(type))
      return fail("the shape's element count overflows");
    count *= n;
  }
  auto expected = count * snakepit::itemsize(type);
  if (expected != bytes)
    return fail("the shape holds " + std::to_string(count) + " " + std::string{to_string(type)}
                + " elements (" + std::to_string(expected) + " bytes) but the data has "
                + std::to_string(bytes) + " bytes");
  return {};
}

result<ndarray> ndarray::adopt(snakepit::dtype type, shape_type shape,
                                      std::shared_ptr<const void> owner, const void* data,
                                      std::size_t bytes) {
  if (auto err = check(type, shape, bytes))
    return std::move(*err);
  if (data == nullptr && bytes > 0)
    return error_info::of(errc::bad_arguments, "ndarray: null data");
  return ndarray{type, std::move(shape), std::move(owner), data, bytes};
}

result<ndarray> ndarray::from_bytes(snakepit::dtype type, shape_type shape,
                                           std::string data) {
  if (auto err = check(type, shape, data.size()))
    return std::move(*err);
  auto owner = std::make_shared<std::string>(std::move(data));
  const void* ptr = owner->data();
  auto bytes = owner->size();
  return ndarray{type, std::move(shape), std::move(owner), ptr, bytes};
}

ndarray::shape_type ndarray::strides() const {
  shape_type result(shape_.size());
  auto step = static_cast<std::int64_t>(itemsize());
  for (auto i = shape_.size(); i-- > 0;) {
    result[i] = step;
    step *= shape_[i];
  }
  return result;
}

error_info ndarray::type_mismatch(snakepit::dtype wanted) const {
  return error_info::of(errc::bad_arguments,
                         "ndarray: asked for " + std::string{to_string(wanted)}
                           + " elements of a " + std::string{to_string(type_)} + " array");
}

bool operator==(const ndarray& x, const ndarray& y) noexcept {
  return x.type_ == y.type_ && x.shape_ == y.shape_ && x.byte_size_ == y.byte_size_
         && (x.byte_size_ == 0 || std::memcmp(x.data_, y.data_, x.byte_size_) == 0);
}

std::string to_string(const ndarray& x) {
  std::string result = "ndarray(";
  result += to_string(x.type());
  result += ", [";
  for (std::size_t i = 0; i < x.shape().size(); ++i) {
    if (i > 0)
      result += ", ";
    result += std::to_string(x.shape()[i]);
  }
  result += "])";
  return result;
}

} // namespace snakepit
