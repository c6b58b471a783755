//===- AtmoeAttrVerifiers.cpp - the dialect's discardable attributes ------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The `atmoe.*` attributes outside the ops: the layer ABI on function
// arguments and results (docs/ModelABI.md), the model's name on the module,
// and the annotations the codegen schedule reads. The verifier checks each
// where it appears, so that a hand-written or transformed module with a
// misspelt or mistyped one fails here rather than in the driver or at run
// time.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.h"
#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Operation.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/ADT/StringSwitch.h"

#include <cmath>

using namespace mlir;
using namespace mlir::atmoe;

namespace {

using D = AtmoeDialect;

/// The roles of linalg.matmul the CPU schedule tells apart.
constexpr llvm::StringLiteral kMatmulRoles[] = {
    "projection", "lora_base", "lora_down", "lora_up",
    "merge_lora", "router",    "dora_norm"};

LogicalResult expectNonEmptyString(Operation *op, NamedAttribute attr,
                                   StringRef where) {
  auto value = dyn_cast<StringAttr>(attr.getValue());
  if (value && !value.getValue().empty())
    return success();
  return op->emitOpError() << "expects " << attr.getName().getValue() << " on "
                           << where << " to be a non-empty string, found "
                           << attr.getValue();
}

/// One part of a stacked weight: {tensor, file, source, shape}.
LogicalResult verifyPart(Operation *op, Attribute part, size_t index) {
  auto dict = dyn_cast<DictionaryAttr>(part);
  bool ok = dict && dict.getAs<DenseI64ArrayAttr>("shape");
  for (StringRef key : {"tensor", "file", "source"})
    ok = ok && dict.getAs<StringAttr>(key) &&
         !dict.getAs<StringAttr>(key).getValue().empty();
  if (ok)
    return success();
  return op->emitOpError() << "expects part #" << index << " of "
                           << D::kPartsAttrName
                           << " to have non-empty tensor, file and source "
                              "strings and an i64 array shape, found "
                           << part;
}

/// What an argument is: at most one of input, tensor or output, and a tensor
/// says where it is stored.
LogicalResult verifyArgumentDict(Operation *op, DictionaryAttr attrs,
                                 StringRef where, bool isResult) {
  int roles = bool(attrs.get(D::kInputAttrName)) +
              bool(attrs.get(D::kTensorAttrName)) +
              bool(attrs.get(D::kOutputAttrName));
  if (roles > 1)
    return op->emitOpError()
           << "expects " << where << " to have one of " << D::kInputAttrName
           << ", " << D::kTensorAttrName << " and " << D::kOutputAttrName
           << ", found " << roles;
  // Outputs are results, or out-parameters once bufferized; inputs and
  // weights are never results.
  if (isResult && roles && !attrs.get(D::kOutputAttrName))
    return op->emitOpError() << "expects only " << D::kOutputAttrName
                             << " on results, found another role on " << where;
  if (!attrs.get(D::kTensorAttrName))
    return success();
  bool stored = attrs.get(D::kFileAttrName) && attrs.get(D::kSourceAttrName);
  bool stacked =
      attrs.get(D::kPartsAttrName) && attrs.get(D::kConcatDimAttrName);
  bool derived =
      attrs.get(D::kPartsAttrName) && attrs.get(D::kDoraScaleAttrName);
  if (int(stored) + int(stacked) + int(derived) == 1)
    return success();
  return op->emitOpError() << "expects the weight at " << where
                           << " to have either " << D::kFileAttrName << " and "
                           << D::kSourceAttrName << ", or " << D::kPartsAttrName
                           << " and one of " << D::kConcatDimAttrName << " and "
                           << D::kDoraScaleAttrName;
}

/// One ABI attribute on an argument or result of `op`.
LogicalResult verifyABIAttribute(Operation *op, NamedAttribute attr,
                                 unsigned index, bool isResult) {
  std::string where =
      (isResult ? "result #" : "argument #") + std::to_string(index);
  StringRef name = attr.getName().getValue();
  if (name == D::kInputAttrName || name == D::kOutputAttrName ||
      name == D::kTensorAttrName || name == D::kFileAttrName ||
      name == D::kSourceAttrName) {
    if (failed(expectNonEmptyString(op, attr, where)))
      return failure();
  } else if (name == D::kConcatDimAttrName || name == D::kShardDimAttrName) {
    auto dim = dyn_cast<IntegerAttr>(attr.getValue());
    if (!dim || dim.getInt() < 0)
      return op->emitOpError()
             << "expects " << name << " on " << where
             << " to be a non-negative integer, found " << attr.getValue();
  } else if (name == D::kPanelWidthAttrName) {
    auto width = dyn_cast<IntegerAttr>(attr.getValue());
    if (!width || width.getInt() < 1)
      return op->emitOpError()
             << "expects " << name << " on " << where
             << " to be a positive integer, found " << attr.getValue();
  } else if (name == D::kPanelDimAttrName) {
    auto dim = dyn_cast<IntegerAttr>(attr.getValue());
    if (!dim || (dim.getInt() != 0 && dim.getInt() != 1))
      return op->emitOpError() << "expects " << name << " on " << where
                               << " to be 0 or 1, found " << attr.getValue();
  } else if (name == D::kDoraScaleAttrName) {
    auto scale = dyn_cast<FloatAttr>(attr.getValue());
    if (!scale || !scale.getType().isF64() ||
        !std::isfinite(scale.getValueAsDouble()))
      return op->emitOpError()
             << "expects " << name << " on " << where
             << " to be a finite f64, found " << attr.getValue();
  } else if (name == D::kPartsAttrName) {
    auto parts = dyn_cast<ArrayAttr>(attr.getValue());
    if (!parts || parts.empty())
      return op->emitOpError()
             << "expects " << name << " on " << where
             << " to be a non-empty array, found " << attr.getValue();
    for (auto [i, part] : llvm::enumerate(parts))
      if (failed(verifyPart(op, part, i)))
        return failure();
  } else {
    return op->emitOpError() << "has unknown attribute " << name << " on "
                             << where << " (docs/ModelABI.md lists the ABI "
                             << "attributes)";
  }
  auto function = dyn_cast<FunctionOpInterface>(op);
  if (!function)
    return success();
  DictionaryAttr attrs = isResult ? function.getResultAttrDict(index)
                                  : function.getArgAttrDict(index);
  return attrs ? verifyArgumentDict(op, attrs, where, isResult) : success();
}

} // namespace

LogicalResult AtmoeDialect::verifyRegionArgAttribute(Operation *op, unsigned,
                                                     unsigned argIndex,
                                                     NamedAttribute attr) {
  return verifyABIAttribute(op, attr, argIndex, /*isResult=*/false);
}

LogicalResult AtmoeDialect::verifyRegionResultAttribute(Operation *op, unsigned,
                                                        unsigned resultIndex,
                                                        NamedAttribute attr) {
  return verifyABIAttribute(op, attr, resultIndex, /*isResult=*/true);
}

LogicalResult AtmoeDialect::verifyOperationAttribute(Operation *op,
                                                     NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  Attribute value = attr.getValue();
  if (name == kModelAttrName || name == kPackageAttrName) {
    if (!isa<StringAttr>(value))
      return op->emitOpError()
             << "expects " << name << " to be a string, found " << value;
    return success();
  }
  if (name == kSourcesAttrName) {
    auto files = dyn_cast<DictionaryAttr>(value);
    if (!files || llvm::any_of(files, [](NamedAttribute file) {
          return !isa<StringAttr>(file.getValue());
        }))
      return op->emitOpError()
             << "expects " << name << " to be a dictionary of strings, found "
             << value;
    return success();
  }
  if (name == kLayerIndexAttrName || name == kSerialMaxRowsAttrName) {
    auto integer = dyn_cast<IntegerAttr>(value);
    if (!integer || integer.getInt() < 0)
      return op->emitOpError()
             << "expects " << name << " to be a non-negative integer, found "
             << value;
    return success();
  }
  if (name == kRanksAttrName) {
    auto integer = dyn_cast<IntegerAttr>(value);
    if (!isa<ModuleOp>(op) || !integer || integer.getInt() < 2)
      return op->emitOpError()
             << "expects " << name
             << " to be an integer >= 2 on a module, found " << value;
    return success();
  }
  if (name == kHostArgumentsAttrName) {
    if (!isa<DenseI64ArrayAttr>(value))
      return op->emitOpError()
             << "expects " << name << " to be an i64 array, found " << value;
    return success();
  }
  if (name == kQuantizationAttrName) {
    if (!isa<GptqAttr>(value))
      return op->emitOpError()
             << "expects " << name << " to be a #atmoe.gptq, found " << value;
    return success();
  }
  if (name == kMatmulRoleAttrName) {
    auto role = dyn_cast<StringAttr>(value);
    if (!role || !llvm::is_contained(kMatmulRoles, role.getValue()))
      return op->emitOpError()
             << "expects " << name
             << " to be one of projection, lora_base, lora_down, lora_up, "
                "merge_lora, router, dora_norm, found "
             << value;
    return success();
  }
  return op->emitOpError() << "has unknown attribute " << name;
}
