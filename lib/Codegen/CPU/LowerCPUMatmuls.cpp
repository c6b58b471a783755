//===- LowerCPUMatmuls.cpp - register-blocked vector matmul kernels -------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "KernelBuilding.h"
#include "PanelKernel.h"
#include "QuantizedKernel.h"

#include "mlir/IR/PatternMatch.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/bit.h"
#include "llvm/Support/MathExtras.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_LOWERCPUMATMULSPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;

namespace {

/// Operands of y[t, n] += x[t, k] * w[n, k] on memrefs whose reduction
/// dimension is contiguous.
struct Operands {
  Value x, w, y;
};

/// Whether `op` is y = x w^T with x and y in f32, w in f32, f16 or bf16 (its
/// storage type, widened in registers) and both inputs unit-stride along k.
static bool isSupported(linalg::MatmulOp op) {
  if (!op.hasPureBufferSemantics() || !atmoe::cpu::hasTransposedWeightMaps(op))
    return false;
  for (Value v : op->getOperands()) {
    auto type = dyn_cast<MemRefType>(v.getType());
    if (!type || type.getRank() != 2)
      return false;
    Type element = type.getElementType();
    bool isWeight = v == op.getDpsInputs()[1];
    if (!element.isF32() &&
        !(isWeight && (element.isF16() || element.isBF16())))
      return false;
  }
  for (Value v : op.getDpsInputs()) {
    SmallVector<int64_t> strides;
    int64_t offset;
    if (failed(cast<MemRefType>(v.getType())
                   .getStridesAndOffset(strides, offset)) ||
        strides.back() != 1)
      return false;
  }
  return true;
}

/// Whether `op` is y[t, n] += x[t, k] * w[k, n] with w not transposed (the
/// B A product of a merged segment's W') and a static, unit-stride tile of n:
/// the panel kernel's outer products compute it with w's rows as the panel.
static bool isOuterProductMatmul(linalg::MatmulOp op) {
  if (!op.hasPureBufferSemantics() ||
      !atmoe::cpu::hasWeightMaps(op, /*transposed=*/false))
    return false;
  Value x = op.getDpsInputs()[0], w = op.getDpsInputs()[1],
        y = op.getDpsInits()[0];
  Type element = getElementTypeOrSelf(w);
  using atmoe::cpu::hasUnitInnerStride;
  return hasUnitInnerStride(x, 2) && hasUnitInnerStride(w, 2) &&
         hasUnitInnerStride(y, 2) && getElementTypeOrSelf(x).isF32() &&
         getElementTypeOrSelf(y).isF32() &&
         (element.isF32() || element.isF16() || element.isBF16()) &&
         !ShapedType::isDynamic(cast<MemRefType>(w.getType()).getDimSize(1));
}

class KernelEmitter {
public:
  KernelEmitter(ImplicitLocOpBuilder &b, Operands ops, int64_t width)
      : b(b), ops(ops), width(width),
        vecType(VectorType::get({width}, b.getF32Type())) {}

  /// y[t : t+tr, n : n+nr] += x[t : t+tr, k0 : k1] w[n : n+nr, k0 : k1]^T
  /// with tr * nr vector accumulators along k: each loaded vector of w feeds
  /// tr FMAs and each vector of x nr, and the horizontal sums happen once
  /// per tile, not per step.
  void emitTile(int64_t tr, int64_t nr, Value t, Value n, Value k0, Value k1) {
    Value zero = arith::ConstantOp::create(
        b, vecType, DenseElementsAttr::get(vecType, b.getF32FloatAttr(0)));
    Value step = index(width);
    Value kMain = arith::AddIOp::create(
        b, k0,
        arith::MulIOp::create(
            b,
            arith::DivUIOp::create(b, arith::SubIOp::create(b, k1, k0), step),
            step));
    SmallVector<Value> init(tr * nr, zero);
    auto loop = scf::ForOp::create(
        b, k0, kMain, step, init,
        [&](OpBuilder &nested, Location loc, Value k, ValueRange accs) {
          ImplicitLocOpBuilder nb(loc, nested);
          scf::YieldOp::create(nb, fma(nb, tr, nr, t, n, k, accs, Value()));
        });
    // The k remainder, with masked loads (zero past k1).
    Value hasTail =
        arith::CmpIOp::create(b, arith::CmpIPredicate::ult, kMain, k1);
    auto tail = scf::IfOp::create(
        b, hasTail,
        [&](OpBuilder &nested, Location loc) {
          ImplicitLocOpBuilder nb(loc, nested);
          Value mask = vector::CreateMaskOp::create(
              nb, VectorType::get({width}, nb.getI1Type()),
              ValueRange{arith::SubIOp::create(nb, k1, kMain)});
          scf::YieldOp::create(
              nb, fma(nb, tr, nr, t, n, kMain, loop.getResults(), mask));
        },
        [&](OpBuilder &nested, Location loc) {
          scf::YieldOp::create(nested, loc, loop.getResults());
        });
    SmallVector<Value> accs(tail.getResults());
    if (llvm::isPowerOf2_64(nr) && llvm::isPowerOf2_64(width) && nr <= width &&
        unitStride(ops.y)) {
      // Sum up to `width` accumulators at once, pairwise with shuffles
      // (about 3 ops per accumulator instead of 2 log2(width) each), in
      // power-of-two chunks of whole rows, and update y by row vectors.
      auto rowType = VectorType::get({nr}, b.getF32Type());
      for (int64_t start = 0, total = tr * nr; start < total;) {
        int64_t chunk =
            std::min<int64_t>(width, llvm::bit_floor(uint64_t(total - start)));
        Value sums = transposeReduce(
            SmallVector<Value>(ArrayRef(accs).slice(start, chunk)));
        for (int64_t i = start / nr; i < (start + chunk) / nr; ++i) {
          Value row = arith::AddIOp::create(b, t, index(i));
          Value part = chunk == nr
                           ? sums
                           : vector::ExtractStridedSliceOp::create(
                                 b, sums, ArrayRef<int64_t>{i * nr - start},
                                 ArrayRef<int64_t>{nr}, ArrayRef<int64_t>{1});
          Value old =
              vector::LoadOp::create(b, rowType, ops.y, ValueRange{row, n});
          vector::StoreOp::create(b, arith::AddFOp::create(b, old, part), ops.y,
                                  ValueRange{row, n});
        }
        start += chunk;
      }
      return;
    }
    auto flags = arith::FastMathFlags::reassoc | arith::FastMathFlags::contract;
    for (int64_t i = 0; i < tr; ++i) {
      Value row = arith::AddIOp::create(b, t, index(i));
      for (int64_t j = 0; j < nr; ++j) {
        Value col = arith::AddIOp::create(b, n, index(j));
        Value sum = vector::ReductionOp::create(b, vector::CombiningKind::ADD,
                                                accs[i * nr + j], flags);
        Value old = memref::LoadOp::create(b, ops.y, ValueRange{row, col});
        memref::StoreOp::create(b, arith::AddFOp::create(b, old, sum), ops.y,
                                ValueRange{row, col});
      }
    }
  }

  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, v); }

  /// Elements ahead to prefetch weight rows (0: off).
  int64_t prefetch = 0;

private:
  static bool unitStride(Value memref) {
    SmallVector<int64_t> strides;
    int64_t offset;
    return succeeded(cast<MemRefType>(memref.getType())
                         .getStridesAndOffset(strides, offset)) &&
           strides.back() == 1;
  }

  /// Lane i of the result (a vector of vs.size() lanes, a power of two up
  /// to `width`) is the sum of the lanes of vs[i]. Each level adds the lower
  /// and upper halves of every group of partial sums, of two vectors while
  /// there are several (keeping their inputs in order), then of the last
  /// one with itself.
  Value transposeReduce(SmallVector<Value> vs) {
    int64_t inputs = 1, group = width;
    auto halves = [&](int64_t sources, SmallVector<int64_t> &lo,
                      SmallVector<int64_t> &hi) {
      for (int64_t src = 0; src < sources; ++src)
        for (int64_t q = 0; q < inputs; ++q)
          for (int64_t l = 0; l < group / 2; ++l) {
            lo.push_back(src * width + q * group + l);
            hi.push_back(src * width + q * group + group / 2 + l);
          }
    };
    for (; vs.size() > 1; inputs *= 2, group /= 2) {
      SmallVector<int64_t> lo, hi;
      halves(2, lo, hi);
      SmallVector<Value> next;
      for (size_t p = 0; p < vs.size(); p += 2) {
        Value l = vector::ShuffleOp::create(b, vs[p], vs[p + 1], lo);
        Value h = vector::ShuffleOp::create(b, vs[p], vs[p + 1], hi);
        next.push_back(arith::AddFOp::create(b, l, h));
      }
      vs = std::move(next);
    }
    Value v = vs.front();
    for (; group > 1; group /= 2) {
      SmallVector<int64_t> lo, hi;
      halves(1, lo, hi);
      v = arith::AddFOp::create(b, vector::ShuffleOp::create(b, v, v, lo),
                                vector::ShuffleOp::create(b, v, v, hi));
    }
    return v;
  }

  SmallVector<Value> fma(ImplicitLocOpBuilder &nb, int64_t tr, int64_t nr,
                         Value t, Value n, Value k, ValueRange accs,
                         Value mask) {
    // Weights stored in f16 or bf16 are loaded as such and widened in
    // registers: memory traffic stays at the stored bytes.
    auto load = [&](Value base, Value row) -> Value {
      Type element = cast<MemRefType>(base.getType()).getElementType();
      auto type = VectorType::get({width}, element);
      Value loaded;
      if (mask) {
        Value passThru = arith::ConstantOp::create(
            nb, type,
            DenseElementsAttr::get(type, nb.getFloatAttr(element, 0.0)));
        loaded = vector::MaskedLoadOp::create(
            nb, type, base, ValueRange{row, k}, mask, passThru);
      } else {
        loaded = vector::LoadOp::create(nb, type, base, ValueRange{row, k});
      }
      return element.isF32() ? loaded
                             : arith::ExtFOp::create(nb, vecType, loaded);
    };
    SmallVector<Value> ws;
    for (int64_t j = 0; j < nr; ++j)
      ws.push_back(load(
          ops.w,
          arith::AddIOp::create(nb, n, arith::ConstantIndexOp::create(nb, j))));
    // Ask for the weight rows `prefetch` elements ahead so that DRAM
    // streams them while the FMAs run on cached data: further along the
    // same rows (clamped) or, for short rows, as many elements further down
    // the tile's contiguous rows as all its rows would be ahead.
    if (!mask && prefetch > 0) {
      auto c = [&](int64_t v) { return arith::ConstantIndexOp::create(nb, v); };
      Value len = memref::DimOp::create(nb, ops.w, 1);
      Value rows = memref::DimOp::create(nb, ops.w, 0);
      Value distance = c(prefetch);
      Value longRows =
          arith::CmpIOp::create(nb, arith::CmpIPredicate::ugt, len, distance);
      Value col = arith::SelectOp::create(
          nb, longRows,
          arith::MinUIOp::create(nb, arith::AddIOp::create(nb, k, distance),
                                 arith::SubIOp::create(nb, len, c(1))),
          k);
      Value skip = arith::CeilDivUIOp::create(
          nb, c(prefetch * nr), arith::MaxUIOp::create(nb, len, c(1)));
      for (int64_t j = 0; j < nr; ++j) {
        Value row = arith::AddIOp::create(nb, n, c(j));
        Value below =
            arith::MinUIOp::create(nb, arith::AddIOp::create(nb, row, skip),
                                   arith::SubIOp::create(nb, rows, c(1)));
        memref::PrefetchOp::create(
            nb, ops.w,
            ValueRange{arith::SelectOp::create(nb, longRows, row, below), col},
            /*isWrite=*/false, /*localityHint=*/1, /*isDataCache=*/true);
      }
    }
    SmallVector<Value> next(accs.begin(), accs.end());
    for (int64_t i = 0; i < tr; ++i) {
      Value xv = load(ops.x, arith::AddIOp::create(
                                 nb, t, arith::ConstantIndexOp::create(nb, i)));
      for (int64_t j = 0; j < nr; ++j)
        next[i * nr + j] =
            vector::FMAOp::create(nb, xv, ws[j], next[i * nr + j]);
    }
    return next;
  }

  ImplicitLocOpBuilder &b;
  Operands ops;
  int64_t width;
  VectorType vecType;
};

/// for iv = lo to hi: `body(iv, step)` over whole steps, then `body(iv, 1)`
/// over the rest.
static void
splitLoop(ImplicitLocOpBuilder &b, Value lo, Value hi, int64_t step,
          function_ref<void(ImplicitLocOpBuilder &, Value, int64_t)> body) {
  auto emit = [&](Value from, Value to, int64_t size) {
    Value stepValue = arith::ConstantIndexOp::create(b, size);
    scf::ForOp::create(
        b, from, to, stepValue, ValueRange{},
        [&](OpBuilder &nested, Location loc, Value iv, ValueRange) {
          ImplicitLocOpBuilder nb(loc, nested);
          body(nb, iv, size);
          scf::YieldOp::create(nb);
        });
  };
  if (step == 1)
    return emit(lo, hi, 1);
  Value stepValue = arith::ConstantIndexOp::create(b, step);
  Value mainEnd = arith::AddIOp::create(
      b, lo,
      arith::MulIOp::create(b,
                            arith::DivUIOp::create(
                                b, arith::SubIOp::create(b, hi, lo), stepValue),
                            stepValue));
  emit(lo, mainEnd, step);
  emit(mainEnd, hi, 1);
}

struct LowerCPUMatmulsPass
    : atmoe::impl::LowerCPUMatmulsPassBase<LowerCPUMatmulsPass> {
  using LowerCPUMatmulsPassBase::LowerCPUMatmulsPassBase;

  void runOnOperation() override {
    if (tokenTile < 1 || featureTile < 1 || vectorWidth < 1 || kBlock < 1 ||
        tokenBlock < 1 || skinnyTokenTile < 1 || skinnyKBlock < 1 ||
        quantizedTokenTile < 1 || quantizedFeatureVectors < 1) {
      getOperation()->emitError("tile sizes must be positive");
      return signalPassFailure();
    }
    SmallVector<linalg::MatmulOp> matmuls;
    getOperation()->walk([&](linalg::MatmulOp op) {
      if (isSupported(op))
        matmuls.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (linalg::MatmulOp op : matmuls) {
      rewriter.setInsertionPoint(op);
      ImplicitLocOpBuilder b(op.getLoc(), rewriter);
      lower(b,
            {op.getDpsInputs()[0], op.getDpsInputs()[1], op.getDpsInits()[0]});
      rewriter.eraseOp(op);
    }
    SmallVector<linalg::MatmulOp> outerProducts;
    getOperation()->walk([&](linalg::MatmulOp op) {
      if (isOuterProductMatmul(op))
        outerProducts.push_back(op);
    });
    for (linalg::MatmulOp op : outerProducts) {
      rewriter.setInsertionPoint(op);
      ImplicitLocOpBuilder b(op.getLoc(), rewriter);
      atmoe::cpu::emitPanelProduct(b, op.getDpsInputs()[0],
                                   op.getDpsInputs()[1], op.getDpsInits()[0],
                                   vectorWidth, /*prefetch=*/false);
      rewriter.eraseOp(op);
    }
    SmallVector<linalg::GenericOp> quantized;
    getOperation()->walk([&](linalg::GenericOp op) {
      if (atmoe::cpu::isQuantizedMatmul(op))
        quantized.push_back(op);
    });
    for (linalg::GenericOp op : quantized)
      atmoe::cpu::lowerQuantizedMatmul(
          rewriter, op,
          {vectorWidth, quantizedTokenTile, quantizedFeatureVectors,
           quantizedPrefetch, int8Activations, quantizedDequantizeTokens});
    SmallVector<linalg::GenericOp> panels;
    getOperation()->walk([&](linalg::GenericOp op) {
      if (atmoe::cpu::isPanelMatmul(op))
        panels.push_back(op);
    });
    for (linalg::GenericOp op : panels)
      atmoe::cpu::lowerPanelMatmul(rewriter, op, vectorWidth);
  }

  void lower(ImplicitLocOpBuilder &b, Operands ops) {
    KernelEmitter kernel(b, ops, vectorWidth);
    Value c0 = kernel.index(0), c1 = kernel.index(1);
    Value tokens = memref::DimOp::create(b, ops.x, c0);
    Value reduction = memref::DimOp::create(b, ops.x, c1);
    Value features = memref::DimOp::create(b, ops.w, c0);
    Value skinnyTr = kernel.index(skinnyTokenTile);
    Value tokensMain = arith::MulIOp::create(
        b, arith::DivUIOp::create(b, tokens, skinnyTr), skinnyTr);
    Value tr = kernel.index(tokenTile);
    Value skinny = arith::CmpIOp::create(b, arith::CmpIPredicate::sle, tokens,
                                         kernel.index(skinnyTokens));
    // for k0 = lo to hi step `step`: body(k0, min(k0 + step, hi)).
    auto blocks =
        [&](ImplicitLocOpBuilder &ob, Value lo, Value hi, int64_t step,
            function_ref<void(ImplicitLocOpBuilder &, Value, Value)> body) {
          Value stepValue = arith::ConstantIndexOp::create(ob, step);
          scf::ForOp::create(
              ob, lo, hi, stepValue, ValueRange{},
              [&](OpBuilder &nested, Location loc, Value iv, ValueRange) {
                ImplicitLocOpBuilder nb(loc, nested);
                body(nb, iv,
                     arith::MinUIOp::create(
                         nb, arith::AddIOp::create(nb, iv, stepValue), hi));
                scf::YieldOp::create(nb);
              });
        };
    auto tiles = [&](ImplicitLocOpBuilder &ob, Value lo, Value hi, int64_t tr,
                     int64_t nr, Value n, Value k0, Value k1,
                     int64_t prefetch = 0) {
      scf::ForOp::create(
          ob, lo, hi, arith::ConstantIndexOp::create(ob, tr), ValueRange{},
          [&](OpBuilder &nested, Location loc, Value t, ValueRange) {
            ImplicitLocOpBuilder nb(loc, nested);
            KernelEmitter tile(nb, ops, vectorWidth);
            tile.prefetch = prefetch;
            tile.emitTile(tr, nr, t, n, k0, k1);
            scf::YieldOp::create(nb);
          });
    };
    scf::IfOp::create(
        b, skinny,
        [&](OpBuilder &nested, Location loc) {
          // Few tokens: weight rows outermost, so W streams from memory once
          // (a few long contiguous rows at a time) and each k block of a
          // register tile's rows stays in L1 while every token tile uses it.
          ImplicitLocOpBuilder sb(loc, nested);
          splitLoop(sb, c0, features, featureTile,
                    [&](ImplicitLocOpBuilder &nb, Value n, int64_t nr) {
                      blocks(nb, c0, reduction, skinnyKBlock,
                             [&](ImplicitLocOpBuilder &kb, Value k0, Value k1) {
                               tiles(kb, c0, tokensMain, skinnyTokenTile, nr, n,
                                     k0, k1, skinnyPrefetch);
                             });
                      tiles(nb, tokensMain, tokens, 1, nr, n, c0, reduction,
                            skinnyPrefetch);
                    });
          scf::YieldOp::create(sb);
        },
        [&](OpBuilder &nested, Location loc) {
          // More tokens: a k block of a token block of x stays in L2 while
          // the register tiles sweep the weight rows.
          ImplicitLocOpBuilder lb(loc, nested);
          blocks(lb, c0, reduction, kBlock,
                 [&](ImplicitLocOpBuilder &kb, Value k0, Value k1) {
                   blocks(
                       kb, c0, tokens, tokenBlock,
                       [&](ImplicitLocOpBuilder &tb, Value t0, Value t1) {
                         Value tm = arith::AddIOp::create(
                             tb, t0,
                             arith::MulIOp::create(
                                 tb,
                                 arith::DivUIOp::create(
                                     tb, arith::SubIOp::create(tb, t1, t0), tr),
                                 tr));
                         splitLoop(tb, c0, features, featureTile,
                                   [&](ImplicitLocOpBuilder &nb, Value n,
                                       int64_t nr) {
                                     tiles(nb, t0, tm, tokenTile, nr, n, k0,
                                           k1);
                                     tiles(nb, tm, t1, 1, nr, n, k0, k1);
                                   });
                       });
                 });
          scf::YieldOp::create(lb);
        });
  }
};

} // namespace
