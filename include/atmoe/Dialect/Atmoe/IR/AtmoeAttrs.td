//===- AtmoeAttrs.td - atmoe attributes --------------------*- tablegen -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DIALECT_ATMOE_IR_ATMOEATTRS_TD
#define ATMOE_DIALECT_ATMOE_IR_ATMOEATTRS_TD

include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.td"
include "atmoe/Dialect/Atmoe/IR/AtmoeEnums.td"


def Atmoe_LoraAttr : Atmoe_Attr<"Lora", "lora"> {
  let summary = "one LoRA adapter of a projection: its expert, rank and alpha";
  let description = [{
    Names the expert (a routed `atmoe.lora_expert` or the layer's
    `atmoe.shared_expert`, by its leaf symbol name) that an adapter of an
    `atmoe.lora_linear` belongs to, with the adapter's rank `r` and `alpha`.
    The adapter's scale is `alpha / r`. Rank and alpha live here, not on the
    expert, because a projection may override them (GuiLoMo-style
    heterogeneous allocation).

    Example:

    ```mlir
    #atmoe.lora<@icd, rank = 8, alpha = 16.0>
    ```
  }];
  let parameters = (ins "::mlir::FlatSymbolRefAttr":$expert,
                        "int64_t":$rank,
                        "::llvm::APFloat":$alpha);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The adapter's scale `alpha / rank`.
    double getScale() const {
      return getAlpha().convertToDouble() / static_cast<double>(getRank());
    }
  }];
}

#endif // ATMOE_DIALECT_ATMOE_IR_ATMOEATTRS_TD
