//===- SerializeSmallForalls.cpp - small parallel loops run serially ------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_SERIALIZESMALLFORALLSPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

constexpr StringLiteral kSerialMaxRows = AtmoeDialect::kSerialMaxRowsAttrName;

/// The serial form of a one-dimensional `forall`: an scf.for over the same
/// induction values whose iteration arguments are the shared outputs, each
/// `tensor.parallel_insert_slice` an insert_slice into them.
scf::ForOp buildSerialLoop(RewriterBase &rewriter, scf::ForallOp forall) {
  Location loc = forall.getLoc();
  auto value = [&](OpFoldResult r) {
    return getValueOrCreateConstantIndexOp(rewriter, loc, r);
  };
  Value lower = value(forall.getMixedLowerBound().front());
  Value upper = value(forall.getMixedUpperBound().front());
  Value step = value(forall.getMixedStep().front());
  return scf::ForOp::create(
      rewriter, loc, lower, upper, step, forall.getOutputs(),
      [&](OpBuilder &b, Location loc, Value iv, ValueRange iterArgs) {
        IRMapping mapping;
        mapping.map(forall.getInductionVars().front(), iv);
        mapping.map(forall.getRegionIterArgs(), iterArgs);
        for (Operation &op : forall.getBody()->without_terminator())
          b.clone(op, mapping);
        SmallVector<Value> results(iterArgs.begin(), iterArgs.end());
        for (Operation &op : forall.getTerminator().getYieldingOps()) {
          auto insert = cast<tensor::ParallelInsertSliceOp>(op);
          auto dest = cast<BlockArgument>(insert.getDest());
          unsigned position =
              dest.getArgNumber() - forall.getInductionVars().size();
          auto remap = [&](ArrayRef<OpFoldResult> values) {
            return llvm::map_to_vector(values, [&](OpFoldResult r) {
              if (auto v = dyn_cast<Value>(r))
                return OpFoldResult(mapping.lookupOrDefault(v));
              return r;
            });
          };
          results[position] = tensor::InsertSliceOp::create(
              b, loc, mapping.lookupOrDefault(insert.getSource()),
              results[position], remap(insert.getMixedOffsets()),
              remap(insert.getMixedSizes()), remap(insert.getMixedStrides()));
        }
        scf::YieldOp::create(b, loc, results);
      });
}

struct SerializeSmallForallsPass
    : atmoe::impl::SerializeSmallForallsPassBase<SerializeSmallForallsPass> {
  void runOnOperation() override {
    SmallVector<scf::ForallOp> annotated;
    getOperation().walk([&](scf::ForallOp forall) {
      if (forall->hasAttr(kSerialMaxRows))
        annotated.push_back(forall);
    });
    IRRewriter rewriter(&getContext());
    for (scf::ForallOp forall : annotated) {
      // An integer: the atmoe dialect verifies its attributes.
      auto maxRows = cast<IntegerAttr>(forall->getAttr(kSerialMaxRows));
      forall->removeAttr(kSerialMaxRows);
      auto rowsOf = forall.getOutputs().empty()
                        ? RankedTensorType()
                        : dyn_cast<RankedTensorType>(
                              forall.getOutputs().front().getType());
      bool insertsOnly = llvm::all_of(
          forall.getTerminator().getYieldingOps(),
          [](Operation &op) { return isa<tensor::ParallelInsertSliceOp>(op); });
      if (forall.getRank() != 1 || !rowsOf || rowsOf.getRank() == 0 ||
          !insertsOnly) {
        forall.emitOpError()
            << "with " << kSerialMaxRows
            << " must be one-dimensional, with tensor shared outputs "
               "written by tensor.parallel_insert_slice";
        return signalPassFailure();
      }
      Location loc = forall.getLoc();
      rewriter.setInsertionPoint(forall);
      Value rows =
          tensor::DimOp::create(rewriter, loc, forall.getOutputs().front(), 0);
      Value limit =
          arith::ConstantIndexOp::create(rewriter, loc, maxRows.getInt());
      Value small = arith::CmpIOp::create(
          rewriter, loc, arith::CmpIPredicate::ule, rows, limit);
      auto ifOp =
          scf::IfOp::create(rewriter, loc, forall.getResultTypes(), small,
                            /*withElseRegion=*/true);
      rewriter.setInsertionPointToStart(ifOp.thenBlock());
      scf::ForOp serial = buildSerialLoop(rewriter, forall);
      scf::YieldOp::create(rewriter, loc, serial.getResults());
      rewriter.setInsertionPointToStart(ifOp.elseBlock());
      Operation *parallel = rewriter.clone(*forall);
      scf::YieldOp::create(rewriter, loc, parallel->getResults());
      rewriter.replaceOp(forall, ifOp.getResults());
    }
  }
};

} // namespace
