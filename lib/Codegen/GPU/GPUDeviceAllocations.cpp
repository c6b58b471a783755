//===- GPUDeviceAllocations.cpp - host temporaries in device memory -------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_GPUDEVICEALLOCATIONSPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;

namespace {

bool insideKernel(Operation *op) {
  return op->getParentOfType<gpu::LaunchOp>() ||
         op->getParentOfType<gpu::GPUFuncOp>();
}

/// Whether a kernel (a gpu.launch body) uses `value`, directly or through
/// views of it.
bool reachesKernel(Value value) {
  SmallVector<Value> worklist = {value};
  while (!worklist.empty()) {
    Value current = worklist.pop_back_val();
    for (OpOperand &use : current.getUses()) {
      Operation *user = use.getOwner();
      if (insideKernel(user) || isa<gpu::LaunchFuncOp>(user))
        return true;
      if (isa<ViewLikeOpInterface>(user))
        llvm::append_range(worklist, user->getResults());
    }
  }
  return false;
}

/// A host op (outside kernels) that loads from or stores to `value` or a
/// view of it, if any.
Operation *hostDereference(Value value) {
  SmallVector<Value> worklist = {value};
  while (!worklist.empty()) {
    Value current = worklist.pop_back_val();
    for (OpOperand &use : current.getUses()) {
      Operation *user = use.getOwner();
      if (insideKernel(user))
        continue;
      if (isa<ViewLikeOpInterface>(user))
        llvm::append_range(worklist, user->getResults());
      else if (isa<memref::LoadOp, memref::StoreOp>(user))
        return user;
    }
  }
  return nullptr;
}

/// Clones the memref.get_global of each constant a kernel reads into the
/// kernel, so that outlining copies the global into the GPU module (device
/// memory) instead of passing a host address.
void sinkGlobalsIntoKernels(func::FuncOp func, IRRewriter &rewriter) {
  func.walk([&](gpu::LaunchOp launch) {
    llvm::SetVector<Value> captured;
    getUsedValuesDefinedAbove(launch.getBody(), captured);
    for (Value value : captured) {
      auto global = value.getDefiningOp<memref::GetGlobalOp>();
      if (!global)
        continue;
      rewriter.setInsertionPointToStart(&launch.getBody().front());
      Operation *clone = rewriter.clone(*global);
      rewriter.replaceUsesWithIf(
          value, clone->getResult(0), [&](OpOperand &use) {
            return launch->isProperAncestor(use.getOwner());
          });
      if (global->use_empty())
        rewriter.eraseOp(global);
    }
  });
}

struct GPUDeviceAllocationsPass
    : atmoe::impl::GPUDeviceAllocationsPassBase<GPUDeviceAllocationsPass> {
  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    sinkGlobalsIntoKernels(getOperation(), rewriter);
    WalkResult result = getOperation().walk([&](Operation *op) {
      if (insideKernel(op))
        return WalkResult::skip();
      if (auto alloc = dyn_cast<memref::AllocOp>(op)) {
        if (Operation *user = hostDereference(alloc.getResult())) {
          InFlightDiagnostic diag = alloc.emitOpError(
              "would move to device memory but the host code reads or "
              "writes it");
          diag.attachNote(user->getLoc()) << "host access";
          return WalkResult::interrupt();
        }
        rewriter.setInsertionPoint(alloc);
        rewriter.replaceOpWithNewOp<gpu::AllocOp>(
            alloc, alloc.getType(), /*asyncToken=*/Type(),
            /*asyncDependencies=*/ValueRange(), alloc.getDynamicSizes(),
            alloc.getSymbolOperands(), /*hostShared=*/false);
        return WalkResult::advance();
      }
      if (auto dealloc = dyn_cast<memref::DeallocOp>(op)) {
        rewriter.setInsertionPoint(dealloc);
        rewriter.replaceOpWithNewOp<gpu::DeallocOp>(
            dealloc, /*asyncToken=*/Type(), ValueRange(), dealloc.getMemref());
        return WalkResult::advance();
      }
      if (auto alloca = dyn_cast<memref::AllocaOp>(op);
          alloca && reachesKernel(alloca.getResult())) {
        alloca.emitOpError("is host stack memory but a GPU kernel uses it");
        return WalkResult::interrupt();
      }
      if (auto global = dyn_cast<memref::GetGlobalOp>(op);
          global && reachesKernel(global.getResult())) {
        global.emitOpError("is host memory but a GPU kernel uses it through "
                           "a view; only direct uses move to the device");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
