//===- GPUHostArguments.cpp - arguments the host code dereferences --------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_GPUHOSTARGUMENTSPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// Where an argument's memory is used.
struct Placement {
  Operation *hostUse = nullptr;
  Operation *deviceUse = nullptr;
};

/// Whether `op` reads or writes the memory `value` refers to. Allocation and
/// freeing, and ops that only look at the descriptor (memref.dim, metadata
/// extraction), do not dereference it.
bool dereferences(Operation *op, Value value) {
  auto effects = dyn_cast<MemoryEffectOpInterface>(op);
  if (!effects)
    return !isMemoryEffectFree(op);
  SmallVector<MemoryEffects::EffectInstance> instances;
  effects.getEffectsOnValue(value, instances);
  return llvm::any_of(instances, [](const MemoryEffects::EffectInstance &e) {
    return isa<MemoryEffects::Read, MemoryEffects::Write>(e.getEffect());
  });
}

Placement place(BlockArgument argument) {
  Placement placement;
  SmallVector<Value> worklist = {argument};
  while (!worklist.empty()) {
    Value current = worklist.pop_back_val();
    for (OpOperand &use : current.getUses()) {
      Operation *user = use.getOwner();
      if (isa<gpu::LaunchFuncOp>(user)) {
        placement.deviceUse = user;
      } else if (isa<ViewLikeOpInterface>(user)) {
        llvm::append_range(worklist, user->getResults());
      } else if (isa<func::ReturnOp>(user)) {
        continue;
      } else if (dereferences(user, current) && !placement.hostUse) {
        placement.hostUse = user;
      }
    }
  }
  return placement;
}

struct GPUHostArgumentsPass
    : atmoe::impl::GPUHostArgumentsPassBase<GPUHostArgumentsPass> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal() || func.isPrivate())
      return;
    SmallVector<int64_t> hostArguments;
    for (BlockArgument argument : func.getArguments()) {
      if (!isa<BaseMemRefType>(argument.getType()))
        continue;
      Placement placement = place(argument);
      if (placement.hostUse && placement.deviceUse) {
        InFlightDiagnostic diag =
            func.emitOpError("argument #")
            << argument.getArgNumber()
            << " is dereferenced both by the host and by a GPU kernel";
        diag.attachNote(placement.hostUse->getLoc()) << "host use";
        diag.attachNote(placement.deviceUse->getLoc()) << "kernel use";
        return signalPassFailure();
      }
      if (placement.hostUse)
        hostArguments.push_back(argument.getArgNumber());
    }
    func->setAttr(AtmoeDialect::kHostArgumentsAttrName,
                  DenseI64ArrayAttr::get(&getContext(), hostArguments));
  }
};

} // namespace
