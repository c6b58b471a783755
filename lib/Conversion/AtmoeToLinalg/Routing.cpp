//===- Routing.cpp - router normalisation to linalg -------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "PopulatePatterns.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

#include <limits>

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::lowering;

namespace {

/// The largest finite f32. Scores are clamped to +-kFloatMax so that no
/// difference of two is NaN (inf - inf), and score gaps to -kFloatMax so that
/// no product with a temperature's reciprocal is NaN (inf * 0).
constexpr float kFloatMax = std::numeric_limits<float>::max();

/// The factor 1/tau that scores are multiplied by, in f32: capped at the
/// largest finite f32 for tiny temperatures (the weights are then the
/// arg-max limit to f32 resolution), 0 where 1/tau underflows (uniform).
float reciprocalTemperature(double tau) {
  double inverse = 1.0 / tau;
  return inverse > double(kFloatMax) ? kFloatMax : float(inverse);
}

using BodyBuilder =
    llvm::function_ref<Value(OpBuilder &, Location, ValueRange)>;

/// Builds the routing weights of a T x E score tensor as a few whole-tensor
/// linalg ops: their number does not depend on E or on the group count, so
/// that compile time and code size stay flat however many experts a layer
/// has. Run time is linear in T * E (times the group count for grouped
/// routers), except top-k, which compares every pair of scores in a row.
class RoutingBuilder {
public:
  RoutingBuilder(OpBuilder &b, Location loc, Value rowsOf)
      : b(b), loc(loc), rowsOf(rowsOf) {}

  /// The scores, clamped to finite values (NaN stays NaN).
  Value finite(Value scores) {
    return elementwise(scores, b.getF32Type(),
                       [&](OpBuilder &b, Location loc, ValueRange args) {
                         return clamp(b, loc, args[0]);
                       });
  }

  /// sigmoid(scores * factor), elementwise.
  Value sigmoid(Value scores, float factor) {
    return elementwise(
        scores, b.getF32Type(),
        [&](OpBuilder &b, Location loc, ValueRange args) {
          Value one = constant(b, loc, 1.0f);
          Value z = scaled(b, loc, args[0], factor);
          Value decay =
              math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, z));
          return arith::DivFOp::create(
                     b, loc, one, arith::AddFOp::create(b, loc, one, decay))
              .getResult();
        });
  }

  /// log(sigmoid(scores * factor)) = min(z, 0) - log1p(exp(-|z|)), finite.
  Value logSigmoid(Value scores, float factor) {
    return elementwise(
        scores, b.getF32Type(),
        [&](OpBuilder &b, Location loc, ValueRange args) {
          Value z = scaled(b, loc, args[0], factor);
          Value magnitude = math::AbsFOp::create(b, loc, z);
          Value tail = math::Log1pOp::create(
              b, loc,
              math::ExpOp::create(b, loc,
                                  arith::NegFOp::create(b, loc, magnitude)));
          Value head =
              arith::MinimumFOp::create(b, loc, z, constant(b, loc, 0));
          return arith::SubFOp::create(b, loc, head, tail).getResult();
        });
  }

  /// Whether each score is among the k largest of its row, ties going to
  /// the lower index: score j is kept when fewer than k scores beat it.
  Value topKMask(Value scores, int64_t k) {
    int64_t width = widthOf(scores);
    Type i32 = b.getI32Type();
    Value counts = fill(empty(width, i32), b.getI32IntegerAttr(0));
    counts = generic(
        {par, par, red}, {scores, scores}, {map(3, {0, 2}), map(3, {0, 1})},
        counts, map(3, {0, 1}), [&](OpBuilder &b, Location loc, ValueRange a) {
          Value i = linalg::IndexOp::create(b, loc, 2);
          Value j = linalg::IndexOp::create(b, loc, 1);
          Value lower =
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, i, j);
          Value atLeast = arith::CmpFOp::create(
              b, loc, arith::CmpFPredicate::OGE, a[0], a[1]);
          Value above = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT,
                                              a[0], a[1]);
          Value beats = arith::SelectOp::create(b, loc, lower, atLeast, above);
          return arith::AddIOp::create(
                     b, loc, a[2], arith::ExtUIOp::create(b, loc, i32, beats))
              .getResult();
        });
    return elementwise(
        counts, b.getI1Type(),
        [&](OpBuilder &b, Location loc, ValueRange args) {
          Value limit = arith::ConstantIntOp::create(b, loc, i32, k);
          return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt,
                                       args[0], limit)
              .getResult();
        });
  }

  /// softmax(scores * factor) within each segment of consecutive columns
  /// (`segmentSizes`), over the entries `kept` marks (all when null),
  /// times `segmentScale[t, s]` when given. Each weight is
  /// exp(max(x - m, -kFloatMax) * factor) / sum with m the segment's maximum:
  /// never NaN for finite scores, since the maximum's own term is 1.
  Value segmentedSoftmax(Value scores, float factor, Value kept,
                         ArrayRef<int64_t> segmentSizes,
                         Value segmentScale = {}) {
    int64_t width = widthOf(scores);
    int64_t segments = segmentSizes.size();
    Value ids = segmentIds(segmentSizes);
    Value maxes = generic(
        {par, par, red}, {scores, ids}, {map(3, {0, 2}), map(3, {2})},
        fill(empty(segments, b.getF32Type()), b.getF32FloatAttr(-kFloatMax)),
        map(3, {0, 1}), [&](OpBuilder &b, Location loc, ValueRange a) {
          Value inside = inSegment(b, loc, a[1], /*segmentDim=*/1);
          Value value = arith::SelectOp::create(b, loc, inside, a[0],
                                                constant(b, loc, -kFloatMax));
          return arith::MaximumFOp::create(b, loc, a[2], value).getResult();
        });
    // Inputs of the two remaining steps: score, segment id, maximum, then
    // the sum, the kept flag and the scale where present. Each (element,
    // segment) pair contributes only where the element is in the segment
    // (and kept); its exp is computed there alone.
    auto taken = [&](OpBuilder &b, Location loc, ValueRange a,
                     unsigned segmentDim, std::optional<unsigned> keptAt) {
      Value take = inSegment(b, loc, a[1], segmentDim);
      if (keptAt)
        take = arith::AndIOp::create(b, loc, take, a[*keptAt]);
      return take;
    };
    auto exponential = [&](OpBuilder &b, Location loc, ValueRange a) -> Value {
      Value gap = arith::MaximumFOp::create(
          b, loc, arith::SubFOp::create(b, loc, a[0], a[2]),
          constant(b, loc, -kFloatMax));
      return math::ExpOp::create(b, loc, scaled(b, loc, gap, factor, false));
    };
    SmallVector<Value> sumInputs = {scores, ids, maxes};
    SmallVector<AffineMap> sumMaps = {map(3, {0, 2}), map(3, {2}),
                                      map(3, {0, 1})};
    if (kept) {
      sumInputs.push_back(kept);
      sumMaps.push_back(map(3, {0, 2}));
    }
    Value sums =
        generic({par, par, red}, sumInputs, sumMaps,
                fill(empty(segments, b.getF32Type()), b.getF32FloatAttr(0.0f)),
                map(3, {0, 1}), [&](OpBuilder &b, Location loc, ValueRange a) {
                  Value take =
                      taken(b, loc, a, 1,
                            kept ? std::optional<unsigned>(3) : std::nullopt);
                  return addWhere(b, loc, take, a.back(),
                                  [&](OpBuilder &b, Location loc) {
                                    return exponential(b, loc, a);
                                  });
                });
    // Each weight gathers its segment's maximum and sum by a reduction over
    // the segments in which only its own contributes.
    SmallVector<Value> inputs = {scores, ids, maxes, sums};
    SmallVector<AffineMap> maps = {map(3, {0, 1}), map(3, {1}), map(3, {0, 2}),
                                   map(3, {0, 2})};
    std::optional<unsigned> keptAt, scaleAt;
    if (kept) {
      keptAt = inputs.size();
      inputs.push_back(kept);
      maps.push_back(map(3, {0, 1}));
    }
    if (segmentScale) {
      scaleAt = inputs.size();
      inputs.push_back(segmentScale);
      maps.push_back(map(3, {0, 2}));
    }
    return generic(
        {par, par, red}, inputs, maps,
        fill(empty(width, b.getF32Type()), b.getF32FloatAttr(0.0f)),
        map(3, {0, 1}), [&](OpBuilder &b, Location loc, ValueRange a) {
          Value take = taken(b, loc, a, 2, keptAt);
          return addWhere(
              b, loc, take, a.back(), [&](OpBuilder &b, Location loc) -> Value {
                Value weight =
                    arith::DivFOp::create(b, loc, exponential(b, loc, a), a[3]);
                if (scaleAt)
                  weight = arith::MulFOp::create(b, loc, weight, a[*scaleAt]);
                return weight;
              });
        });
  }

private:
  static constexpr utils::IteratorType par = utils::IteratorType::parallel;
  static constexpr utils::IteratorType red = utils::IteratorType::reduction;

  static Value constant(OpBuilder &b, Location loc, float value) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(value));
  }

  static Value clamp(OpBuilder &b, Location loc, Value value) {
    Value upper =
        arith::MinimumFOp::create(b, loc, value, constant(b, loc, kFloatMax));
    return arith::MaximumFOp::create(b, loc, upper,
                                     constant(b, loc, -kFloatMax));
  }

  /// value * factor, clamped to finite values unless `clampResult` is false.
  static Value scaled(OpBuilder &b, Location loc, Value value, float factor,
                      bool clampResult = true) {
    Value product =
        arith::MulFOp::create(b, loc, value, constant(b, loc, factor));
    return clampResult ? clamp(b, loc, product) : product;
  }

  /// acc + addend() where `take` holds, else acc; the addend is computed only
  /// where it is taken.
  static Value
  addWhere(OpBuilder &b, Location loc, Value take, Value acc,
           llvm::function_ref<Value(OpBuilder &, Location)> addend) {
    auto sum = scf::IfOp::create(
        b, loc, take,
        [&](OpBuilder &b, Location loc) {
          Value added = arith::AddFOp::create(b, loc, acc, addend(b, loc));
          scf::YieldOp::create(b, loc, added);
        },
        [&](OpBuilder &b, Location loc) { scf::YieldOp::create(b, loc, acc); });
    return sum.getResult(0);
  }

  /// Whether segment id `id` (i32) is the loop index `segmentDim`.
  static Value inSegment(OpBuilder &b, Location loc, Value id,
                         unsigned segmentDim) {
    Value segment = arith::IndexCastOp::create(
        b, loc, b.getI32Type(), linalg::IndexOp::create(b, loc, segmentDim));
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, id, segment);
  }

  static int64_t widthOf(Value tensor) {
    return cast<RankedTensorType>(tensor.getType()).getDimSize(1);
  }

  AffineMap map(unsigned dims, ArrayRef<unsigned> results) {
    SmallVector<AffineExpr> exprs;
    for (unsigned dim : results)
      exprs.push_back(b.getAffineDimExpr(dim));
    return AffineMap::get(dims, 0, exprs, b.getContext());
  }

  Value empty(int64_t width, Type elementType) {
    auto rows = cast<RankedTensorType>(rowsOf.getType()).getDimSize(0);
    return emptyWithRowsOf(
        b, loc, RankedTensorType::get({rows, width}, elementType), rowsOf);
  }

  Value fill(Value init, TypedAttr value) {
    Value scalar = arith::ConstantOp::create(b, loc, value);
    return linalg::FillOp::create(b, loc, scalar, init).getResult(0);
  }

  /// The segment id of every column, as a constant i32 vector.
  Value segmentIds(ArrayRef<int64_t> sizes) {
    SmallVector<int32_t> ids;
    for (auto [segment, size] : llvm::enumerate(sizes))
      ids.append(size, int32_t(segment));
    auto type = RankedTensorType::get({int64_t(ids.size())}, b.getI32Type());
    return arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(type, ArrayRef<int32_t>(ids)));
  }

  Value generic(ArrayRef<utils::IteratorType> iterators, ValueRange inputs,
                ArrayRef<AffineMap> inputMaps, Value init, AffineMap initMap,
                BodyBuilder body) {
    SmallVector<AffineMap> maps(inputMaps);
    maps.push_back(initMap);
    auto op = linalg::GenericOp::create(
        b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, maps,
        iterators, [&](OpBuilder &b, Location loc, ValueRange args) {
          linalg::YieldOp::create(b, loc, body(b, loc, args));
        });
    return op.getResult(0);
  }

  /// `body` applied to every element of the T x N `input`.
  Value elementwise(Value input, Type resultType, BodyBuilder body) {
    return generic({par, par}, {input}, {map(2, {0, 1})},
                   empty(widthOf(input), resultType), map(2, {0, 1}), body);
  }

  OpBuilder &b;
  Location loc;
  Value rowsOf;
};

/// The routing weights of every (row, expert), by the router's kind.
struct NormalizeRoutingLowering : OpConversionPattern<NormalizeRoutingOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(NormalizeRoutingOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    int64_t experts = op.getType().getDimSize(1);
    if (ShapedType::isDynamic(experts))
      return rewriter.notifyMatchFailure(op, "needs a static expert count");
    Value scores = adaptor.getExpertScores();
    RoutingBuilder routing(rewriter, op.getLoc(), scores);
    rewriter.replaceOp(op, build(op, adaptor, routing, experts));
    return success();
  }

  static Value build(NormalizeRoutingOp op, OpAdaptor adaptor,
                     RoutingBuilder &routing, int64_t experts) {
    Value scores = routing.finite(adaptor.getExpertScores());
    std::optional<uint64_t> topK = op.getTopK();
    switch (op.getKind()) {
    case RouterKind::softmax:
    case RouterKind::cosine: {
      float factor =
          reciprocalTemperature(op.getTemperature().convertToDouble());
      Value kept = topK ? routing.topKMask(scores, *topK) : Value();
      return routing.segmentedSoftmax(scores, factor, kept, {experts});
    }
    case RouterKind::sigmoid: {
      float factor =
          reciprocalTemperature(op.getTemperature().convertToDouble());
      if (!topK)
        return routing.sigmoid(scores, factor);
      // The kept sigmoids renormalised: a softmax of their logarithms,
      // which stays finite where every kept sigmoid underflows to 0.
      Value kept = routing.topKMask(scores, *topK);
      return routing.segmentedSoftmax(routing.logSigmoid(scores, factor), 1.0f,
                                      kept, {experts});
    }
    case RouterKind::grouped_softmax:
      return buildGrouped(op, adaptor, routing, scores);
    }
    llvm_unreachable("unknown router kind");
  }

  /// p = softmax over (kept) groups, q = softmax inside each group,
  /// w_e = p_g(e) * q_e.
  static Value buildGrouped(NormalizeRoutingOp op, OpAdaptor adaptor,
                            RoutingBuilder &routing, Value scores) {
    SmallVector<int64_t> groupSizes(
        op.getGroupSizes().value_or(ArrayRef<int64_t>{}));
    Value groupScores = routing.finite(adaptor.getGroupScores());
    std::optional<uint64_t> topKGroups = op.getTopKGroups();
    Value keptGroups =
        topKGroups ? routing.topKMask(groupScores, *topKGroups) : Value();
    Value groupWeights = routing.segmentedSoftmax(
        groupScores, reciprocalTemperature(op.getGroupTau()), keptGroups,
        {int64_t(groupSizes.size())});
    return routing.segmentedSoftmax(scores,
                                    reciprocalTemperature(op.getExpertTau()),
                                    Value(), groupSizes, groupWeights);
  }
};

/// dot / max(|lhs_i| |rhs_j|, 1e-12): a matmul, two squared-norm reductions
/// and one elementwise division.
struct CosineSimilarityLowering : OpConversionPattern<CosineSimilarityOp> {
  using OpConversionPattern::OpConversionPattern;

  static Value squaredRowNorms(OpBuilder &b, Location loc, Value matrix) {
    auto type = cast<RankedTensorType>(matrix.getType());
    auto normsType =
        RankedTensorType::get({type.getDimSize(0)}, b.getF32Type());
    SmallVector<Value> dynamic;
    if (normsType.isDynamicDim(0))
      dynamic.push_back(tensor::DimOp::create(b, loc, matrix, 0));
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
    Value init =
        linalg::FillOp::create(
            b, loc, zero,
            tensor::EmptyOp::create(b, loc, normsType, dynamic).getResult())
            .getResult(0);
    MLIRContext *context = b.getContext();
    AffineMap input = AffineMap::getMultiDimIdentityMap(2, context);
    AffineMap output =
        AffineMap::get(2, 0, {getAffineDimExpr(0, context)}, context);
    return linalg::GenericOp::create(
               b, loc, TypeRange{normsType}, ValueRange{matrix},
               ValueRange{init}, ArrayRef<AffineMap>{input, output},
               {utils::IteratorType::parallel, utils::IteratorType::reduction},
               [](OpBuilder &b, Location loc, ValueRange args) {
                 Value element = widenToF32(b, loc, args[0]);
                 Value square = arith::MulFOp::create(b, loc, element, element);
                 linalg::YieldOp::create(
                     b, loc,
                     arith::AddFOp::create(b, loc, args[1], square)
                         .getResult());
               })
        .getResult(0);
  }

  LogicalResult
  matchAndRewrite(CosineSimilarityOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    Value lhs = adaptor.getLhs(), rhs = adaptor.getRhs();
    Value dots =
        matmulTransposeB(rewriter, loc, lhs, rhs,
                         filled(rewriter, loc, type, lhs, 0.0), "router");
    Value lhsNorms = squaredRowNorms(rewriter, loc, lhs);
    Value rhsNorms = squaredRowNorms(rewriter, loc, rhs);
    MLIRContext *context = rewriter.getContext();
    AffineMap identity = AffineMap::getMultiDimIdentityMap(2, context);
    AffineMap rowMap =
        AffineMap::get(2, 0, {getAffineDimExpr(0, context)}, context);
    AffineMap colMap =
        AffineMap::get(2, 0, {getAffineDimExpr(1, context)}, context);
    Value empty = emptyWithRowsOf(rewriter, loc, type, lhs);
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{type}, ValueRange{dots, lhsNorms, rhsNorms},
        ValueRange{empty},
        ArrayRef<AffineMap>{identity, rowMap, colMap, identity},
        SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
        [](OpBuilder &b, Location loc, ValueRange args) {
          Value lhsNorm = math::SqrtOp::create(b, loc, args[1]);
          Value rhsNorm = math::SqrtOp::create(b, loc, args[2]);
          Value floor =
              arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1e-12f));
          Value denominator = arith::MaximumFOp::create(
              b, loc, arith::MulFOp::create(b, loc, lhsNorm, rhsNorm), floor);
          linalg::YieldOp::create(
              b, loc,
              arith::DivFOp::create(b, loc, args[0], denominator).getResult());
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
  }
};

/// Copies row s of the routing weights into the rows of segment s.
struct ExpandSegmentsLowering : OpConversionPattern<ExpandSegmentsOp> {
  using OpConversionPattern::OpConversionPattern;

  /// Broadcasts `row` (1 x E) over the rows of `into`.
  static Value broadcastRow(OpBuilder &b, Location loc, Value row, Value into) {
    MLIRContext *context = b.getContext();
    AffineMap identity = AffineMap::getMultiDimIdentityMap(2, context);
    AffineMap firstRow = AffineMap::get(
        2, 0, {getAffineConstantExpr(0, context), getAffineDimExpr(1, context)},
        context);
    return linalg::GenericOp::create(
               b, loc, TypeRange{into.getType()}, ValueRange{row},
               ValueRange{into}, ArrayRef<AffineMap>{firstRow, identity},
               SmallVector<utils::IteratorType>(2,
                                                utils::IteratorType::parallel),
               [](OpBuilder &b, Location loc, ValueRange args) {
                 linalg::YieldOp::create(b, loc, args[0]);
               })
        .getResult(0);
  }

  LogicalResult
  matchAndRewrite(ExpandSegmentsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    SmallVector<Value> dynamic;
    if (type.isDynamicDim(0))
      dynamic.push_back(adaptor.getNumTokens());
    Value routing = adaptor.getRouting();
    Value empty = tensor::EmptyOp::create(rewriter, loc, type, dynamic);
    if (!adaptor.getSegments()) {
      rewriter.replaceOp(op, broadcastRow(rewriter, loc, routing, empty));
      return success();
    }

    Value segments = adaptor.getSegments();
    Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
    Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
    Value count = tensor::DimOp::create(rewriter, loc, segments, 0);
    Value experts = tensor::DimOp::create(rewriter, loc, routing, 1);
    auto loop = scf::ForOp::create(
        rewriter, loc, zero, count, one, ValueRange{empty, zero},
        [&](OpBuilder &b, Location loc, Value s, ValueRange iterArgs) {
          Value acc = iterArgs[0], offset = iterArgs[1];
          Value length = arith::IndexCastOp::create(
              b, loc, b.getIndexType(),
              tensor::ExtractOp::create(b, loc, segments, ValueRange{s}));
          SmallVector<OpFoldResult> unit = {b.getIndexAttr(1),
                                            b.getIndexAttr(1)};
          Value row = tensor::ExtractSliceOp::create(
              b, loc, routing, ArrayRef<OpFoldResult>{s, b.getIndexAttr(0)},
              ArrayRef<OpFoldResult>{b.getIndexAttr(1), experts}, unit);
          SmallVector<OpFoldResult> offsets = {offset, b.getIndexAttr(0)};
          SmallVector<OpFoldResult> sizes = {length, experts};
          Value tile =
              tensor::ExtractSliceOp::create(b, loc, acc, offsets, sizes, unit);
          Value filledTile = broadcastRow(b, loc, row, tile);
          Value next = tensor::InsertSliceOp::create(b, loc, filledTile, acc,
                                                     offsets, sizes, unit);
          Value nextOffset = arith::AddIOp::create(b, loc, offset, length);
          scf::YieldOp::create(b, loc, ValueRange{next, nextOffset});
        });
    rewriter.replaceOp(op, loop.getResult(0));
    return success();
  }
};

} // namespace

void lowering::populateRoutingPatterns(RewritePatternSet &patterns) {
  patterns.add<NormalizeRoutingLowering, CosineSimilarityLowering,
               ExpandSegmentsLowering>(patterns.getContext());
}
