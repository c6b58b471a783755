//===- InitAllPasses.cpp - register atmoe and upstream passes ---*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/InitAllPasses.h"
#include "atmoe/Codegen/Passes.h"
#include "atmoe/Conversion/Passes.h"
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"
#include "atmoe/Pipelines/Pipelines.h"
#include "atmoe/Target/Targets.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Dialect/Shard/Transforms/Passes.h"

#include "mlir/Transforms/Passes.h"

void mlir::atmoe::registerAllPasses() {
  registerAtmoePasses();
  registerAtmoeCodegenPasses();
  registerAtmoeConversionPasses();
  registerAtmoePipelines();
  registerTargetPipelines();
  // The generic upstream passes atmoe pipelines and tests use.
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerInlinerPass();
  mlir::registerSymbolDCEPass();
  // Everything the atmoe pipelines are built from, so each step can be run
  // and tested on its own.
  mlir::registerConversionPasses();
  mlir::bufferization::registerBufferizationPasses();
  mlir::bufferization::registerBufferizationPipelines();
  mlir::registerLinalgPasses();
  mlir::memref::registerMemRefPasses();
  mlir::registerGPUPasses();
  mlir::registerSCFPasses();
  mlir::shard::registerShardPasses();
}
