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

#include "KernelBuilding.h"
#include "PanelKernel.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// Bytes of a dequantised block: an L1 block of the float panel kernel.
constexpr int64_t kDequantizedBlockBytes = 16 * 1024;

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

/// x rounded to int8 for --int8-activations: `bytes` [rows, k / 4] i32
/// (four activations each), `scales` and `sums` [rows, blocks] f32.
struct RoundedActivations {
  Value bytes, scales, sums;
};

class QuantizedKernelEmitter {
public:
  QuantizedKernelEmitter(ImplicitLocOpBuilder &b, Operands ops, GptqAttr quant,
                         const cpu::QuantizedKernelOptions &options,
                         bool panels)
      : b(b), ops(ops), quant(quant), panels(panels),
        width(options.vectorWidth), vectors(options.featureVectors),
        tokenTile(options.tokenTile), prefetch(options.prefetchRows),
        dequantizeTokens(options.dequantizeTokens),
        f32Vector(VectorType::get({width}, b.getF32Type())),
        i32Vector(VectorType::get({width}, b.getI32Type())) {}

  /// The whole product: blocks of `vectors` x `width` output features (then
  /// single, masked vectors for the rest), token tiles of `tokenTile` rows
  /// (then single rows). With `rounded` activations (--int8-activations),
  /// fewer tokens than a tile over whole vectors use VNNI dot products.
  void emit(const RoundedActivations *rounded) {
    Value tokens = memref::DimOp::create(b, ops.x, index(0));
    int64_t blockRows = dequantizedBlockRows();
    if (blockRows == 0)
      return emitByTiles(tokens, rounded);
    Value many = arith::AndIOp::create(
        b,
        arith::CmpIOp::create(b, arith::CmpIPredicate::uge, tokens,
                              index(dequantizeTokens)),
        arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                              memref::DimOp::create(b, ops.y, 1),
                              memref::DimOp::create(b, ops.qweight, 1)));
    ifElse(
        many, [&] { emitDequantized(tokens, blockRows); },
        [&] { emitByTiles(tokens, rounded); });
  }

  /// The register tiles (and, with `rounded`, VNNI rows for few tokens).
  void emitByTiles(Value tokens, const RoundedActivations *rounded) {
    if (tokenTile == 1)
      return emitBlocks(tokens, vectors, /*tiles=*/true);
    Value few = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, tokens,
                                      index(tokenTile));
    ifElse(
        few, [&] { emitFewTokens(tokens, rounded); },
        [&] { emitBlocks(tokens, vectors, /*tiles=*/true); });
  }

  /// Values of k per dequantised block, 0 where the product does not take
  /// that path: a qweight in panels of a static width, from
  /// `dequantizeTokens` tokens on. A block lies in one group (its scales
  /// loaded once) and its f32 buffer fills an L1 block of the panel kernel.
  int64_t dequantizedBlockRows() const {
    auto type = cast<MemRefType>(ops.qweight.getType());
    if (!panels || dequantizeTokens < 1 || type.isDynamicDim(1) ||
        type.getDimSize(1) % width != 0)
      return 0;
    int64_t perWord = quant.getValuesPerWord();
    int64_t group = quant.getGroupSize();
    int64_t rows = std::max<int64_t>(perWord, kDequantizedBlockBytes /
                                                  (type.getDimSize(1) * 4));
    for (rows -= rows % perWord; rows >= perWord; rows -= perWord)
      if (group % rows == 0)
        return rows;
    return 0;
  }

  /// Many tokens on one panel: each block of `blockRows` values of k is
  /// dequantised once into an f32 [blockRows, panel width] stack buffer,
  /// which the float panel kernel multiplies every token by, instead of
  /// each tile of `tokenTile` tokens unpacking the weights again.
  void emitDequantized(Value tokens, int64_t blockRows) {
    int64_t perWord = quant.getValuesPerWord();
    int64_t panelWidth = cast<MemRefType>(ops.qweight.getType()).getDimSize(1);
    int64_t count = panelWidth / width;
    auto bufferType = MemRefType::get({blockRows, panelWidth}, b.getF32Type());
    Value buffer =
        memref::AllocaOp::create(b, bufferType, b.getI64IntegerAttr(64));
    Value words = memref::DimOp::create(b, ops.qweight, 0);
    int64_t blockWords = blockRows / perWord;
    forLoop(index(0), words, blockWords, [&](Value w0) {
      SmallVector<Value> scales, negZeroScales;
      Value k0 = arith::MulIOp::create(b, w0, index(perWord));
      groupConstants(arith::DivUIOp::create(b, k0, index(quant.getGroupSize())),
                     index(0), count, /*mask=*/{}, scales, negZeroScales);
      forLoop(w0, arith::AddIOp::create(b, w0, index(blockWords)), 1,
              [&](Value word) {
                dequantizeWord(word, w0, count, scales, negZeroScales, buffer);
              });
      SmallVector<OpFoldResult> one = {b.getIndexAttr(1), b.getIndexAttr(1)};
      Value xBlock = memref::SubViewOp::create(
          b, ops.x, ArrayRef<OpFoldResult>{b.getIndexAttr(0), k0},
          ArrayRef<OpFoldResult>{tokens, b.getIndexAttr(blockRows)}, one);
      cpu::emitPanelProduct(b, xBlock, buffer, ops.y, width,
                            /*prefetch=*/false);
    });
  }

  /// Rows (word - w0) * perWord + p of `buffer`: the dequantised values of
  /// packed row `word` across the panel.
  void dequantizeWord(Value word, Value w0, int64_t count,
                      ArrayRef<Value> scales, ArrayRef<Value> negZeroScales,
                      Value buffer) {
    int64_t perWord = quant.getValuesPerWord();
    Value first = arith::MulIOp::create(b, arith::SubIOp::create(b, word, w0),
                                        index(perWord));
    for (int64_t j = 0; j < count; ++j) {
      Value col = index(j * width);
      Value packed = vector::LoadOp::create(b, i32Vector, ops.qweight,
                                            ValueRange{word, col});
      for (int64_t p = 0; p < perWord; ++p) {
        Value weights = vector::FMAOp::create(b, unpack(packed, p), scales[j],
                                              negZeroScales[j]);
        vector::StoreOp::create(
            b, weights, buffer,
            ValueRange{arith::AddIOp::create(b, first, index(p)), col});
      }
    }
  }

  /// Fewer tokens than a tile: one row at a time over twice the features,
  /// so each packed row is read in longer runs; in the stored layout one
  /// token streams each row whole instead.
  void emitFewTokens(Value tokens, const RoundedActivations *rounded) {
    Value features = memref::DimOp::create(b, ops.y, 1);
    Value wholeVectors = arith::CmpIOp::create(
        b, arith::CmpIPredicate::eq,
        arith::RemUIOp::create(b, features, index(width)), index(0));
    auto blocks = [&] { emitBlocks(tokens, 2 * vectors, /*tiles=*/false); };
    if (rounded)
      return ifElse(
          wholeVectors, [&] { emitRowsInt8(tokens, features, *rounded); },
          blocks);
    // A panel's rows are contiguous: the register blocks stream it.
    if (panels)
      return blocks();
    Value oneToken = arith::AndIOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, tokens, index(1)),
        wholeVectors);
    // Its stack buffer lives for one tile: --convert-scf-to-openmp puts
    // each iteration of a thread's loop in an alloca scope.
    ifElse(
        oneToken, [&] { emitOneToken(features); }, blocks);
  }

  /// scf.if `condition` with `then` and `otherwise` emitting its branches.
  void ifElse(Value condition, function_ref<void()> then,
              function_ref<void()> otherwise) {
    auto choice = scf::IfOp::create(b, condition, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(choice.thenBlock()->getTerminator());
    then();
    b.setInsertionPoint(choice.elseBlock()->getTerminator());
    otherwise();
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
    forEachPackedVector(word, features, [&](Value n, Value packed) {
      Value acc = vector::LoadOp::create(b, f32Vector, part, ValueRange{n});
      for (int64_t p = 0; p < perWord; ++p)
        acc = vector::FMAOp::create(b, xs[p], unpack(packed, p), acc);
      vector::StoreOp::create(b, acc, part, ValueRange{n});
    });
  }

  /// body(n, the words of packed row `word` at features [n, n + width)) for
  /// each whole vector of `features`, the row `prefetch` ahead requested.
  void forEachPackedVector(Value word, Value features,
                           function_ref<void(Value, Value)> body) {
    Value lastRow = arith::SubIOp::create(
        b, memref::DimOp::create(b, ops.qweight, 0), index(1));
    Value ahead = arith::MinUIOp::create(
        b, arith::AddIOp::create(b, word, index(prefetch)), lastRow);
    forLoop(index(0), features, width, [&](Value n) {
      Value packed = vector::LoadOp::create(b, i32Vector, ops.qweight,
                                            ValueRange{word, n});
      if (prefetch > 0)
        memref::PrefetchOp::create(b, ops.qweight, ValueRange{ahead, n},
                                   /*isWrite=*/false, /*localityHint=*/1,
                                   /*isDataCache=*/true);
      body(n, packed);
    });
  }

  /// Activations per int8 block: the largest divisor of the group size up
  /// to 128 that holds whole packed words. A block has one group's scales,
  /// and its i32 sums stay far from overflow (128 * 255 * 127 < 2^23).
  int64_t activationBlock() const {
    int64_t group = quant.getGroupSize(), perWord = quant.getValuesPerWord();
    for (int64_t size = std::min<int64_t>(group, 128); size > perWord; --size)
      if (group % size == 0 && size % perWord == 0)
        return size;
    return perWord;
  }

  /// The rounded activations of `rows` rows of x (rows past a call's
  /// tokens are not filled): per row its bytes, four to an i32, and per
  /// block its scale and the sum of its rounded values. In heap memory
  /// (`heap`, freed by the caller) or on the stack.
  RoundedActivations roundActivations(Value rows, bool heap) {
    int64_t block = activationBlock();
    int64_t reduction = cast<MemRefType>(ops.x.getType()).getDimSize(1);
    auto buffer = [&](Type element, int64_t columns) -> Value {
      auto type = MemRefType::get({ShapedType::kDynamic, columns}, element);
      if (heap)
        return memref::AllocOp::create(b, type, ValueRange{rows});
      return memref::AllocaOp::create(b, type, ValueRange{rows});
    };
    RoundedActivations rounded{buffer(b.getI32Type(), reduction / 4),
                               buffer(b.getF32Type(), reduction / block),
                               buffer(b.getF32Type(), reduction / block)};
    forLoop(index(0), rows, 1, [&](Value t) { quantizeRow(t, rounded); });
    return rounded;
  }

  /// Each row: y[t] += x[t] W^T from the rounded activations, over blocks
  /// of `2 * vectors` vectors of features (then single vectors).
  void emitRowsInt8(Value tokens, Value features,
                    const RoundedActivations &rounded) {
    int64_t count = 2 * vectors;
    Value fullEnd = roundDown(features, count * width);
    forLoop(index(0), tokens, 1, [&](Value t) {
      forLoop(index(0), fullEnd, count * width,
              [&](Value n) { emitTileInt8(t, n, count, rounded); });
      forLoop(fullEnd, features, width,
              [&](Value n) { emitTileInt8(t, n, 1, rounded); });
    });
  }

  /// y[t, n : n + count*width] += its products: per block of activations,
  /// VNNI dot products of the packed unsigned weights and the signed
  /// rounded activations into i32 register sums, then scaled into f32
  /// register sums, y += s sx (sum q xq - z sum xq); y updated once.
  void emitTileInt8(Value t, Value n, int64_t count,
                    const RoundedActivations &rounded) {
    int64_t block = activationBlock();
    int64_t wordsPerBlock = block / quant.getValuesPerWord();
    Value blocks = memref::DimOp::create(b, rounded.scales, 1);
    SmallVector<Value> init(count, splatF32(0.0f));
    auto blockLoop = scf::ForOp::create(b, index(0), blocks, index(1), init);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(blockLoop.getBody());
      Value blk = blockLoop.getInductionVar();
      Value firstWord = arith::MulIOp::create(b, blk, index(wordsPerBlock));
      auto wordLoop = scf::ForOp::create(
          b, firstWord,
          arith::AddIOp::create(b, firstWord, index(wordsPerBlock)), index(1),
          SmallVector<Value>(count, splatI32(0)));
      b.setInsertionPointToStart(wordLoop.getBody());
      SmallVector<Value> sums(wordLoop.getRegionIterArgs());
      dotWord(t, n, wordLoop.getInductionVar(), rounded.bytes, sums);
      scf::YieldOp::create(b, sums);
      b.setInsertionPointToEnd(blockLoop.getBody());
      scf::YieldOp::create(b,
                           scaleBlock(t, blk, n, blockLoop.getRegionIterArgs(),
                                      wordLoop.getResults(), rounded));
    }
    updateOutput(t, 1, n, count, /*mask=*/{}, blockLoop.getResults());
  }

  /// Row `t` of x rounded to int8 per block: scale max|x| / 127, values
  /// round(x / scale), four to an i32 (for 4 bits each word's even k before
  /// its odd k, the order in which the kernel unpacks nibbles); per block
  /// its scale and the sum of its rounded values.
  void quantizeRow(Value t, const RoundedActivations &rounded) {
    int64_t block = activationBlock();
    int64_t lanes = std::min<int64_t>(width, block & -block);
    Value blocks = memref::DimOp::create(b, rounded.scales, 1);
    forLoop(index(0), blocks, 1, [&](Value blk) {
      Value first = arith::MulIOp::create(b, blk, index(block));
      Value last = arith::AddIOp::create(b, first, index(block));
      Value amax = blockAbsMax(t, first, last, lanes);
      Value zero = constantF32(0.0f), limit = constantF32(127.0f);
      Value inverse = arith::SelectOp::create(
          b, arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, amax, zero),
          arith::DivFOp::create(b, limit, amax), zero);
      memref::StoreOp::create(b, arith::DivFOp::create(b, amax, limit),
                              rounded.scales, ValueRange{t, blk});
      memref::StoreOp::create(
          b, roundBlock(t, first, last, lanes, inverse, rounded.bytes),
          rounded.sums, ValueRange{t, blk});
    });
  }

  Value constantF32(float v) {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
  }

  /// max |x[t, k]| over k in [first, last), `lanes` at a time.
  Value blockAbsMax(Value t, Value first, Value last, int64_t lanes) {
    auto f32Lanes = VectorType::get({lanes}, b.getF32Type());
    Value largest = reduceBlock(
        first, last, lanes,
        arith::ConstantOp::create(b, f32Lanes, b.getZeroAttr(f32Lanes)),
        [&](Value k, Value acc) {
          Value v =
              vector::LoadOp::create(b, f32Lanes, ops.x, ValueRange{t, k});
          return arith::MaximumFOp::create(b, acc, math::AbsFOp::create(b, v));
        });
    return vector::ReductionOp::create(b, vector::CombiningKind::MAXIMUMF,
                                       largest);
  }

  /// Stores round(x[t, k] * inverse) for k in [first, last) as bytes in
  /// row t of `quantized` (nibble order for 4 bits); returns their sum as
  /// f32.
  Value roundBlock(Value t, Value first, Value last, int64_t lanes,
                   Value inverse, Value quantized) {
    auto f32Lanes = VectorType::get({lanes}, b.getF32Type());
    auto i32Lanes = VectorType::get({lanes}, b.getI32Type());
    auto i8Lanes = VectorType::get({lanes}, b.getI8Type());
    auto words = VectorType::get({lanes / 4}, b.getI32Type());
    Value inverseLanes = vector::BroadcastOp::create(b, f32Lanes, inverse);
    Value sums = reduceBlock(
        first, last, lanes,
        arith::ConstantOp::create(b, i32Lanes, b.getZeroAttr(i32Lanes)),
        [&](Value k, Value acc) {
          Value v =
              vector::LoadOp::create(b, f32Lanes, ops.x, ValueRange{t, k});
          Value rounded = arith::FPToSIOp::create(
              b, i32Lanes,
              math::RoundEvenOp::create(
                  b, arith::MulFOp::create(b, v, inverseLanes)));
          Value bytes = arith::TruncIOp::create(b, i8Lanes, rounded);
          if (quant.getBits() == 4)
            bytes = vector::ShuffleOp::create(b, bytes, bytes,
                                              evenThenOddNibbles(lanes));
          vector::StoreOp::create(
              b, vector::BitCastOp::create(b, words, bytes), quantized,
              ValueRange{t, arith::DivUIOp::create(b, k, index(4))});
          return arith::AddIOp::create(b, acc, rounded);
        });
    return arith::SIToFPOp::create(
        b, b.getF32Type(),
        vector::ReductionOp::create(b, vector::CombiningKind::ADD, sums));
  }

  /// Lane order [0, 2, 4, 6, 1, 3, 5, 7, 8, ...]: per 4-bit word, the
  /// activations of its low nibbles, then of its high ones.
  static SmallVector<int64_t> evenThenOddNibbles(int64_t lanes) {
    SmallVector<int64_t> order;
    for (int64_t word = 0; word < lanes; word += 8)
      for (int64_t half = 0; half < 2; ++half)
        for (int64_t j = 0; j < 4; ++j)
          order.push_back(word + 2 * j + half);
    return order;
  }

  /// for k = first to last step `step`: acc = body(k, acc); returns acc.
  Value reduceBlock(Value first, Value last, int64_t step, Value init,
                    function_ref<Value(Value, Value)> body) {
    auto loop = scf::ForOp::create(b, first, last, index(step), init);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    scf::YieldOp::create(
        b, body(loop.getInductionVar(), loop.getRegionIterArgs()[0]));
    return loop.getResult(0);
  }

  /// sums[j] += the products of packed row `word` at features
  /// n + j*width with row t's rounded activations: one VNNI dot product per
  /// vector of 8-bit words, two (low and high nibbles) per vector of 4-bit
  /// ones.
  void dotWord(Value t, Value n, Value word, Value bytes,
               SmallVector<Value> &sums) {
    int64_t pieces = quant.getBits() == 4 ? 2 : 1;
    auto byteVector = VectorType::get({4 * width}, b.getI8Type());
    SmallVector<Value> activations;
    for (int64_t p = 0; p < pieces; ++p) {
      Value four = memref::LoadOp::create(
          b, bytes,
          ValueRange{t, arith::AddIOp::create(
                            b, arith::MulIOp::create(b, word, index(pieces)),
                            index(p))});
      activations.push_back(vector::BitCastOp::create(
          b, byteVector, vector::BroadcastOp::create(b, i32Vector, four)));
    }
    // The stored layout reads a short run of rows a whole row apart.
    if (prefetch > 0 && !panels) {
      Value ahead = arith::MinUIOp::create(
          b, arith::AddIOp::create(b, word, index(prefetch)),
          arith::SubIOp::create(b, memref::DimOp::create(b, ops.qweight, 0),
                                index(1)));
      memref::PrefetchOp::create(b, ops.qweight, ValueRange{ahead, n},
                                 /*isWrite=*/false, /*localityHint=*/1,
                                 /*isDataCache=*/true);
    }
    Value nibbles = splatI32(0x0F0F0F0F);
    for (auto [j, sum] : llvm::enumerate(sums)) {
      Value packed = vector::LoadOp::create(
          b, i32Vector, ops.qweight,
          ValueRange{word, arith::AddIOp::create(b, n, index(j * width))});
      if (pieces == 1) {
        sum = dotBytes(sum, packed, activations[0]);
        continue;
      }
      sum = dotBytes(sum, arith::AndIOp::create(b, packed, nibbles),
                     activations[0]);
      Value high = arith::ShRUIOp::create(b, packed, splatI32(4));
      sum = dotBytes(sum, arith::AndIOp::create(b, high, nibbles),
                     activations[1]);
    }
  }

  /// acc + per i32 lane the four products of `weights`' unsigned bytes with
  /// `activations`' signed ones (VPDPBUSD).
  Value dotBytes(Value acc, Value weights, Value activations) {
    auto bytes = VectorType::get({4 * width}, b.getI8Type());
    StringRef name = width == 16 ? "llvm.x86.avx512.vpdpbusd.512"
                                 : "llvm.x86.avx512.vpdpbusd.256";
    return LLVM::CallIntrinsicOp::create(
               b, i32Vector, b.getStringAttr(name),
               ValueRange{acc, vector::BitCastOp::create(b, bytes, weights),
                          activations})
        .getResult(0);
  }

  /// accs + s sx (sums - z sum xq) for block `blk` of row t.
  SmallVector<Value> scaleBlock(Value t, Value blk, Value n, ValueRange accs,
                                ValueRange sums,
                                const RoundedActivations &rounded) {
    Value g = arith::DivUIOp::create(
        b, arith::MulIOp::create(b, blk, index(activationBlock())),
        index(quant.getGroupSize()));
    SmallVector<Value> scales, negZeroScales;
    groupConstants(g, n, accs.size(), /*mask=*/{}, scales, negZeroScales);
    Value activationScale = vector::BroadcastOp::create(
        b, f32Vector,
        memref::LoadOp::create(b, rounded.scales, ValueRange{t, blk}));
    Value activationSum = vector::BroadcastOp::create(
        b, f32Vector,
        memref::LoadOp::create(b, rounded.sums, ValueRange{t, blk}));
    SmallVector<Value> result;
    for (auto [j, acc] : llvm::enumerate(accs)) {
      Value products = arith::SIToFPOp::create(b, f32Vector, sums[j]);
      Value withZeros = vector::FMAOp::create(
          b, arith::MulFOp::create(b, negZeroScales[j], activationScale),
          activationSum, acc);
      result.push_back(vector::FMAOp::create(
          b, arith::MulFOp::create(b, scales[j], activationScale), products,
          withZeros));
    }
    return result;
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
  Value roundDown(Value v, int64_t step) { return cpu::roundDown(b, v, step); }

  /// for iv = lo to hi step `step`: body(iv), with `b` inside the loop.
  void forLoop(Value lo, Value hi, int64_t step,
               function_ref<void(Value)> body) {
    cpu::forLoop(b, lo, hi, step, body);
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
  /// qweight is one panel (atmoe-pack-weight-panels): rows contiguous.
  bool panels;
  int64_t width, vectors, tokenTile, prefetch;
  int64_t dequantizeTokens;
  VectorType f32Vector, i32Vector;
};

/// Whether `value` is a memref of `rank` dimensions and `element` type with
/// unit inner stride.
bool isRowMajor(Value value, function_ref<bool(Type)> element,
                int64_t rank = 2) {
  auto type = dyn_cast<MemRefType>(value.getType());
  if (!type || type.getRank() != rank || !element(type.getElementType()))
    return false;
  SmallVector<int64_t> strides;
  int64_t offset;
  return succeeded(type.getStridesAndOffset(strides, offset)) &&
         strides.back() == 1;
}

/// The run-time condition for the kernel: the tile's first output feature
/// starts a word of zero points and its first packed row is row 0 (whole
/// groups along k), as the CPU schedule's tiles always are; a qweight in
/// panels (atmoe-pack-weight-panels) must also be read within one
/// panel.
Value fitsKernel(ImplicitLocOpBuilder &b, Operands ops, GptqAttr quant) {
  auto metadata = memref::ExtractStridedMetadataOp::create(b, ops.qweight);
  bool panels = metadata.getStrides().size() == 3;
  Value offset = metadata.getOffset();
  Value rowStride = metadata.getStrides()[panels ? 1 : 0];
  Value perWord = arith::ConstantIndexOp::create(b, quant.getValuesPerWord());
  Value zero = arith::ConstantIndexOp::create(b, 0);
  Value aligned =
      arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                            arith::RemUIOp::create(b, offset, perWord), zero);
  // The offset within the panel when there are panels.
  Value rowOffset =
      panels ? arith::RemUIOp::create(b, offset, metadata.getStrides()[0])
             : offset;
  Value firstRow =
      arith::CmpIOp::create(b, arith::CmpIPredicate::ult, rowOffset, rowStride);
  Value fits = arith::AndIOp::create(b, aligned, firstRow);
  if (!panels)
    return fits;
  Value onePanel =
      arith::CmpIOp::create(b, arith::CmpIPredicate::eq, metadata.getSizes()[0],
                            arith::ConstantIndexOp::create(b, 1));
  return arith::AndIOp::create(b, fits, onePanel);
}

} // namespace

/// The rows of x to round: its tokens when fewer than a register tile
/// (the VNNI path), else none.
Value fewTokenRows(ImplicitLocOpBuilder &b, Value x, int64_t tokenTile) {
  Value tokens = memref::DimOp::create(b, x, 0);
  Value few =
      arith::CmpIOp::create(b, arith::CmpIPredicate::ult, tokens,
                            arith::ConstantIndexOp::create(b, tokenTile));
  return arith::SelectOp::create(b, few, tokens,
                                 arith::ConstantIndexOp::create(b, 0));
}

/// The value `x` is a whole view of, defined outside `loop`, if any.
Value definedOutside(Value x, Operation *loop) {
  while (loop->isAncestor(x.getParentRegion()->getParentOp())) {
    auto view = x.getDefiningOp<memref::SubViewOp>();
    if (!view || !view.hasZeroOffset() ||
        view.getSourceType().getShape() != view.getType().getShape())
      return nullptr;
    x = view.getSource();
  }
  return x;
}

/// x rounded once before the parallel loop of the product's tiles, which
/// all read all of it (heap buffers freed after the loop); none when x is
/// not a whole view of a value defined before the loop.
std::optional<RoundedActivations>
roundOnce(RewriterBase &rewriter, linalg::GenericOp op, Operands ops,
          GptqAttr quant, const cpu::QuantizedKernelOptions &options) {
  auto loop = op->getParentOfType<scf::ForallOp>();
  Value whole = loop ? definedOutside(ops.x, loop) : nullptr;
  if (!whole)
    return std::nullopt;
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(loop);
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  ops.x = whole;
  RoundedActivations rounded =
      QuantizedKernelEmitter(b, ops, quant, options, /*panels=*/false)
          .roundActivations(fewTokenRows(b, whole, options.tokenTile),
                            /*heap=*/true);
  b.setInsertionPointAfter(loop);
  for (Value buffer : {rounded.bytes, rounded.scales, rounded.sums})
    memref::DeallocOp::create(b, buffer);
  return rounded;
}

bool cpu::isQuantizedMatmul(linalg::GenericOp op) {
  auto quant = op->getAttrOfType<GptqAttr>(AtmoeDialect::kQuantizationAttrName);
  if (!quant || !op.hasPureBufferSemantics() || op.getNumDpsInits() != 1 ||
      op.getNumDpsInputs() < 3 || op.getNumDpsInputs() > 4)
    return false;
  Operands ops = operandsOf(op);
  auto isF32 = [](Type t) { return t.isF32(); };
  auto isI32 = [](Type t) { return t.isInteger(32); };
  auto isFloat = [](Type t) { return t.isF32() || t.isF16() || t.isBF16(); };
  // qweight as stored [words, n] or in panels [n / width, words, width].
  bool panels = isRowMajor(ops.qweight, isI32, 3);
  if (!isRowMajor(ops.x, isF32) || !isRowMajor(ops.y, isF32) ||
      !(panels || isRowMajor(ops.qweight, isI32)) ||
      !isRowMajor(ops.scales, isFloat) ||
      (ops.zeros && !isRowMajor(ops.zeros, isI32)))
    return false;
  // The k extent of x must be whole groups of whole packed rows (a group
  // smaller than a word, e.g. 4 with 4 bits, keeps the generic).
  int64_t k = cast<MemRefType>(ops.x.getType()).getDimSize(1);
  int64_t words =
      cast<MemRefType>(ops.qweight.getType()).getDimSize(panels ? 1 : 0);
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
  bool panels = cast<MemRefType>(ops.qweight.getType()).getRank() == 3;
  if (panels)
    ops.qweight = cpu::panelRows(b, ops.qweight);
  QuantizedKernelEmitter emitter(b, ops, quant, options, panels);
  std::optional<RoundedActivations> rounded;
  if (options.int8Activations)
    rounded = roundOnce(rewriter, op, ops, quant, options);
  if (options.int8Activations && !rounded)
    rounded = emitter.roundActivations(
        fewTokenRows(b, ops.x, options.tokenTile), /*heap=*/false);
  emitter.emit(rounded ? &*rounded : nullptr);
  op->removeAttr(AtmoeDialect::kQuantizationAttrName);
}
