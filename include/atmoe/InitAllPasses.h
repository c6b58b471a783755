//===- InitAllPasses.h - register atmoe and upstream passes -----*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_INITALLPASSES_H
#define ATMOE_INITALLPASSES_H

namespace mlir::atmoe {

/// Registers every atmoe pass and pipeline, plus the upstream passes that
/// atmoe's pipelines are built from, for command-line use.
void registerAllPasses();

} // namespace mlir::atmoe

#endif // ATMOE_INITALLPASSES_H
