//===- FuseRouter.cpp - affine logits + one fused normalisation -*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"
#include "atmoe/Dialect/Atmoe/Transforms/Transforms.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_FUSEROUTERPASS
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// `input weight^T + bias` as an `atmoe.linear` with N x rows(weight) result.
Value affine(PatternRewriter &rewriter, Location loc, Value input, Value weight,
             Value bias) {
  auto inputType = cast<RankedTensorType>(input.getType());
  auto weightType = cast<RankedTensorType>(weight.getType());
  auto type =
      RankedTensorType::get({inputType.getDimSize(0), weightType.getDimSize(0)},
                            inputType.getElementType());
  return LinearOp::create(rewriter, loc, type, input, weight, bias);
}

struct SplitRoute : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RouteOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value groupScores, expertScores;
    if (op.getKind() == RouterKind::cosine) {
      Value projected = affine(rewriter, loc, op.getInput(), op.getProjWeight(),
                               /*bias=*/Value());
      expertScores = CosineSimilarityOp::create(
          rewriter, loc, op.getType(), projected, op.getExpertEmbedding());
    } else {
      expertScores = affine(rewriter, loc, op.getInput(), op.getExpertWeight(),
                            op.getExpertBias());
    }
    if (op.getGroupWeight())
      groupScores = affine(rewriter, loc, op.getInput(), op.getGroupWeight(),
                           op.getGroupBias());
    rewriter.replaceOpWithNewOp<NormalizeRoutingOp>(
        op, op.getType(), op.getKindAttr(), op.getGroupSizesAttr(),
        op.getTemperatureAttr(), op.getGroupTemperatureAttr(),
        op.getExpertTemperatureAttr(), op.getTopKAttr(), op.getTopKGroupsAttr(),
        expertScores, groupScores);
    return success();
  }
};

struct FuseRouterPass : atmoe::impl::FuseRouterPassBase<FuseRouterPass> {
  using FuseRouterPassBase::FuseRouterPassBase;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFuseRouterPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void mlir::atmoe::populateFuseRouterPatterns(RewritePatternSet &patterns) {
  patterns.add<SplitRoute>(patterns.getContext());
}
