//===- AllowFPReassociation.cpp - reassoc + contract flags ------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_ALLOWFPREASSOCIATIONPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;

namespace {

struct AllowFPReassociationPass
    : atmoe::impl::AllowFPReassociationPassBase<AllowFPReassociationPass> {
  using AllowFPReassociationPassBase::AllowFPReassociationPassBase;

  void runOnOperation() override {
    getOperation()->walk([](arith::ArithFastMathInterface op) {
      arith::FastMathFlags flags =
          arith::FastMathFlags::reassoc | arith::FastMathFlags::contract;
      if (arith::FastMathFlagsAttr current = op.getFastMathFlagsAttr())
        flags = flags | current.getValue();
      op->setAttr(op.getFastMathAttrName(),
                  arith::FastMathFlagsAttr::get(op->getContext(), flags));
    });
  }
};

} // namespace
