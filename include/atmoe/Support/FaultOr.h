//===- FaultOr.h - Results that say whose fault a failure is ----*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The compiler reports every error as an MLIR diagnostic; what a failing step
// still has to tell its caller is whose fault the failure was (the input's,
// the command line's or the compiler's own), because that decides the tool's
// exit code (atmoe_rt::Fault, the one definition of the exit codes). A step
// of the driver or the importer returns FaultOr<T>: its value, or the fault
// of a failure whose diagnostics have been emitted.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_SUPPORT_FAULTOR_H
#define ATMOE_SUPPORT_FAULTOR_H

#include "atmoe_rt/support/Fault.h"

#include "mlir/Support/LLVM.h"
#include "llvm/Support/LogicalResult.h"

#include <cassert>
#include <optional>
#include <utility>

namespace mlir::atmoe {

using atmoe_rt::Fault;

/// A T, or the Fault of a failure that has been reported as diagnostics.
template <typename T = void>
class [[nodiscard]] FaultOr {
public:
  FaultOr(T value) : value(std::move(value)) {}
  FaultOr(Fault fault) : fault(fault) {}

  explicit operator bool() const { return value.has_value(); }
  T &operator*() {
    assert(value && "dereferencing a failed FaultOr");
    return *value;
  }
  T *operator->() { return &**this; }
  Fault getFault() const {
    assert(!value && "no fault in a successful FaultOr");
    return fault;
  }

private:
  std::optional<T> value;
  Fault fault = Fault::Internal;
};

/// Success, or the Fault of a reported failure.
template <>
class [[nodiscard]] FaultOr<void> {
public:
  FaultOr() = default;
  FaultOr(Fault fault) : fault(fault) {}
  /// A LogicalResult whose failure is `faultIfFailed`'s.
  FaultOr(LogicalResult result, Fault faultIfFailed)
      : fault(succeeded(result) ? std::nullopt
                                : std::optional<Fault>(faultIfFailed)) {}

  static FaultOr success() { return FaultOr(); }

  explicit operator bool() const { return !fault; }
  Fault getFault() const {
    assert(fault && "no fault in a successful FaultOr");
    return *fault;
  }

private:
  std::optional<Fault> fault;
};

} // namespace mlir::atmoe

#endif // ATMOE_SUPPORT_FAULTOR_H
