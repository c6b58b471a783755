//===- AtmoeDialect.h - atmoe dialect declaration ---------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DIALECT_ATMOE_IR_ATMOEDIALECT_H
#define ATMOE_DIALECT_ATMOE_IR_ATMOEDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dialect.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOpsDialect.h.inc"

#endif // ATMOE_DIALECT_ATMOE_IR_ATMOEDIALECT_H
