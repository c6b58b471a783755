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
  let summary = "one LoRA adapter of a projection: its expert, rank, alpha and variant";
  let description = [{
    Names the expert (a routed `atmoe.lora_expert` or the layer's
    `atmoe.shared_expert`, by its leaf symbol name) that an adapter of an
    `atmoe.lora_linear` belongs to, with the adapter's rank `r` and `alpha`.
    The adapter's scale is `alpha / r`. Rank and alpha live here, not on the
    expert, because a projection may override them (GuiLoMo-style
    heterogeneous allocation).

    Two PEFT variants change what the adapter adds (docs/Importer.md):

    - `bias` (PEFT's `lora_bias`): lora_B has a bias b_B, and the adapter
      adds `s * (B A x + b_B)`; the op using the adapter takes b_B.
    - `dora` (PEFT's `use_dora`, DoRA): the adapter adds
      `(c - 1) * (x W^T) + c * s * B A x`, with `c = m / ||W + s B A||_row`
      per output feature (`atmoe.dora_scale`); the op takes c.

    Example:

    ```mlir
    #atmoe.lora<@icd, rank = 8, alpha = 16.0>
    #atmoe.lora<@icd, rank = 8, alpha = 16.0, bias>
    #atmoe.lora<@icd, rank = 8, alpha = 16.0, dora>
    ```
  }];
  let parameters = (ins "::mlir::FlatSymbolRefAttr":$expert,
                        "int64_t":$rank,
                        "::llvm::APFloat":$alpha,
                        DefaultValuedParameter<"bool", "false">:$bias,
                        DefaultValuedParameter<"bool", "false">:$dora);
  let builders = [
    AttrBuilder<(ins "::mlir::FlatSymbolRefAttr":$expert, "int64_t":$rank,
                     "::llvm::APFloat":$alpha), [{
      return $_get($_ctxt, expert, rank, alpha, false, false);
    }]>
  ];
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The adapter's scale `alpha / rank`.
    double getScale() const {
      return getAlpha().convertToDouble() / static_cast<double>(getRank());
    }
    /// Whether `alpha / rank` fits in f32, the type the code scales in: an
    /// infinite scale would turn every zero product into NaN.
    static bool isScaleFiniteF32(double alpha, int64_t rank) {
      return std::fabs(alpha / static_cast<double>(rank)) <=
             static_cast<double>(std::numeric_limits<float>::max());
    }
  }];
}

def Atmoe_GptqAttr : Atmoe_Attr<"Gptq", "gptq"> {
  let summary = "the group-wise integer quantisation of a GPTQ base weight";
  let description = [{
    How `atmoe.dequantize` turns the packed integers of a GPTQ checkpoint
    into the base weight: `bits` (4 or 8) per value, `group_size` input
    features sharing one scale and zero point (a divisor of in_features; a
    checkpoint's -1, one group for the whole row, is written as
    in_features), and `zero_offset`, added to each stored zero point: 1 for
    checkpoint format "gptq" (v1 stores zero - 1), 0 for "gptq_v2".

    Example:

    ```mlir
    #atmoe.gptq<bits = 4, group_size = 128, zero_offset = 1>
    ```
  }];
  let parameters = (ins "int64_t":$bits, "int64_t":$group_size,
                        "int64_t":$zero_offset);
  let assemblyFormat = [{
    `<` `bits` `=` $bits `,` `group_size` `=` $group_size `,`
    `zero_offset` `=` $zero_offset `>`
  }];
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Values per 32-bit word.
    int64_t getValuesPerWord() const { return 32 / getBits(); }
  }];
}

#endif // ATMOE_DIALECT_ATMOE_IR_ATMOEATTRS_TD
