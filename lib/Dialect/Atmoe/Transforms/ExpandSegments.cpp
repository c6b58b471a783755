//===- ExpandSegments.cpp - sequence to token granularity -------*- C++ -*-===//
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
#define GEN_PASS_DEF_EXPANDSEGMENTSPASS
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

struct ExpandSequenceRouting : OpRewritePattern<LoraLinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LoraLinearOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getGranularity() != Granularity::sequence)
      return rewriter.notifyMatchFailure(op, "already token granularity");
    Location loc = op.getLoc();
    Value routing = op.getRouting();
    if (routing) {
      auto routingType = cast<RankedTensorType>(routing.getType());
      int64_t tokens = op.getInput().getType().getDimSize(0);
      auto expandedType = RankedTensorType::get(
          {tokens, routingType.getDimSize(1)}, routingType.getElementType());
      Value numTokens = tensor::DimOp::create(rewriter, loc, op.getInput(), 0);
      routing = ExpandSegmentsOp::create(rewriter, loc, expandedType, routing,
                                         op.getSegments(), numTokens);
    }
    rewriter.modifyOpInPlace(op, [&] {
      if (routing)
        op.getRoutingMutable().assign(routing);
      op.getSegmentsMutable().clear();
      op.setGranularity(Granularity::token);
    });
    return success();
  }
};

struct ExpandSegmentsPass
    : atmoe::impl::ExpandSegmentsPassBase<ExpandSegmentsPass> {
  using ExpandSegmentsPassBase::ExpandSegmentsPassBase;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateExpandSegmentsPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

void mlir::atmoe::populateExpandSegmentsPatterns(RewritePatternSet &patterns) {
  patterns.add<ExpandSequenceRouting>(patterns.getContext());
}
