//===- FuseLora.cpp - stack the adapters of a projection --------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"
#include "atmoe/Dialect/Atmoe/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_FUSELORAPASS
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

Value widened(OpBuilder &b, Location loc, Value scalar) {
  return scalar.getType().isF32()
             ? scalar
             : arith::ExtFOp::create(b, loc, b.getF32Type(), scalar);
}

/// `init + sum_n factors[t, n] * (rows[n, o] - shift)`: a T x d_out term
/// from per-token factors (T x N) and one d_out vector per adapter.
Value contractFactors(OpBuilder &b, Location loc, Value factors,
                      ArrayRef<Value> vectors, double init, double shift) {
  SmallVector<Value> rows;
  for (Value vector : vectors) {
    auto type = cast<RankedTensorType>(vector.getType());
    auto rowType =
        RankedTensorType::get({1, type.getDimSize(0)}, type.getElementType());
    rows.push_back(tensor::ExpandShapeOp::create(
        b, loc, rowType, vector, ArrayRef<ReassociationIndices>{{0, 1}}));
  }
  Value stacked = concatenateAdapters(b, loc, 0, rows);
  auto factorsType = cast<RankedTensorType>(factors.getType());
  int64_t outFeatures = cast<RankedTensorType>(stacked.getType()).getDimSize(1);
  auto resultType = RankedTensorType::get(
      {factorsType.getDimSize(0), outFeatures}, b.getF32Type());
  SmallVector<Value> dynamic;
  if (resultType.isDynamicDim(0))
    dynamic.push_back(tensor::DimOp::create(b, loc, factors, 0));
  Value empty = tensor::EmptyOp::create(b, loc, resultType, dynamic);
  Value start = linalg::FillOp::create(b, loc,
                                       ValueRange{arith::ConstantOp::create(
                                           b, loc, b.getF32FloatAttr(init))},
                                       ValueRange{empty})
                    .getResult(0);
  MLIRContext *context = b.getContext();
  AffineExpr t, o, n;
  // Output features innermost: the loops read the rows and write the result
  // contiguously (with the adapter innermost, every step is a gather).
  bindDims(context, t, n, o);
  auto map = [&](ArrayRef<AffineExpr> results) {
    return AffineMap::get(3, 0, results, context);
  };
  return linalg::GenericOp::create(
             b, loc, TypeRange{resultType}, ValueRange{factors, stacked},
             ValueRange{start},
             ArrayRef<AffineMap>{map({t, n}), map({n, o}), map({t, o})},
             {utils::IteratorType::parallel, utils::IteratorType::reduction,
              utils::IteratorType::parallel},
             [shift](OpBuilder &b, Location loc, ValueRange args) {
               Value row = widened(b, loc, args[1]);
               if (shift != 0.0)
                 row = arith::SubFOp::create(
                     b, loc, row,
                     arith::ConstantOp::create(b, loc,
                                               b.getF32FloatAttr(shift)));
               Value term = arith::MulFOp::create(b, loc, args[0], row);
               Value sum = arith::AddFOp::create(b, loc, args[2], term);
               linalg::YieldOp::create(b, loc, sum);
             })
      .getResult(0);
}

/// The optional terms of PEFT's variants: `offset` from LoRA biases,
/// `base_scale` from DoRA adapters; the DoRA adapters' up matrices are
/// scaled in `loraB`.
struct VariantTerms {
  Value baseScale, offset;
};

VariantTerms buildVariantTerms(PatternRewriter &rewriter, LoraLinearOp op,
                               const StackedAdapters &stacked, Value numTokens,
                               SmallVector<Value> &loraB) {
  Location loc = op.getLoc();
  int64_t tokens = op.getInput().getType().getDimSize(0);
  VariantTerms terms;
  auto factorsFor = [&](bool dora) {
    SmallVector<int64_t> ranks, columns;
    SmallVector<double> factors;
    SmallVector<Value> vectors;
    for (unsigned i = 0, e = op.getAdapters().size(); i < e; ++i) {
      Value vector = dora ? op.getDoraScaleOf(i) : op.getLoraBiasOf(i);
      if (!vector)
        continue;
      vectors.push_back(vector);
      ranks.push_back(1);
      columns.push_back(stacked.columns[i]);
      // The stacked factor includes alpha / r, which DoRA's base term lacks.
      double scale = op.getAdapter(i).getScale();
      factors.push_back(dora ? stacked.factors[i] / scale : stacked.factors[i]);
    }
    auto type = RankedTensorType::get({tokens, int64_t(vectors.size())},
                                      rewriter.getF32Type());
    Value perToken =
        LoraScalesOp::create(rewriter, loc, type, op.getRouting(), numTokens,
                             rewriter.getDenseI64ArrayAttr(ranks),
                             rewriter.getDenseI64ArrayAttr(columns),
                             rewriter.getDenseF64ArrayAttr(factors));
    return std::make_pair(perToken, vectors);
  };
  if (!op.getLoraBias().empty()) {
    auto [perToken, biases] = factorsFor(/*dora=*/false);
    terms.offset = contractFactors(rewriter, loc, perToken, biases, 0.0, 0.0);
  }
  if (!op.getDoraScale().empty()) {
    auto [perToken, scales] = factorsFor(/*dora=*/true);
    terms.baseScale =
        contractFactors(rewriter, loc, perToken, scales, 1.0, 1.0);
    for (unsigned i = 0, e = op.getAdapters().size(); i < e; ++i)
      if (Value scale = op.getDoraScaleOf(i))
        loraB[i] =
            ScaleRowsOp::create(rewriter, loc,
                                cast<RankedTensorType>(loraB[i].getType())
                                    .clone(rewriter.getF32Type()),
                                loraB[i], scale);
  }
  return terms;
}

struct StackAdapters : OpRewritePattern<LoraLinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LoraLinearOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getGranularity() != Granularity::token)
      return rewriter.notifyMatchFailure(
          op, "sequence granularity: run --atmoe-expand-segments first");
    auto layer =
        SymbolTable::lookupNearestSymbolFrom<LayerOp>(op, op.getLayerAttr());
    if (!layer)
      return rewriter.notifyMatchFailure(op, "layer not found");
    Location loc = op.getLoc();
    if (op.getAdapters().empty()) {
      rewriter.replaceOpWithNewOp<LinearOp>(op, op.getType(), op.getInput(),
                                            op.getWeight(), op.getBias());
      return success();
    }

    FailureOr<StackedAdapters> stacked = stackAdapters(op, layer);
    if (failed(stacked))
      return rewriter.notifyMatchFailure(op, "adapter names no expert");

    int64_t tokens = op.getInput().getType().getDimSize(0);
    Value numTokens = tensor::DimOp::create(rewriter, loc, op.getInput(), 0);
    SmallVector<Value> loraB(op.getLoraB());
    VariantTerms variants;
    if (op.hasVariantAdapters())
      variants = buildVariantTerms(rewriter, op, *stacked, numTokens, loraB);
    Value down = concatenateAdapters(rewriter, loc, 0, op.getLoraA());
    Value up = concatenateAdapters(rewriter, loc, 1, loraB);
    auto scalesType = RankedTensorType::get({tokens, stacked->totalRank},
                                            rewriter.getF32Type());
    Value scales = LoraScalesOp::create(
        rewriter, loc, scalesType, op.getRouting(), numTokens,
        rewriter.getDenseI64ArrayAttr(stacked->ranks),
        rewriter.getDenseI64ArrayAttr(stacked->columns),
        rewriter.getDenseF64ArrayAttr(stacked->factors));
    rewriter.replaceOpWithNewOp<StackedLoraLinearOp>(
        op, op.getType(), op.getInput(), op.getWeight(), op.getBias(), down, up,
        scales, variants.baseScale, variants.offset);
    return success();
  }
};

struct FuseLoraPass : atmoe::impl::FuseLoraPassBase<FuseLoraPass> {
  using FuseLoraPassBase::FuseLoraPassBase;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFuseLoraPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace

FailureOr<StackedAdapters> mlir::atmoe::stackAdapters(LoraLinearOp op,
                                                      LayerOp layer) {
  StackedAdapters stacked;
  SharedExpertOp shared = layer.getSharedExpert();
  double lambda = shared ? shared.getLambda().convertToDouble() : 1.0;
  llvm::StringMap<int64_t> columns = layer.getRoutedExpertColumns();
  for (unsigned i = 0, e = op.getAdapters().size(); i < e; ++i) {
    LoraAttr adapter = op.getAdapter(i);
    StringRef expert = adapter.getExpert().getValue();
    stacked.ranks.push_back(adapter.getRank());
    stacked.totalRank += adapter.getRank();
    if (shared && shared.getSymName() == expert) {
      stacked.columns.push_back(-1);
      stacked.factors.push_back((1.0 - lambda) * adapter.getScale());
      continue;
    }
    auto column = columns.find(expert);
    if (column == columns.end())
      return failure();
    stacked.columns.push_back(column->second);
    stacked.factors.push_back(lambda * adapter.getScale());
  }
  return stacked;
}

Value mlir::atmoe::concatenateAdapters(OpBuilder &b, Location loc, int64_t dim,
                                       ValueRange values) {
  if (values.size() == 1)
    return values.front();
  Type common = getElementTypeOrSelf(values.front().getType());
  if (llvm::any_of(values, [&](Value value) {
        return getElementTypeOrSelf(value.getType()) != common;
      })) {
    SmallVector<Value> widened;
    for (Value value : values) {
      auto type = cast<RankedTensorType>(value.getType());
      widened.push_back(
          type.getElementType().isF32()
              ? value
              : arith::ExtFOp::create(b, loc, type.clone(b.getF32Type()), value)
                    .getResult());
    }
    return tensor::ConcatOp::create(b, loc, dim, widened);
  }
  return tensor::ConcatOp::create(b, loc, dim, values);
}

void mlir::atmoe::populateFuseLoraPatterns(RewritePatternSet &patterns) {
  patterns.add<StackAdapters>(patterns.getContext());
}
