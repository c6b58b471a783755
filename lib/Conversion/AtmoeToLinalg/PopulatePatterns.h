//===- PopulatePatterns.h - atmoe to linalg internals -----------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Shared by the pattern files of the atmoe-to-linalg conversion only.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_LIB_CONVERSION_ATMOETOLINALG_POPULATEPATTERNS_H
#define ATMOE_LIB_CONVERSION_ATMOETOLINALG_POPULATEPATTERNS_H

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::atmoe::lowering {

/// An empty tensor of `type`, its dynamic row count taken from `rowsOf`'s
/// first dimension.
Value emptyWithRowsOf(OpBuilder &b, Location loc, RankedTensorType type,
                      Value rowsOf);

/// A tensor of `type` filled with `value`.
Value filled(OpBuilder &b, Location loc, RankedTensorType type, Value rowsOf,
             double value);

/// The discardable attribute naming what a matmul computes, which the CPU
/// schedule (CPUSchedule.mlir) matches on: "projection" (x W^T of a plain
/// linear), "lora_base" / "lora_down" / "lora_up" (the three products of a
/// fused adapter stack), "merge_lora" (W' of a merged segment), "router",
/// "dora_norm" (B A of a DoRA scale computed in place).
constexpr llvm::StringLiteral kMatmulRoleAttr =
    AtmoeDialect::kMatmulRoleAttrName;

/// `lhs * rhs^T + init` (lhs M x K, rhs N x K, init M x N) as a linalg.matmul
/// with a transposed-B indexing map, tagged with `role`.
Value matmulTransposeB(OpBuilder &b, Location loc, Value lhs, Value rhs,
                       Value init, StringRef role);

/// `lhs * rhs + init` (lhs M x K, rhs K x N, init M x N), tagged with `role`.
Value matmul(OpBuilder &b, Location loc, Value lhs, Value rhs, Value init,
             StringRef role);

/// `scalar` in f32: weights keep their storage type (f16, bf16) until a
/// computation reads them.
Value widenToF32(OpBuilder &b, Location loc, Value scalar);

/// `source` copied into `init` element by element, widened to f32, through
/// the 2-D `sourceMap` (identity for a copy, (i, j) -> (j) for a row
/// broadcast).
Value widenInto(OpBuilder &b, Location loc, Value source, Value init,
                AffineMap sourceMap);

/// The start of `x W^T + b`: `b` broadcast over rows, or zeros.
Value biasOrZeros(OpBuilder &b, Location loc, RankedTensorType type,
                  Value rowsOf, Value bias);

/// One element of a GPTQ weight, W[out, in], in f32, from `packed` (the
/// word of qweight, the group's scale and, if present, the word of zeros
/// that hold it).
Value dequantizeElement(OpBuilder &b, Location loc, GptqAttr quant,
                        ValueRange packed, Value out, Value in);

/// `lhs * W^T + init` for the GPTQ weight W of `weight`, reading the packed
/// integers: a linalg.generic tagged with `role` and the quantisation.
Value quantizedMatmulTransposeB(OpBuilder &b, Location loc, Value lhs,
                                DequantizeOp weight, Value init,
                                StringRef role);

/// `lhs * W^T + init` for a projection's base weight: `weight` (converted)
/// as a matmul, or, when `sourceWeight` (before conversion) is an
/// atmoe.dequantize, the quantised product.
Value baseProduct(OpBuilder &b, Location loc, Value lhs, Value sourceWeight,
                  Value weight, Value init, StringRef role);

void populateLinearPatterns(RewritePatternSet &patterns);
void populateQuantizedPatterns(RewritePatternSet &patterns);
void populateRoutingPatterns(RewritePatternSet &patterns);

} // namespace mlir::atmoe::lowering

#endif // ATMOE_LIB_CONVERSION_ATMOETOLINALG_POPULATEPATTERNS_H
