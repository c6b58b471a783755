//===- MemRefCopyToLinalg.cpp - memref.copy as linalg.copy ------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_MEMREFCOPYTOLINALGPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;

namespace {

struct CopyAsLinalg : OpRewritePattern<memref::CopyOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(memref::CopyOp op,
                                PatternRewriter &rewriter) const override {
    rewriter.replaceOpWithNewOp<linalg::CopyOp>(op, op.getSource(),
                                                op.getTarget());
    return success();
  }
};

struct MemRefCopyToLinalgPass
    : atmoe::impl::MemRefCopyToLinalgPassBase<MemRefCopyToLinalgPass> {
  using MemRefCopyToLinalgPassBase::MemRefCopyToLinalgPassBase;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<CopyAsLinalg>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
