//===- CollectiveFunctions.h - the collective functions' names -*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe-lower-collectives declares these private functions (each taking the
// flattened send and receive buffers, memref<?xf32>); after buffer
// deallocation, atmoe-collectives-to-mpi gives them their mpi bodies.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_LIB_CODEGEN_DISTRIBUTED_COLLECTIVEFUNCTIONS_H
#define ATMOE_LIB_CODEGEN_DISTRIBUTED_COLLECTIVEFUNCTIONS_H

#include "llvm/ADT/StringRef.h"

namespace mlir::atmoe {

/// Sum of f32 buffers over every process.
inline constexpr llvm::StringLiteral kAllReduceSumF32Function =
    "atmoe_all_reduce_sum_f32";
/// Every process's f32 part, received rank-major.
inline constexpr llvm::StringLiteral kAllGatherF32Function =
    "atmoe_all_gather_f32";

} // namespace mlir::atmoe

#endif // ATMOE_LIB_CODEGEN_DISTRIBUTED_COLLECTIVEFUNCTIONS_H
