//===- InitAllDialects.h - register the dialects atmoe uses -----*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_INITALLDIALECTS_H
#define ATMOE_INITALLDIALECTS_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace mlir::atmoe {

/// Adds the atmoe dialect and every upstream dialect (with the external
/// interface models they need) that atmoe's passes and pipelines create or
/// tests parse. Shared by atmoe-opt, atmoe-compile and any future tool.
void registerAllDialects(DialectRegistry &registry);

} // namespace mlir::atmoe

#endif // ATMOE_INITALLDIALECTS_H
