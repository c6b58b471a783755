//===- HoistDoraScale.cpp - DoRA's scales at bind time ----------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"
#include "atmoe/Dialect/Atmoe/Transforms/Transforms.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/BitVector.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_HOISTDORASCALEPASS
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// Replaces the single result of `op` by a new argument computed at bind
/// time (`name`, its `parts` and DoRA `scale`), inserted after `beside`,
/// which is removed if nothing reads it any more.
void replaceByArgument(func::FuncOp func, Operation *op, BlockArgument beside,
                       StringRef name, ArrayAttr parts, Attribute scale) {
  Builder b(func.getContext());
  DictionaryAttr attrs = b.getDictionaryAttr(
      {b.getNamedAttr(AtmoeDialect::kTensorAttrName, b.getStringAttr(name)),
       b.getNamedAttr(AtmoeDialect::kPartsAttrName, parts),
       b.getNamedAttr(AtmoeDialect::kDoraScaleAttrName, scale)});
  unsigned position = beside.getArgNumber() + 1;
  if (failed(func.insertArgument(position, op->getResult(0).getType(), attrs,
                                 op->getLoc())))
    return;
  IRRewriter rewriter(func.getContext());
  rewriter.replaceOp(op, func.getArgument(position));
  if (beside.use_empty()) {
    llvm::BitVector erase(func.getNumArguments());
    erase.set(beside.getArgNumber());
    (void)func.eraseArguments(erase);
  }
}

/// Replaces `op` by a new argument the runtime computes from its operands,
/// beside the magnitude (which it replaces when nothing else reads it).
void hoist(func::FuncOp func, DoraScaleOp op, ArrayRef<Attribute> parts) {
  Builder b(func.getContext());
  auto magnitude = cast<BlockArgument>(op.getMagnitude());
  auto magnitudeName = func.getArgAttrOfType<StringAttr>(
      magnitude.getArgNumber(), AtmoeDialect::kTensorAttrName);
  replaceByArgument(func, op, magnitude,
                    ("dora_scale(" + magnitudeName.getValue() + ")").str(),
                    b.getArrayAttr(parts), op.getScaleAttr());
}

/// Replaces `op`, the rows of a stored lora_B scaled by a DoRA scale that is
/// computed at bind time from that same lora_B, by an argument the runtime
/// computes with it: diag(c) B.
void hoistScaledRows(func::FuncOp func, ScaleRowsOp op) {
  auto scale = dyn_cast<BlockArgument>(op.getScale());
  DictionaryAttr part = storedWeightPart(func, op.getMatrix());
  if (!scale || scale.getOwner() != &func.getBody().front() || !part)
    return;
  DictionaryAttr scaleAttrs = func.getArgAttrDict(scale.getArgNumber());
  auto parts = scaleAttrs
                   ? scaleAttrs.getAs<ArrayAttr>(AtmoeDialect::kPartsAttrName)
                   : ArrayAttr();
  if (!parts || !scaleAttrs.get(AtmoeDialect::kDoraScaleAttrName) ||
      parts.size() != 4 || parts[2] != part)
    return;
  replaceByArgument(func, op, cast<BlockArgument>(op.getMatrix()),
                    "dora_rows(" + part.getAs<StringAttr>("tensor").str() + ")",
                    parts, scaleAttrs.get(AtmoeDialect::kDoraScaleAttrName));
}

struct HoistDoraScalePass
    : atmoe::impl::HoistDoraScalePassBase<HoistDoraScalePass> {
  using HoistDoraScalePassBase::HoistDoraScalePassBase;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      SmallVector<std::pair<DoraScaleOp, SmallVector<Attribute>>> candidates;
      func.walk([&](DoraScaleOp op) {
        SmallVector<Attribute> parts;
        for (Value operand : op->getOperands())
          if (DictionaryAttr part = storedWeightPart(func, operand))
            parts.push_back(part);
        if (parts.size() == op->getNumOperands())
          candidates.emplace_back(op, std::move(parts));
      });
      for (auto &[op, parts] : candidates)
        hoist(func, op, parts);
      SmallVector<ScaleRowsOp> scaledRows;
      func.walk([&](ScaleRowsOp op) { scaledRows.push_back(op); });
      for (ScaleRowsOp op : scaledRows)
        hoistScaledRows(func, op);
    }
  }
};

} // namespace
