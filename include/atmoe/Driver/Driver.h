//===- Driver.h - the atmoe-compile driver ----------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe-compile's logic: from a model package (or an .mlir file with the
// layer ABI) through the pipelines of the chosen target to LLVM IR, an object
// file or a shared library with entry points and a manifest. The tool only
// parses its command line and calls compile().
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DRIVER_DRIVER_H
#define ATMOE_DRIVER_DRIVER_H

#include "atmoe/Codegen/ParallelStrategy.h"
#include "atmoe/Dialect/Atmoe/Transforms/Transforms.h"
#include "atmoe/Importer/ModelImporter.h"
#include "atmoe/Support/FaultOr.h"

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

/// The --emit spelling of `stage`.
llvm::StringRef emitStageName(EmitStage stage);

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
  /// GPTQ products of few tokens on int8-rounded activations (opt-in).
  bool int8Activations = false;
  /// Sequence granularity: when to merge a segment's experts
  /// (--atmoe-merge-sequence-adapters).
  SequenceMergePolicy sequenceMerge = SequenceMergePolicy::Auto;
  /// Processes each layer is split over (--parallel=tensor:N or
  /// expert:N); 1: one.
  int64_t parallelRanks = 1;
  /// What each process holds when parallelRanks > 1.
  ParallelStrategy parallelStrategy = ParallelStrategy::Tensor;
  /// What the importer lets through with a warning.
  ImportOptions import;
  /// Hook to apply command-line pass-manager options (--mlir-timing,
  /// --mlir-print-ir-after-all, ...) to every pass manager the driver runs.
  std::function<LogicalResult(PassManager &)> configurePassManager;
};

/// Runs the whole compilation. Errors are emitted as MLIR diagnostics (with
/// locations where there are some) and the result says whose fault a failure
/// was (the tool's exit code); nothing is written on failure, and an
/// interrupted run (SIGINT, SIGTERM) leaves no temporary file.
FaultOr<> compile(MLIRContext &context, const CompileOptions &options);

} // namespace mlir::atmoe

#endif // ATMOE_DRIVER_DRIVER_H
