//===- AtmoeEnums.td - atmoe enumerations ------------------*- tablegen -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DIALECT_ATMOE_IR_ATMOEENUMS_TD
#define ATMOE_DIALECT_ATMOE_IR_ATMOEENUMS_TD

include "mlir/IR/EnumAttr.td"

def Atmoe_RouterKind : I32EnumAttr<"RouterKind",
    "how router logits become routing weights", [
      I32EnumAttrCase<"grouped_softmax", 0>,
      I32EnumAttrCase<"softmax", 1>,
      I32EnumAttrCase<"sigmoid", 2>,
      I32EnumAttrCase<"cosine", 3>
    ]> {
  let cppNamespace = "::mlir::atmoe";
}

def Atmoe_Granularity : I32EnumAttr<"Granularity",
    "what one row of the routing weights applies to", [
      I32EnumAttrCase<"token", 0>,
      I32EnumAttrCase<"sequence", 1>
    ]> {
  let cppNamespace = "::mlir::atmoe";
}

#endif // ATMOE_DIALECT_ATMOE_IR_ATMOEENUMS_TD
