//===- AtmoeFolds.cpp - atmoe folders and canonicalizations -----*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"

using namespace mlir;
using namespace mlir::atmoe;

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

OpFoldResult RouteOp::fold(FoldAdaptor) {
  // A normalised distribution over one expert is 1 whatever the logits.
  RankedTensorType type = getType();
  if (!type.hasStaticShape() || type.getDimSize(1) != 1 ||
      getKind() == RouterKind::sigmoid)
    return {};
  return DenseElementsAttr::get(type, 1.0f);
}

namespace {

/// Rebuilds `op` as a flat softmax over the given logits, keeping its input,
/// layer and location.
void replaceWithFlatSoftmax(PatternRewriter &rewriter, RouteOp op, Value weight,
                            Value bias, double temperature, IntegerAttr topK) {
  auto flat = RouteOp::create(
      rewriter, op.getLoc(), op.getType(),
      RouterKindAttr::get(op.getContext(), RouterKind::softmax),
      op.getLayerAttr(), /*group_sizes=*/DenseI64ArrayAttr(),
      rewriter.getF64FloatAttr(temperature), /*group_temperature=*/FloatAttr(),
      /*expert_temperature=*/FloatAttr(), topK, /*top_k_groups=*/IntegerAttr(),
      op.getInput(), /*group_weight=*/Value(), /*group_bias=*/Value(), weight,
      bias, /*proj_weight=*/Value(), /*expert_embedding=*/Value());
  rewriter.replaceOp(op, flat.getResult());
}

/// With one group, the group softmax is 1: grouped_softmax is a flat softmax
/// of the expert logits at the expert temperature.
struct SingleGroupIsFlatSoftmax : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RouteOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getKind() != RouterKind::grouped_softmax || !op.getGroupSizes() ||
        op.getGroupSizes()->size() != 1)
      return rewriter.notifyMatchFailure(op, "not a one-group router");
    replaceWithFlatSoftmax(rewriter, op, op.getExpertWeight(),
                           op.getExpertBias(), op.getExpertTau(),
                           /*topK=*/nullptr);
    return success();
  }
};

/// When every group holds one expert, each in-group weight is 1 and the
/// expert weight is its group's weight: a flat softmax of the group logits at
/// the group temperature, with top_k_groups becoming top_k.
struct SingletonGroupsAreFlatSoftmax : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RouteOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getKind() != RouterKind::grouped_softmax || !op.getGroupSizes() ||
        op.getGroupSizes()->size() < 2 ||
        !llvm::all_of(*op.getGroupSizes(),
                      [](int64_t size) { return size == 1; }))
      return rewriter.notifyMatchFailure(op, "some group has several experts");
    replaceWithFlatSoftmax(rewriter, op, op.getGroupWeight(), op.getGroupBias(),
                           op.getGroupTau(), op.getTopKGroupsAttr());
    return success();
  }
};

} // namespace

void RouteOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                          MLIRContext *context) {
  patterns.add<SingleGroupIsFlatSoftmax, SingletonGroupsAreFlatSoftmax>(
      context);
}

//===----------------------------------------------------------------------===//
// LoraLinearOp
//===----------------------------------------------------------------------===//

namespace {

/// Drops adapters whose mixing weight is exactly zero: with lambda = 1 the
/// shared expert, with lambda = 0 every routed expert. Routing weights (and
/// segments) go once no routed adapter is left.
struct DropInactiveAdapters : OpRewritePattern<LoraLinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LoraLinearOp op,
                                PatternRewriter &rewriter) const override {
    auto layer =
        SymbolTable::lookupNearestSymbolFrom<LayerOp>(op, op.getLayerAttr());
    if (!layer)
      return rewriter.notifyMatchFailure(op, "layer not found");
    SharedExpertOp shared = layer.getSharedExpert();
    std::optional<double> lambda;
    if (shared)
      lambda = shared.getLambda().convertToDouble();

    SmallVector<Attribute> adapters;
    SmallVector<Value> loraA, loraB, loraBias, doraScale;
    bool anyRouted = false;
    for (unsigned i = 0, e = op.getAdapters().size(); i < e; ++i) {
      LoraAttr adapter = op.getAdapter(i);
      bool isShared =
          shared && adapter.getExpert().getValue() == shared.getSymName();
      if (lambda &&
          ((isShared && *lambda == 1.0) || (!isShared && *lambda == 0.0)))
        continue;
      anyRouted |= !isShared;
      adapters.push_back(adapter);
      loraA.push_back(op.getLoraA()[i]);
      loraB.push_back(op.getLoraB()[i]);
      if (Value bias = op.getLoraBiasOf(i))
        loraBias.push_back(bias);
      if (Value scale = op.getDoraScaleOf(i))
        doraScale.push_back(scale);
    }
    bool dropRouting = !anyRouted && op.getRouting();
    if (adapters.size() == op.getAdapters().size() && !dropRouting)
      return rewriter.notifyMatchFailure(op, "every adapter is active");

    Value routing = anyRouted ? op.getRouting() : Value();
    Value segments = anyRouted ? op.getSegments() : Value();
    Granularity granularity =
        anyRouted ? op.getGranularity() : Granularity::token;
    rewriter.replaceOpWithNewOp<LoraLinearOp>(
        op, op.getType(), op.getInput(), op.getWeight(), op.getBias(), loraA,
        loraB, loraBias, doraScale, routing, segments, op.getLayerAttr(),
        rewriter.getArrayAttr(adapters),
        GranularityAttr::get(op.getContext(), granularity));
    return success();
  }
};

/// A projection without adapters is the plain base linear.
struct NoAdaptersIsLinear : OpRewritePattern<LoraLinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LoraLinearOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getAdapters().empty())
      return rewriter.notifyMatchFailure(op, "has adapters");
    rewriter.replaceOpWithNewOp<LinearOp>(op, op.getType(), op.getInput(),
                                          op.getWeight(), op.getBias());
    return success();
  }
};

} // namespace

void LoraLinearOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                               MLIRContext *context) {
  patterns.add<DropInactiveAdapters, NoAdaptersIsLinear>(context);
}
