#pragma once

#include <type_traits>
#include <utility>
#include <variant>

#include "snakepit/messages/errc.hpp"

namespace snakepit {

/// A value of `T` or the typed error that stands in its place. What the
/// CAF-free parts of the API return (value parsing, `snakepit::client`);
/// in-process actor calls use `caf::expected` instead.
template <class T>
class result {
public:
  static_assert(!std::is_same_v<T, error_info>, "a result of an error is ambiguous");

  /// A result holding `x`.
  template <class U = T,
            class = std::enable_if_t<std::is_constructible_v<T, U&&>
                                     && !std::is_same_v<std::decay_t<U>, error_info>
                                     && !std::is_same_v<std::decay_t<U>, result>>>
  result(U&& x) : data_(std::in_place_index<0>, std::forward<U>(x)) {
    // nop
  }

  /// A failed result.
  result(error_info err) : data_(std::in_place_index<1>, std::move(err)) {
    // nop
  }

  [[nodiscard]] bool has_value() const noexcept {
    return data_.index() == 0;
  }

  explicit operator bool() const noexcept {
    return has_value();
  }

  /// The value; only when `has_value()`.
  T& operator*() & noexcept {
    return *std::get_if<0>(&data_);
  }

  const T& operator*() const& noexcept {
    return *std::get_if<0>(&data_);
  }

  T&& operator*() && noexcept {
    return std::move(*std::get_if<0>(&data_));
  }

  T* operator->() noexcept {
    return std::get_if<0>(&data_);
  }

  const T* operator->() const noexcept {
    return std::get_if<0>(&data_);
  }

  /// The value, or `fallback` when this is an error.
  template <class U>
  [[nodiscard]] T value_or(U&& fallback) const& {
    return has_value() ? **this : static_cast<T>(std::forward<U>(fallback));
  }

  /// The error; only when `!has_value()`.
  error_info& error() & noexcept {
    return *std::get_if<1>(&data_);
  }

  const error_info& error() const& noexcept {
    return *std::get_if<1>(&data_);
  }

  error_info&& error() && noexcept {
    return std::move(*std::get_if<1>(&data_));
  }

private:
  std::variant<T, error_info> data_;
};

} // namespace snakepit
