//===- PackWeightPanels.cpp - base weights in output-feature panels -------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "KernelBuilding.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_PACKWEIGHTPANELSPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// The GPTQ product reading `use` as its packed weight through the stored
/// layout's map (t, n, k) -> (k floordiv (32 / bits), n), or null.
linalg::GenericOp storedLayoutProduct(OpOperand &use) {
  auto generic = dyn_cast<linalg::GenericOp>(use.getOwner());
  if (!generic || generic.getNumDpsInputs() < 2 || use.getOperandNumber() != 1)
    return nullptr;
  auto quant =
      generic->getAttrOfType<GptqAttr>(AtmoeDialect::kQuantizationAttrName);
  if (!quant)
    return nullptr;
  MLIRContext *context = generic.getContext();
  AffineExpr n = getAffineDimExpr(1, context), k = getAffineDimExpr(2, context);
  AffineMap stored =
      AffineMap::get(3, 0, {k.floorDiv(quant.getValuesPerWord()), n}, context);
  return generic.getMatchingIndexingMap(&use) == stored ? generic : nullptr;
}

/// The y = x W^T reading `use` as its weight W [n, k], or null.
linalg::MatmulOp transposedWeightProduct(OpOperand &use) {
  auto matmul = dyn_cast<linalg::MatmulOp>(use.getOwner());
  if (!matmul || use.getOperandNumber() != 1 ||
      !isa<RankedTensorType>(matmul.getDpsInputs()[0].getType()))
    return nullptr;
  return cpu::hasTransposedWeightMaps(matmul) ? matmul : nullptr;
}

/// The elementwise op reading all of `use` as W [n, k] through the identity
/// (the copy of W that a merged segment adds B A to, widened if need be),
/// or null.
linalg::LinalgOp elementwiseRead(OpOperand &use) {
  auto op = dyn_cast<linalg::LinalgOp>(use.getOwner());
  if (!op || !isa<linalg::CopyOp, linalg::GenericOp>(op.getOperation()) ||
      !op.isDpsInput(&use) || op.getNumLoops() != 2 ||
      op.getNumReductionLoops() != 0 ||
      !op.getMatchingIndexingMap(&use).isIdentity() ||
      !isa<RankedTensorType>(use.get().getType()))
    return nullptr;
  return op;
}

/// The ops `match` finds at the uses of `arg`, or none if a use has none.
template <typename OpT>
std::optional<SmallVector<OpT>> matchAllUses(BlockArgument arg,
                                             OpT (*match)(OpOperand &)) {
  SmallVector<OpT> ops;
  for (OpOperand &use : arg.getUses()) {
    OpT op = match(use);
    if (!op)
      return std::nullopt;
    ops.push_back(op);
  }
  return ops;
}

/// Whether `arg` is one stored tensor bound whole (not a stack of parts, a
/// weight computed at bind time or a slice of a process).
bool isWholeStoredTensor(func::FuncOp func, BlockArgument arg) {
  unsigned i = arg.getArgNumber();
  return func.getArgAttr(i, AtmoeDialect::kTensorAttrName) &&
         !func.getArgAttr(i, AtmoeDialect::kPartsAttrName) &&
         !func.getArgAttr(i, AtmoeDialect::kDoraScaleAttrName) &&
         !func.getArgAttr(i, AtmoeDialect::kShardDimAttrName);
}

struct PackWeightPanelsPass
    : atmoe::impl::PackWeightPanelsPassBase<PackWeightPanelsPass> {
  using PackWeightPanelsPassBase::PackWeightPanelsPassBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (panelWidth < 1) {
      func.emitError("panel-width must be positive");
      return signalPassFailure();
    }
    if (func.isExternal())
      return;
    for (BlockArgument arg : func.getArguments()) {
      auto type = dyn_cast<RankedTensorType>(arg.getType());
      if (!type || type.getRank() != 2 || !type.hasStaticShape() ||
          arg.use_empty() || !isWholeStoredTensor(func, arg))
        continue;
      if (type.getElementType().isInteger(32))
        packQuantized(func, arg);
      else if (isa<FloatType>(type.getElementType()))
        packFloat(func, arg);
    }
  }

  /// A GPTQ qweight [words, n] read only by GPTQ products in the stored
  /// layout: panels of its dimension 1.
  void packQuantized(func::FuncOp func, BlockArgument arg) {
    auto type = cast<RankedTensorType>(arg.getType());
    auto products = matchAllUses(arg, storedLayoutProduct);
    if (type.getDimSize(1) % panelWidth != 0 || !products)
      return;
    retype(func, arg, /*panelDim=*/1);
    for (linalg::GenericOp product : *products) {
      auto quant =
          product->getAttrOfType<GptqAttr>(AtmoeDialect::kQuantizationAttrName);
      setWeightMap(product, quant.getValuesPerWord());
    }
  }

  /// A float weight [n, k] read only as the W of y = x W^T, or else only
  /// copied whole (a merged segment's W'): panels of its dimension 0, each
  /// [k, width], so that a tile broadcasts x and multiplies whole rows of
  /// the panel; the products become generics reading it as
  /// (n floordiv width, k, n mod width), and the copies read it back into
  /// the stored layout, once per merged segment.
  void packFloat(func::FuncOp func, BlockArgument arg) {
    auto type = cast<RankedTensorType>(arg.getType());
    if (type.getDimSize(0) % panelWidth != 0)
      return;
    SmallVector<linalg::MatmulOp> products;
    SmallVector<linalg::LinalgOp> copies;
    for (OpOperand &use : arg.getUses()) {
      if (linalg::MatmulOp product = transposedWeightProduct(use))
        products.push_back(product);
      else if (linalg::LinalgOp copy = elementwiseRead(use))
        copies.push_back(copy);
      else
        return;
    }
    if (products.empty())
      return;
    retype(func, arg, /*panelDim=*/0);
    IRRewriter rewriter(&getContext());
    for (linalg::MatmulOp product : products)
      setWeightMap(toGeneric(rewriter, product), /*valuesPerRow=*/1);
    for (linalg::LinalgOp copy : copies)
      readFromPanels(rewriter, copy, arg);
  }

  /// `op` reading `arg` [n, k] at (n floordiv width, k, n mod width).
  void readFromPanels(IRRewriter &rewriter, linalg::LinalgOp op,
                      BlockArgument arg) {
    auto generic = dyn_cast<linalg::GenericOp>(op.getOperation());
    if (!generic) {
      rewriter.setInsertionPoint(op);
      generic = *linalg::generalizeNamedOp(rewriter, op);
    }
    MLIRContext *context = &getContext();
    AffineExpr n = getAffineDimExpr(0, context),
               k = getAffineDimExpr(1, context);
    AffineMap panelMap = AffineMap::get(
        2, 0, {n.floorDiv(panelWidth), k, n % panelWidth}, context);
    SmallVector<Attribute> maps;
    for (OpOperand &operand : generic->getOpOperands())
      maps.push_back(AffineMapAttr::get(
          operand.get() == arg ? panelMap
                               : generic.getMatchingIndexingMap(&operand)));
    generic.setIndexingMapsAttr(ArrayAttr::get(context, maps));
  }

  /// `arg` as [shape[panelDim] / width, shape[1 - panelDim], width], with
  /// the attributes that tell the manifest.
  void retype(func::FuncOp func, BlockArgument arg, int64_t panelDim) {
    auto type = cast<RankedTensorType>(arg.getType());
    auto panels = RankedTensorType::get({type.getDimSize(panelDim) / panelWidth,
                                         type.getDimSize(1 - panelDim),
                                         int64_t(panelWidth)},
                                        type.getElementType());
    arg.setType(panels);
    SmallVector<Type> inputs(func.getArgumentTypes());
    inputs[arg.getArgNumber()] = panels;
    func.setType(
        FunctionType::get(&getContext(), inputs, func.getResultTypes()));
    auto i64 = IntegerType::get(&getContext(), 64);
    func.setArgAttr(arg.getArgNumber(), AtmoeDialect::kPanelWidthAttrName,
                    IntegerAttr::get(i64, int64_t(panelWidth)));
    if (panelDim != 1)
      func.setArgAttr(arg.getArgNumber(), AtmoeDialect::kPanelDimAttrName,
                      IntegerAttr::get(i64, panelDim));
  }

  /// The matmul as the generic it is, keeping its attributes.
  linalg::GenericOp toGeneric(IRRewriter &rewriter, linalg::MatmulOp matmul) {
    rewriter.setInsertionPoint(matmul);
    Type accumulator = getElementTypeOrSelf(matmul.getDpsInits()[0]);
    auto generic = linalg::GenericOp::create(
        rewriter, matmul.getLoc(), matmul.getResultTypes(),
        matmul.getDpsInputs(), matmul.getDpsInits(),
        matmul.getIndexingMapsArray(),
        SmallVector<utils::IteratorType>{utils::IteratorType::parallel,
                                         utils::IteratorType::parallel,
                                         utils::IteratorType::reduction},
        [&](OpBuilder &b, Location loc, ValueRange args) {
          auto widen = [&](Value v) -> Value {
            return v.getType() == accumulator
                       ? v
                       : arith::ExtFOp::create(b, loc, accumulator, v);
          };
          Value product =
              arith::MulFOp::create(b, loc, widen(args[0]), widen(args[1]));
          linalg::YieldOp::create(
              b, loc,
              ValueRange{arith::AddFOp::create(b, loc, args[2], product)});
        });
    for (NamedAttribute attr : matmul->getDiscardableAttrs())
      generic->setAttr(attr.getName(), attr.getValue());
    rewriter.replaceOp(matmul, generic->getResults());
    return generic;
  }

  /// Operand 1 read as (n floordiv width, k floordiv valuesPerRow,
  /// n mod width).
  void setWeightMap(linalg::GenericOp product, int64_t valuesPerRow) {
    MLIRContext *context = &getContext();
    AffineExpr n = getAffineDimExpr(1, context),
               k = getAffineDimExpr(2, context);
    SmallVector<AffineMap> maps = product.getIndexingMapsArray();
    maps[1] = AffineMap::get(
        3, 0,
        {n.floorDiv(panelWidth), k.floorDiv(valuesPerRow), n % panelWidth},
        context);
    product.setIndexingMapsAttr(ArrayAttr::get(
        context,
        llvm::to_vector(llvm::map_range(maps, [](AffineMap map) -> Attribute {
          return AffineMapAttr::get(map);
        }))));
  }
};

} // namespace
