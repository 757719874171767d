#pragma once

// How CAF serializes `snakepit::value`, `bytes` and `ndarray` (inside actor
// messages, across nodes). Separate from value.hpp so that the value type
// itself needs no CAF (`snakepit::client` uses it without CAF).

#include <cstdint>
#include <string>
#include <utility>

#include "caf/error.hpp"
#include "caf/meta/type_name.hpp"
#include "caf/none.hpp"
#include "caf/sec.hpp"

#include "snakepit/messages/ndarray.hpp"
#include "snakepit/messages/value.hpp"

namespace snakepit {

/// CAF 0.17 inspector: dtype, shape and the bytes (copied when writing).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ndarray& x) {
  if constexpr (Inspector::reads_state) {
    auto tag = static_cast<std::uint8_t>(x.type());
    auto shape = x.shape();
    auto data = std::string{x.bytes()};
    return f(caf::meta::type_name("snakepit::ndarray"), tag, shape, data);
  } else {
    std::uint8_t tag = 0;
    ndarray::shape_type shape;
    std::string data;
    if (auto err = f(caf::meta::type_name("snakepit::ndarray"), tag, shape, data))
      return err;
    auto type = static_cast<dtype>(tag);
    if (!is_valid(type))
      return caf::make_error(caf::sec::invalid_argument, "snakepit::ndarray: invalid dtype");
    auto result = ndarray::from_bytes(type, std::move(shape), std::move(data));
    if (!result)
      return caf::make_error(caf::sec::invalid_argument,
                             "snakepit::ndarray: " + result.error().message);
    x = std::move(*result);
    return caf::none;
  }
}

/// CAF 0.17 inspector: the kind as one byte, then the payload (recursively for
/// lists and maps). Printing inspectors use `to_string` instead.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, value& x) {
  using kind = value::kind;
  auto tag = static_cast<std::uint8_t>(x.type());
  if constexpr (Inspector::reads_state) {
    switch (x.type()) {
      case kind::boolean: {
        auto tmp = *x.if_bool();
        return f(tag, tmp);
      }
      case kind::integer: {
        auto tmp = *x.if_int();
        return f(tag, tmp);
      }
      case kind::real: {
        auto tmp = *x.if_double();
        return f(tag, tmp);
      }
      case kind::string:
        return f(tag, *x.if_string());
      case kind::bytes:
        return f(tag, x.if_bytes()->data);
      case kind::list:
        return f(tag, *x.if_list());
      case kind::map:
        return f(tag, *x.if_map());
      case kind::ndarray: {
        auto tmp = *x.if_ndarray();
        return f(tag, tmp);
      }
      case kind::null:
        break;
    }
    return f(tag);
  } else {
    if (auto err = f(tag))
      return err;
    switch (static_cast<kind>(tag)) {
      case kind::null:
        x = value();
        return caf::none;
      case kind::boolean: {
        bool tmp = false;
        if (auto err = f(tmp))
          return err;
        x = value(tmp);
        return caf::none;
      }
      case kind::integer: {
        std::int64_t tmp = 0;
        if (auto err = f(tmp))
          return err;
        x = value(tmp);
        return caf::none;
      }
      case kind::real: {
        double tmp = 0;
        if (auto err = f(tmp))
          return err;
        x = value(tmp);
        return caf::none;
      }
      case kind::string: {
        std::string tmp;
        if (auto err = f(tmp))
          return err;
        x = value(std::move(tmp));
        return caf::none;
      }
      case kind::bytes: {
        snakepit::bytes tmp;
        if (auto err = f(tmp.data))
          return err;
        x = value(std::move(tmp));
        return caf::none;
      }
      case kind::list: {
        value::list tmp;
        if (auto err = f(tmp))
          return err;
        x = value(std::move(tmp));
        return caf::none;
      }
      case kind::map: {
        value::map tmp;
        if (auto err = f(tmp))
          return err;
        x = value(std::move(tmp));
        return caf::none;
      }
      case kind::ndarray: {
        snakepit::ndarray tmp;
        if (auto err = f(tmp))
          return err;
        x = value(std::move(tmp));
        return caf::none;
      }
    }
    return caf::make_error(caf::sec::invalid_argument,
                           "snakepit::value: invalid kind tag");
  }
}

/// CAF 0.17 inspector.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bytes& x) {
  return f(caf::meta::type_name("snakepit::bytes"), x.data);
}

} // namespace snakepit
