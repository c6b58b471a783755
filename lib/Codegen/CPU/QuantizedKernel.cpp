//===- QuantizedKernel.cpp - CPU kernels for GPTQ products ----------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// GPTQ packs 32 / bits consecutive input features of one output feature per
// i32 word, and the words of one row of qweight run along the output
// features. The kernel therefore vectorises along n: a vector load brings
// `width` words (one per output feature), each holding values for
// 32 / bits consecutive k; shifting and masking gives the values of one k
// for `width` outputs, which are converted to f32, scaled in registers
// (fma(q, scale, -zero * scale) with the group's scales and zero points
// loaded once per group) and multiplied into `tokenTile` x `featureVectors`
// vector accumulators by broadcast activations. Only the packed bytes come
// from memory; there is no horizontal sum, and y is updated once per tile.
//
//===----------------------------------------------------------------------===//

#include "QuantizedKernel.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// The buffers of one GPTQ product (zeros may be null).
struct Operands {
  Value x, qweight, scales, zeros, y;
};

Operands operandsOf(linalg::GenericOp op) {
  Operands ops;
  ops.x = op.getDpsInputs()[0];
  ops.qweight = op.getDpsInputs()[1];
  ops.scales = op.getDpsInputs()[2];
  if (op.getNumDpsInputs() > 3)
    ops.zeros = op.getDpsInputs()[3];
  ops.y = op.getDpsInits()[0];
  return ops;
}

class QuantizedKernelEmitter {
public:
  QuantizedKernelEmitter(ImplicitLocOpBuilder &b, Operands ops, GptqAttr quant,
                         const cpu::QuantizedKernelOptions &options)
      : b(b), ops(ops), quant(quant), width(options.vectorWidth),
        vectors(options.featureVectors), tokenTile(options.tokenTile),
        prefetch(options.prefetchRows),
        f32Vector(VectorType::get({width}, b.getF32Type())),
        i32Vector(VectorType::get({width}, b.getI32Type())) {}

  /// The whole product: blocks of `vectors` x `width` output features (then
  /// single, masked vectors for the rest), token tiles of `tokenTile` rows
  /// (then single rows).
  void emit() {
    Value tokens = memref::DimOp::create(b, ops.x, index(0));
    if (tokenTile == 1)
      return emitBlocks(tokens, vectors, /*tiles=*/true);
    // Fewer tokens than a tile: one row at a time over twice the features,
    // so each packed row is read in longer runs.
    Value few = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, tokens,
                                      index(tokenTile));
    auto choice = scf::IfOp::create(b, few, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(choice.thenBlock()->getTerminator());
    // One token over whole vectors of features: rows streamed whole.
    Value features = memref::DimOp::create(b, ops.y, 1);
    Value oneToken = arith::AndIOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, tokens, index(1)),
        arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                              arith::RemUIOp::create(b, features, index(width)),
                              index(0)));
    auto decode = scf::IfOp::create(b, oneToken, /*withElseRegion=*/true);
    b.setInsertionPoint(decode.thenBlock()->getTerminator());
    // Its stack buffer lives for one tile: --convert-scf-to-openmp puts
    // each iteration of a thread's loop in an alloca scope.
    emitOneToken(features);
    b.setInsertionPoint(decode.elseBlock()->getTerminator());
    emitBlocks(tokens, 2 * vectors, /*tiles=*/false);
    b.setInsertionPoint(choice.elseBlock()->getTerminator());
    emitBlocks(tokens, vectors, /*tiles=*/true);
  }

  /// Value `p` of each lane's packed word, as f32.
  Value unpack(Value packed, int64_t p) {
    Value shifted =
        p == 0 ? packed
               : arith::ShRUIOp::create(b, packed,
                                        splatI32(int32_t(p * quant.getBits())));
    return arith::UIToFPOp::create(
        b, f32Vector,
        arith::AndIOp::create(b, shifted,
                              splatI32((1 << quant.getBits()) - 1)));
  }

  /// One token (decoding): each packed row is read whole across the tile's
  /// features, in one run, instead of `width` words at a time. Per group the
  /// products with the raw integers accumulate in a stack buffer beside the
  /// sum of the group's activations; then y += s (part - z sum x).
  void emitOneToken(Value features) {
    int64_t perWord = quant.getValuesPerWord();
    int64_t wordsPerGroup = quant.getGroupSize() / perWord;
    Value part = memref::AllocaOp::create(
        b, MemRefType::get({ShapedType::kDynamic}, b.getF32Type()),
        ValueRange{features});
    Value zeroVector = splatF32(0.0f);
    Value c0 = index(0);
    Value groups = memref::DimOp::create(b, ops.scales, 0);
    forLoop(c0, groups, 1, [&](Value g) {
      forLoop(c0, features, width, [&](Value n) {
        vector::StoreOp::create(b, zeroVector, part, ValueRange{n});
      });
      Value firstK = arith::MulIOp::create(b, g, index(quant.getGroupSize()));
      auto sumLoop = scf::ForOp::create(
          b, firstK,
          arith::AddIOp::create(b, firstK, index(quant.getGroupSize())),
          index(1),
          ValueRange{arith::ConstantOp::create(b, b.getF32FloatAttr(0))});
      {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(sumLoop.getBody());
        Value xk = memref::LoadOp::create(
            b, ops.x, ValueRange{c0, sumLoop.getInductionVar()});
        scf::YieldOp::create(b, ValueRange{arith::AddFOp::create(
                                    b, sumLoop.getRegionIterArgs()[0], xk)});
      }
      Value firstWord = arith::MulIOp::create(b, g, index(wordsPerGroup));
      forLoop(firstWord,
              arith::AddIOp::create(b, firstWord, index(wordsPerGroup)), 1,
              [&](Value word) { streamWord(word, features, part); });
      Value activationSum =
          vector::BroadcastOp::create(b, f32Vector, sumLoop.getResult(0));
      forLoop(c0, features, width, [&](Value n) {
        SmallVector<Value> scales, negZeroScales;
        groupConstants(g, n, 1, /*mask=*/{}, scales, negZeroScales);
        Value sums = vector::LoadOp::create(b, f32Vector, part, ValueRange{n});
        Value old =
            vector::LoadOp::create(b, f32Vector, ops.y, ValueRange{c0, n});
        Value scaled = vector::FMAOp::create(b, scales[0], sums, old);
        vector::StoreOp::create(
            b,
            vector::FMAOp::create(b, negZeroScales[0], activationSum, scaled),
            ops.y, ValueRange{c0, n});
      });
    });
  }

  /// part[n] += x[0, k] q[k, n] for the 32 / bits values k of packed row
  /// `word`, across all features.
  void streamWord(Value word, Value features, Value part) {
    int64_t perWord = quant.getValuesPerWord();
    Value c0 = index(0);
    Value k0 = arith::MulIOp::create(b, word, index(perWord));
    SmallVector<Value> xs;
    for (int64_t p = 0; p < perWord; ++p)
      xs.push_back(vector::BroadcastOp::create(
          b, f32Vector,
          memref::LoadOp::create(
              b, ops.x,
              ValueRange{c0, arith::AddIOp::create(b, k0, index(p))})));
    Value lastRow = arith::SubIOp::create(
        b, memref::DimOp::create(b, ops.qweight, 0), index(1));
    Value ahead = arith::MinUIOp::create(
        b, arith::AddIOp::create(b, word, index(prefetch)), lastRow);
    forLoop(c0, features, width, [&](Value n) {
      Value packed = vector::LoadOp::create(b, i32Vector, ops.qweight,
                                            ValueRange{word, n});
      if (prefetch > 0)
        memref::PrefetchOp::create(b, ops.qweight, ValueRange{ahead, n},
                                   /*isWrite=*/false, /*localityHint=*/1,
                                   /*isDataCache=*/true);
      Value acc = vector::LoadOp::create(b, f32Vector, part, ValueRange{n});
      for (int64_t p = 0; p < perWord; ++p)
        acc = vector::FMAOp::create(b, xs[p], unpack(packed, p), acc);
      vector::StoreOp::create(b, acc, part, ValueRange{n});
    });
  }

  /// Blocks of `count` x `width` output features (then single, masked
  /// vectors), over token tiles of `tokenTile` rows and single rows (only
  /// single rows without `tiles`).
  void emitBlocks(Value tokens, int64_t count, bool tiles) {
    Value features = memref::DimOp::create(b, ops.y, 1);
    Value fullEnd = roundDown(features, count * width);
    auto rowsOf = [&](int64_t blockCount, Value mask, Value n) {
      auto body = [&](Value t, int64_t rows) {
        emitTile(t, rows, n, blockCount, mask);
      };
      if (tiles)
        return tokenTiles(tokens, body);
      forLoop(index(0), tokens, 1, [&](Value t) { body(t, 1); });
    };
    forLoop(index(0), fullEnd, count * width,
            [&](Value n) { rowsOf(count, /*mask=*/{}, n); });
    forLoop(fullEnd, features, width, [&](Value n) {
      Value left = arith::SubIOp::create(b, features, n);
      Value mask = vector::CreateMaskOp::create(
          b, VectorType::get({width}, b.getI1Type()), ValueRange{left});
      rowsOf(1, mask, n);
    });
  }

private:
  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value splatI32(int32_t v) {
    return arith::ConstantOp::create(
        b, i32Vector,
        DenseElementsAttr::get(i32Vector, b.getI32IntegerAttr(v)));
  }
  Value splatF32(float v) {
    return arith::ConstantOp::create(
        b, f32Vector, DenseElementsAttr::get(f32Vector, b.getF32FloatAttr(v)));
  }
  Value roundDown(Value v, int64_t step) {
    return arith::MulIOp::create(b, arith::DivUIOp::create(b, v, index(step)),
                                 index(step));
  }

  /// for iv = lo to hi step `step`: body(iv), with `b` inside the loop.
  void forLoop(Value lo, Value hi, int64_t step,
               function_ref<void(Value)> body) {
    auto loop = scf::ForOp::create(b, lo, hi, index(step));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    body(loop.getInductionVar());
  }

  void tokenTiles(Value tokens, function_ref<void(Value, int64_t)> body) {
    Value mainEnd = roundDown(tokens, tokenTile);
    forLoop(index(0), mainEnd, tokenTile, [&](Value t) { body(t, tokenTile); });
    if (tokenTile > 1)
      forLoop(mainEnd, tokens, 1, [&](Value t) { body(t, 1); });
  }

  Value load(Value base, VectorType type, ValueRange indices, Value mask) {
    if (!mask)
      return vector::LoadOp::create(b, type, base, indices);
    Value zero = arith::ConstantOp::create(b, type, b.getZeroAttr(type));
    return vector::MaskedLoadOp::create(b, type, base, indices, mask, zero);
  }

  /// The scales of group `g` for the `count` vectors of features at `n`,
  /// and -zero * scale beside each.
  void groupConstants(Value g, Value n, int64_t count, Value mask,
                      SmallVector<Value> &scales,
                      SmallVector<Value> &negZeroScales) {
    Type scaleType = cast<MemRefType>(ops.scales.getType()).getElementType();
    for (int64_t j = 0; j < count; ++j) {
      Value col = arith::AddIOp::create(b, n, index(j * width));
      Value s = load(ops.scales, VectorType::get({width}, scaleType),
                     ValueRange{g, col}, mask);
      if (!scaleType.isF32())
        s = arith::ExtFOp::create(b, f32Vector, s);
      Value negZero = arith::NegFOp::create(b, zeroPoints(g, col, mask));
      scales.push_back(s);
      negZeroScales.push_back(arith::MulFOp::create(b, negZero, s));
    }
  }

  /// The zero points of group `g` for the features [col, col + width): the
  /// packed words gathered per lane, shifted to each lane's value.
  Value zeroPoints(Value g, Value col, Value mask) {
    int64_t perWord = quant.getValuesPerWord();
    if (!ops.zeros)
      return splatF32(float(1 << (quant.getBits() - 1)));
    Value shifted = !mask && width % perWord == 0
                        ? spreadWords(g, col, perWord)
                        : gatherWords(g, col, mask, perWord);
    Value zero = arith::UIToFPOp::create(
        b, f32Vector,
        arith::AndIOp::create(b, shifted,
                              splatI32((1 << quant.getBits()) - 1)));
    if (quant.getZeroOffset() == 0)
      return zero;
    return arith::AddFOp::create(b, zero,
                                 splatF32(float(quant.getZeroOffset())));
  }

  /// The zero points of the features [col, col + width) when col starts a
  /// word, shifted to the low bits of each lane: one short load, each word
  /// copied to the lanes it holds.
  Value spreadWords(Value g, Value col, int64_t perWord) {
    int64_t count = width / perWord;
    Value words = vector::LoadOp::create(
        b, VectorType::get({count}, b.getI32Type()), ops.zeros,
        ValueRange{g, arith::DivUIOp::create(b, col, index(perWord))});
    SmallVector<int64_t> lanes;
    SmallVector<int32_t> shifts;
    for (int64_t lane = 0; lane < width; ++lane) {
      lanes.push_back(lane / perWord);
      shifts.push_back(int32_t(lane % perWord * quant.getBits()));
    }
    return arith::ShRUIOp::create(
        b, vector::ShuffleOp::create(b, words, words, lanes),
        arith::ConstantOp::create(
            b, i32Vector, DenseElementsAttr::get(i32Vector, ArrayRef(shifts))));
  }

  /// The zero points of the features [col, col + width) (lanes past `mask`
  /// are 0), shifted to the low bits of each lane: one gather.
  Value gatherWords(Value g, Value col, Value mask, int64_t perWord) {
    // Lane l is feature col + l: value (col % perWord + l) % perWord of word
    // col / perWord + (col % perWord + l) / perWord.
    SmallVector<int32_t> iota;
    for (int64_t lane = 0; lane < width; ++lane)
      iota.push_back(int32_t(lane));
    Value first = arith::IndexCastOp::create(
        b, b.getI32Type(), arith::RemUIOp::create(b, col, index(perWord)));
    Value lanes = arith::AddIOp::create(
        b, vector::BroadcastOp::create(b, i32Vector, first),
        arith::ConstantOp::create(
            b, i32Vector, DenseElementsAttr::get(i32Vector, ArrayRef(iota))));
    Value words = arith::DivUIOp::create(b, lanes, splatI32(perWord));
    Value shifts = arith::MulIOp::create(
        b, arith::RemUIOp::create(b, lanes, splatI32(perWord)),
        splatI32(quant.getBits()));
    if (!mask)
      mask = vector::ConstantMaskOp::create(
          b, VectorType::get({width}, b.getI1Type()), ArrayRef<int64_t>{width});
    Value gathered = vector::GatherOp::create(
        b, i32Vector, ops.zeros,
        ValueRange{g, arith::DivUIOp::create(b, col, index(perWord))}, words,
        mask, splatI32(0));
    return arith::ShRUIOp::create(b, gathered, shifts);
  }

  /// y[t : t+rows, n : n + count*width] += x W^T for those rows and features.
  void emitTile(Value t, int64_t rows, Value n, int64_t count, Value mask) {
    int64_t perWord = quant.getValuesPerWord();
    int64_t wordsPerGroup = quant.getGroupSize() / perWord;
    Value zeroVector = splatF32(0.0f);
    Value groups = memref::DimOp::create(b, ops.scales, 0);
    SmallVector<Value> init(rows * count, zeroVector);
    auto groupLoop = scf::ForOp::create(b, index(0), groups, index(1), init);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(groupLoop.getBody());
      Value g = groupLoop.getInductionVar();
      SmallVector<Value> scales, negZeroScales;
      groupConstants(g, n, count, mask, scales, negZeroScales);
      // One token: the group's products with the raw integers and the sum
      // of its activations, scaled once per group (s (sum x q - z sum x)):
      // a conversion and an FMA per value instead of two FMAs.
      bool groupSums = rows == 1;
      SmallVector<Value> carried(groupLoop.getRegionIterArgs());
      if (groupSums) {
        carried.assign(count, zeroVector);
        carried.push_back(
            arith::ConstantOp::create(b, b.getF32FloatAttr(0.0f)));
      }
      Value firstWord = arith::MulIOp::create(b, g, index(wordsPerGroup));
      auto wordLoop = scf::ForOp::create(
          b, firstWord,
          arith::AddIOp::create(b, firstWord, index(wordsPerGroup)), index(1),
          carried);
      b.setInsertionPointToStart(wordLoop.getBody());
      SmallVector<Value> sums(wordLoop.getRegionIterArgs());
      accumulateWord(t, rows, n, count, mask, wordLoop.getInductionVar(),
                     groupSums ? ArrayRef<Value>() : ArrayRef<Value>(scales),
                     negZeroScales, sums);
      scf::YieldOp::create(b, sums);
      b.setInsertionPointToEnd(groupLoop.getBody());
      SmallVector<Value> accs(wordLoop.getResults());
      if (groupSums)
        accs = scaleGroup(groupLoop.getRegionIterArgs(), accs, scales,
                          negZeroScales);
      scf::YieldOp::create(b, accs);
    }
    updateOutput(t, rows, n, count, mask, groupLoop.getResults());
  }

  /// accs + s (part - z sum x), from the group's `sums` (the products with
  /// the raw integers, then the sum of the activations).
  SmallVector<Value> scaleGroup(ValueRange accs, ArrayRef<Value> sums,
                                ArrayRef<Value> scales,
                                ArrayRef<Value> negZeroScales) {
    Value activationSum =
        vector::BroadcastOp::create(b, f32Vector, sums.back());
    SmallVector<Value> result;
    for (auto [j, acc] : llvm::enumerate(accs)) {
      Value scaled = vector::FMAOp::create(b, scales[j], sums[j], acc);
      result.push_back(
          vector::FMAOp::create(b, negZeroScales[j], activationSum, scaled));
    }
    return result;
  }

  /// The FMAs of one row of packed words (32 / bits values of k): with
  /// `scales`, of the dequantised weights into `accs`; without, of the raw
  /// integers into one token's sums, followed by the sum of its activations.
  void accumulateWord(Value t, int64_t rows, Value n, int64_t count, Value mask,
                      Value word, ArrayRef<Value> scales,
                      ArrayRef<Value> negZeroScales, SmallVector<Value> &accs) {
    int64_t perWord = quant.getValuesPerWord();
    SmallVector<Value> packed;
    for (int64_t j = 0; j < count; ++j)
      packed.push_back(
          load(ops.qweight, i32Vector,
               ValueRange{word, arith::AddIOp::create(b, n, index(j * width))},
               mask));
    // A tile reads a short run of each packed row, rows a whole matrix row
    // apart: ask for the rows `prefetch` ahead so that DRAM streams them.
    if (prefetch > 0 && !mask) {
      Value rows = memref::DimOp::create(b, ops.qweight, 0);
      Value ahead = arith::MinUIOp::create(
          b, arith::AddIOp::create(b, word, index(prefetch)),
          arith::SubIOp::create(b, rows, index(1)));
      for (int64_t j = 0; j < count; ++j)
        memref::PrefetchOp::create(
            b, ops.qweight,
            ValueRange{ahead, arith::AddIOp::create(b, n, index(j * width))},
            /*isWrite=*/false, /*localityHint=*/1, /*isDataCache=*/true);
    }
    Value k0 = arith::MulIOp::create(b, word, index(perWord));
    for (int64_t p = 0; p < perWord; ++p) {
      SmallVector<Value> weights;
      for (int64_t j = 0; j < count; ++j) {
        Value q = unpack(packed[j], p);
        weights.push_back(
            scales.empty()
                ? q
                : vector::FMAOp::create(b, q, scales[j], negZeroScales[j]));
      }
      Value k = arith::AddIOp::create(b, k0, index(p));
      for (int64_t i = 0; i < rows; ++i) {
        Value xi = memref::LoadOp::create(
            b, ops.x, ValueRange{arith::AddIOp::create(b, t, index(i)), k});
        if (scales.empty())
          accs.back() = arith::AddFOp::create(b, accs.back(), xi);
        Value broadcast = vector::BroadcastOp::create(b, f32Vector, xi);
        for (int64_t j = 0; j < count; ++j)
          accs[i * count + j] = vector::FMAOp::create(b, broadcast, weights[j],
                                                      accs[i * count + j]);
      }
    }
  }

  void updateOutput(Value t, int64_t rows, Value n, int64_t count, Value mask,
                    ValueRange accs) {
    for (int64_t i = 0; i < rows; ++i) {
      Value row = arith::AddIOp::create(b, t, index(i));
      for (int64_t j = 0; j < count; ++j) {
        Value col = arith::AddIOp::create(b, n, index(j * width));
        Value old = load(ops.y, f32Vector, ValueRange{row, col}, mask);
        Value sum = arith::AddFOp::create(b, old, accs[i * count + j]);
        if (mask)
          vector::MaskedStoreOp::create(b, ops.y, ValueRange{row, col}, mask,
                                        sum);
        else
          vector::StoreOp::create(b, sum, ops.y, ValueRange{row, col});
      }
    }
  }

  ImplicitLocOpBuilder &b;
  Operands ops;
  GptqAttr quant;
  int64_t width, vectors, tokenTile, prefetch;
  VectorType f32Vector, i32Vector;
};

/// Whether `value` is a 2-D memref of `element` type with unit inner stride.
bool isRowMajor(Value value, function_ref<bool(Type)> element) {
  auto type = dyn_cast<MemRefType>(value.getType());
  if (!type || type.getRank() != 2 || !element(type.getElementType()))
    return false;
  SmallVector<int64_t> strides;
  int64_t offset;
  return succeeded(type.getStridesAndOffset(strides, offset)) &&
         strides.back() == 1;
}

/// The run-time condition for the kernel: the tile's first output feature
/// starts a word of zero points and its first packed row is row 0 (whole
/// groups along k), as the CPU schedule's tiles always are.
Value fitsKernel(ImplicitLocOpBuilder &b, Operands ops, GptqAttr quant) {
  auto metadata = memref::ExtractStridedMetadataOp::create(b, ops.qweight);
  Value offset = metadata.getOffset();
  Value rowStride = metadata.getStrides()[0];
  Value perWord = arith::ConstantIndexOp::create(b, quant.getValuesPerWord());
  Value zero = arith::ConstantIndexOp::create(b, 0);
  Value aligned =
      arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                            arith::RemUIOp::create(b, offset, perWord), zero);
  Value firstRow =
      arith::CmpIOp::create(b, arith::CmpIPredicate::ult, offset, rowStride);
  return arith::AndIOp::create(b, aligned, firstRow);
}

} // namespace

bool cpu::isQuantizedMatmul(linalg::GenericOp op) {
  auto quant = op->getAttrOfType<GptqAttr>(AtmoeDialect::kQuantizationAttrName);
  if (!quant || !op.hasPureBufferSemantics() || op.getNumDpsInits() != 1 ||
      op.getNumDpsInputs() < 3 || op.getNumDpsInputs() > 4)
    return false;
  Operands ops = operandsOf(op);
  auto isF32 = [](Type t) { return t.isF32(); };
  auto isI32 = [](Type t) { return t.isInteger(32); };
  auto isFloat = [](Type t) { return t.isF32() || t.isF16() || t.isBF16(); };
  if (!isRowMajor(ops.x, isF32) || !isRowMajor(ops.y, isF32) ||
      !isRowMajor(ops.qweight, isI32) || !isRowMajor(ops.scales, isFloat) ||
      (ops.zeros && !isRowMajor(ops.zeros, isI32)))
    return false;
  // The k extent of x must be whole groups of whole packed rows (a group
  // smaller than a word, e.g. 4 with 4 bits, keeps the generic).
  int64_t k = cast<MemRefType>(ops.x.getType()).getDimSize(1);
  int64_t words = cast<MemRefType>(ops.qweight.getType()).getDimSize(0);
  return !ShapedType::isDynamic(k) && !ShapedType::isDynamic(words) &&
         k == words * quant.getValuesPerWord() &&
         k % quant.getGroupSize() == 0 &&
         quant.getGroupSize() % quant.getValuesPerWord() == 0;
}

void cpu::lowerQuantizedMatmul(RewriterBase &rewriter, linalg::GenericOp op,
                               const QuantizedKernelOptions &options) {
  auto quant = op->getAttrOfType<GptqAttr>(AtmoeDialect::kQuantizationAttrName);
  rewriter.setInsertionPoint(op);
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  Operands ops = operandsOf(op);
  auto choice = scf::IfOp::create(b, fitsKernel(b, ops, quant),
                                  /*withElseRegion=*/true);
  // The generic itself stays in the else branch: exact for any tiling.
  rewriter.moveOpBefore(op, choice.elseBlock()->getTerminator());
  b.setInsertionPoint(choice.thenBlock()->getTerminator());
  QuantizedKernelEmitter(b, ops, quant, options).emit();
  op->removeAttr(AtmoeDialect::kQuantizationAttrName);
}
