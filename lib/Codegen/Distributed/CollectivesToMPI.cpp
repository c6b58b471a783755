//===- CollectivesToMPI.cpp - the collective functions' MPI bodies -------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Runs after buffer deallocation, which rejects mpi ops (they declare no
// memory effects): only here do the collective functions that
// atmoe-lower-collectives declared get their mpi bodies.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/DLTI/DLTI.h"
#include "mlir/IR/Builders.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_COLLECTIVESTOMPIPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

constexpr StringLiteral kAllReduceFunction = "atmoe_all_reduce_sum_f32";

/// send and receive buffers are distinct: MPI forbids aliasing them without
/// MPI_IN_PLACE, which the mpi dialect cannot express.
void defineAllReduce(func::FuncOp func) {
  Block *body = func.addEntryBlock();
  OpBuilder b = OpBuilder::atBlockBegin(body);
  Location loc = func.getLoc();
  Value world =
      mpi::CommWorldOp::create(b, loc, mpi::CommType::get(b.getContext()));
  mpi::AllReduceOp::create(
      b, loc, /*retval=*/Type(), body->getArgument(0), body->getArgument(1),
      mpi::MPI_ReductionOpEnumAttr::get(b.getContext(),
                                        mpi::MPI_ReductionOpEnum::MPI_SUM),
      world);
  func::ReturnOp::create(b, loc);
  func.setPrivate();
}

/// The mpi dialect's lowering asks the module (DLTI) which MPI's ABI to
/// call: MPICH's, the one atmoe-compile links, unless the module says.
void declareMPICH(ModuleOp module) {
  if (module->hasAttr(DLTIDialect::kMapAttrName))
    return;
  MLIRContext *ctx = module.getContext();
  module->setAttr(DLTIDialect::kMapAttrName,
                  MapAttr::get(ctx, {DataLayoutEntryAttr::get(
                                        StringAttr::get(ctx, "MPI:Implementation"),
                                        StringAttr::get(ctx, "MPICH"))}));
}

struct CollectivesToMPIPass
    : public mlir::atmoe::impl::CollectivesToMPIPassBase<CollectivesToMPIPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (auto allReduce = module.lookupSymbol<func::FuncOp>(kAllReduceFunction);
        allReduce && allReduce.isExternal()) {
      defineAllReduce(allReduce);
      declareMPICH(module);
    }
    // What is left of the shard dialect is the grid, or a bug.
    SmallVector<Operation *> grids;
    WalkResult left = module.walk([&](Operation *op) {
      if (isa<shard::GridOp>(op)) {
        grids.push_back(op);
        return WalkResult::advance();
      }
      if (isa<shard::ShardDialect>(op->getDialect())) {
        op->emitOpError("was left by the lowering of the process grid");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (left.wasInterrupted())
      return signalPassFailure();
    for (Operation *grid : grids)
      grid->erase();
  }
};

} // namespace
