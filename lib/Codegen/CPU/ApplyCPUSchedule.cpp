//===- ApplyCPUSchedule.cpp - run the CPU transform script ------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Transform/IR/TransformDialect.h"
#include "mlir/Dialect/Transform/IR/TransformOps.h"
#include "mlir/Dialect/Transform/Transforms/TransformInterpreterUtils.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/SmallPtrSet.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_APPLYCPUSCHEDULEPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;

namespace {

/// CPUSchedule.mlir, embedded at build time.
constexpr const char *kCPUSchedule =
#include "CPUSchedule.mlir.inc"
    ;

/// Whether induction variable `k` of `loop` may take more than one value.
bool mayIterate(scf::ForallOp loop, unsigned k) {
  std::optional<int64_t> lower =
      getConstantIntValue(loop.getMixedLowerBound()[k]);
  std::optional<int64_t> upper =
      getConstantIntValue(loop.getMixedUpperBound()[k]);
  std::optional<int64_t> step = getConstantIntValue(loop.getMixedStep()[k]);
  return !lower || !upper || !step || *upper - *lower > *step;
}

/// The induction variables of `loop` that `values` are computed from.
llvm::SmallPtrSet<Value, 4> inductionVariablesOf(scf::ForallOp loop,
                                                 ValueRange values) {
  llvm::SmallPtrSet<Value, 4> found, seen;
  SmallVector<Value> worklist(values.begin(), values.end());
  SmallVector<Value> ivs = loop.getInductionVars();
  while (!worklist.empty()) {
    Value value = worklist.pop_back_val();
    if (!seen.insert(value).second)
      continue;
    if (llvm::is_contained(ivs, value))
      found.insert(value);
    Operation *def = value.getDefiningOp();
    if (def && loop->isProperAncestor(def))
      llvm::append_range(worklist, def->getOperands());
  }
  return found;
}

/// A parallel loop whose iterations write the same slice of its result (the
/// slice's offsets do not depend on an induction variable that varies): what
/// tiling a reduction dimension with scf.forall makes, a data race.
scf::ForallOp findRacingForall(Operation *root) {
  scf::ForallOp racing;
  root->walk([&](scf::ForallOp loop) {
    for (Operation &op : loop.getTerminator().getYieldingOps()) {
      auto insert = dyn_cast<tensor::ParallelInsertSliceOp>(op);
      if (!insert)
        continue;
      llvm::SmallPtrSet<Value, 4> used =
          inductionVariablesOf(loop, insert.getOffsets());
      for (auto [k, iv] : llvm::enumerate(loop.getInductionVars()))
        if (!used.contains(iv) && mayIterate(loop, k)) {
          racing = loop;
          return WalkResult::interrupt();
        }
    }
    return WalkResult::advance();
  });
  return racing;
}

/// Whether `loc` lies in the file `file`.
bool isIn(Location loc, StringRef file) {
  auto position = loc->findInstanceOf<FileLineColLoc>();
  return position && position.getFilename() == file;
}

struct ApplyCPUSchedulePass
    : atmoe::impl::ApplyCPUSchedulePassBase<ApplyCPUSchedulePass> {
  using ApplyCPUSchedulePassBase::ApplyCPUSchedulePassBase;

  void runOnOperation() override {
    MLIRContext *context = &getContext();
    OwningOpRef<ModuleOp> schedule =
        scheduleFile.empty()
            ? parseSourceString<ModuleOp>(kCPUSchedule, ParserConfig(context),
                                          "CPUSchedule.mlir")
            : parseSourceFile<ModuleOp>(scheduleFile, context);
    if (!schedule)
      return signalPassFailure();
    auto entry = schedule->lookupSymbol<transform::NamedSequenceOp>(
        transform::TransformDialect::kTransformEntryPointSymbolName);
    if (!entry) {
      schedule->emitError("the schedule has no @")
          << transform::TransformDialect::kTransformEntryPointSymbolName;
      return signalPassFailure();
    }
    // The script's effects are reported at the payload (the model), so say
    // which script they came from.
    StringRef scriptName = scheduleFile.empty() ? StringRef("CPUSchedule.mlir")
                                                : StringRef(scheduleFile);
    Location scriptLoc = entry.getLoc();
    LogicalResult applied = success();
    {
      ScopedDiagnosticHandler context(&getContext(), [&](Diagnostic &diag) {
        if (!isIn(diag.getLocation(), scriptName))
          diag.attachNote(scriptLoc)
              << "while applying the CPU schedule " << scriptName;
        return failure(); // Reported as usual, with the note.
      });
      applied = transform::applyTransformNamedSequence(
          getOperation(), entry, *schedule, transform::TransformOptions());
    }
    if (failed(applied))
      return signalPassFailure();
    if (scf::ForallOp racing = findRacingForall(getOperation())) {
      emitError(scriptLoc)
          << "the CPU schedule " << scriptName
          << " makes a reduction parallel: iterations of an scf.forall write "
             "the same slice of its result (a data race); tile reduction "
             "dimensions with scf.for (tile_using_for) or "
             "tile_reduction_using_forall";
      racing->emitRemark("this loop");
      return signalPassFailure();
    }
  }
};

} // namespace
