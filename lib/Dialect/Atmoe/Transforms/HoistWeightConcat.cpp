//===- HoistWeightConcat.cpp - stack weights at bind time -------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/Transforms/Passes.h"
#include "atmoe/Dialect/Atmoe/Transforms/Transforms.h"

#include "mlir/IR/PatternMatch.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/BitVector.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_HOISTWEIGHTCONCATPASS
#include "atmoe/Dialect/Atmoe/Transforms/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// The stored weight argument behind `value`, if it is one used only once,
/// directly or through a widening of its storage type (the runtime widens it
/// while it stacks).
BlockArgument singleUseWeight(func::FuncOp func, Value value) {
  if (auto widen = value.getDefiningOp<arith::ExtFOp>();
      widen && widen->hasOneUse())
    value = widen.getIn();
  auto arg = dyn_cast<BlockArgument>(value);
  if (!arg || !arg.hasOneUse() || !storedWeightPart(func, arg))
    return {};
  return arg;
}

/// Hoists one concatenation of weight arguments into a stacked argument.
void hoist(func::FuncOp func, tensor::ConcatOp concat) {
  MLIRContext *context = func.getContext();
  Builder b(context);
  SmallVector<Attribute> parts;
  SmallVector<std::string> names;
  SmallVector<BlockArgument> replaced;
  unsigned position = func.getNumArguments();
  SmallVector<Operation *> widenings;
  for (Value operand : concat.getInputs()) {
    if (auto widen = operand.getDefiningOp<arith::ExtFOp>()) {
      widenings.push_back(widen);
      operand = widen.getIn();
    }
    auto arg = cast<BlockArgument>(operand);
    unsigned index = arg.getArgNumber();
    position = std::min(position, index);
    replaced.push_back(arg);
    DictionaryAttr part = storedWeightPart(func, arg);
    names.push_back(part.getAs<StringAttr>("tensor").str());
    parts.push_back(part);
  }
  DictionaryAttr stackedAttrs = b.getDictionaryAttr(
      {b.getNamedAttr(
           AtmoeDialect::kTensorAttrName,
           b.getStringAttr("stack(" + llvm::join(names, ", ") + ")")),
       b.getNamedAttr(AtmoeDialect::kPartsAttrName, b.getArrayAttr(parts)),
       b.getNamedAttr(AtmoeDialect::kConcatDimAttrName,
                      b.getI64IntegerAttr(concat.getDim()))});
  // Insert where the first part was, so weights stay in one run of the
  // argument list.
  if (failed(func.insertArgument(position, concat.getType(), stackedAttrs,
                                 concat.getLoc())))
    return;
  IRRewriter rewriter(context);
  rewriter.replaceOp(concat, func.getArgument(position));
  for (Operation *widen : widenings)
    rewriter.eraseOp(widen);
  llvm::BitVector erase(func.getNumArguments());
  for (BlockArgument arg : replaced)
    erase.set(arg.getArgNumber());
  (void)func.eraseArguments(erase);
}

struct HoistWeightConcatPass
    : atmoe::impl::HoistWeightConcatPassBase<HoistWeightConcatPass> {
  using HoistWeightConcatPassBase::HoistWeightConcatPassBase;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      SmallVector<tensor::ConcatOp> candidates;
      func.walk([&](tensor::ConcatOp concat) {
        if (llvm::all_of(concat.getInputs(), [&](Value input) {
              return static_cast<bool>(singleUseWeight(func, input));
            }))
          candidates.push_back(concat);
      });
      for (tensor::ConcatOp concat : candidates)
        hoist(func, concat);
    }
  }
};

} // namespace

DictionaryAttr mlir::atmoe::storedWeightPart(func::FuncOp func, Value value) {
  auto arg = dyn_cast<BlockArgument>(value);
  if (!arg || arg.getOwner() != &func.getBody().front())
    return {};
  DictionaryAttr attrs = func.getArgAttrDict(arg.getArgNumber());
  if (!attrs || !attrs.get(AtmoeDialect::kTensorAttrName) ||
      !attrs.get(AtmoeDialect::kFileAttrName) ||
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
