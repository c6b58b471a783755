//===- PanelKernel.h - CPU kernel for weights in panels --------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The CPU kernel of --atmoe-lower-cpu-matmuls for y = x W^T with a float W
// in panels of output features (--atmoe-pack-weight-panels).
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_LIB_CODEGEN_CPU_PANELKERNEL_H
#define ATMOE_LIB_CODEGEN_CPU_PANELKERNEL_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::atmoe::cpu {

/// Whether `op` is y[t, n] += x[t, k] * W[n floordiv w, k, n mod w] on
/// buffers, with x and y in f32 and W in f32, f16 or bf16 (widened).
bool isPanelMatmul(linalg::GenericOp op);

/// Emits y += x panel at `b`'s point for x [T, K] f32, panel [K, w] (f32,
/// f16 or bf16; w static) and y [T, w] f32, all unit-stride along their
/// last dimension: the kernel lowerPanelMatmul uses, with the next block of
/// panel rows prefetched in full tiles when `prefetch` (a panel in DRAM).
void emitPanelProduct(ImplicitLocOpBuilder &b, Value x, Value panel, Value y,
                      int64_t vectorWidth, bool prefetch);

/// Replaces `op` by register tiles of token rows x vectors of one panel's
/// output features: broadcast activations times rows of the panel, so
/// each loaded weight vector feeds one FMA per token row and there is no
/// horizontal sum. The register tile's shape is derived from `vectorWidth`
/// (the registers of its instruction set). The original op stays as the
/// fallback for tiles that do not cover exactly one panel.
void lowerPanelMatmul(RewriterBase &rewriter, linalg::GenericOp op,
                      int64_t vectorWidth);

} // namespace mlir::atmoe::cpu

#endif // ATMOE_LIB_CODEGEN_CPU_PANELKERNEL_H
