//===- AtmoeDialect.td - atmoe dialect definition ----------*- tablegen -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DIALECT_ATMOE_IR_ATMOEDIALECT_TD
#define ATMOE_DIALECT_ATMOE_IR_ATMOEDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Atmoe_Dialect : Dialect {
  let name = "atmoe";
  let cppNamespace = "::mlir::atmoe";
  let summary = "Task-grouped mixtures of LoRA experts (AT-MoE) and their routing";
  let description = [{
    The `atmoe` dialect describes linear projections of a frozen base model that
    carry several low-rank (LoRA) experts, mixed by a layer-wise router.

    It separates *structure* from *compute*:

    * **Structure** is a symbol per layer, `atmoe.layer`, whose body names the
      layer's task groups (`atmoe.expert_group`), the routed LoRA experts inside
      each group (`atmoe.lora_expert`) and an optional shared expert with its
      mixing weight lambda (`atmoe.shared_expert`). The order of the experts in
      the body is the order of the columns of the routing weights. Nothing in
      the structure depends on the input, so it is declared once per layer and
      referenced by symbol.
    * **Compute** is pure ops on tensors. `atmoe.route` turns router inputs into
      the N x E routing weights (grouped softmax, softmax, sigmoid or cosine,
      with temperatures and top-k); `atmoe.lora_linear` computes one adapted
      projection `y = x W^T + b + lambda * sum_e w_e s_e (x A_e^T) B_e^T +
      (1 - lambda) s_S (x A_S^T) B_S^T`; `atmoe.linear` is the plain base
      projection that a projection without experts canonicalises to. Expert
      ranks and alphas live on the compute op (`#atmoe.lora`), because a
      projection may override them.

    Weights are tensor operands, never attributes: a compiled layer takes its
    weights at run time, and the same IR serves every fine-tuned variant.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
  let useDefaultAttributePrinterParser = 1;
  let hasConstantMaterializer = 1;
  // The ABI attributes of layer functions and the annotations of the codegen
  // schedule are checked where they appear (AtmoeAttrVerifiers.cpp).
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;
  let extraClassDeclaration = [{
    // The layer ABI (docs/ModelABI.md): what each argument and result of a
    // layer function is, and where the runtime finds a weight.
    static constexpr ::llvm::StringLiteral kInputAttrName = "atmoe.input";
    static constexpr ::llvm::StringLiteral kOutputAttrName = "atmoe.output";
    static constexpr ::llvm::StringLiteral kTensorAttrName = "atmoe.tensor";
    static constexpr ::llvm::StringLiteral kFileAttrName = "atmoe.file";
    static constexpr ::llvm::StringLiteral kSourceAttrName = "atmoe.source";
    static constexpr ::llvm::StringLiteral kPartsAttrName = "atmoe.parts";
    static constexpr ::llvm::StringLiteral kConcatDimAttrName =
        "atmoe.concat_dim";
    // A weight split over processes (atmoe-shard-layers): the dimension
    // along which each process binds only its slice.
    static constexpr ::llvm::StringLiteral kShardDimAttrName =
        "atmoe.shard_dim";
    // A weight repacked at bind time into panels of this many output
    // features (atmoe-pack-weight-panels): the function sees
    // [out / width, rows, width]; the package stores a GPTQ qweight
    // [in_words, out], a float weight [out, in].
    static constexpr ::llvm::StringLiteral kPanelWidthAttrName =
        "atmoe.panel_width";
    // Beside atmoe.panel_width: the stored dimension split into panels (1
    // when absent: a GPTQ qweight; 0: a float weight [out, in]).
    static constexpr ::llvm::StringLiteral kPanelDimAttrName =
        "atmoe.panel_dim";
    // On the module: the processes its layers are split over.
    static constexpr ::llvm::StringLiteral kRanksAttrName = "atmoe.ranks";
    // A weight computed at bind time from its parts (weight, lora_A,
    // lora_B, magnitude) as atmoe.dora_scale computes it, at this scale.
    static constexpr ::llvm::StringLiteral kDoraScaleAttrName =
        "atmoe.dora_scale";
    // On a layer function: its index in the package; on a lowered GPU host
    // function: the arguments only host code reads.
    static constexpr ::llvm::StringLiteral kLayerIndexAttrName =
        "atmoe.layer_index";
    static constexpr ::llvm::StringLiteral kHostArgumentsAttrName =
        "atmoe.host_arguments";
    // On the module: the model's name and package directory.
    static constexpr ::llvm::StringLiteral kModelAttrName = "atmoe.model";
    static constexpr ::llvm::StringLiteral kPackageAttrName = "atmoe.package";
    // On the module: the package's JSON files as the importer read them
    // ({relative path = canonical JSON text}); the compiled model carries
    // them so that the runtime can refuse a package edited since.
    static constexpr ::llvm::StringLiteral kSourcesAttrName = "atmoe.sources";
    // On linalg ops, for the codegen schedule: what a matmul computes and up
    // to how many rows a loop runs serially.
    static constexpr ::llvm::StringLiteral kMatmulRoleAttrName =
        "atmoe.matmul_role";
    static constexpr ::llvm::StringLiteral kSerialMaxRowsAttrName =
        "atmoe.serial_max_rows";
    // On a linalg.generic that multiplies by a GPTQ weight: its #atmoe.gptq
    // quantisation, for the CPU kernel that unpacks it in registers.
    static constexpr ::llvm::StringLiteral kQuantizationAttrName =
        "atmoe.quantization";
  }];
}

class Atmoe_Op<string mnemonic, list<Trait> traits = []>
    : Op<Atmoe_Dialect, mnemonic, traits>;

class Atmoe_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Atmoe_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // ATMOE_DIALECT_ATMOE_IR_ATMOEDIALECT_TD
