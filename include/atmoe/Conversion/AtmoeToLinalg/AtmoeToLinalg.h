//===- AtmoeToLinalg.h - atmoe to linalg conversion -------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_CONVERSION_ATMOETOLINALG_ATMOETOLINALG_H
#define ATMOE_CONVERSION_ATMOETOLINALG_ATMOETOLINALG_H

#include "mlir/Pass/Pass.h"

namespace mlir {
class ModuleOp;
class RewritePatternSet;
} // namespace mlir

namespace mlir::atmoe {

#define GEN_PASS_DECL_CONVERTATMOETOLINALGPASS
#include "atmoe/Conversion/Passes.h.inc"

/// Adds the patterns lowering fused atmoe compute ops to linalg on tensors.
void populateAtmoeToLinalgPatterns(RewritePatternSet &patterns);

} // namespace mlir::atmoe

#endif // ATMOE_CONVERSION_ATMOETOLINALG_ATMOETOLINALG_H
