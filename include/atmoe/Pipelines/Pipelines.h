//===- Pipelines.h - atmoe pass pipelines -----------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The one definition of each pipeline: atmoe-opt registers them for the
// command line and atmoe-compile builds the same ones.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_PIPELINES_PIPELINES_H
#define ATMOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;
} // namespace mlir

namespace mlir::atmoe {

/// atmoe (as imported) to fused linalg on tensors.
struct LowerToLinalgOptions : public PassPipelineOptions<LowerToLinalgOptions> {
};

/// Fused linalg on tensors to the LLVM dialect, for the CPU.
struct CPUCodegenOptions : public PassPipelineOptions<CPUCodegenOptions> {
  Option<std::string> transformSchedule{
      *this, "transform-schedule",
      llvm::cl::desc("Transform script tiling the matmuls instead of the "
                     "built-in CPU schedule"),
      llvm::cl::init("")};
};

/// canonicalize, expand segments, fuse routers and adapters, convert to
/// linalg.
void buildLowerToLinalgPipeline(OpPassManager &pm,
                                const LowerToLinalgOptions &options);

/// Bufferize (results become caller-provided out-parameters), lower loops and
/// memrefs, convert everything to the LLVM dialect with C-interface wrappers
/// on the public functions.
void buildCPUCodegenPipeline(OpPassManager &pm,
                             const CPUCodegenOptions &options);

/// Registers `--atmoe-lower-to-linalg-pipeline` and
/// `--atmoe-cpu-codegen-pipeline`.
void registerAtmoePipelines();

} // namespace mlir::atmoe

#endif // ATMOE_PIPELINES_PIPELINES_H
