//===- Passes.h - atmoe code generation passes ------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_CODEGEN_PASSES_H
#define ATMOE_CODEGEN_PASSES_H

#include "atmoe/Codegen/ParallelStrategy.h"
#include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/DLTI/DLTI.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MPI/IR/MPI.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Transform/IR/TransformDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::atmoe {

#define GEN_PASS_DECL
#include "atmoe/Codegen/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "atmoe/Codegen/Passes.h.inc"

/// The sharding models `sharding-propagation` and `shard-partition` need on
/// the ops of atmoe's layers beyond upstream's (tensor.dim).
void registerShardingInterfaceExternalModels(DialectRegistry &registry);

} // namespace mlir::atmoe

#endif // ATMOE_CODEGEN_PASSES_H
