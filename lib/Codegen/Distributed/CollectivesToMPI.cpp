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

#include "CollectiveFunctions.h"

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/DLTI/DLTI.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_COLLECTIVESTOMPIPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

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

/// The body of `@atmoe_all_gather_f32(%send, %parts)` for N processes
/// (atmoe-collectives-to-mpi's description): the local part into its block
/// of `parts`, then the exchanges.
class AllGatherBuilder {
public:
  AllGatherBuilder(func::FuncOp func, int64_t processes)
      : b(ImplicitLocOpBuilder::atBlockBegin(func.getLoc(),
                                             func.addEntryBlock())),
        processes(processes) {
    Block *body = b.getInsertionBlock();
    send = body->getArgument(0);
    parts = body->getArgument(1);
    world = mpi::CommWorldOp::create(b, mpi::CommType::get(b.getContext()));
    rank = toIndex(
        mpi::CommRankOp::create(b, Type(), b.getI32Type(), world).getRank());
    size = memref::DimOp::create(b, send, constant(0));
    tag = arith::ConstantIntOp::create(b, b.getI32Type(), 0);
  }

  void build() {
    // linalg.copy: later lowered to loops (memref.copy of a strided view
    // would call the MLIR runner's memrefCopy, which models do not link).
    linalg::CopyOp::create(b, send, blocks(rank, constant(1)));
    if (llvm::isPowerOf2_64(processes))
      buildRecursiveDoubling();
    else
      buildRing();
    func::ReturnOp::create(b);
  }

private:
  /// log2(N) steps: at distance 2^k, the processes rank and rank ^ 2^k swap
  /// the 2^k blocks each holds; the lower one sends first.
  void buildRecursiveDoubling() {
    for (int64_t distance = 1; distance < processes; distance *= 2) {
      Value partner = arith::XOrIOp::create(b, rank, constant(distance));
      Value groupMask = constant(~(distance - 1));
      Value count = constant(distance);
      Value outgoing = blocks(arith::AndIOp::create(b, rank, groupMask), count);
      Value incoming =
          blocks(arith::AndIOp::create(b, partner, groupMask), count);
      Value lower =
          arith::CmpIOp::create(b, arith::CmpIPredicate::ult, rank, partner);
      Value peer = toI32(partner);
      exchange(lower, outgoing, peer, incoming, peer);
    }
  }

  /// N - 1 steps round the ring: at step k, block (rank - k) mod N goes to
  /// rank + 1 and block (rank - k - 1) mod N comes from rank - 1; even ranks
  /// send first, so no cycle of blocked sends forms.
  void buildRing() {
    Value ranks = constant(processes), one = constant(1);
    Value right = toI32(addMod(rank, one));
    Value left = toI32(addMod(rank, constant(processes - 1)));
    Value parity = arith::RemUIOp::create(b, rank, constant(2));
    Value even =
        arith::CmpIOp::create(b, arith::CmpIPredicate::eq, parity, constant(0));
    auto loop =
        scf::ForOp::create(b, constant(0), constant(processes - 1), one);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    // N - k, so that the block indices stay in [0, 2N).
    Value back = arith::SubIOp::create(b, ranks, loop.getInductionVar());
    Value outgoing =
        blocks(addMod(rank, arith::RemUIOp::create(b, back, ranks)), one);
    Value incoming =
        blocks(addMod(rank, arith::SubIOp::create(b, back, one)), one);
    exchange(even, outgoing, right, incoming, left);
  }

  /// Sends `outgoing` to `dest` and receives `incoming` from `source`, in
  /// that order where `sendFirst` holds, else the other way round.
  void exchange(Value sendFirst, Value outgoing, Value dest, Value incoming,
                Value source) {
    auto inOrder = [&](bool sendsFirst) {
      return [&, sendsFirst](OpBuilder &nested, Location loc) {
        ImplicitLocOpBuilder at(loc, nested);
        if (sendsFirst)
          mpi::SendOp::create(at, Type(), outgoing, tag, dest, world);
        mpi::RecvOp::create(at, Type(), incoming, tag, source, world);
        if (!sendsFirst)
          mpi::SendOp::create(at, Type(), outgoing, tag, dest, world);
        scf::YieldOp::create(at);
      };
    };
    scf::IfOp::create(b, sendFirst, inOrder(true), inOrder(false));
  }

  /// `count` blocks of `parts` from block `first`.
  Value blocks(Value first, Value count) {
    Value offset = arith::MulIOp::create(b, first, size);
    Value length = arith::MulIOp::create(b, count, size);
    return memref::SubViewOp::create(b, parts, ArrayRef<OpFoldResult>{offset},
                                     ArrayRef<OpFoldResult>{length},
                                     ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
  }

  /// (rank + offset) mod N, offset in [0, 2N).
  Value addMod(Value lhs, Value rhs) {
    return arith::RemUIOp::create(b, arith::AddIOp::create(b, lhs, rhs),
                                  constant(processes));
  }

  Value constant(int64_t value) {
    return arith::ConstantIndexOp::create(b, value);
  }
  Value toIndex(Value i32) {
    return arith::IndexCastUIOp::create(b, b.getIndexType(), i32);
  }
  Value toI32(Value index) {
    return arith::IndexCastUIOp::create(b, b.getI32Type(), index);
  }

  ImplicitLocOpBuilder b;
  /// N is the grid's (MLIR 22 does not lower mpi.comm_size); the runtime
  /// checks that the job has that many processes.
  int64_t processes;
  Value send, parts, world, rank, size, tag;
};

void defineAllGather(func::FuncOp func, int64_t processes) {
  AllGatherBuilder(func, processes).build();
  func.setPrivate();
}

/// The mpi dialect's lowering asks the module (DLTI) which MPI's ABI to
/// call: MPICH's, the one atmoe-compile links, unless the module says.
void declareMPICH(ModuleOp module) {
  if (module->hasAttr(DLTIDialect::kMapAttrName))
    return;
  MLIRContext *ctx = module.getContext();
  module->setAttr(
      DLTIDialect::kMapAttrName,
      MapAttr::get(ctx, {DataLayoutEntryAttr::get(
                            StringAttr::get(ctx, "MPI:Implementation"),
                            StringAttr::get(ctx, "MPICH"))}));
}

struct CollectivesToMPIPass
    : public mlir::atmoe::impl::CollectivesToMPIPassBase<CollectivesToMPIPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (auto allReduce =
            module.lookupSymbol<func::FuncOp>(kAllReduceSumF32Function);
        allReduce && allReduce.isExternal()) {
      defineAllReduce(allReduce);
      declareMPICH(module);
    }
    if (auto allGather =
            module.lookupSymbol<func::FuncOp>(kAllGatherF32Function);
        allGather && allGather.isExternal()) {
      auto ranks =
          module->getAttrOfType<IntegerAttr>(AtmoeDialect::kRanksAttrName);
      if (!ranks) {
        allGather.emitError()
            << "needs the module's " << AtmoeDialect::kRanksAttrName
            << " (the number of processes)";
        return signalPassFailure();
      }
      defineAllGather(allGather, ranks.getInt());
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
