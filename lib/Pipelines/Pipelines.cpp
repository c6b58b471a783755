//===- Pipelines.cpp - atmoe pass pipelines ---------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Pipelines/Pipelines.h"

#include "atmoe/Conversion/Passes.h"
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void atmoe::buildLowerToLinalgPipeline(OpPassManager &pm,
                                       const LowerToLinalgOptions &) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createExpandSegmentsPass());
  pm.addPass(createFuseRouterPass());
  pm.addPass(createFuseLoraPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createHoistWeightConcatPass());
  pm.addPass(createConvertAtmoeToLinalgPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void atmoe::buildCPUCodegenPipeline(OpPassManager &pm,
                                    const CPUCodegenOptions &options) {
  ApplyCPUSchedulePassOptions schedule;
  schedule.scheduleFile = options.transformSchedule;
  pm.addPass(createApplyCPUSchedulePass(schedule));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Bufferize with plain (identity-layout) memrefs at function boundaries,
  // the layout the runtime's descriptors describe.
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  // The caller owns the outputs: results become out-parameters.
  bufferization::BufferResultsToOutParamsPassOptions outParams;
  outParams.modifyPublicFunctions = true;
  outParams.hoistStaticAllocs = true;
  outParams.hoistDynamicAllocs = true;
  pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  bufferization::buildBufferDeallocationPipeline(pm);
  pm.addPass(createMemRefCopyToLinalgPass());

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
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertOpenMPToLLVMPass());
  ConvertFuncToLLVMPassOptions funcToLLVM;
  pm.addPass(createConvertFuncToLLVMPass(funcToLLVM));
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
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
}
