//===- Result.h - A value or an error message -------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The error type of the runtime's C++ (runtime/support, runtime/src,
// atmoe-run): code that may fail returns a Result<T>, which holds either the
// value or one line of text that names the file, tensor or value at fault.
// It plays the part of std::expected<T, std::string> (C++23), which this
// code cannot use: the compiler includes these headers too, and MLIR 22's
// headers do not compile as C++23 against Debian 12's libstdc++
// (docs/Rationale.md).
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_RESULT_H
#define ATMOE_RT_SUPPORT_RESULT_H

#include "atmoe_rt/support/Fault.h"

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace atmoe_rt {

/// The failure of a Result: one line of text, and whose fault it is.
struct Error {
  std::string message;
  Fault fault = Fault::Input;
};

/// `Error{message}`, for `return fail("...")`: the input's fault unless said
/// otherwise.
inline Error fail(std::string message) { return Error{std::move(message)}; }
inline Error fail(Fault fault, std::string message) {
  return Error{std::move(message), fault};
}

/// Either a T or an Error.
template <typename T>
class [[nodiscard]] Result {
public:
  Result(T value) : value(std::move(value)) {}
  Result(Error error)
      : message(std::move(error.message)), errorFault(error.fault) {}

  explicit operator bool() const { return value.has_value(); }
  T &operator*() {
    assert(value && "dereferencing a failed Result");
    return *value;
  }
  const T &operator*() const {
    assert(value && "dereferencing a failed Result");
    return *value;
  }
  T *operator->() { return &**this; }
  const T *operator->() const { return &**this; }

  /// The message of a failed Result.
  const std::string &error() const {
    assert(!value && "no error in a successful Result");
    return message;
  }
  Fault fault() const { return errorFault; }
  /// The failure, to pass on: `return result.takeError();`.
  Error takeError() { return Error{std::move(message), errorFault}; }

private:
  std::optional<T> value;
  std::string message;
  Fault errorFault = Fault::Input;
};

/// Success or an Error, for operations without a value.
template <>
class [[nodiscard]] Result<void> {
public:
  Result() = default;
  Result(Error error)
      : failed(true), message(std::move(error.message)),
        errorFault(error.fault) {}

  static Result success() { return Result(); }

  explicit operator bool() const { return !failed; }
  const std::string &error() const {
    assert(failed && "no error in a successful Result");
    return message;
  }
  Fault fault() const { return errorFault; }
  Error takeError() { return Error{std::move(message), errorFault}; }

private:
  bool failed = false;
  std::string message;
  Fault errorFault = Fault::Input;
};

using Status = Result<void>;

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_RESULT_H
