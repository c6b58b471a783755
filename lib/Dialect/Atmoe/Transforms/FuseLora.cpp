//===- FuseLora.cpp - stack the adapters of a projection --------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"
#include "atmoe/Dialect/Atmoe/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_FUSELORAPASS
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

struct StackAdapters : OpRewritePattern<LoraLinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LoraLinearOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getGranularity() != Granularity::token)
      return rewriter.notifyMatchFailure(
          op, "sequence granularity: run --atmoe-expand-segments first");
    auto layer =
        SymbolTable::lookupNearestSymbolFrom<LayerOp>(op, op.getLayerAttr());
    if (!layer)
      return rewriter.notifyMatchFailure(op, "layer not found");
    Location loc = op.getLoc();
    if (op.getAdapters().empty()) {
      rewriter.replaceOpWithNewOp<LinearOp>(op, op.getType(), op.getInput(),
                                            op.getWeight(), op.getBias());
      return success();
    }

    FailureOr<StackedAdapters> stacked = stackAdapters(op, layer);
    if (failed(stacked))
      return rewriter.notifyMatchFailure(op, "adapter names no expert");

    Value down = concatenateAdapters(rewriter, loc, 0, op.getLoraA());
    Value up = concatenateAdapters(rewriter, loc, 1, op.getLoraB());
    int64_t tokens = op.getInput().getType().getDimSize(0);
    Value numTokens = tensor::DimOp::create(rewriter, loc, op.getInput(), 0);
    auto scalesType = RankedTensorType::get({tokens, stacked->totalRank},
                                            rewriter.getF32Type());
    Value scales = LoraScalesOp::create(
        rewriter, loc, scalesType, op.getRouting(), numTokens,
        rewriter.getDenseI64ArrayAttr(stacked->ranks),
        rewriter.getDenseI64ArrayAttr(stacked->columns),
        rewriter.getDenseF64ArrayAttr(stacked->factors));
    rewriter.replaceOpWithNewOp<StackedLoraLinearOp>(
        op, op.getType(), op.getInput(), op.getWeight(), op.getBias(), down, up,
        scales);
    return success();
  }
};

struct FuseLoraPass : atmoe::impl::FuseLoraPassBase<FuseLoraPass> {
  using FuseLoraPassBase::FuseLoraPassBase;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFuseLoraPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

FailureOr<StackedAdapters> mlir::atmoe::stackAdapters(LoraLinearOp op,
                                                      LayerOp layer) {
  StackedAdapters stacked;
  SharedExpertOp shared = layer.getSharedExpert();
  double lambda = shared ? shared.getLambda().convertToDouble() : 1.0;
  for (unsigned i = 0, e = op.getAdapters().size(); i < e; ++i) {
    LoraAttr adapter = op.getAdapter(i);
    StringRef expert = adapter.getExpert().getValue();
    stacked.ranks.push_back(adapter.getRank());
    stacked.totalRank += adapter.getRank();
    if (shared && shared.getSymName() == expert) {
      stacked.columns.push_back(-1);
      stacked.factors.push_back((1.0 - lambda) * adapter.getScale());
      continue;
    }
    std::optional<int64_t> column = layer.getRoutedExpertIndex(expert);
    if (!column)
      return failure();
    stacked.columns.push_back(*column);
    stacked.factors.push_back(lambda * adapter.getScale());
  }
  return stacked;
}

Value mlir::atmoe::concatenateAdapters(OpBuilder &b, Location loc, int64_t dim,
                                       ValueRange values) {
  if (values.size() == 1)
    return values.front();
  Type common = getElementTypeOrSelf(values.front().getType());
  if (llvm::any_of(values, [&](Value value) {
        return getElementTypeOrSelf(value.getType()) != common;
      })) {
    SmallVector<Value> widened;
    for (Value value : values) {
      auto type = cast<RankedTensorType>(value.getType());
      widened.push_back(
          type.getElementType().isF32()
              ? value
              : arith::ExtFOp::create(b, loc, type.clone(b.getF32Type()), value)
                    .getResult());
    }
    return tensor::ConcatOp::create(b, loc, dim, widened);
  }
  return tensor::ConcatOp::create(b, loc, dim, values);
}

void mlir::atmoe::populateFuseLoraPatterns(RewritePatternSet &patterns) {
  patterns.add<StackAdapters>(patterns.getContext());
}
