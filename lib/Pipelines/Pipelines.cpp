//===- Pipelines.cpp - atmoe pass pipelines ---------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Pipelines/Pipelines.h"

#include "atmoe/Codegen/Passes.h"
#include "atmoe/Conversion/Passes.h"
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Dialect/Shard/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void atmoe::buildLowerToLinalgPipeline(OpPassManager &pm,
                                       const LowerToLinalgOptions &options) {
  pm.addPass(createCanonicalizerPass());
  MergeSequenceAdaptersPassOptions merge;
  merge.policy = options.sequenceMerge;
  merge.mergeThreshold = options.sequenceMergeThreshold;
  merge.panelWidth = options.weightPanelWidth;
  pm.addPass(createMergeSequenceAdaptersPass(merge));
  pm.addPass(createExpandSegmentsPass());
  pm.addPass(createFuseRouterPass());
  pm.addPass(createFuseLoraPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createHoistDoraScalePass());
  pm.addPass(createHoistWeightConcatPass());
  pm.addPass(createConvertAtmoeToLinalgPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  if (options.parallelRanks > 1)
    atmoe::addParallelPasses(pm, options.parallelRanks,
                             options.parallelStrategy);
  if (options.weightPanelWidth > 0) {
    PackWeightPanelsPassOptions pack;
    pack.panelWidth = options.weightPanelWidth;
    pm.addNestedPass<func::FuncOp>(createPackWeightPanelsPass(pack));
  }
}

void atmoe::addParallelPasses(OpPassManager &pm, int64_t ranks,
                              ParallelStrategy strategy) {
  ShardLayersPassOptions shardLayers;
  shardLayers.ranks = ranks;
  shardLayers.strategy = strategy;
  pm.addPass(createShardLayersPass(shardLayers));
  pm.addNestedPass<func::FuncOp>(shard::createShardingPropagation());
  pm.addNestedPass<func::FuncOp>(shard::createPartition());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createLowerCollectivesPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

/// One-Shot Bufferize with plain (identity-layout) memrefs at function
/// boundaries, the layout the runtime's descriptors describe; results become
/// caller-owned out-parameters; buffer deallocation; copies as linalg.copy.
/// Shared by every target.
static void addBufferizationPasses(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  // Outlined results (--atmoe-outline-results) return the buffer they were
  // passed: the call's result is that operand.
  pm.addPass(bufferization::createDropEquivalentBufferResultsPass());
  // The caller owns the outputs: results become out-parameters.
  bufferization::BufferResultsToOutParamsPassOptions outParams;
  outParams.modifyPublicFunctions = true;
  outParams.hoistStaticAllocs = true;
  outParams.hoistDynamicAllocs = true;
  pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  bufferization::buildBufferDeallocationPipeline(pm);
  pm.addPass(atmoe::createMemRefCopyToLinalgPass());
}

/// A split layer's process index and collectives, once buffers
/// are final (the deallocation pipeline rejects mpi ops): upstream lowers
/// the index, atmoe the collective functions and the check that nothing of
/// the grid is left. Nothing happens to a one-process module.
static void addProcessGridPasses(OpPassManager &pm) {
  pm.addPass(createConvertShardToMPIPass());
  pm.addPass(atmoe::createCollectivesToMPIPass());
}

void atmoe::buildCPUCodegenPipeline(OpPassManager &pm,
                                    const CPUCodegenOptions &options) {
  // Each output in a function of its own, outputs computed alike in one:
  // LLVM's time is linear in outputs, and each shape is compiled once.
  pm.addPass(createOutlineResultsPass());
  ApplyCPUSchedulePassOptions schedule;
  schedule.scheduleFile = options.transformSchedule;
  pm.addPass(createApplyCPUSchedulePass(schedule));
  pm.addNestedPass<func::FuncOp>(createSerializeSmallForallsPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  addBufferizationPasses(pm);
  addProcessGridPasses(pm);

  // The schedule's matmul tiles become register-blocked vector kernels;
  // what is left (elementwise ops, other matmul layouts) becomes loops.
  LowerCPUMatmulsPassOptions kernels;
  kernels.vectorWidth = options.vectorWidth;
  kernels.int8Activations = options.int8Activations;
  pm.addPass(createLowerCPUMatmulsPass(kernels));
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  // Vector code from the schedule: masked transfers to loads/stores, the
  // remaining vector ops to LLVM's.
  pm.addPass(createConvertVectorToSCFPass());
  pm.addPass(createAllowFPReassociationPass());
  // Feature blocks run on OpenMP threads.
  pm.addPass(createForallToParallelLoopPass());
  pm.addPass(createConvertSCFToOpenMPPass());
  // The OpenMP loop bodies sit in memref.alloca_scope, which must still hold
  // a single block when memrefs are lowered: lower memrefs before scf.
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  // Heap buffers through _mlir_memref_to_llvm_alloc/free, which the driver
  // defines to call the runtime's allocator: it keeps a call's temporaries
  // for the next call instead of mapping and faulting them in again.
  FinalizeMemRefToLLVMConversionPassOptions memrefToLLVM;
  memrefToLLVM.useGenericFunctions = true;
  pm.addPass(createFinalizeMemRefToLLVMConversionPass(memrefToLLVM));
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertOpenMPToLLVMPass());
  // MPI calls in the ABI of the MPI the module names (MPICH by default).
  ConvertToLLVMPassOptions mpiToLLVM;
  mpiToLLVM.filterDialects = {"mpi"};
  pm.addPass(createConvertToLLVMPass(mpiToLLVM));
  ConvertFuncToLLVMPassOptions funcToLLVM;
  pm.addPass(createConvertFuncToLLVMPass(funcToLLVM));
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

//===----------------------------------------------------------------------===//
// GPU
//===----------------------------------------------------------------------===//

void atmoe::buildGPUKernelPipeline(OpPassManager &pm,
                                   const GPUKernelOptions &options) {
  // The same buffers and ABI as on the CPU.
  addBufferizationPasses(pm);

  // The f32 matmuls become kernels that stage tiles in shared memory.
  if (options.sharedMemoryMatmuls)
    pm.addNestedPass<func::FuncOp>(createGPUTileMatmulsPass());
  // Every other linalg op (the fused router normalisation, the rank-slot
  // scaling, copies) becomes one kernel: its parallel loops tiled into
  // blocks of threads, its reductions sequential in each thread. Constant
  // tile bounds with an in-bounds guard keep the launch sizes static.
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  pm.addPass(createCanonicalizerPass());
  SmallVector<int64_t> tileSizes(options.tileSizes.begin(),
                                 options.tileSizes.end());
  if (tileSizes.empty())
    tileSizes = {16, 16};
  pm.addNestedPass<func::FuncOp>(
      createParallelLoopTilingPass(tileSizes, /*noMinMaxBounds=*/true));
  pm.addNestedPass<func::FuncOp>(createGpuMapParallelLoopsPass());
  pm.addNestedPass<func::FuncOp>(createConvertParallelLoopToGpuPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addNestedPass<func::FuncOp>(createGPUDeviceAllocationsPass());
  // Constants and index arithmetic the kernels use are recomputed inside
  // them rather than passed: tile sizes stay compile-time constants there.
  pm.addPass(createGpuLaunchSinkIndexComputationsPass());
  pm.addPass(createGpuKernelOutliningPass());
  // The host copies of constants the kernels now hold.
  pm.addPass(createSymbolDCEPass());
  pm.addNestedPass<func::FuncOp>(createGPUHostArgumentsPass());
  // Kernels, allocations and frees ordered on a stream; the function returns
  // once the stream has drained.
  pm.addNestedPass<func::FuncOp>(createGpuAsyncRegionPass());
  pm.addPass(createCanonicalizerPass());
}

/// From outlined kernels to LLVM, shared by the GPU targets: attach the
/// target, lower the host code and (through `convertKernels`) the kernels to
/// the LLVM dialect, serialise each gpu.module into a gpu.binary. With
/// `mathAsIntrinsics`, kernel math becomes LLVM intrinsics the backend lowers
/// itself; otherwise the kernel conversion maps it to the vendor's device
/// library.
static void addGPUToLLVMPasses(OpPassManager &pm,
                               std::unique_ptr<Pass> attachTarget,
                               std::unique_ptr<Pass> convertKernels,
                               const GpuModuleToBinaryPassOptions &binary,
                               bool mathAsIntrinsics) {
  pm.addPass(std::move(attachTarget));
  pm.addPass(createConvertVectorToSCFPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  if (mathAsIntrinsics)
    pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  kernels.addPass(std::move(convertKernels));
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());
  kernels.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createGpuToLLVMConversionPass());
  pm.addPass(createGpuModuleToBinaryPass(binary));
  // Host-side math (none today; kept so the host is always fully lowered).
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void atmoe::buildNVVMCodegenPipeline(OpPassManager &pm,
                                     const NVVMCodegenOptions &options) {
  GPUKernelOptions kernels;
  kernels.tileSizes = options.tileSizes;
  kernels.sharedMemoryMatmuls = options.sharedMemoryMatmuls;
  buildGPUKernelPipeline(pm, kernels);
  // Upstream's gpu-lower-to-nvvm-pipeline cannot be told where the CUDA
  // toolkit (ptxas, libdevice) is, hence these steps of our own. The NVPTX
  // target fills in the chip's PTX features and the toolkit.
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = 3;
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = options.format;
  binary.toolkitPath = options.toolkit;
  // Kernel math through libdevice, which the serialiser links.
  addGPUToLLVMPasses(pm, createGpuNVVMAttachTarget(target),
                     createConvertGpuOpsToNVVMOps(), binary,
                     /*mathAsIntrinsics=*/false);
}

void atmoe::buildROCDLCodegenPipeline(OpPassManager &pm,
                                      const ROCDLCodegenOptions &options) {
  GPUKernelOptions kernels;
  kernels.tileSizes = options.tileSizes;
  kernels.sharedMemoryMatmuls = options.sharedMemoryMatmuls;
  buildGPUKernelPipeline(pm, kernels);
  GpuROCDLAttachTargetOptions target;
  target.chip = options.chip;
  target.optLevel = 3;
  ConvertGpuOpsToROCDLOpsOptions rocdl;
  rocdl.chipset = options.chip;
  rocdl.runtime = gpu::amd::Runtime::HIP;
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = options.format;
  binary.toolkitPath = options.toolkit;
  // Math as LLVM intrinsics, which the AMDGPU backend lowers itself: the ROCm
  // device libraries (ocml) are not needed.
  addGPUToLLVMPasses(pm, createGpuROCDLAttachTarget(target),
                     createConvertGpuOpsToROCDLOps(rocdl), binary,
                     /*mathAsIntrinsics=*/true);
}

void atmoe::registerAtmoePipelines() {
  PassPipelineRegistration<LowerToLinalgOptions>(
      "atmoe-lower-to-linalg-pipeline",
      "Canonicalize, fuse routers and adapters, and convert atmoe to linalg",
      buildLowerToLinalgPipeline);
  PassPipelineRegistration<CPUCodegenOptions>(
      "atmoe-cpu-codegen-pipeline",
      "Bufferize and lower fused linalg to the LLVM dialect for the CPU",
      buildCPUCodegenPipeline);
  PassPipelineRegistration<GPUKernelOptions>(
      "atmoe-gpu-kernel-pipeline",
      "Bufferize fused linalg and turn it into outlined GPU kernels",
      buildGPUKernelPipeline);
}
