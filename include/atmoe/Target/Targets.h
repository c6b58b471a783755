//===- Targets.h - the targets atmoe builds in ------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_TARGET_TARGETS_H
#define ATMOE_TARGET_TARGETS_H

#include "atmoe/Target/Target.h"

namespace mlir::atmoe {

/// One function per built-in target, called by registerAllTargets.
void registerCPUTarget();
void registerNVPTXTarget();
void registerAMDGPUTarget();

/// The pipelines of the GPU targets, with the targets' defaults for chips
/// and toolkits: `--atmoe-nvvm-codegen-pipeline`,
/// `--atmoe-rocdl-codegen-pipeline`.
void registerNVPTXPipelines();
void registerAMDGPUPipelines();
void registerTargetPipelines();

} // namespace mlir::atmoe

#endif // ATMOE_TARGET_TARGETS_H
