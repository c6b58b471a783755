//===- KernelBuilding.h - shared pieces of the CPU kernels ------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Loop building and operand matching that the CPU kernel emitters of
// --atmoe-lower-cpu-matmuls and the panel packing share.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_LIB_CODEGEN_CPU_KERNELBUILDING_H
#define ATMOE_LIB_CODEGEN_CPU_KERNELBUILDING_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::atmoe::cpu {

/// `v` rounded down to a multiple of `step`.
inline Value roundDown(ImplicitLocOpBuilder &b, Value v, int64_t step) {
  Value s = arith::ConstantIndexOp::create(b, step);
  return arith::MulIOp::create(b, arith::DivUIOp::create(b, v, s), s);
}

/// for iv = lo to hi step `step`: body(iv), with `b` inside the loop.
inline void forLoop(ImplicitLocOpBuilder &b, Value lo, Value hi, int64_t step,
                    function_ref<void(Value)> body) {
  auto loop =
      scf::ForOp::create(b, lo, hi, arith::ConstantIndexOp::create(b, step));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(loop.getBody()->getTerminator());
  body(loop.getInductionVar());
}

/// Whether `op` reads y[t, n] += x[t, k] * w[n, k] (the maps of y = x w^T)
/// or, with `transposed` false, y[t, n] += x[t, k] * w[k, n].
inline bool hasWeightMaps(linalg::LinalgOp op, bool transposed) {
  MLIRContext *ctx = op.getContext();
  AffineExpr t, n, k;
  bindDims(ctx, t, n, k);
  SmallVector<AffineExpr> weight = {n, k};
  if (!transposed)
    std::swap(weight[0], weight[1]);
  SmallVector<AffineMap> expected = {AffineMap::get(3, 0, {t, k}, ctx),
                                     AffineMap::get(3, 0, weight, ctx),
                                     AffineMap::get(3, 0, {t, n}, ctx)};
  return op.getIndexingMapsArray() == expected;
}

/// Whether `value` is a memref of `rank` whose last dimension is contiguous.
inline bool hasUnitInnerStride(Value value, int64_t rank) {
  auto type = dyn_cast<MemRefType>(value.getType());
  if (!type || type.getRank() != rank)
    return false;
  SmallVector<int64_t> strides;
  int64_t offset;
  return succeeded(type.getStridesAndOffset(strides, offset)) &&
         strides.back() == 1;
}

inline bool hasTransposedWeightMaps(linalg::LinalgOp op) {
  return hasWeightMaps(op, /*transposed=*/true);
}

/// The first panel of `panels` [count, rows, width] as a 2-D [rows, width]
/// view: a tile's one panel, where its run-time check holds.
inline Value panelRows(ImplicitLocOpBuilder &b, Value panels) {
  auto type = cast<MemRefType>(panels.getType());
  SmallVector<OpFoldResult> offsets(3, b.getIndexAttr(0));
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  SmallVector<OpFoldResult> sizes = {
      b.getIndexAttr(1), memref::getMixedSize(b, b.getLoc(), panels, 1),
      memref::getMixedSize(b, b.getLoc(), panels, 2)};
  auto rows = memref::SubViewOp::inferRankReducedResultType(
      {type.getDimSize(1), type.getDimSize(2)}, type, offsets, sizes, strides);
  return memref::SubViewOp::create(b, rows, panels, offsets, sizes, strides);
}

} // namespace mlir::atmoe::cpu

#endif // ATMOE_LIB_CODEGEN_CPU_KERNELBUILDING_H
