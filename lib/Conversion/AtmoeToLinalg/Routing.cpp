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

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::lowering;

namespace {

/// Builds the scalar arithmetic of one routing weight inside a linalg.generic
/// body. Every row has few experts (E, G are static and small), so the body
/// reads the whole row with tensor.extract and unrolls over it: each weight
/// is computed from its row with no intermediate tensors.
class RowBuilder {
public:
  RowBuilder(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  Value f32(double value) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(value));
  }
  Value index(int64_t value) {
    return arith::ConstantIndexOp::create(b, loc, value);
  }
  Value mul(Value lhs, Value rhs) {
    return arith::MulFOp::create(b, loc, lhs, rhs);
  }
  Value sub(Value lhs, Value rhs) {
    return arith::SubFOp::create(b, loc, lhs, rhs);
  }
  Value add(Value lhs, Value rhs) {
    return arith::AddFOp::create(b, loc, lhs, rhs);
  }
  Value div(Value lhs, Value rhs) {
    return arith::DivFOp::create(b, loc, lhs, rhs);
  }
  Value max(Value lhs, Value rhs) {
    return arith::MaximumFOp::create(b, loc, lhs, rhs);
  }
  Value exp(Value value) { return math::ExpOp::create(b, loc, value); }
  Value select(Value cond, Value lhs, Value rhs) {
    return arith::SelectOp::create(b, loc, cond, lhs, rhs);
  }

  /// `row[i] * scale` for each i of row `row` of `tensor`.
  SmallVector<Value> scaledRow(Value tensor, Value row, int64_t width,
                               double scale) {
    SmallVector<Value> values;
    Value factor = f32(scale);
    for (int64_t i = 0; i < width; ++i) {
      Value element =
          tensor::ExtractOp::create(b, loc, tensor, ValueRange{row, index(i)});
      values.push_back(mul(element, factor));
    }
    return values;
  }

  Value maxOf(ArrayRef<Value> values) {
    Value result = values.front();
    for (Value value : values.drop_front())
      result = max(result, value);
    return result;
  }

  /// values[i] where i is the dynamic `position`.
  Value pick(Value position, ArrayRef<Value> values) {
    Value result = values.front();
    for (int64_t i = 1, e = values.size(); i < e; ++i) {
      Value isI = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                        position, index(i));
      result = select(isI, values[i], result);
    }
    return result;
  }

  /// Whether each score is among the k largest, ties going to the lower
  /// index: score j is kept when fewer than k scores beat it.
  SmallVector<Value> topK(ArrayRef<Value> scores, int64_t k) {
    SmallVector<Value> kept;
    Type i32 = b.getI32Type();
    for (int64_t j = 0, e = scores.size(); j < e; ++j) {
      Value beaten = arith::ConstantIntOp::create(b, loc, i32, 0);
      for (int64_t i = 0; i < e; ++i) {
        if (i == j)
          continue;
        // A lower index wins a tie.
        auto predicate =
            i < j ? arith::CmpFPredicate::OGE : arith::CmpFPredicate::OGT;
        Value beats =
            arith::CmpFOp::create(b, loc, predicate, scores[i], scores[j]);
        beaten = arith::AddIOp::create(
            b, loc, beaten, arith::ExtUIOp::create(b, loc, i32, beats));
      }
      kept.push_back(
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, beaten,
                                arith::ConstantIntOp::create(b, loc, i32, k)));
    }
    return kept;
  }

  /// exp(scores[j] - max) / sum over kept j' of exp(scores[j'] - max), for
  /// every j (0 where not kept): a stable softmax over the kept scores.
  SmallVector<Value> softmax(ArrayRef<Value> scores, ArrayRef<Value> kept) {
    Value peak = maxOf(scores);
    Value zero = f32(0.0);
    SmallVector<Value> exps;
    Value sum = zero;
    for (auto [j, score] : llvm::enumerate(scores)) {
      Value e = exp(sub(score, peak));
      if (!kept.empty())
        e = select(kept[j], e, zero);
      exps.push_back(e);
      sum = add(sum, e);
    }
    SmallVector<Value> result;
    for (Value e : exps)
      result.push_back(div(e, sum));
    return result;
  }

private:
  OpBuilder &b;
  Location loc;
};

/// One linalg.generic over (row, expert) computing every routing weight.
struct NormalizeRoutingLowering : OpConversionPattern<NormalizeRoutingOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(NormalizeRoutingOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    RankedTensorType type = op.getType();
    int64_t experts = type.getDimSize(1);
    if (ShapedType::isDynamic(experts))
      return rewriter.notifyMatchFailure(op, "needs a static expert count");
    Location loc = op.getLoc();
    Value scores = adaptor.getExpertScores();
    Value groupScores = adaptor.getGroupScores();
    Value empty = emptyWithRowsOf(rewriter, loc, type, scores);
    MLIRContext *context = rewriter.getContext();
    AffineMap identity = AffineMap::getMultiDimIdentityMap(2, context);
    SmallVector<utils::IteratorType> parallel(2, utils::IteratorType::parallel);

    RouterKind kind = op.getKind();
    double expertTau = kind == RouterKind::grouped_softmax
                           ? op.getExpertTau()
                           : op.getTemperature().convertToDouble();
    std::optional<uint64_t> topK = op.getTopK();
    std::optional<uint64_t> topKGroups = op.getTopKGroups();
    SmallVector<int64_t> groupSizes(
        op.getGroupSizes().value_or(ArrayRef<int64_t>{}));
    double groupTau = op.getGroupTau();

    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{type}, ValueRange{}, ValueRange{empty},
        ArrayRef<AffineMap>{identity}, parallel,
        [&](OpBuilder &b, Location loc, ValueRange) {
          RowBuilder row(b, loc);
          Value t = linalg::IndexOp::create(b, loc, 0);
          Value e = linalg::IndexOp::create(b, loc, 1);
          SmallVector<Value> a =
              row.scaledRow(scores, t, experts, 1.0 / expertTau);
          SmallVector<Value> weights;
          switch (kind) {
          case RouterKind::softmax:
          case RouterKind::cosine: {
            SmallVector<Value> kept;
            if (topK)
              kept = row.topK(a, *topK);
            weights = row.softmax(a, kept);
            break;
          }
          case RouterKind::sigmoid: {
            Value one = row.f32(1.0);
            for (Value score : a)
              weights.push_back(row.div(
                  one, row.add(one, row.exp(row.sub(row.f32(0.0), score)))));
            if (topK) {
              SmallVector<Value> kept = row.topK(a, *topK);
              Value zero = row.f32(0.0), sum = zero;
              for (auto [j, weight] : llvm::enumerate(weights)) {
                weight = row.select(kept[j], weight, zero);
                sum = row.add(sum, weight);
              }
              for (Value &weight : weights)
                weight = row.div(weight, sum);
            }
            break;
          }
          case RouterKind::grouped_softmax: {
            int64_t groups = groupSizes.size();
            SmallVector<Value> u =
                row.scaledRow(groupScores, t, groups, 1.0 / groupTau);
            SmallVector<Value> keptGroups;
            if (topKGroups)
              keptGroups = row.topK(u, *topKGroups);
            SmallVector<Value> p = row.softmax(u, keptGroups);
            int64_t first = 0;
            for (auto [g, size] : llvm::enumerate(groupSizes)) {
              SmallVector<Value> q = row.softmax(
                  ArrayRef<Value>(a).slice(first, size), /*kept=*/{});
              for (Value inGroup : q)
                weights.push_back(row.mul(p[g], inGroup));
              first += size;
            }
            break;
          }
          }
          linalg::YieldOp::create(b, loc, row.pick(e, weights));
        });
    rewriter.replaceOp(op, generic.getResult(0));
    return success();
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
