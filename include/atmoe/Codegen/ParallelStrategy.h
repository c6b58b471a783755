//===- ParallelStrategy.h - how layers split over processes -----*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_CODEGEN_PARALLELSTRATEGY_H
#define ATMOE_CODEGEN_PARALLELSTRATEGY_H

namespace mlir::atmoe {

/// How `atmoe-shard-layers` divides a layer over processes
/// (docs/Distributed.md).
enum class ParallelStrategy {
  /// Megatron-style: W, B by output features, A by input features.
  Tensor,
  /// The experts' rank slots (stacked A by rows, stacked B by columns)
  /// divided over the processes; W column-split as in Tensor.
  Expert,
};

} // namespace mlir::atmoe

#endif // ATMOE_CODEGEN_PARALLELSTRATEGY_H
