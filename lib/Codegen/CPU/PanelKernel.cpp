//===- PanelKernel.cpp - CPU kernel for weights in panels -----------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A panel holds `w` output features of W as rows of k: panel[k, j] =
// W[p*w + j, k]. A register tile of `rows` tokens x `vectors` vectors of
// those features loads each panel vector once (widened from f16/bf16 in
// registers) and multiplies it by `rows` broadcast activations into
// rows x vectors accumulators, which start from and end in y: the classic
// outer-product micro-kernel, with no horizontal sums and one weight load
// per `rows` FMAs. The reduction runs in blocks of panel rows small enough
// to stay in L1 while every token tile and column group uses them.
//
//===----------------------------------------------------------------------===//

#include "PanelKernel.h"

#include "KernelBuilding.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/bit.h"

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// Bytes of one reduction block of a panel: within the L1 data cache of
/// every x86-64 core (32 KiB or more) beside the tile's activations.
constexpr int64_t kBlockBytes = 16 * 1024;

/// Bytes of the token rows of y and of x that one token block touches per
/// reduction block: within half the L2 cache of every x86-64 core with
/// AVX2 (256 KiB or more), so that many tokens do not stream y through L3
/// once per block of k (measured at d = 2048: 331 GFLOP/s at T = 128, 217
/// at T = 4096 without it).
constexpr int64_t kTokenBlockBytes = 128 * 1024;

/// Independent FMA chains that hide the FMA latency on x86-64 cores: two
/// pipes of 4 cycles.
constexpr int64_t kMinChains = 8;

/// The cache line of every x86-64 CPU.
constexpr int64_t kCacheLineBytes = 64;

/// The register tile: `rows` tokens x `vectors` vectors of features.
struct TileShape {
  int64_t rows, vectors;
};

/// The tile that needs the fewest loads per FMA (rows * vectors FMAs for
/// rows + vectors loads) within the vector registers: rows * vectors
/// accumulators, `vectors` weight vectors and one broadcast. AVX-512 has
/// 32 registers (6 x 4 tiles), AVX2 16 (6 x 2).
TileShape registerTile(int64_t registers, int64_t panelVectors) {
  TileShape best{1, 1};
  double bestRatio = 0;
  for (int64_t vectors = 1; vectors <= panelVectors; ++vectors) {
    int64_t rows = (registers - vectors - 1) / vectors;
    if (panelVectors % vectors != 0 || rows < 1)
      continue;
    double ratio = double(rows * vectors) / double(rows + vectors);
    if (ratio > bestRatio)
      best = {rows, vectors}, bestRatio = ratio;
  }
  return best;
}

/// Vectors per row for a remainder tile of `rows` (< the main tile's)
/// tokens: as many as the accumulators, one weight and one broadcast fit in
/// the registers, so that one token on AVX2 still reads a whole panel row
/// per step rather than one cache line per pass.
int64_t remainderVectors(int64_t registers, int64_t rows,
                         int64_t panelVectors) {
  int64_t vectors = panelVectors;
  while (vectors > 1 &&
         (panelVectors % vectors != 0 || rows * vectors + 2 > registers))
    --vectors;
  return vectors;
}

/// AVX-512 has 32 vector registers, AVX2 16.
int64_t vectorRegisters(int64_t vectorWidth) {
  return vectorWidth >= 16 ? 32 : 16;
}

class PanelKernelEmitter {
public:
  PanelKernelEmitter(ImplicitLocOpBuilder &b, Value x, Value panel, Value y,
                     int64_t vectorWidth, bool prefetch)
      : b(b), x(x), panel(panel), y(y), prefetch(prefetch), width(vectorWidth),
        f32Vector(VectorType::get({vectorWidth}, b.getF32Type())) {
    auto type = cast<MemRefType>(panel.getType());
    panelWidth = type.getDimSize(1);
    tile = registerTile(vectorRegisters(width), panelWidth / width);
    int64_t elementBytes = type.getElementTypeBitWidth() / 8;
    lineElements = std::max<int64_t>(1, kCacheLineBytes / elementBytes);
    blockRows = std::max<int64_t>(1, kBlockBytes / (panelWidth * elementBytes));
    int64_t bytesPerToken = (panelWidth + blockRows) * int64_t(sizeof(float));
    tokenBlock = std::max<int64_t>(tile.rows, kTokenBlockBytes / bytesPerToken /
                                                  tile.rows * tile.rows);
  }

  void emit() {
    Value reduction = memref::DimOp::create(b, x, 1);
    Value tokens = memref::DimOp::create(b, x, 0);
    forLoop(index(0), tokens, tokenBlock, [&](Value t0) {
      Value t1 = arith::MinUIOp::create(
          b, arith::AddIOp::create(b, t0, index(tokenBlock)), tokens);
      forLoop(index(0), reduction, blockRows, [&](Value k0) {
        Value k1 = arith::MinUIOp::create(
            b, arith::AddIOp::create(b, k0, index(blockRows)), reduction);
        emitTokens(t0, t1, k0, k1);
      });
    });
  }

private:
  /// Token rows [t0, t1) of one block of k: full register tiles, then the
  /// remaining rows (fewer than a tile) in power-of-two tiles, each reading
  /// the block once: 5 rows are a tile of 4 and one of 1.
  void emitTokens(Value t0, Value t1, Value k0, Value k1) {
    Value mainEnd = arith::AddIOp::create(
        b, t0, roundDown(arith::SubIOp::create(b, t1, t0), tile.rows));
    forLoop(t0, mainEnd, tile.rows,
            [&](Value t) { emitRows(t, tile.rows, k0, k1); });
    Value left = arith::SubIOp::create(b, t1, mainEnd);
    for (int64_t rows = llvm::bit_floor(uint64_t(tile.rows - 1)); rows >= 1;
         rows /= 2) {
      Value has = arith::CmpIOp::create(
          b, arith::CmpIPredicate::ne,
          arith::AndIOp::create(b, left, index(rows)), index(0));
      // Past the rows of the larger tiles: mainEnd + left - left % 2rows.
      Value t = arith::AddIOp::create(
          b, mainEnd,
          arith::SubIOp::create(
              b, left, arith::RemUIOp::create(b, left, index(2 * rows))));
      auto choice = scf::IfOp::create(b, has, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(choice.thenBlock()->getTerminator());
      emitRows(t, rows, k0, k1);
    }
  }

  /// y[t : t+rows, :] += x[t : t+rows, k0 : k1] panel[k0 : k1, :], one
  /// register tile per group of vectors of features.
  void emitRows(Value t, int64_t rows, Value k0, Value k1) {
    int64_t panelVectors = panelWidth / width;
    int64_t vectors =
        rows == tile.rows
            ? tile.vectors
            : remainderVectors(vectorRegisters(width), rows, panelVectors);
    for (int64_t first = 0; first < panelVectors; first += vectors)
      emitTile(t, rows, vectors, first * width, k0, k1);
  }

  void emitTile(Value t, int64_t rows, int64_t vectors, int64_t column,
                Value k0, Value k1) {
    SmallVector<Value> accs;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < vectors; ++j)
        accs.push_back(vector::LoadOp::create(b, f32Vector, y,
                                              outputIndices(t, i, column, j)));
    // A small tile's accumulators are too few chains to hide the FMA
    // latency (two FMA pipes of 4 cycles want 8): even and odd rows of the
    // panel go to two sets, added once at the end.
    if (rows * vectors <= kMinChains / 2) {
      Value pairsEnd = arith::AddIOp::create(
          b, k0, roundDown(arith::SubIOp::create(b, k1, k0), 2));
      SmallVector<Value> both(accs);
      Value zero = arith::ConstantOp::create(
          b, f32Vector, DenseElementsAttr::get(f32Vector, 0.0f));
      both.append(accs.size(), zero);
      auto pairs = scf::ForOp::create(b, k0, pairsEnd, index(2), both);
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(pairs.getBody());
        Value k = pairs.getInductionVar();
        ValueRange args = pairs.getRegionIterArgs();
        SmallVector<Value> next =
            emitStep(k, t, rows, vectors, column, args.take_front(accs.size()));
        llvm::append_range(next, emitStep(arith::AddIOp::create(b, k, index(1)),
                                          t, rows, vectors, column,
                                          args.drop_front(accs.size())));
        scf::YieldOp::create(b, next);
      }
      for (size_t i = 0; i < accs.size(); ++i)
        accs[i] = arith::AddFOp::create(b, pairs.getResult(i),
                                        pairs.getResult(accs.size() + i));
      k0 = pairsEnd;
    }
    auto loop = scf::ForOp::create(b, k0, k1, index(1), accs);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(loop.getBody());
      scf::YieldOp::create(b, emitStep(loop.getInductionVar(), t, rows, vectors,
                                       column, loop.getRegionIterArgs()));
    }
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < vectors; ++j)
        vector::StoreOp::create(b, loop.getResult(i * vectors + j), y,
                                outputIndices(t, i, column, j));
  }

  /// One row k of the panel into the tile's accumulators.
  SmallVector<Value> emitStep(Value k, Value t, int64_t rows, int64_t vectors,
                              int64_t column, ValueRange accs) {
    // Full tiles (six tokens or more) compute long enough per row for the
    // next block to arrive meanwhile; below that the loop is bound by
    // memory, the hardware prefetcher keeps up and the extra loads of a
    // software prefetch only slow it (measured: docs/performance.md).
    if (prefetch && rows == tile.rows)
      prefetchNextBlock(k, column, vectors);
    SmallVector<Value> weights;
    for (int64_t j = 0; j < vectors; ++j)
      weights.push_back(loadWeights(k, column + j * width));
    SmallVector<Value> next(accs);
    for (int64_t i = 0; i < rows; ++i) {
      Value xi = memref::LoadOp::create(
          b, x, ValueRange{arith::AddIOp::create(b, t, index(i)), k});
      Value broadcast = vector::BroadcastOp::create(b, f32Vector, xi);
      for (int64_t j = 0; j < vectors; ++j)
        next[i * vectors + j] = vector::FMAOp::create(b, broadcast, weights[j],
                                                      next[i * vectors + j]);
    }
    return next;
  }

  /// Asks for this tile's cache lines of panel row k + blockRows (clamped
  /// to the last row), so that the next block is in L1 when it starts.
  void prefetchNextBlock(Value k, int64_t column, int64_t vectors) {
    Value last =
        arith::SubIOp::create(b, memref::DimOp::create(b, panel, 0), index(1));
    Value ahead = arith::MinUIOp::create(
        b, arith::AddIOp::create(b, k, index(blockRows)), last);
    for (int64_t c = column; c < column + vectors * width; c += lineElements)
      memref::PrefetchOp::create(b, panel, ValueRange{ahead, index(c)},
                                 /*isWrite=*/false, /*localityHint=*/3,
                                 /*isDataCache=*/true);
  }

  SmallVector<Value> outputIndices(Value t, int64_t i, int64_t column,
                                   int64_t j) {
    return {arith::AddIOp::create(b, t, index(i)), index(column + j * width)};
  }

  /// Panel row k at `column`, widened to f32 in registers.
  Value loadWeights(Value k, int64_t column) {
    Type element = cast<MemRefType>(panel.getType()).getElementType();
    Value loaded = vector::LoadOp::create(b, VectorType::get({width}, element),
                                          panel, ValueRange{k, index(column)});
    return element.isF32() ? loaded
                           : arith::ExtFOp::create(b, f32Vector, loaded);
  }

  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value roundDown(Value v, int64_t step) { return cpu::roundDown(b, v, step); }
  void forLoop(Value lo, Value hi, int64_t step,
               function_ref<void(Value)> body) {
    cpu::forLoop(b, lo, hi, step, body);
  }

  ImplicitLocOpBuilder &b;
  Value x, panel, y;
  bool prefetch;
  int64_t width, panelWidth, blockRows, tokenBlock, lineElements;
  TileShape tile;
  VectorType f32Vector;
};

/// Whether `value` is block argument `index` of `block`, possibly widened
/// by arith.extf.
bool isArgument(Value value, Block &block, unsigned index) {
  if (auto ext = value.getDefiningOp<arith::ExtFOp>())
    value = ext.getIn();
  return value == block.getArgument(index);
}

/// Whether the body is yield(acc + in0 * in1), operands in either order.
bool isMultiplyAdd(linalg::GenericOp op) {
  Block &body = op.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getValues()[0].getDefiningOp<arith::AddFOp>();
  if (!add)
    return false;
  Value acc = add.getLhs(), product = add.getRhs();
  if (acc != body.getArgument(2))
    std::swap(acc, product);
  auto mul = product.getDefiningOp<arith::MulFOp>();
  if (acc != body.getArgument(2) || !mul)
    return false;
  return (isArgument(mul.getLhs(), body, 0) &&
          isArgument(mul.getRhs(), body, 1)) ||
         (isArgument(mul.getLhs(), body, 1) &&
          isArgument(mul.getRhs(), body, 0));
}

/// The run-time condition for the kernel: the tile reads exactly one panel
/// from its first feature (the CPU schedule's tiles of `width` features).
Value readsOnePanel(ImplicitLocOpBuilder &b, Value weights, int64_t width) {
  auto metadata = memref::ExtractStridedMetadataOp::create(b, weights);
  auto c = [&](int64_t v) { return arith::ConstantIndexOp::create(b, v); };
  auto eq = [&](Value l, Value r) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::eq, l, r);
  };
  Value onePanel = eq(metadata.getSizes()[0], c(1));
  Value allFeatures = eq(metadata.getSizes()[2], c(width));
  Value firstFeature =
      eq(arith::RemUIOp::create(b, metadata.getOffset(), c(width)), c(0));
  return arith::AndIOp::create(
      b, onePanel, arith::AndIOp::create(b, allFeatures, firstFeature));
}

} // namespace

bool cpu::isPanelMatmul(linalg::GenericOp op) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 ||
      op->hasAttr(AtmoeDialect::kQuantizationAttrName))
    return false;
  Value x = op.getDpsInputs()[0], w = op.getDpsInputs()[1],
        y = op.getDpsInits()[0];
  if (!cpu::hasUnitInnerStride(x, 2) || !cpu::hasUnitInnerStride(y, 2) ||
      !cpu::hasUnitInnerStride(w, 3))
    return false;
  auto wType = cast<MemRefType>(w.getType());
  Type element = wType.getElementType();
  int64_t width = wType.getDimSize(2);
  if (!getElementTypeOrSelf(x).isF32() || !getElementTypeOrSelf(y).isF32() ||
      !(element.isF32() || element.isF16() || element.isBF16()) ||
      ShapedType::isDynamic(width))
    return false;
  MLIRContext *ctx = op.getContext();
  AffineExpr t, n, k;
  bindDims(ctx, t, n, k);
  SmallVector<AffineMap> expected = {
      AffineMap::get(3, 0, {t, k}, ctx),
      AffineMap::get(3, 0, {n.floorDiv(width), k, n % width}, ctx),
      AffineMap::get(3, 0, {t, n}, ctx)};
  SmallVector<utils::IteratorType> iterators = {utils::IteratorType::parallel,
                                                utils::IteratorType::parallel,
                                                utils::IteratorType::reduction};
  return op.getIndexingMapsArray() == expected &&
         op.getIteratorTypesArray() == iterators && isMultiplyAdd(op);
}

void cpu::emitPanelProduct(ImplicitLocOpBuilder &b, Value x, Value panel,
                           Value y, int64_t vectorWidth, bool prefetch) {
  int64_t panelWidth = cast<MemRefType>(panel.getType()).getDimSize(1);
  if (panelWidth % vectorWidth != 0)
    vectorWidth = 1;
  PanelKernelEmitter(b, x, panel, y, vectorWidth, prefetch).emit();
}

void cpu::lowerPanelMatmul(RewriterBase &rewriter, linalg::GenericOp op,
                           int64_t vectorWidth) {
  rewriter.setInsertionPoint(op);
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  Value x = op.getDpsInputs()[0], w = op.getDpsInputs()[1],
        y = op.getDpsInits()[0];
  int64_t width = cast<MemRefType>(w.getType()).getDimSize(2);
  auto choice = scf::IfOp::create(b, readsOnePanel(b, w, width),
                                  /*withElseRegion=*/true);
  // The generic itself stays in the else branch: exact for any tiling.
  rewriter.moveOpBefore(op, choice.elseBlock()->getTerminator());
  b.setInsertionPoint(choice.thenBlock()->getTerminator());
  emitPanelProduct(b, x, cpu::panelRows(b, w), y, vectorWidth,
                   /*prefetch=*/true);
}
