//===- AtmoeToLinalg.cpp - the atmoe to linalg conversion pass --*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Conversion/AtmoeToLinalg/AtmoeToLinalg.h"
#include "PopulatePatterns.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_CONVERTATMOETOLINALGPASS
#include "atmoe/Conversion/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

void mlir::atmoe::populateAtmoeToLinalgPatterns(RewritePatternSet &patterns) {
  lowering::populateLinearPatterns(patterns);
  lowering::populateQuantizedPatterns(patterns);
  lowering::populateRoutingPatterns(patterns);
}

namespace {

struct ConvertAtmoeToLinalgPass
    : atmoe::impl::ConvertAtmoeToLinalgPassBase<ConvertAtmoeToLinalgPass> {
  using ConvertAtmoeToLinalgPassBase::ConvertAtmoeToLinalgPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Unfused ops have no lowering of their own: name the pass that fuses
    // them instead of failing with a generic "failed to legalize".
    WalkResult unfused = module.walk([](Operation *op) {
      if (isa<RouteOp>(op)) {
        op->emitOpError("must be split by --atmoe-fuse-router before "
                        "conversion to linalg");
        return WalkResult::interrupt();
      }
      if (auto linear = dyn_cast<LoraLinearOp>(op)) {
        linear.emitOpError(
            "must be fused by --atmoe-expand-segments and --atmoe-fuse-lora "
            "before conversion to linalg");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (unfused.wasInterrupted())
      return signalPassFailure();

    ConversionTarget target(getContext());
    target.addLegalDialect<arith::ArithDialect, linalg::LinalgDialect,
                           math::MathDialect, scf::SCFDialect,
                           tensor::TensorDialect>();
    target.addIllegalDialect<AtmoeDialect>();
    target.addDynamicallyLegalOp<arith::ExtFOp>(
        [](arith::ExtFOp op) { return !isa<TensorType>(op.getType()); });
    // The structure is erased below, once nothing refers to it.
    target.addLegalOp<LayerOp, ExpertGroupOp, LoraExpertOp, SharedExpertOp>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });

    RewritePatternSet patterns(&getContext());
    populateAtmoeToLinalgPatterns(patterns);
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      return signalPassFailure();

    IRRewriter rewriter(&getContext());
    for (LayerOp layer : llvm::make_early_inc_range(module.getOps<LayerOp>()))
      rewriter.eraseOp(layer);
  }
};

} // namespace
