//===- Passes.h - atmoe transformation passes -------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DIALECT_ATMOE_TRANSFORMS_PASSES_H
#define ATMOE_DIALECT_ATMOE_TRANSFORMS_PASSES_H

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"
#include "atmoe/Dialect/Atmoe/Transforms/Transforms.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Pass/Pass.h"

namespace mlir::atmoe {

#define GEN_PASS_DECL
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h.inc"

} // namespace mlir::atmoe

#endif // ATMOE_DIALECT_ATMOE_TRANSFORMS_PASSES_H
