//===- ApplyCPUSchedule.cpp - run the CPU transform script ------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/Transform/IR/TransformDialect.h"
#include "mlir/Dialect/Transform/IR/TransformOps.h"
#include "mlir/Dialect/Transform/Transforms/TransformInterpreterUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"

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
    if (failed(transform::applyTransformNamedSequence(
            getOperation(), entry, *schedule, transform::TransformOptions())))
      return signalPassFailure();
  }
};

} // namespace
