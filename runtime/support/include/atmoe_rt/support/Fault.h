//===- Fault.h - Whose fault a failure is: exit codes ----------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The one definition of the exit-code contract of every atmoe tool
// (atmoe-compile, atmoe-translate, atmoe-run; README): a failure is the
// input's, the command line's or the tool's own fault, and the tool exits
// with that fault's code. The compiler's driver and importer classify their
// failures with the same enum (mlir::atmoe::FaultOr), and atmoe-run maps the
// runtime's statuses onto it.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_FAULT_H
#define ATMOE_RT_SUPPORT_FAULT_H

#include "atmoe_rt/atmoe_rt.h"

namespace atmoe_rt {

/// Whose fault a failure is. The values are the tools' exit codes.
enum class Fault : int {
  /// A missing or malformed file (model package, .mlir, .npy, compiled
  /// model, transform script), data that does not fit, an output that cannot
  /// be written.
  Input = 1,
  /// A bad command line: an unknown option or value, a missing argument.
  Usage = 2,
  /// The tool's own fault: a pass failing on verified input, a failed
  /// translation or link, imported IR that does not verify.
  Internal = 3,
};

/// The exit code of a successful run.
constexpr int kExitSuccess = 0;

constexpr int exitCode(Fault fault) { return static_cast<int>(fault); }

/// The contract as the tools' --help states it.
constexpr const char *kExitCodeHelp =
    "Exit codes: 0 success, 1 bad input, 2 bad command line, 3 internal "
    "error.\n";

/// The fault behind a runtime status when the caller passed on what a user
/// gave it (atmoe-run): a bad argument is a bad command line.
constexpr Fault faultOf(atmoe_rt_status_t status) {
  return status == ATMOE_RT_INVALID_ARGUMENT ? Fault::Usage
         : status == ATMOE_RT_INPUT_ERROR    ? Fault::Input
                                             : Fault::Internal;
}

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_FAULT_H
