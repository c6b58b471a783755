//===- AtmoeDialect.cpp - atmoe dialect and attributes ----------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.h"
#include "atmoe/Dialect/Atmoe/IR/AtmoeAttrs.h"
#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::atmoe;

#include "atmoe/Dialect/Atmoe/IR/AtmoeOpsDialect.cpp.inc"

#include "atmoe/Dialect/Atmoe/IR/AtmoeEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "atmoe/Dialect/Atmoe/IR/AtmoeAttrs.cpp.inc"

void AtmoeDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "atmoe/Dialect/Atmoe/IR/AtmoeAttrs.cpp.inc"
      >();
}

Operation *AtmoeDialect::materializeConstant(OpBuilder &builder,
                                             Attribute value, Type type,
                                             Location loc) {
  return arith::ConstantOp::materialize(builder, value, type, loc);
}

//===----------------------------------------------------------------------===//
// LoraAttr
//===----------------------------------------------------------------------===//

// Custom syntax because ODS has no field parser for floating-point
// parameters: `<@expert, rank = R, alpha = A[, bias][, dora]>`.
Attribute LoraAttr::parse(AsmParser &parser, Type) {
  SMLoc loc = parser.getCurrentLocation();
  FlatSymbolRefAttr expert;
  int64_t rank = 0;
  double alpha = 0.0;
  if (parser.parseLess() || parser.parseAttribute(expert) ||
      parser.parseComma() || parser.parseKeyword("rank") ||
      parser.parseEqual() || parser.parseInteger(rank) || parser.parseComma() ||
      parser.parseKeyword("alpha") || parser.parseEqual() ||
      parser.parseFloat(alpha))
    return {};
  bool bias = false, dora = false;
  while (succeeded(parser.parseOptionalComma())) {
    StringRef variant;
    SMLoc variantLoc = parser.getCurrentLocation();
    if (parser.parseKeyword(&variant))
      return {};
    bool &flag = variant == "bias" ? bias : dora;
    if ((variant != "bias" && variant != "dora") || flag) {
      parser.emitError(variantLoc, "expected 'bias' or 'dora' once each");
      return {};
    }
    flag = true;
  }
  if (parser.parseGreater())
    return {};
  return LoraAttr::getChecked([&] { return parser.emitError(loc); },
                              parser.getContext(), expert, rank,
                              llvm::APFloat(alpha), bias, dora);
}

void LoraAttr::print(AsmPrinter &printer) const {
  printer << "<" << getExpert() << ", rank = " << getRank() << ", alpha = ";
  printer.printFloat(getAlpha());
  if (getBias())
    printer << ", bias";
  if (getDora())
    printer << ", dora";
  printer << ">";
}

LogicalResult LoraAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               FlatSymbolRefAttr expert, int64_t rank,
                               llvm::APFloat alpha, bool bias, bool dora) {
  if (bias && dora)
    return emitError() << "expects adapter " << expert
                       << " to be at most one of bias and dora";
  if (rank <= 0)
    return emitError() << "expects the rank of adapter " << expert
                       << " to be positive, got " << rank;
  if (!alpha.isFinite())
    return emitError() << "expects the alpha of adapter " << expert
                       << " to be finite";
  if (!isScaleFiniteF32(alpha.convertToDouble(), rank))
    return emitError() << "expects the scale alpha / rank of adapter " << expert
                       << " (" << alpha.convertToDouble() << " / " << rank
                       << ") to be a finite f32";
  return success();
}

//===----------------------------------------------------------------------===//
// GptqAttr
//===----------------------------------------------------------------------===//

LogicalResult GptqAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t bits, int64_t groupSize,
                               int64_t zeroOffset) {
  if (bits != 4 && bits != 8)
    return emitError() << "expects 4 or 8 bits per value, got " << bits;
  if (groupSize <= 0)
    return emitError() << "expects a positive group size, got " << groupSize;
  if (zeroOffset != 0 && zeroOffset != 1)
    return emitError() << "expects a zero offset of 0 (gptq_v2) or 1 (gptq), "
                          "got "
                       << zeroOffset;
  return success();
}
