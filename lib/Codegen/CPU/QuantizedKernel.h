//===- QuantizedKernel.h - CPU kernels for GPTQ products -------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The CPU kernel of --atmoe-lower-cpu-matmuls for the products with a GPTQ
// weight that --convert-atmoe-to-linalg emits (a linalg.generic tagged with
// atmoe.quantization).
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_LIB_CODEGEN_CPU_QUANTIZEDKERNEL_H
#define ATMOE_LIB_CODEGEN_CPU_QUANTIZEDKERNEL_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::atmoe::cpu {

struct QuantizedKernelOptions {
  /// f32 lanes per vector.
  int64_t vectorWidth = 16;
  /// Token rows per register tile.
  int64_t tokenTile = 8;
  /// Vectors of output features per register tile.
  int64_t featureVectors = 2;
  /// Packed rows to prefetch ahead (0: off).
  int64_t prefetchRows = 16;
  /// Fewer tokens than a tile: activations rounded to int8 per block and
  /// multiplied with VNNI dot products (not exact; see docs/Numerics.md).
  bool int8Activations = false;
  /// From this many tokens on, a qweight in panels is dequantised once per
  /// block of k into an f32 buffer that the float panel kernel multiplies
  /// every token by (0: never).
  int64_t dequantizeTokens = 64;
};

/// Whether `op` is a GPTQ product on buffers: y[t, n] += x[t, k] *
/// W[n, k] with W read from qweight, scales and optional zeros.
bool isQuantizedMatmul(linalg::GenericOp op);

/// Replaces `op` by register-blocked vector loops that load packed words
/// along n, unpack and scale them in registers and accumulate f32 FMAs; the
/// original op stays as the fallback for tiles the kernel does not fit.
void lowerQuantizedMatmul(RewriterBase &rewriter, linalg::GenericOp op,
                          const QuantizedKernelOptions &options);

} // namespace mlir::atmoe::cpu

#endif // ATMOE_LIB_CODEGEN_CPU_QUANTIZEDKERNEL_H
