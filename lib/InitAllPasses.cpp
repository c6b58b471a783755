//===- InitAllPasses.cpp - register atmoe and upstream passes ---*- C++ -*-===//
//
// Part of the atmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/InitAllPasses.h"
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"

#include "mlir/Transforms/Passes.h"

void mlir::atmoe::registerAllPasses() {
  registerAtmoePasses();
  // The generic upstream passes atmoe pipelines and tests use.
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerInlinerPass();
  mlir::registerSymbolDCEPass();
}
