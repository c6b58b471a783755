//===- MergeSequenceAdapters.cpp - merge experts per sequence ---*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// For sequence granularity every token of a segment uses one routing row, so
// the segment's projection is `x W'^T + b` with the merged weight
// W' = W + sum_i c_i B_i A_i. A cost model decides, per segment length,
// whether building W' beats the unmerged fused path (see docs/Passes.md).
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"
#include "atmoe/Dialect/Atmoe/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_MERGESEQUENCEADAPTERSPASS
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// Cost of moving one f32 element to or from memory, in multiply-adds: about
/// what one core computes (~55 GMAC/s with AVX-512 FMA) while DRAM delivers
/// one float (~20 GB/s, i.e. 5 G floats/s), rounded down because W' is
/// often still in cache when it is read back.
constexpr double kMemoryCostPerElement = 8.0;

/// The smallest segment length for which merging is cheaper than the
/// unmerged fused path, from the static shapes (docs/Passes.md):
///
///   merged(T)   = d_out d_in R + 2 m d_out d_in + T d_in d_out
///   unmerged(T) = T (d_in d_out + R (d_in + d_out))
///
/// (both read W, A and B once; merging also writes W' and reads it back, at
/// m multiply-adds per element). merged(T) < unmerged(T) iff
/// T > d_out d_in (R + 2 m) / (R (d_in + d_out)).
int64_t costModelThreshold(int64_t dIn, int64_t dOut, int64_t totalRank) {
  double rank = static_cast<double>(totalRank);
  double breakEven = static_cast<double>(dOut) * static_cast<double>(dIn) *
                     (rank + 2.0 * kMemoryCostPerElement) /
                     (rank * static_cast<double>(dIn + dOut));
  return static_cast<int64_t>(breakEven) + 1;
}

/// Builds the replacement of one sequence-granularity projection.
class SequenceMerger {
public:
  SequenceMerger(LoraLinearOp op, const StackedAdapters &stacked,
                 int64_t threshold, OpBuilder &b)
      : op(op), stacked(stacked), threshold(threshold), b(b), loc(op.getLoc()),
        outputType(op.getType()) {}

  Value build() {
    down = concatenate(0, op.getLoraA());
    up = concatenate(1, op.getLoraB());
    c0 = arith::ConstantIndexOp::create(b, loc, 0);
    c1 = arith::ConstantIndexOp::create(b, loc, 1);
    numTokens = tensor::DimOp::create(b, loc, op.getInput(), 0);
    minLength = arith::ConstantIndexOp::create(b, loc, threshold);
    bool always = threshold <= 1;

    // All tokens share one row: with no segments (S = 1), or when only the
    // shared expert is left (the scales do not depend on the routing).
    if (!op.getSegments() || !op.getRouting()) {
      Value row;
      if (op.getRouting())
        row = routingRow(b.getIndexAttr(0));
      if (always && op.getType().hasStaticShape())
        return merged(op.getInput(), row);
      Value large = atLeast(numTokens, always ? c1 : minLength);
      return ifThenElse(
          large, [&] { return merged(op.getInput(), row); },
          [&] { return always ? emptyResult() : unmergedAll(); });
    }

    if (always)
      return segmentLoop();
    Value large = atLeast(longestSegment(), minLength);
    return ifThenElse(
        large, [&] { return segmentLoop(); }, [&] { return unmergedAll(); });
  }

private:
  Value concatenate(int64_t dim, ValueRange values) {
    return concatenateAdapters(b, loc, dim, values);
  }

  Value atLeast(Value value, Value bound) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, value,
                                 bound);
  }

  Value ifThenElse(Value condition, function_ref<Value()> thenBuilder,
                   function_ref<Value()> elseBuilder) {
    auto ifOp = scf::IfOp::create(b, loc, TypeRange{outputType}, condition,
                                  /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    scf::YieldOp::create(b, loc, thenBuilder());
    b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(b, loc, elseBuilder());
    return ifOp.getResult(0);
  }

  RankedTensorType scalesType(int64_t rows) {
    return RankedTensorType::get({rows, stacked.totalRank}, b.getF32Type());
  }

  Value loraScales(Value routing, Value tokens, int64_t rows) {
    return LoraScalesOp::create(b, loc, scalesType(rows), routing, tokens,
                                b.getDenseI64ArrayAttr(stacked.ranks),
                                b.getDenseI64ArrayAttr(stacked.columns),
                                b.getDenseF64ArrayAttr(stacked.factors));
  }

  /// Row `index` of the routing weights, 1 x E.
  Value routingRow(OpFoldResult index) {
    auto type = cast<RankedTensorType>(op.getRouting().getType());
    SmallVector<OpFoldResult> offsets = {index, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {
        b.getIndexAttr(1), tensor::getMixedSize(b, loc, op.getRouting(), 1)};
    SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
    auto rowType =
        RankedTensorType::get({1, type.getDimSize(1)}, type.getElementType());
    return tensor::ExtractSliceOp::create(b, loc, rowType, op.getRouting(),
                                          offsets, sizes, strides);
  }

  /// x W'^T + b with W' merged for routing row `row` (null: shared only).
  Value merged(Value x, Value row) {
    Value scales = loraScales(row, c1, 1);
    // The merged weight is f32, whatever W's storage type.
    auto weightType = cast<RankedTensorType>(op.getWeight().getType());
    Value weight = MergeLoraOp::create(b, loc, weightType.clone(b.getF32Type()),
                                       op.getWeight(), down, up, scales);
    auto type = RankedTensorType::get(
        {cast<RankedTensorType>(x.getType()).getDimSize(0),
         outputType.getDimSize(1)},
        outputType.getElementType());
    return LinearOp::create(b, loc, type, x, weight, op.getBias());
  }

  /// The unmerged fused path on `x`, every token using `routing` row
  /// `segments`-wise (as --atmoe-expand-segments and --atmoe-fuse-lora
  /// would produce), with the shared stacked adapters.
  Value unmerged(Value x, Value routing, Value segments, Value tokens) {
    auto xType = cast<RankedTensorType>(x.getType());
    int64_t rows = xType.getDimSize(0);
    if (routing) {
      auto routingType = cast<RankedTensorType>(routing.getType());
      auto expandedType = RankedTensorType::get(
          {rows, routingType.getDimSize(1)}, routingType.getElementType());
      routing = ExpandSegmentsOp::create(b, loc, expandedType, routing,
                                         segments, tokens);
    }
    Value scales = loraScales(routing, tokens, rows);
    auto type = RankedTensorType::get({rows, outputType.getDimSize(1)},
                                      outputType.getElementType());
    return StackedLoraLinearOp::create(b, loc, type, x, op.getWeight(),
                                       op.getBias(), down, up, scales);
  }

  Value unmergedAll() {
    return unmerged(op.getInput(), op.getRouting(), op.getSegments(),
                    numTokens);
  }

  /// The (empty) result of a batch of zero tokens, when every non-empty
  /// batch is merged.
  Value emptyResult() {
    SmallVector<Value> dynamic;
    if (outputType.isDynamicDim(0))
      dynamic.push_back(numTokens);
    return tensor::EmptyOp::create(b, loc, outputType, dynamic);
  }

  Value segmentLength(Value index) {
    Value length =
        tensor::ExtractOp::create(b, loc, op.getSegments(), ValueRange{index});
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), length);
  }

  /// max_s T_s, as an index.
  Value longestSegment() {
    Value count = tensor::DimOp::create(b, loc, op.getSegments(), 0);
    auto loop = scf::ForOp::create(
        b, loc, c0, count, c1, ValueRange{c0},
        [&](OpBuilder &, Location, Value s, ValueRange iterArgs) {
          Value longest =
              arith::MaxSIOp::create(b, loc, iterArgs[0], segmentLength(s));
          scf::YieldOp::create(b, loc, longest);
        });
    return loop.getResult(0);
  }

  /// scf.for over the segments: each is merged when it has at least
  /// `threshold` tokens, else computed unmerged (empty ones not at all).
  Value segmentLoop() {
    Value count = tensor::DimOp::create(b, loc, op.getSegments(), 0);
    SmallVector<Value> dynamic;
    if (outputType.isDynamicDim(0))
      dynamic.push_back(numTokens);
    Value init = tensor::EmptyOp::create(b, loc, outputType, dynamic);
    int64_t dIn = op.getInput().getType().getDimSize(1);
    bool always = threshold <= 1;
    auto loop = scf::ForOp::create(
        b, loc, c0, count, c1, ValueRange{init, c0},
        [&](OpBuilder &, Location, Value s, ValueRange iterArgs) {
          Value acc = iterArgs[0], offset = iterArgs[1];
          Value length = segmentLength(s);
          SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
          SmallVector<OpFoldResult> offsets = {offset, b.getIndexAttr(0)};
          auto slice = [&](Value source, int64_t width) {
            SmallVector<OpFoldResult> sizes = {
                length, width == ShapedType::kDynamic
                            ? tensor::getMixedSize(b, loc, source, 1)
                            : OpFoldResult(b.getIndexAttr(width))};
            auto type = RankedTensorType::get(
                {ShapedType::kDynamic, width},
                cast<RankedTensorType>(source.getType()).getElementType());
            return tensor::ExtractSliceOp::create(b, loc, type, source, offsets,
                                                  sizes, strides)
                .getResult();
          };
          auto insert = [&](Value rows) {
            SmallVector<OpFoldResult> sizes = {
                length, tensor::getMixedSize(b, loc, rows, 1)};
            return tensor::InsertSliceOp::create(b, loc, rows, acc, offsets,
                                                 sizes, strides)
                .getResult();
          };
          Value x = slice(op.getInput(), dIn);
          Value row = routingRow(s);
          Value large = atLeast(length, always ? c1 : minLength);
          Value next = ifThenElse(
              large, [&] { return insert(merged(x, row)); },
              [&]() -> Value {
                if (always)
                  return acc;
                return insert(unmerged(x, row, Value(), length));
              });
          Value nextOffset = arith::AddIOp::create(b, loc, offset, length);
          scf::YieldOp::create(b, loc, ValueRange{next, nextOffset});
        });
    return loop.getResult(0);
  }

  LoraLinearOp op;
  const StackedAdapters &stacked;
  int64_t threshold;
  OpBuilder &b;
  Location loc;
  RankedTensorType outputType;
  Value down, up, c0, c1, numTokens, minLength;
};

/// Merges the segments of one sequence-granularity projection where the
/// policy and the cost model say so.
struct MergeSegments : OpRewritePattern<LoraLinearOp> {
  MergeSegments(MLIRContext *context, SequenceMergePolicy policy,
                int64_t mergeThreshold, int64_t panelWidth)
      : OpRewritePattern(context), policy(policy),
        mergeThreshold(mergeThreshold), panelWidth(panelWidth) {}

  LogicalResult matchAndRewrite(LoraLinearOp op,
                                PatternRewriter &rewriter) const override {
    if (policy == SequenceMergePolicy::Unmerged ||
        op.getGranularity() != Granularity::sequence ||
        op.getAdapters().empty())
      return rewriter.notifyMatchFailure(op, "nothing to merge");
    // A LoRA bias or DoRA scale is not a term of W' = W + B A; those
    // projections take the unmerged path.
    if (op.hasVariantAdapters())
      return rewriter.notifyMatchFailure(op, "bias or dora adapters");
    auto layer =
        SymbolTable::lookupNearestSymbolFrom<LayerOp>(op, op.getLayerAttr());
    if (!layer)
      return rewriter.notifyMatchFailure(op, "layer not found");
    FailureOr<StackedAdapters> stacked = stackAdapters(op, layer);
    if (failed(stacked))
      return rewriter.notifyMatchFailure(op, "adapter names no expert");
    std::optional<int64_t> threshold = thresholdFor(op, stacked->totalRank);
    if (!threshold)
      return rewriter.notifyMatchFailure(op, "merging cannot pay");
    rewriter.replaceOp(
        op,
        SequenceMerger(op, *stacked, std::max<int64_t>(*threshold, 1), rewriter)
            .build());
    return success();
  }

private:
  /// The segment length from which to merge, or none when no segment can
  /// reach it (or, without static features, there is no cost model).
  std::optional<int64_t> thresholdFor(LoraLinearOp op,
                                      int64_t totalRank) const {
    if (policy == SequenceMergePolicy::Merge)
      return 1;
    int64_t dIn = op.getInput().getType().getDimSize(1);
    int64_t dOut = op.getType().getDimSize(1);
    // W in panels runs a faster kernel than a merged W' in the stored
    // layout could: merging does not pay (see the pass description).
    if (panelWidth > 0 && !ShapedType::isDynamic(dOut) &&
        dOut % panelWidth == 0)
      return std::nullopt;
    int64_t threshold = mergeThreshold;
    if (threshold < 0 &&
        (ShapedType::isDynamic(dIn) || ShapedType::isDynamic(dOut)))
      return std::nullopt;
    if (threshold < 0)
      threshold = costModelThreshold(dIn, dOut, totalRank);
    // No segment can be longer than a static batch.
    int64_t tokens = op.getInput().getType().getDimSize(0);
    if (!ShapedType::isDynamic(tokens) && tokens < threshold)
      return std::nullopt;
    return threshold;
  }

  SequenceMergePolicy policy;
  int64_t mergeThreshold;
  int64_t panelWidth;
};

struct MergeSequenceAdaptersPass
    : atmoe::impl::MergeSequenceAdaptersPassBase<MergeSequenceAdaptersPass> {
  using MergeSequenceAdaptersPassBase::MergeSequenceAdaptersPassBase;

  void runOnOperation() override {
    if (mergeThreshold < -1) {
      getOperation()->emitError("expects merge-threshold (")
          << static_cast<int64_t>(mergeThreshold)
          << ") to be -1 (cost model) or a token count";
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    populateMergeSequenceAdaptersPatterns(patterns, policy, mergeThreshold,
                                          panelWidth);
    // One visit per op, no folding: the ops the merge builds stay as built.
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace

void mlir::atmoe::populateMergeSequenceAdaptersPatterns(
    RewritePatternSet &patterns, SequenceMergePolicy policy,
    int64_t mergeThreshold, int64_t panelWidth) {
  patterns.add<MergeSegments>(patterns.getContext(), policy, mergeThreshold,
                              panelWidth);
}
