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

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Shard/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_LOWERCOLLECTIVESPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

constexpr StringLiteral kAllReduceFunction = "atmoe_all_reduce_sum_f32";

/// The dynamic extents of `value`'s tensor type, for tensor.empty and
/// memref.alloc of the same shape.
SmallVector<Value> dynamicSizes(OpBuilder &b, Location loc, Value value) {
  SmallVector<Value> sizes;
  auto type = cast<RankedTensorType>(value.getType());
  for (int64_t i = 0, e = type.getRank(); i < e; ++i)
    if (type.isDynamicDim(i))
      sizes.push_back(tensor::DimOp::create(b, loc, value, i));
  return sizes;
}

/// Whether a collective spans the one axis of atmoe-shard-layers' grid.
bool onWholeGrid(ArrayRef<int16_t> axes) {
  return axes.size() == 1 && axes.front() == 0;
}

/// all_gather: the local part written at this process's offset into zeros,
/// summed over the processes.
struct AllGatherToAllReduce : OpRewritePattern<shard::AllGatherOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(shard::AllGatherOp op,
                                PatternRewriter &rewriter) const override {
    if (!onWholeGrid(op.getGridAxes()))
      return rewriter.notifyMatchFailure(op, "not on the whole grid");
    Location loc = op.getLoc();
    Value local = op.getInput();
    auto localType = cast<RankedTensorType>(local.getType());
    auto fullType = cast<RankedTensorType>(op.getResult().getType());
    int64_t axis = op.getGatherAxis().getSExtValue();
    if (localType.isDynamicDim(axis))
      return rewriter.notifyMatchFailure(op, "dynamic gather axis");

    SmallVector<Value> sizes = dynamicSizes(rewriter, loc, local);
    Value empty = tensor::EmptyOp::create(rewriter, loc, fullType, sizes);
    Value zero = arith::ConstantOp::create(
        rewriter, loc, rewriter.getZeroAttr(fullType.getElementType()));
    Value zeros =
        linalg::FillOp::create(rewriter, loc, zero, empty).getResult(0);

    Value rank = shard::ProcessLinearIndexOp::create(rewriter, loc,
                                                     op.getGridAttr().getValue());
    Value extent =
        arith::ConstantIndexOp::create(rewriter, loc, localType.getDimSize(axis));
    Value offset = arith::MulIOp::create(rewriter, loc, rank, extent);
    SmallVector<OpFoldResult> offsets(localType.getRank(),
                                      rewriter.getIndexAttr(0));
    offsets[axis] = offset;
    SmallVector<OpFoldResult> strides(localType.getRank(),
                                      rewriter.getIndexAttr(1));
    SmallVector<OpFoldResult> extents =
        tensor::getMixedSizes(rewriter, loc, local);
    Value placed = tensor::InsertSliceOp::create(rewriter, loc, local, zeros,
                                                 offsets, extents, strides);
    rewriter.replaceOpWithNewOp<shard::AllReduceOp>(
        op, placed, op.getGridAttr().getValue(), op.getGridAxes(),
        shard::ReductionKind::Sum);
    return success();
  }
};

/// `func.func private @atmoe_all_reduce_sum_f32(memref<?xf32>, memref<?xf32>)`
/// declared once; atmoe-collectives-to-mpi gives it its body.
func::FuncOp getOrDeclareAllReduce(ModuleOp module, OpBuilder &builder) {
  if (auto existing = module.lookupSymbol<func::FuncOp>(kAllReduceFunction))
    return existing;
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToEnd(module.getBody());
  auto flat = MemRefType::get({ShapedType::kDynamic}, builder.getF32Type());
  auto func = func::FuncOp::create(builder, module.getLoc(), kAllReduceFunction,
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
    Location loc = op.getLoc();
    auto bufferType = MemRefType::get(type.getShape(), type.getElementType());
    Value send = bufferization::ToBufferOp::create(
        rewriter, loc, bufferType, op.getInput(), rewriter.getUnitAttr());
    Value recv = memref::AllocOp::create(
        rewriter, loc, bufferType, dynamicSizes(rewriter, loc, op.getInput()));
    func::FuncOp callee = getOrDeclareAllReduce(
        op->getParentOfType<ModuleOp>(), rewriter);
    func::CallOp::create(
        rewriter, loc, callee,
        ValueRange{flatten(rewriter, loc, send), flatten(rewriter, loc, recv)});
    rewriter.replaceOpWithNewOp<bufferization::ToTensorOp>(
        op, op.getResult().getType(), recv, rewriter.getUnitAttr(),
        rewriter.getUnitAttr());
    return success();
  }
};

struct LowerCollectivesPass
    : public mlir::atmoe::impl::LowerCollectivesPassBase<LowerCollectivesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTableCollection symbols;
    RewritePatternSet patterns(&getContext());
    shard::populateAllSliceOpLoweringPatterns(patterns, symbols);
    patterns.add<AllGatherToAllReduce, AllReduceToCall>(&getContext());
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
