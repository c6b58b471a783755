//===- Linear.cpp - projections to linalg -----------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "PopulatePatterns.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::lowering;

Value lowering::emptyWithRowsOf(OpBuilder &b, Location loc,
                                RankedTensorType type, Value rowsOf) {
  SmallVector<Value> dynamic;
  if (type.isDynamicDim(0))
    dynamic.push_back(tensor::DimOp::create(b, loc, rowsOf, 0));
  return tensor::EmptyOp::create(b, loc, type, dynamic);
}

Value lowering::filled(OpBuilder &b, Location loc, RankedTensorType type,
                       Value rowsOf, double value) {
  Value constant = arith::ConstantOp::create(
      b, loc, b.getFloatAttr(type.getElementType(), value));
  Value empty = emptyWithRowsOf(b, loc, type, rowsOf);
  return linalg::FillOp::create(b, loc, constant, empty).getResult(0);
}

static Value matmulWithMaps(OpBuilder &b, Location loc, Value lhs, Value rhs,
                            Value init, bool transposeB, StringRef role) {
  MLIRContext *context = b.getContext();
  AffineExpr m, n, k;
  bindDims(context, m, n, k);
  auto map = [&](ArrayRef<AffineExpr> results) {
    return AffineMapAttr::get(AffineMap::get(3, 0, results, context));
  };
  SmallVector<Attribute> maps = {
      map({m, k}), transposeB ? map({n, k}) : map({k, n}), map({m, n})};
  auto op = linalg::MatmulOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{lhs, rhs}, ValueRange{init},
      {b.getNamedAttr("indexing_maps", b.getArrayAttr(maps)),
       b.getNamedAttr(kMatmulRoleAttr, b.getStringAttr(role))});
  return op.getResult(0);
}

Value lowering::matmulTransposeB(OpBuilder &b, Location loc, Value lhs,
                                 Value rhs, Value init, StringRef role) {
  return matmulWithMaps(b, loc, lhs, rhs, init, /*transposeB=*/true, role);
}

Value lowering::matmul(OpBuilder &b, Location loc, Value lhs, Value rhs,
                       Value init, StringRef role) {
  return matmulWithMaps(b, loc, lhs, rhs, init, /*transposeB=*/false, role);
}

Value lowering::widenToF32(OpBuilder &b, Location loc, Value scalar) {
  if (scalar.getType().isF32())
    return scalar;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), scalar);
}

Value lowering::widenInto(OpBuilder &b, Location loc, Value source, Value init,
                          AffineMap sourceMap) {
  AffineMap identity = AffineMap::getMultiDimIdentityMap(2, b.getContext());
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{source},
             ValueRange{init}, ArrayRef<AffineMap>{sourceMap, identity},
             SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
             [](OpBuilder &b, Location loc, ValueRange args) {
               linalg::YieldOp::create(b, loc, widenToF32(b, loc, args[0]));
             })
      .getResult(0);
}

Value lowering::biasOrZeros(OpBuilder &b, Location loc, RankedTensorType type,
                            Value rowsOf, Value bias) {
  if (!bias)
    return filled(b, loc, type, rowsOf, 0.0);
  Value empty = emptyWithRowsOf(b, loc, type, rowsOf);
  if (getElementTypeOrSelf(bias.getType()).isF32())
    return linalg::BroadcastOp::create(b, loc, bias, empty,
                                       /*dimensions=*/ArrayRef<int64_t>{0})
        .getResult()[0];
  MLIRContext *context = b.getContext();
  return widenInto(
      b, loc, bias, empty,
      AffineMap::get(2, 0, {getAffineDimExpr(1, context)}, context));
}

namespace {

struct LinearLowering : OpConversionPattern<LinearOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value init = biasOrZeros(rewriter, loc, op.getType(), adaptor.getInput(),
                             adaptor.getBias());
    rewriter.replaceOp(op, baseProduct(rewriter, loc, adaptor.getInput(),
                                       op.getWeight(), adaptor.getWeight(),
                                       init, "projection"));
    return success();
  }
};

/// `f(lhs, rhs)` elementwise over two T x d_out tensors, into `lhs`'s shape.
template <typename Combine>
static Value elementwise(OpBuilder &b, Location loc, Value lhs, Value rhs,
                         Value third, Combine combine) {
  auto type = cast<RankedTensorType>(lhs.getType());
  AffineMap identity = AffineMap::getMultiDimIdentityMap(2, b.getContext());
  SmallVector<Value> inputs = {lhs, rhs};
  if (third)
    inputs.push_back(third);
  SmallVector<AffineMap> maps(inputs.size() + 1, identity);
  return linalg::GenericOp::create(
             b, loc, TypeRange{type}, inputs,
             ValueRange{emptyWithRowsOf(b, loc, type, lhs)}, maps,
             SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
             [&](OpBuilder &b, Location loc, ValueRange args) {
               linalg::YieldOp::create(b, loc, combine(b, loc, args));
             })
      .getResult(0);
}

/// x W^T + b + offset, or (x W^T) * base_scale + b + offset with DoRA
/// adapters: what the up-projection accumulates onto.
static Value adaptedBase(ConversionPatternRewriter &rewriter,
                         StackedLoraLinearOp op,
                         StackedLoraLinearOp::Adaptor adaptor) {
  Location loc = op.getLoc();
  Value x = adaptor.getInput();
  Value init = biasOrZeros(rewriter, loc, op.getType(), x, adaptor.getBias());
  if (Value offset = adaptor.getOffset())
    init = elementwise(
        rewriter, loc, init, offset, {},
        [](OpBuilder &b, Location loc, ValueRange args) {
          return arith::AddFOp::create(b, loc, args[0], args[1]).getResult();
        });
  Value baseScale = adaptor.getBaseScale();
  if (!baseScale)
    return baseProduct(rewriter, loc, x, op.getWeight(), adaptor.getWeight(),
                       init, "lora_base");
  // Scaled before the up-projection accumulates, the product cannot be
  // fused into the up-projection's loop: it is scheduled as a projection of
  // its own (parallel over output features).
  Value product =
      baseProduct(rewriter, loc, x, op.getWeight(), adaptor.getWeight(),
                  filled(rewriter, loc, op.getType(), x, 0.0), "projection");
  return elementwise(
      rewriter, loc, product, baseScale, init,
      [](OpBuilder &b, Location loc, ValueRange args) {
        Value scaled = arith::MulFOp::create(b, loc, args[0], args[1]);
        return arith::AddFOp::create(b, loc, scaled, args[2]).getResult();
      });
}

/// y = x W^T + b + ((x down^T) * scales) up^T: the up-projection accumulates
/// into the base result, so no separate add and no extra T x d_out tensor.
struct StackedLoraLinearLowering : OpConversionPattern<StackedLoraLinearOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(StackedLoraLinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = adaptor.getInput();
    Value base = adaptedBase(rewriter, op, adaptor);

    auto scalesType = cast<RankedTensorType>(adaptor.getScales().getType());
    Value down = matmulTransposeB(rewriter, loc, x, adaptor.getDown(),
                                  filled(rewriter, loc, scalesType, x, 0.0),
                                  "lora_down");
    MLIRContext *context = rewriter.getContext();
    AffineMap identity = AffineMap::getMultiDimIdentityMap(2, context);
    SmallVector<utils::IteratorType> parallel(2, utils::IteratorType::parallel);
    Value scaled = linalg::GenericOp::create(
                       rewriter, loc, TypeRange{scalesType},
                       ValueRange{adaptor.getScales()}, ValueRange{down},
                       ArrayRef<AffineMap>{identity, identity}, parallel,
                       [](OpBuilder &b, Location loc, ValueRange args) {
                         Value product =
                             arith::MulFOp::create(b, loc, args[1], args[0]);
                         linalg::YieldOp::create(b, loc, product);
                       })
                       .getResult(0);
    rewriter.replaceOp(op, matmulTransposeB(rewriter, loc, scaled,
                                            adaptor.getUp(), base, "lora_up"));
    return success();
  }
};

/// Per rank slot of the stacked adapters: the routing column it reads
/// (0 for the shared adapter, whose factor there is 0) and the factor it
/// scales it by; the shared adapter's factor is a constant term.
struct ScaleSlots {
  SmallVector<int32_t> columns;
  SmallVector<float> routedFactors, sharedFactors;
};

ScaleSlots describeSlots(LoraScalesOp op, int64_t totalRank) {
  ScaleSlots slots;
  for (auto [rank, column, factor] :
       llvm::zip_equal(op.getRanks(), op.getColumns(), op.getFactors())) {
    bool shared = column < 0;
    slots.columns.append(rank, shared ? 0 : static_cast<int32_t>(column));
    slots.routedFactors.append(rank,
                               shared ? 0.0f : static_cast<float>(factor));
    slots.sharedFactors.append(rank,
                               shared ? static_cast<float>(factor) : 0.0f);
  }
  assert(static_cast<int64_t>(slots.columns.size()) == totalRank);
  return slots;
}

/// scales[t, slot] = shared[slot] + routing[t, columns[slot]] * factors[slot]:
/// a gather of each slot's routing weight, linear in the slots (a product
/// with a one-hot E x R matrix was E times the work and an E x R constant in
/// the binary: 800 MB at 10,000 experts).
struct LoraScalesLowering : OpConversionPattern<LoraScalesOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(LoraScalesOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    int64_t totalRank = type.getDimSize(1);
    if (ShapedType::isDynamic(totalRank))
      return rewriter.notifyMatchFailure(op, "needs static ranks");
    ScaleSlots slots = describeSlots(op, totalRank);
    auto vector = [&](Type element, auto values) -> Value {
      auto vectorType = RankedTensorType::get({totalRank}, element);
      return arith::ConstantOp::create(
          rewriter, loc, DenseElementsAttr::get(vectorType, ArrayRef(values)));
    };
    // Rows come from num_tokens, which holds even without routing weights.
    SmallVector<Value> dynamic;
    if (type.isDynamicDim(0))
      dynamic.push_back(adaptor.getNumTokens());
    Value empty = tensor::EmptyOp::create(rewriter, loc, type, dynamic);
    Value result =
        linalg::BroadcastOp::create(
            rewriter, loc, vector(rewriter.getF32Type(), slots.sharedFactors),
            empty, ArrayRef<int64_t>{0})
            .getResult()[0];
    if (Value routing = adaptor.getRouting())
      result = gatherRouted(
          rewriter, loc, routing, vector(rewriter.getI32Type(), slots.columns),
          vector(rewriter.getF32Type(), slots.routedFactors), result);
    rewriter.replaceOp(op, result);
    return success();
  }

  static Value gatherRouted(OpBuilder &b, Location loc, Value routing,
                            Value columns, Value factors, Value init) {
    MLIRContext *context = b.getContext();
    AffineMap identity = AffineMap::getMultiDimIdentityMap(2, context);
    AffineMap slot = AffineMap::get(2, 0, getAffineDimExpr(1, context));
    return linalg::GenericOp::create(
               b, loc, TypeRange{init.getType()}, ValueRange{columns, factors},
               ValueRange{init}, ArrayRef<AffineMap>{slot, slot, identity},
               SmallVector<utils::IteratorType>(2,
                                                utils::IteratorType::parallel),
               [&](OpBuilder &b, Location loc, ValueRange args) {
                 Value token = linalg::IndexOp::create(b, loc, 0);
                 Value column = arith::IndexCastOp::create(
                     b, loc, b.getIndexType(), args[0]);
                 Value weight = tensor::ExtractOp::create(
                     b, loc, routing, ValueRange{token, column});
                 Value term = arith::MulFOp::create(b, loc, weight, args[1]);
                 Value sum = arith::AddFOp::create(b, loc, args[2], term);
                 linalg::YieldOp::create(b, loc, sum);
               })
        .getResult(0);
  }
};

/// merged = W + (up * scales) down. The product accumulates into a copy of
/// W: W is a bound weight that the caller owns and later segments read
/// again, so it must never be the destination bufferization writes into.
struct MergeLoraLowering : OpConversionPattern<MergeLoraOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(MergeLoraOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *context = rewriter.getContext();
    Value up = adaptor.getUp(), weight = adaptor.getWeight();
    auto emptyLike = [&](Value value) -> Value {
      return tensor::EmptyOp::create(
          rewriter, loc, tensor::getMixedSizes(rewriter, loc, value),
          rewriter.getF32Type());
    };
    AffineMap identity = AffineMap::getMultiDimIdentityMap(2, context);
    AffineMap firstRow = AffineMap::get(
        2, 0, {getAffineConstantExpr(0, context), getAffineDimExpr(1, context)},
        context);
    Value scaledUpInit = emptyLike(up);
    Value scaledUp =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{scaledUpInit.getType()},
            ValueRange{up, adaptor.getScales()}, ValueRange{scaledUpInit},
            ArrayRef<AffineMap>{identity, firstRow, identity},
            SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
            [](OpBuilder &b, Location loc, ValueRange args) {
              Value product = arith::MulFOp::create(
                  b, loc, widenToF32(b, loc, args[0]), args[1]);
              linalg::YieldOp::create(b, loc, product);
            })
            .getResult(0);
    Value copy =
        getElementTypeOrSelf(weight.getType()).isF32()
            ? linalg::CopyOp::create(rewriter, loc, weight, emptyLike(weight))
                  .getResult(0)
            : widenInto(rewriter, loc, weight, emptyLike(weight), identity);
    rewriter.replaceOp(op, matmul(rewriter, loc, scaledUp, adaptor.getDown(),
                                  copy, "merge_lora"));
    return success();
  }
};

} // namespace

/// c = m / sqrt(rowsum((W + s B A)^2)), computed in f32 from the weights.
struct DoraScaleLowering : OpConversionPattern<DoraScaleOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(DoraScaleOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *context = rewriter.getContext();
    auto weightType = cast<RankedTensorType>(op.getWeight().getType());
    auto productType = weightType.clone(rewriter.getF32Type());
    Value zeros = filled(rewriter, loc, productType, Value(), 0.0);
    Value product = matmul(rewriter, loc, adaptor.getLoraB(),
                           adaptor.getLoraA(), zeros, "dora_norm");
    AffineExpr o, k;
    bindDims(context, o, k);
    auto map = [&](ArrayRef<AffineExpr> results) {
      return AffineMap::get(2, 0, results, context);
    };
    float scale = op.getScale().convertToDouble();
    Value sums =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{op.getType()},
            ValueRange{adaptor.getWeight(), product},
            ValueRange{filled(rewriter, loc, op.getType(), Value(), 0.0)},
            ArrayRef<AffineMap>{map({o, k}), map({o, k}), map({o})},
            {utils::IteratorType::parallel, utils::IteratorType::reduction},
            [scale](OpBuilder &b, Location loc, ValueRange args) {
              Value s =
                  arith::ConstantOp::create(b, loc, b.getF32FloatAttr(scale));
              Value term = arith::MulFOp::create(b, loc, s, args[1]);
              Value sum = arith::AddFOp::create(
                  b, loc, widenToF32(b, loc, args[0]), term);
              Value square = arith::MulFOp::create(b, loc, sum, sum);
              linalg::YieldOp::create(
                  b, loc,
                  ValueRange{arith::AddFOp::create(b, loc, args[2], square)});
            })
            .getResult(0);
    AffineMap identity = AffineMap::getMultiDimIdentityMap(1, context);
    Value empty = tensor::EmptyOp::create(rewriter, loc, op.getType(), {});
    rewriter.replaceOp(
        op, linalg::GenericOp::create(
                rewriter, loc, TypeRange{op.getType()},
                ValueRange{adaptor.getMagnitude(), sums}, ValueRange{empty},
                ArrayRef<AffineMap>{identity, identity, identity},
                {utils::IteratorType::parallel},
                [](OpBuilder &b, Location loc, ValueRange args) {
                  Value norm = math::SqrtOp::create(b, loc, args[1]);
                  linalg::YieldOp::create(
                      b, loc,
                      ValueRange{arith::DivFOp::create(
                          b, loc, widenToF32(b, loc, args[0]), norm)});
                })
                .getResult(0));
    return success();
  }
};

/// result[o, j] = matrix[o, j] * scale[o].
struct ScaleRowsLowering : OpConversionPattern<ScaleRowsOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(ScaleRowsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *context = rewriter.getContext();
    AffineMap identity = AffineMap::getMultiDimIdentityMap(2, context);
    AffineMap rowOnly = AffineMap::get(2, 0, getAffineDimExpr(0, context));
    Value init = tensor::EmptyOp::create(rewriter, loc, op.getType().getShape(),
                                         rewriter.getF32Type());
    rewriter.replaceOp(
        op,
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{op.getType()},
            ValueRange{adaptor.getMatrix(), adaptor.getScale()},
            ValueRange{init}, ArrayRef<AffineMap>{identity, rowOnly, identity},
            SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
            [](OpBuilder &b, Location loc, ValueRange args) {
              Value product = arith::MulFOp::create(
                  b, loc, widenToF32(b, loc, args[0]), args[1]);
              linalg::YieldOp::create(b, loc, product);
            })
            .getResult(0));
    return success();
  }
};

/// A widening of a whole tensor (--atmoe-fuse-lora's concatenation of
/// adapters stored in different types, where --atmoe-hoist-weight-concat
/// did not move it to bind time) as a linalg.generic, which bufferizes.
struct TensorExtFLowering : OpConversionPattern<arith::ExtFOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(arith::ExtFOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto type = dyn_cast<RankedTensorType>(op.getType());
    if (!type || !type.hasStaticShape() || type.getRank() != 2)
      return rewriter.notifyMatchFailure(op, "not a static matrix");
    Location loc = op.getLoc();
    Value empty = tensor::EmptyOp::create(rewriter, loc, type.getShape(),
                                          type.getElementType());
    rewriter.replaceOp(
        op, widenInto(rewriter, loc, adaptor.getIn(), empty,
                      AffineMap::getMultiDimIdentityMap(2, getContext())));
    return success();
  }
};

void lowering::populateLinearPatterns(RewritePatternSet &patterns) {
  patterns.add<DoraScaleLowering, LinearLowering, StackedLoraLinearLowering,
               LoraScalesLowering, ScaleRowsLowering, TensorExtFLowering,
               MergeLoraLowering>(patterns.getContext());
}
