//===- Passes.h - atmoe conversion passes -----------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_CONVERSION_PASSES_H
#define ATMOE_CONVERSION_PASSES_H

#include "atmoe/Conversion/AtmoeToLinalg/AtmoeToLinalg.h"

namespace mlir::atmoe {

#define GEN_PASS_REGISTRATION
#include "atmoe/Conversion/Passes.h.inc"

} // namespace mlir::atmoe

#endif // ATMOE_CONVERSION_PASSES_H
