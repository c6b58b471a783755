//===- AtmoeOps.h - atmoe operations ----------------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DIALECT_ATMOE_IR_ATMOEOPS_H
#define ATMOE_DIALECT_ATMOE_IR_ATMOEOPS_H

#include "atmoe/Dialect/Atmoe/IR/AtmoeAttrs.h"
#include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::atmoe {
class ExpertGroupOp;
class LoraExpertOp;
class SharedExpertOp;
} // namespace mlir::atmoe

#define GET_OP_CLASSES
#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h.inc"

#endif // ATMOE_DIALECT_ATMOE_IR_ATMOEOPS_H
