//===- AtmoeAttrs.h - atmoe attributes and enums ----------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DIALECT_ATMOE_IR_ATMOEATTRS_H
#define ATMOE_DIALECT_ATMOE_IR_ATMOEATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/APFloat.h"

#include <cmath>
#include <limits>

#include "atmoe/Dialect/Atmoe/IR/AtmoeEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "atmoe/Dialect/Atmoe/IR/AtmoeAttrs.h.inc"

#endif // ATMOE_DIALECT_ATMOE_IR_ATMOEATTRS_H
