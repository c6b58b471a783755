//===- FuseLora.cpp - stack the adapters of a projection --------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"

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

/// Concatenates `values` along `dim`, or returns the only one.
Value concatenate(PatternRewriter &rewriter, Location loc, int64_t dim,
                  ValueRange values) {
  if (values.size() == 1)
    return values.front();
  return tensor::ConcatOp::create(rewriter, loc, dim, values);
}

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

    SharedExpertOp shared = layer.getSharedExpert();
    double lambda = shared ? shared.getLambda().convertToDouble() : 1.0;
    SmallVector<int64_t> ranks, columns;
    SmallVector<double> factors;
    int64_t totalRank = 0;
    for (unsigned i = 0, e = op.getAdapters().size(); i < e; ++i) {
      LoraAttr adapter = op.getAdapter(i);
      StringRef expert = adapter.getExpert().getValue();
      ranks.push_back(adapter.getRank());
      totalRank += adapter.getRank();
      if (shared && shared.getSymName() == expert) {
        columns.push_back(-1);
        factors.push_back((1.0 - lambda) * adapter.getScale());
        continue;
      }
      std::optional<int64_t> column = layer.getRoutedExpertIndex(expert);
      if (!column)
        return rewriter.notifyMatchFailure(op, "adapter names no expert");
      columns.push_back(*column);
      factors.push_back(lambda * adapter.getScale());
    }

    Value down = concatenate(rewriter, loc, 0, op.getLoraA());
    Value up = concatenate(rewriter, loc, 1, op.getLoraB());
    int64_t tokens = op.getInput().getType().getDimSize(0);
    Value numTokens = tensor::DimOp::create(rewriter, loc, op.getInput(), 0);
    auto scalesType =
        RankedTensorType::get({tokens, totalRank}, rewriter.getF32Type());
    Value scales =
        LoraScalesOp::create(rewriter, loc, scalesType, op.getRouting(),
                             numTokens, rewriter.getDenseI64ArrayAttr(ranks),
                             rewriter.getDenseI64ArrayAttr(columns),
                             rewriter.getDenseF64ArrayAttr(factors));
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
    patterns.add<StackAdapters>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
