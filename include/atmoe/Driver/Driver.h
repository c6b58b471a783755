//===- Driver.h - the atmoe-compile driver ----------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DRIVER_DRIVER_H
#define ATMOE_DRIVER_DRIVER_H

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/StringRef.h"

#include <functional>
#include <optional>
#include <string>

namespace mlir {
class MLIRContext;
class PassManager;
} // namespace mlir

namespace mlir::atmoe {

/// How far atmoe-compile goes, in pipeline order; each stage's output is the
/// input of the next, so the enum can grow into --compile-from/--compile-to.
enum class EmitStage {
  Mlir,          ///< atmoe dialect, as imported
  Linalg,        ///< fused linalg on tensors
  LLVM,          ///< LLVM IR text, with entry points and manifest
  Object,        ///< relocatable object file
  SharedLibrary, ///< the deployable shared library (default)
};

std::optional<EmitStage> parseEmitStage(llvm::StringRef name);

struct CompileOptions {
  /// A model package directory, its model.json, or an MLIR file.
  std::string input;
  /// Where the result goes; written atomically ("-" is stdout for text).
  std::string output;
  EmitStage emit = EmitStage::SharedLibrary;
  /// NAME[:CHIP] of a registered target (atmoe/Target/Target.h).
  std::string target = "host";
  /// A transform script replacing the built-in CPU schedule ("" = built-in).
  std::string cpuSchedule;
  /// Sequence granularity: auto, merge or unmerged
  /// (--atmoe-merge-sequence-adapters).
  std::string sequenceMerge = "auto";
  /// Hook to apply command-line pass-manager options (--mlir-timing,
  /// --mlir-print-ir-after-all, ...) to every pass manager the driver runs.
  std::function<LogicalResult(PassManager &)> configurePassManager;
};

/// Whose fault a failed compilation is. The values are atmoe-compile's exit
/// codes (README).
enum class CompileFailure {
  /// A missing or malformed input (package, .mlir file, --cpu-schedule
  /// script), or an output path that cannot be written.
  Input = 1,
  /// Options that make no sense (an unknown --target, --cpu-schedule for a
  /// GPU).
  Usage = 2,
  /// The compiler's own fault: a pass failing on verified input, a failed
  /// translation or link.
  Internal = 3,
};

/// Runs the whole compilation. Errors are emitted as MLIR diagnostics (with
/// locations where there are some); nothing is written on failure, and an
/// interrupted run (SIGINT, SIGTERM) leaves no temporary file. On failure
/// `*failureKind`, when given, says whose fault it was.
LogicalResult compile(MLIRContext &context, const CompileOptions &options,
                      CompileFailure *failureKind = nullptr);

} // namespace mlir::atmoe

#endif // ATMOE_DRIVER_DRIVER_H
