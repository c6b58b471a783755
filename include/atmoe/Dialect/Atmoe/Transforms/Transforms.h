//===- Transforms.h - atmoe rewrites as patterns ----------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The atmoe → atmoe rewrites as pattern sets, so that pipelines and other
// projects can combine them (the passes of Passes.td are thin users of these),
// and what they share.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DIALECT_ATMOE_TRANSFORMS_TRANSFORMS_H
#define ATMOE_DIALECT_ATMOE_TRANSFORMS_TRANSFORMS_H

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::atmoe {

/// When sequence granularity merges a segment's experts into the base weight
/// (--atmoe-merge-sequence-adapters, docs/Passes.md).
enum class SequenceMergePolicy {
  /// The cost model decides by segment length and shapes.
  Auto,
  /// Every non-empty segment is merged.
  Merge,
  /// Never: the ops are left to --atmoe-expand-segments.
  Unmerged,
};

/// The stacked form of a projection's adapters: the rank of each adapter,
/// the routing column it reads (-1 for the shared expert) and its constant
/// factor (lambda or 1 - lambda, times alpha / rank).
struct StackedAdapters {
  SmallVector<int64_t> ranks, columns;
  SmallVector<double> factors;
  int64_t totalRank = 0;
};

/// Stacks the adapters of `op`, whose layer is `layer`; fails when an
/// adapter names no expert of the layer.
FailureOr<StackedAdapters> stackAdapters(LoraLinearOp op, LayerOp layer);

/// Concatenates adapter matrices along `dim` (or returns the only one). They
/// stay in their storage type when they share one; mixed storage types are
/// widened to f32 first, which is exact.
Value concatenateAdapters(OpBuilder &b, Location loc, int64_t dim,
                          ValueRange values);

/// The description {tensor, file, source, shape} of `value` as a part of a
/// weight the runtime builds at bind time, if it is a weight argument of
/// `func` stored in a file as it is (docs/ModelABI.md); null otherwise (a
/// computed value, or a weight the runtime itself stacks or computes).
DictionaryAttr storedWeightPart(func::FuncOp func, Value value);

/// Sequence-granularity atmoe.lora_linear ops become token granularity
/// through atmoe.expand_segments (--atmoe-expand-segments).
void populateExpandSegmentsPatterns(RewritePatternSet &patterns);

/// atmoe.route becomes affine logits and one atmoe.normalize_routing
/// (--atmoe-fuse-router).
void populateFuseRouterPatterns(RewritePatternSet &patterns);

/// A projection's adapters become one stacked down/up-projection pair
/// (--atmoe-fuse-lora).
void populateFuseLoraPatterns(RewritePatternSet &patterns);

/// Sequence-granularity projections merge their segments' experts into the
/// base weight where `policy` says so (--atmoe-merge-sequence-adapters);
/// `mergeThreshold` >= 0 replaces the cost model's threshold; with
/// `panelWidth` > 0, projections whose W that width packs stay unmerged
/// under policy auto.
void populateMergeSequenceAdaptersPatterns(RewritePatternSet &patterns,
                                           SequenceMergePolicy policy,
                                           int64_t mergeThreshold,
                                           int64_t panelWidth = 0);

} // namespace mlir::atmoe

#endif // ATMOE_DIALECT_ATMOE_TRANSFORMS_TRANSFORMS_H
