//===- LowerCollectives.cpp - shard collectives to bufferizable calls ----===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// MLIR 22's convert-shard-to-mpi lowers only all_reduce, and that lowering
// splits a communicator per call and takes ShapedType::kDynamic for a
// dimension index on dynamic shapes; its mpi ops then stop the buffer
// deallocation pipeline. These patterns cover the collectives of the
// partitioned layers instead (docs/Distributed.md).
//
//===----------------------------------------------------------------------===//

#include "CollectiveFunctions.h"

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Shard/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/Utils/Utils.h"
#include "mlir/Dialect/Utils/IndexingUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_LOWERCOLLECTIVESPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// Whether a collective spans the one axis of atmoe-shard-layers' grid.
bool onWholeGrid(ArrayRef<int16_t> axes) {
  return axes.size() == 1 && axes.front() == 0;
}

/// `func.func private @NAME(memref<?xf32> send, memref<?xf32> recv)`
/// declared once; atmoe-collectives-to-mpi gives it its body.
func::FuncOp getOrDeclareCollective(ModuleOp module, OpBuilder &builder,
                                    StringRef name) {
  if (auto existing = module.lookupSymbol<func::FuncOp>(name))
    return existing;
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToEnd(module.getBody());
  auto flat = MemRefType::get({ShapedType::kDynamic}, builder.getF32Type());
  auto func = func::FuncOp::create(builder, module.getLoc(), name,
                                   builder.getFunctionType({flat, flat}, {}));
  func.setPrivate();
  return func;
}

/// A buffer of any identity-layout shape seen as memref<?xf32>.
Value flatten(OpBuilder &b, Location loc, Value buffer) {
  auto type = cast<MemRefType>(buffer.getType());
  if (type.getRank() != 1) {
    SmallVector<ReassociationIndices> all(1);
    for (int64_t i = 0, e = type.getRank(); i < e; ++i)
      all.front().push_back(i);
    buffer = memref::CollapseShapeOp::create(b, loc, buffer, all);
  }
  auto flat = MemRefType::get({ShapedType::kDynamic}, type.getElementType());
  return memref::CastOp::create(b, loc, flat, buffer);
}

/// Calls collective function `name` on `input`'s buffer and a new buffer of
/// `resultShape` (`input`'s dynamic sizes), both flattened; returns the new
/// buffer as a tensor.
Value callCollective(PatternRewriter &rewriter, Operation *op, StringRef name,
                     Value input, ArrayRef<int64_t> resultShape) {
  Location loc = op->getLoc();
  auto type = cast<RankedTensorType>(input.getType());
  Value send = bufferization::ToBufferOp::create(
      rewriter, loc, MemRefType::get(type.getShape(), type.getElementType()),
      input, rewriter.getUnitAttr());
  auto resultBuffer = MemRefType::get(resultShape, type.getElementType());
  Value recv = memref::AllocOp::create(
      rewriter, loc, resultBuffer,
      tensor::createDynamicDimValues(rewriter, loc, input));
  func::FuncOp callee =
      getOrDeclareCollective(op->getParentOfType<ModuleOp>(), rewriter, name);
  func::CallOp::create(
      rewriter, loc, callee,
      ValueRange{flatten(rewriter, loc, send), flatten(rewriter, loc, recv)});
  return bufferization::ToTensorOp::create(
      rewriter, loc, RankedTensorType::get(resultShape, type.getElementType()),
      recv, rewriter.getUnitAttr(), rewriter.getUnitAttr());
}

/// all_reduce (sum, f32): the operand's buffer reduced into a new one by the
/// collective function.
struct AllReduceToCall : OpRewritePattern<shard::AllReduceOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(shard::AllReduceOp op,
                                PatternRewriter &rewriter) const override {
    auto type = dyn_cast<RankedTensorType>(op.getInput().getType());
    if (!onWholeGrid(op.getGridAxes()) || !type ||
        !type.getElementType().isF32() ||
        op.getReduction() != shard::ReductionKind::Sum)
      return rewriter.notifyMatchFailure(op, "not an f32 sum on the grid");
    rewriter.replaceOp(op,
                       callCollective(rewriter, op, kAllReduceSumF32Function,
                                      op.getInput(), type.getShape()));
    return success();
  }
};

/// all_gather (f32): every process's part received, in rank order, into a
/// new buffer [N, local shape...] by the collective function; the rank axis
/// is then moved next to the gather axis and merged with it.
struct AllGatherToCall : OpRewritePattern<shard::AllGatherOp> {
  AllGatherToCall(MLIRContext *context, SymbolTableCollection &symbols)
      : OpRewritePattern(context), symbols(symbols) {}

  LogicalResult matchAndRewrite(shard::AllGatherOp op,
                                PatternRewriter &rewriter) const override {
    auto localType = dyn_cast<RankedTensorType>(op.getInput().getType());
    if (!onWholeGrid(op.getGridAxes()) || !localType ||
        !localType.getElementType().isF32())
      return rewriter.notifyMatchFailure(op, "not an f32 gather on the grid");
    auto grid = shard::getGridOrNull(op, op.getGridAttr(), symbols);
    if (!grid || ShapedType::isDynamic(grid.getShape().front()))
      return rewriter.notifyMatchFailure(op, "grid of unknown size");
    SmallVector<int64_t> partsShape{grid.getShape().front()};
    llvm::append_range(partsShape, localType.getShape());
    Value parts = callCollective(rewriter, op, kAllGatherF32Function,
                                 op.getInput(), partsShape);
    int64_t axis = op.getGatherAxis().getSExtValue();
    if (axis != 0)
      parts = moveRankAxis(rewriter, op.getLoc(), parts, axis);
    // [.., N, s_axis, ..] -> [.., N * s_axis, ..]
    SmallVector<ReassociationIndices> merge;
    for (int64_t d = 0; d <= localType.getRank(); ++d) {
      if (d == axis + 1)
        merge.back().push_back(d);
      else
        merge.push_back({d});
    }
    rewriter.replaceOpWithNewOp<tensor::CollapseShapeOp>(
        op, op.getResult().getType(), parts, merge);
    return success();
  }

private:
  /// [N, s0, .., s_axis, ..] -> [s0, .., N, s_axis, ..]
  static Value moveRankAxis(PatternRewriter &rewriter, Location loc,
                            Value parts, int64_t axis) {
    auto type = cast<RankedTensorType>(parts.getType());
    SmallVector<int64_t> permutation;
    for (int64_t d = 1; d <= axis; ++d)
      permutation.push_back(d);
    permutation.push_back(0);
    for (int64_t d = axis + 1; d < type.getRank(); ++d)
      permutation.push_back(d);
    SmallVector<OpFoldResult> sizes =
        tensor::getMixedSizes(rewriter, loc, parts);
    Value init = tensor::EmptyOp::create(rewriter, loc,
                                         applyPermutation(sizes, permutation),
                                         type.getElementType());
    return linalg::TransposeOp::create(rewriter, loc, parts, init, permutation)
        .getResult()
        .front();
  }

  SymbolTableCollection &symbols;
};

struct LowerCollectivesPass
    : public mlir::atmoe::impl::LowerCollectivesPassBase<LowerCollectivesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTableCollection symbols;
    RewritePatternSet patterns(&getContext());
    shard::populateAllSliceOpLoweringPatterns(patterns, symbols);
    patterns.add<AllReduceToCall>(&getContext());
    patterns.add<AllGatherToCall>(&getContext(), symbols);
    if (failed(applyPatternsGreedily(module, std::move(patterns))))
      return signalPassFailure();
    WalkResult left = module.walk([](Operation *op) {
      if (isa<shard::AllGatherOp, shard::AllReduceOp, shard::AllSliceOp,
              shard::AllToAllOp, shard::BroadcastOp, shard::GatherOp,
              shard::ReduceOp, shard::ReduceScatterOp, shard::ScatterOp,
              shard::SendOp, shard::RecvOp, shard::ShiftOp,
              shard::UpdateHaloOp>(op)) {
        op->emitOpError("is a collective atmoe cannot lower: only sums and "
                        "gathers of f32 tensors over the whole "
                        "one-dimensional grid are supported");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (left.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
