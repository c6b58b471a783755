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

#include "atmoe/Codegen/ParallelStrategy.h"
#include "atmoe/Dialect/Atmoe/Transforms/Transforms.h"

#include "mlir/Pass/PassOptions.h"
#include "llvm/ADT/StringRef.h"

#include <string>

namespace mlir {
class OpPassManager;
} // namespace mlir

namespace mlir::atmoe {

/// atmoe (as imported) to fused linalg on tensors.
struct LowerToLinalgOptions : public PassPipelineOptions<LowerToLinalgOptions> {
  Option<SequenceMergePolicy> sequenceMerge{
      *this, "sequence-merge",
      llvm::cl::desc("Sequence granularity: when to merge a segment's "
                     "experts into the base weight "
                     "(--atmoe-merge-sequence-adapters)"),
      llvm::cl::init(SequenceMergePolicy::Auto),
      llvm::cl::values(
          clEnumValN(SequenceMergePolicy::Auto, "auto", "the cost model"),
          clEnumValN(SequenceMergePolicy::Merge, "merge", "every segment"),
          clEnumValN(SequenceMergePolicy::Unmerged, "unmerged", "never"))};
  Option<int64_t> sequenceMergeThreshold{
      *this, "sequence-merge-threshold",
      llvm::cl::desc("With sequence-merge=auto: merge segments of at least "
                     "this many tokens (-1: the cost model's threshold)"),
      llvm::cl::init(-1)};
  Option<int64_t> parallelRanks{
      *this, "parallel-ranks",
      llvm::cl::desc("Split every layer over this many MPI processes "
                     "(docs/Distributed.md); 1: one process"),
      llvm::cl::init(1)};
  Option<ParallelStrategy> parallelStrategy{
      *this, "parallel-strategy",
      llvm::cl::desc("With parallel-ranks > 1: what each process holds "
                     "(atmoe-shard-layers' strategy)"),
      llvm::cl::init(ParallelStrategy::Tensor),
      llvm::cl::values(clEnumValN(ParallelStrategy::Tensor, "tensor",
                                  "Megatron-style tensor parallelism"),
                       clEnumValN(ParallelStrategy::Expert, "expert",
                                  "the experts' rank slots divided"))};
  Option<int64_t> weightPanelWidth{
      *this, "quantized-panel-width",
      llvm::cl::desc("GPTQ qweight arguments in panels of this many output "
                     "features, repacked at bind time "
                     "(atmoe-pack-weight-panels); 0: as stored"),
      llvm::cl::init(0)};
};

/// Fused linalg on tensors to the LLVM dialect, for the CPU.
struct CPUCodegenOptions : public PassPipelineOptions<CPUCodegenOptions> {
  Option<std::string> transformSchedule{
      *this, "transform-schedule",
      llvm::cl::desc("Transform script tiling the matmuls instead of the "
                     "built-in CPU schedule"),
      llvm::cl::init("")};
  Option<int64_t> vectorWidth{
      *this, "vector-width",
      llvm::cl::desc("f32 lanes of the target's vector registers (16: "
                     "AVX-512, 8: AVX2, 4: SSE)"),
      llvm::cl::init(16)};
  Option<bool> int8Activations{
      *this, "int8-activations",
      llvm::cl::desc("GPTQ products of few tokens on int8-rounded "
                     "activations with VNNI dot products (not exact)"),
      llvm::cl::init(false)};
};

/// Fused linalg on tensors to GPU kernels in the host function: bufferize,
/// turn every linalg op into a tiled `gpu.launch`, outline the kernels, put
/// temporaries in device memory and order everything on streams.
struct GPUKernelOptions : public PassPipelineOptions<GPUKernelOptions> {
  ListOption<int64_t> tileSizes{
      *this, "tile-sizes",
      llvm::cl::desc("Threads per block along the outer parallel loops of "
                     "the ops other than tiled matmuls (default 16,16)")};
  Option<bool> sharedMemoryMatmuls{
      *this, "shared-memory-matmuls",
      llvm::cl::desc("f32 matmuls as shared-memory tiled kernels "
                     "(--atmoe-gpu-tile-matmuls); off: one thread per output "
                     "like the other ops"),
      llvm::cl::init(true)};
};

/// GPU kernels to the LLVM dialect for an NVIDIA GPU: kernels through NVVM
/// into a `gpu.binary` (cubin + PTX in a fatbin by default), host code to
/// LLVM calling the `mgpu*` runtime functions.
struct NVVMCodegenOptions : public PassPipelineOptions<NVVMCodegenOptions> {
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("Target GPU (sm_80, sm_90, ...)"),
                           llvm::cl::init("sm_90")};
  Option<std::string> features{
      *this, "features",
      llvm::cl::desc("PTX features (default: the PTX version the chip needs, "
                     "from the NVPTX target)"),
      llvm::cl::init("")};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("gpu.binary contents: fatbin (cubin + PTX), bin (cubin), "
                     "isa (PTX text) or offload (LLVM bitcode)"),
      llvm::cl::init("fatbin")};
  Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit directory (ptxas, nvvm/libdevice); default "
                     "CUDA_HOME, CUDA_ROOT, CUDA_PATH or the one found at "
                     "configure time"),
      llvm::cl::init("")};
  ListOption<int64_t> tileSizes{
      *this, "tile-sizes", llvm::cl::desc("As for the GPU kernel pipeline")};
  Option<bool> sharedMemoryMatmuls{
      *this, "shared-memory-matmuls",
      llvm::cl::desc("As for the GPU kernel pipeline"), llvm::cl::init(true)};
};

/// GPU kernels to the LLVM dialect for an AMD GPU: kernels through ROCDL
/// into a `gpu.binary` holding an HSA code object.
struct ROCDLCodegenOptions : public PassPipelineOptions<ROCDLCodegenOptions> {
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("Target GPU (gfx90a, gfx942, ...)"),
                           llvm::cl::init("gfx942")};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("gpu.binary contents: bin (code object), isa "
                     "(assembly) or offload (LLVM bitcode)"),
      llvm::cl::init("bin")};
  Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("Directory holding llvm/bin/ld.lld, which links the "
                     "code object (default: the one of this build)"),
      llvm::cl::init("")};
  ListOption<int64_t> tileSizes{
      *this, "tile-sizes", llvm::cl::desc("As for the GPU kernel pipeline")};
  Option<bool> sharedMemoryMatmuls{
      *this, "shared-memory-matmuls",
      llvm::cl::desc("As for the GPU kernel pipeline"), llvm::cl::init(true)};
};

/// canonicalize, expand segments, fuse routers and adapters, convert to
/// linalg; with `parallelRanks` > 1, shard and partition the layers
/// (addParallelPasses).
void buildLowerToLinalgPipeline(OpPassManager &pm,
                                const LowerToLinalgOptions &options);

/// Fused linalg on tensors split over `ranks` processes: atmoe's shardings,
/// MLIR's propagation and partitioning, the collectives lowered to calls that
/// bufferize (docs/Distributed.md).
void addParallelPasses(OpPassManager &pm, int64_t ranks,
                       ParallelStrategy strategy);

/// Bufferize (results become caller-provided out-parameters), lower loops and
/// memrefs, convert everything to the LLVM dialect with C-interface wrappers
/// on the public functions.
void buildCPUCodegenPipeline(OpPassManager &pm,
                             const CPUCodegenOptions &options);

void buildGPUKernelPipeline(OpPassManager &pm, const GPUKernelOptions &options);
/// `options.features` and `options.toolkit` are used as given: the NVPTX
/// target resolves their defaults (lib/Target/NVPTXTarget.cpp).
void buildNVVMCodegenPipeline(OpPassManager &pm,
                              const NVVMCodegenOptions &options);
/// `options.toolkit` is used as given: the AMDGPU target resolves it.
void buildROCDLCodegenPipeline(OpPassManager &pm,
                               const ROCDLCodegenOptions &options);

/// Registers `--atmoe-lower-to-linalg-pipeline`,
/// `--atmoe-cpu-codegen-pipeline` and `--atmoe-gpu-kernel-pipeline`. The
/// NVVM and ROCDL pipelines are registered by their targets
/// (registerTargetPipelines in atmoe/Target/Targets.h), which fill in what
/// they know about chips and toolkits.
void registerAtmoePipelines();

} // namespace mlir::atmoe

#endif // ATMOE_PIPELINES_PIPELINES_H
