//===- PackQuantizedWeights.cpp - GPTQ qweight in output-feature panels ---===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_PACKQUANTIZEDWEIGHTSPASS
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

struct PackQuantizedWeightsPass
    : atmoe::impl::PackQuantizedWeightsPassBase<PackQuantizedWeightsPass> {
  using PackQuantizedWeightsPassBase::PackQuantizedWeightsPassBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (panelWidth < 1) {
      func.emitError("panel-width must be positive");
      return signalPassFailure();
    }
    if (func.isExternal())
      return;
    for (BlockArgument arg : func.getArguments())
      pack(func, arg);
  }

  /// Gives `arg` the panel layout if every use is a GPTQ product reading it
  /// in the stored layout and the panels divide its output features.
  void pack(func::FuncOp func, BlockArgument arg) {
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type || type.getRank() != 2 || !type.hasStaticShape() ||
        !type.getElementType().isInteger(32) ||
        type.getDimSize(1) % panelWidth != 0 || arg.use_empty())
      return;
    SmallVector<std::pair<linalg::GenericOp, OpOperand *>> products;
    for (OpOperand &use : arg.getUses()) {
      linalg::GenericOp product = storedLayoutProduct(use);
      if (!product)
        return;
      products.push_back({product, &use});
    }
    int64_t words = type.getDimSize(0), features = type.getDimSize(1);
    auto panels = RankedTensorType::get(
        {features / panelWidth, words, int64_t(panelWidth)},
        type.getElementType());
    arg.setType(panels);
    SmallVector<Type> inputs(func.getArgumentTypes());
    inputs[arg.getArgNumber()] = panels;
    func.setType(
        FunctionType::get(&getContext(), inputs, func.getResultTypes()));
    func.setArgAttr(arg.getArgNumber(), AtmoeDialect::kPanelWidthAttrName,
                    IntegerAttr::get(IntegerType::get(&getContext(), 64),
                                     int64_t(panelWidth)));
    for (auto [product, use] : products)
      readPanels(product, *use);
  }

  /// (t, n, k) -> (n floordiv width, k floordiv (32 / bits), n mod width).
  void readPanels(linalg::GenericOp product, OpOperand &use) {
    auto quant =
        product->getAttrOfType<GptqAttr>(AtmoeDialect::kQuantizationAttrName);
    MLIRContext *context = &getContext();
    AffineExpr n = getAffineDimExpr(1, context),
               k = getAffineDimExpr(2, context);
    SmallVector<AffineMap> maps = product.getIndexingMapsArray();
    maps[use.getOperandNumber()] =
        AffineMap::get(3, 0,
                       {n.floorDiv(panelWidth),
                        k.floorDiv(quant.getValuesPerWord()), n % panelWidth},
                       context);
    product.setIndexingMapsAttr(ArrayAttr::get(
        context,
        llvm::to_vector(llvm::map_range(maps, [](AffineMap map) -> Attribute {
          return AffineMapAttr::get(map);
        }))));
  }
};

} // namespace
