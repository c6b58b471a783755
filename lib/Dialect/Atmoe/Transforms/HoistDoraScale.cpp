//===- HoistDoraScale.cpp - DoRA's scales at bind time ----------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"

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

/// The part description of `value` if it is a weight argument of `func`
/// stored as it is: {tensor, file, source, shape}.
DictionaryAttr storedWeightPart(func::FuncOp func, Value value) {
  auto arg = dyn_cast<BlockArgument>(value);
  if (!arg || arg.getOwner() != &func.getBody().front())
    return {};
  DictionaryAttr attrs = func.getArgAttrDict(arg.getArgNumber());
  if (!attrs || !attrs.get(AtmoeDialect::kFileAttrName) ||
      !attrs.get(AtmoeDialect::kSourceAttrName))
    return {};
  Builder b(func.getContext());
  auto shape = cast<RankedTensorType>(arg.getType()).getShape();
  return b.getDictionaryAttr(
      {b.getNamedAttr("tensor", attrs.get(AtmoeDialect::kTensorAttrName)),
       b.getNamedAttr("file", attrs.get(AtmoeDialect::kFileAttrName)),
       b.getNamedAttr("source", attrs.get(AtmoeDialect::kSourceAttrName)),
       b.getNamedAttr("shape", b.getDenseI64ArrayAttr(shape))});
}

/// Replaces `op` by a new argument the runtime computes from its operands.
void hoist(func::FuncOp func, DoraScaleOp op, ArrayRef<Attribute> parts) {
  Builder b(func.getContext());
  auto magnitude = cast<BlockArgument>(op.getMagnitude());
  std::string name =
      "dora_scale(" +
      func.getArgAttrOfType<StringAttr>(magnitude.getArgNumber(),
                                        AtmoeDialect::kTensorAttrName)
          .str() +
      ")";
  DictionaryAttr attrs = b.getDictionaryAttr(
      {b.getNamedAttr(AtmoeDialect::kTensorAttrName, b.getStringAttr(name)),
       b.getNamedAttr(AtmoeDialect::kPartsAttrName, b.getArrayAttr(parts)),
       b.getNamedAttr(AtmoeDialect::kDoraScaleAttrName, op.getScaleAttr())});
  // Beside the magnitude, which it replaces when nothing else reads it.
  unsigned position = magnitude.getArgNumber() + 1;
  if (failed(func.insertArgument(position, op.getType(), attrs, op.getLoc())))
    return;
  IRRewriter rewriter(func.getContext());
  rewriter.replaceOp(op, func.getArgument(position));
  if (magnitude.use_empty()) {
    llvm::BitVector erase(func.getNumArguments());
    erase.set(magnitude.getArgNumber());
    (void)func.eraseArguments(erase);
  }
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
    }
  }
};

} // namespace
