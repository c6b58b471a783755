//===- AtmoeOps.td - atmoe operations ----------------------*- tablegen -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DIALECT_ATMOE_IR_ATMOEOPS_TD
#define ATMOE_DIALECT_ATMOE_IR_ATMOEOPS_TD

include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.td"
include "atmoe/Dialect/Atmoe/IR/AtmoeAttrs.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/IR/OpAsmInterface.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Atmoe_F32Matrix : 2DTensorOf<[F32]>;
def Atmoe_F32Vector : 1DTensorOf<[F32]>;
// Weights keep the element type they are stored in (docs/Rationale.md,
// "Storage types"); activations, routing weights and accumulation are f32.
def Atmoe_WeightMatrix : 2DTensorOf<[F32, F16, BF16]>;
def Atmoe_WeightVector : 1DTensorOf<[F32, F16, BF16]>;
def Atmoe_PackedMatrix : 2DTensorOf<[I32]>;
def Atmoe_SegmentLengths : 1DTensorOf<[I64]>;

def Atmoe_LoraArrayAttr
    : TypedArrayAttrBase<Atmoe_LoraAttr, "array of #atmoe.lora adapters">;

//===----------------------------------------------------------------------===//
// Structure: layers, task groups and experts
//===----------------------------------------------------------------------===//

def Atmoe_LayerOp : Atmoe_Op<"layer", [
    Symbol, SymbolTable, IsolatedFromAbove, NoTerminator, SingleBlock,
    NoRegionArguments]> {
  let summary = "the experts and task groups of one model layer";
  let description = [{
    Declares the structure that the router of one layer works on: its task
    groups (`atmoe.expert_group`), in routing order, each holding its routed
    LoRA experts (`atmoe.lora_expert`), and at most one shared (general) expert
    (`atmoe.shared_expert`) that belongs to no group.

    The routed experts, taken group by group in the order written, are the
    columns of the layer's routing weights: `atmoe.route` and
    `atmoe.lora_linear` refer to the layer by symbol and are verified against
    it. Each expert is in exactly one group and no group is empty.

    Example:

    ```mlir
    atmoe.layer @layer0 {
      atmoe.expert_group @diagnosis {
        atmoe.lora_expert @icd
        atmoe.lora_expert @symptom
      }
      atmoe.expert_group @dialogue {
        atmoe.lora_expert @qa
      }
      atmoe.shared_expert @general lambda = 8.000000e-01
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       OptionalAttr<StrAttr>:$sym_visibility);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    ($sym_visibility^)? $sym_name attr-dict-with-keyword $body
  }];
  let hasRegionVerifier = 1;
  let extraClassDeclaration = [{
    /// The task groups, in routing order.
    ::llvm::SmallVector<ExpertGroupOp, 4> getGroups();
    /// The routed experts, group by group: column e of the routing weights is
    /// getRoutedExperts()[e].
    ::llvm::SmallVector<LoraExpertOp, 4> getRoutedExperts();
    /// The number of routed experts in each group, in routing order.
    ::llvm::SmallVector<int64_t> getGroupSizes();
    /// The shared expert, or null.
    SharedExpertOp getSharedExpert();
    /// The column of each routed expert, by name (build it once: a lookup
    /// per adapter that scanned the experts made verification quadratic).
    ::llvm::StringMap<int64_t> getRoutedExpertColumns();
  }];
}

def Atmoe_ExpertGroupOp : Atmoe_Op<"expert_group", [
    Symbol, SymbolTable, HasParent<"LayerOp">, NoTerminator, SingleBlock,
    NoRegionArguments]> {
  let summary = "a task group of routed LoRA experts";
  let description = [{
    One task group of a layer. The grouped-softmax router first weighs the
    groups against each other, then the experts inside each group. The body
    holds one `atmoe.lora_expert` per expert, in routing order, and must not be
    empty.

    Example:

    ```mlir
    atmoe.layer @layer0 {
      atmoe.expert_group @diagnosis {
        atmoe.lora_expert @icd
        atmoe.lora_expert @symptom
      }
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = "$sym_name attr-dict-with-keyword $body";
  let hasRegionVerifier = 1;
  let extraClassDeclaration = [{
    /// The experts of this group, in routing order.
    ::llvm::SmallVector<LoraExpertOp, 4> getExperts();
  }];
}

def Atmoe_LoraExpertOp : Atmoe_Op<"lora_expert", [
    Symbol, HasParent<"ExpertGroupOp">]> {
  let summary = "a routed, task-specific LoRA expert";
  let description = [{
    Declares a routed expert of its group. Its rank and alpha are given per
    projection by the `#atmoe.lora` adapters of `atmoe.lora_linear`, since
    heterogeneous allocations give one expert different ranks in different
    projections.

    Example:

    ```mlir
    atmoe.layer @layer0 {
      atmoe.expert_group @diagnosis {
        atmoe.lora_expert @icd
      }
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name);
  let assemblyFormat = "$sym_name attr-dict";
}

def Atmoe_SharedExpertOp : Atmoe_Op<"shared_expert", [
    Symbol, HasParent<"LayerOp">]> {
  let summary = "the shared (general) LoRA expert of a layer and its lambda";
  let description = [{
    The expert trained on all tasks. Routed experts are scaled by `lambda` and
    the shared one by `1 - lambda`, with `lambda` in [0, 1].

    Example:

    ```mlir
    atmoe.layer @layer0 {
      atmoe.expert_group @diagnosis {
        atmoe.lora_expert @icd
      }
      atmoe.shared_expert @general lambda = 8.000000e-01
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, F64Attr:$lambda);
  let assemblyFormat = "$sym_name `lambda` `=` $lambda attr-dict";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Compute: routing
//===----------------------------------------------------------------------===//

def Atmoe_RouteOp : Atmoe_Op<"route", [
    Pure, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "compute the routing weights of a layer's experts";
  let description = [{
    Maps router inputs `h` (N x d_h: one row per token, or per sequence for
    sequence granularity) to routing weights `w` (N x E), one column per
    routed expert of `layer`, in the layer's order.

    Logits are affine: `u = h group_weight^T + group_bias` (G group logits) and
    `v = h expert_weight^T + expert_bias` (E expert logits); biases are
    optional. The kinds are:

    * `grouped_softmax` (AT-MoE): `p = softmax(u / tau_g)` over groups, then a
      softmax of `v / tau_e` inside each group, `w_e = p_g(e) * q_e`.
      `group_sizes` partitions the experts; `top_k_groups` keeps the k best
      groups and renormalises `p`.
    * `softmax`: `w = softmax(v / tau)` over all experts.
    * `sigmoid`: `w_e = sigmoid(v_e / tau)`.
    * `cosine` (X-MoE): `v_e = cos(h proj_weight^T, expert_embedding_e) / tau`,
      `w = softmax(v)`.

    `top_k` (any kind but `grouped_softmax`) keeps the k largest scores (ties:
    the lower expert index wins), zeroes the rest and renormalises the kept
    weights to sum to 1. `temperature` defaults to 1; `group_temperature` and
    `expert_temperature` default to `temperature`. Every softmax is computed
    stably.

    Example:

    ```mlir
    %w = atmoe.route grouped_softmax %h layer(@layer0) groups [2, 2]
           group_weight(%wg : tensor<2x64xf32>)
           expert_weight(%we : tensor<4x64xf32>)
           expert_bias(%be : tensor<4xf32>)
           : tensor<?x64xf32> -> tensor<?x4xf32>
    ```
  }];
  let arguments = (ins
    Atmoe_RouterKind:$kind,
    FlatSymbolRefAttr:$layer,
    OptionalAttr<DenseI64ArrayAttr>:$group_sizes,
    DefaultValuedAttr<F64Attr, "1.0">:$temperature,
    OptionalAttr<F64Attr>:$group_temperature,
    OptionalAttr<F64Attr>:$expert_temperature,
    OptionalAttr<I64Attr>:$top_k,
    OptionalAttr<I64Attr>:$top_k_groups,
    Atmoe_F32Matrix:$input,
    Optional<Atmoe_WeightMatrix>:$group_weight,
    Optional<Atmoe_WeightVector>:$group_bias,
    Optional<Atmoe_WeightMatrix>:$expert_weight,
    Optional<Atmoe_WeightVector>:$expert_bias,
    Optional<Atmoe_WeightMatrix>:$proj_weight,
    Optional<Atmoe_WeightMatrix>:$expert_embedding);
  let results = (outs Atmoe_F32Matrix:$weights);
  let assemblyFormat = [{
    $kind $input `layer` `(` $layer `)` (`groups` $group_sizes^)?
    (`group_weight` `(` $group_weight^ `:` type($group_weight) `)`)?
    (`group_bias` `(` $group_bias^ `:` type($group_bias) `)`)?
    (`expert_weight` `(` $expert_weight^ `:` type($expert_weight) `)`)?
    (`expert_bias` `(` $expert_bias^ `:` type($expert_bias) `)`)?
    (`proj_weight` `(` $proj_weight^ `:` type($proj_weight) `)`)?
    (`expert_embedding` `(` $expert_embedding^ `:`
        type($expert_embedding) `)`)?
    attr-dict `:` type($input) `->` type($weights)
  }];
  let hasVerifier = 1;
  let hasFolder = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    /// The number of routed experts (columns of the result), or
    /// ShapedType::kDynamic.
    int64_t getNumExperts() { return getType().getDimSize(1); }
    /// The temperature of the group softmax (grouped_softmax only).
    double getGroupTau() {
      return getGroupTemperature().value_or(getTemperature()).convertToDouble();
    }
    /// The temperature applied to expert scores.
    double getExpertTau() {
      return getExpertTemperature().value_or(getTemperature()).convertToDouble();
    }
  }];
}

//===----------------------------------------------------------------------===//
// Compute: adapted projections
//===----------------------------------------------------------------------===//

def Atmoe_LoraLinearOp : Atmoe_Op<"lora_linear", [
    Pure, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "a base linear projection plus its routed and shared LoRA experts";
  let description = [{
    One adapted projection ("MoE-LoRA linear") of `layer`:

    ```
    y = x W^T + b + lambda * sum_e w_e * s_e * (x A_e^T) B_e^T
                  + (1 - lambda) * s_S * (x A_S^T) B_S^T
    ```

    `input` is x (T x d_in), `weight` is W (d_out x d_in), `bias` the optional
    b (d_out). Adapter i is described by `adapters[i]` (`#atmoe.lora`: which
    expert, its rank r_i and alpha) with `lora_a[i]` (r_i x d_in) and
    `lora_b[i]` (d_out x r_i); its scale is `alpha / r_i`. An adapter naming a
    routed expert of the layer is weighted by that expert's column of
    `routing`; one naming the layer's shared expert by `1 - lambda`. A
    projection may carry any subset of the layer's experts: the routing
    weights of the others are simply unused, not renormalised.

    With `granularity` token, `routing` is T x E. With `sequence`, it is
    S x E, one row per sequence, and `segments` gives the S sequence lengths
    (summing to T); without `segments` S = 1 and every token uses row 0.

    PEFT's variants (`#atmoe.lora<..., bias>` / `<..., dora>`) change what
    adapter i adds before its weight w_i (the routing weight times lambda,
    or 1 - lambda) scales it:

    ```
    plain: s_i * (x A_i^T) B_i^T
    bias:  s_i * ((x A_i^T) B_i^T + b_i)
    dora:  (c_i - 1) * (x W^T) + c_i * s_i * (x A_i^T) B_i^T
    ```

    `lora_bias` holds b_i (d_out) for each `bias` adapter and `dora_scale`
    c_i (d_out, `atmoe.dora_scale`) for each `dora` adapter, in adapter
    order; `*` with a vector scales each output feature.

    Example:

    ```mlir
    %y = atmoe.lora_linear %x, %w bias(%b : tensor<64xf32>) layer(@layer0)
           adapters [#atmoe.lora<@icd, rank = 8, alpha = 1.600000e+01>,
                     #atmoe.lora<@general, rank = 4, alpha = 8.000000e+00>]
           lora_a(%a0, %a1 : tensor<8x64xf32>, tensor<4x64xf32>)
           lora_b(%b0, %b1 : tensor<64x8xf32>, tensor<64x4xf32>)
           routing(%r : tensor<?x4xf32>)
           : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins
    Atmoe_F32Matrix:$input,
    Atmoe_WeightMatrix:$weight,
    Optional<Atmoe_WeightVector>:$bias,
    Variadic<Atmoe_WeightMatrix>:$lora_a,
    Variadic<Atmoe_WeightMatrix>:$lora_b,
    Variadic<Atmoe_WeightVector>:$lora_bias,
    Variadic<Atmoe_F32Vector>:$dora_scale,
    Optional<Atmoe_F32Matrix>:$routing,
    Optional<Atmoe_SegmentLengths>:$segments,
    FlatSymbolRefAttr:$layer,
    Atmoe_LoraArrayAttr:$adapters,
    DefaultValuedAttr<Atmoe_Granularity, "Granularity::token">:$granularity);
  let results = (outs Atmoe_F32Matrix:$output);
  let assemblyFormat = [{
    $input `,` $weight (`bias` `(` $bias^ `:` type($bias) `)`)?
    `layer` `(` $layer `)` (`granularity` `(` $granularity^ `)`)?
    `adapters` $adapters
    (`lora_a` `(` $lora_a^ `:` type($lora_a) `)`)?
    (`lora_b` `(` $lora_b^ `:` type($lora_b) `)`)?
    (`lora_bias` `(` $lora_bias^ `:` type($lora_bias) `)`)?
    (`dora_scale` `(` $dora_scale^ `:` type($dora_scale) `)`)?
    (`routing` `(` $routing^ `:` type($routing) `)`)?
    (`segments` `(` $segments^ `:` type($segments) `)`)?
    attr-dict `:` type($input) `,` type($weight) `->` type($output)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    ::llvm::ArrayRef<::mlir::Attribute> getAdapterList() {
      return getAdapters().getValue();
    }
    LoraAttr getAdapter(unsigned i) {
      return ::llvm::cast<LoraAttr>(getAdapters()[i]);
    }
    /// b_i of adapter i, or null if it is not a `bias` adapter.
    ::mlir::Value getLoraBiasOf(unsigned i);
    /// c_i of adapter i, or null if it is not a `dora` adapter.
    ::mlir::Value getDoraScaleOf(unsigned i);
    /// Whether any adapter is a `bias` or `dora` one.
    bool hasVariantAdapters() {
      return !getLoraBias().empty() || !getDoraScale().empty();
    }
  private:
    ::mlir::LogicalResult verifyVariantOperands();
  public:
  }];
}

def Atmoe_LinearOp : Atmoe_Op<"linear", [Pure]> {
  let summary = "a plain linear projection `y = x W^T + b`";
  let description = [{
    The base projection alone: what an `atmoe.lora_linear` without adapters
    canonicalises to, and the baseline every LoRA-MoE projection is measured
    against. `input` is T x d_in, `weight` d_out x d_in, `bias` d_out.

    Example:

    ```mlir
    %y = atmoe.linear %x, %w bias(%b : tensor<64xf32>)
           : tensor<?x32xf32>, tensor<64x32xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Atmoe_F32Matrix:$input, Atmoe_WeightMatrix:$weight,
                       Optional<Atmoe_WeightVector>:$bias);
  let results = (outs Atmoe_F32Matrix:$output);
  let assemblyFormat = [{
    $input `,` $weight (`bias` `(` $bias^ `:` type($bias) `)`)?
    attr-dict `:` type($input) `,` type($weight) `->` type($output)
  }];
  let hasVerifier = 1;
}

def Atmoe_ExpandSegmentsOp : Atmoe_Op<"expand_segments", [Pure]> {
  let summary = "repeat per-sequence routing weights for every token";
  let description = [{
    Turns sequence-granularity routing weights (S x E) into token-granularity
    ones (T x E): row t of the result is row s of `routing`, where sequence s
    holds token t according to the S lengths in `segments`. Without `segments`
    every token takes row 0. `num_tokens` is T. Lengths that do not sum to T
    are undefined behaviour; the runtime checks them before calling.

    Example:

    ```mlir
    %wt = atmoe.expand_segments %w segments(%s : tensor<?xi64>) tokens %t
            : tensor<?x4xf32> -> tensor<?x4xf32>
    ```
  }];
  let arguments = (ins Atmoe_F32Matrix:$routing,
                       Optional<Atmoe_SegmentLengths>:$segments,
                       Index:$num_tokens);
  let results = (outs Atmoe_F32Matrix:$expanded);
  let assemblyFormat = [{
    $routing (`segments` `(` $segments^ `:` type($segments) `)`)?
    `tokens` $num_tokens attr-dict `:` type($routing) `->` type($expanded)
  }];
  let hasVerifier = 1;
}

def Atmoe_DequantizeOp : Atmoe_Op<"dequantize", [Pure]> {
  let summary = "the base weight of a GPTQ checkpoint, from its packed integers";
  let description = [{
    The weight W (d_out x d_in, f32) that a GPTQ checkpoint stores as
    group-wise quantised integers, as Hugging Face's "gptq" layout has it:

    ```
    W[o, i] = scales[g, o] * (q[i, o] - (z[g, o] + zero_offset)),  g = i / group_size
    ```

    `qweight` (d_in * bits / 32 x d_out, i32) packs `32 / bits` consecutive
    input features of one output per word, lowest bits first; `scales`
    (d_in / group_size x d_out, f16, bf16 or f32) holds the groups' scales;
    `zeros` (d_in / group_size x d_out * bits / 32, i32) packs the groups'
    zero points along d_out the same way. Without `zeros` every zero point
    is 2^(bits - 1) (symmetric quantisation). The quantisation is
    `#atmoe.gptq`.

    The result is a value, not a buffer: `--convert-atmoe-to-linalg` feeds
    the packed integers of a projection's base weight straight into its
    matmul, which unpacks and scales them in registers, and materialises W
    only where another op needs all of it.

    Example:

    ```mlir
    %w = atmoe.dequantize #atmoe.gptq<bits = 4, group_size = 32, zero_offset = 1> %q
           scales(%s : tensor<2x64xf16>) zeros(%z : tensor<2x8xi32>)
           : tensor<8x64xi32> -> tensor<64x64xf32>
    ```
  }];
  let arguments = (ins Atmoe_PackedMatrix:$qweight, Atmoe_WeightMatrix:$scales,
                       Optional<Atmoe_PackedMatrix>:$zeros,
                       Atmoe_GptqAttr:$quantization);
  let results = (outs Atmoe_F32Matrix:$weight);
  let assemblyFormat = [{
    qualified($quantization) $qweight `scales` `(` $scales `:` type($scales) `)`
    (`zeros` `(` $zeros^ `:` type($zeros) `)`)? attr-dict
    `:` type($qweight) `->` type($weight)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Fused compute: what the fusion passes produce
//===----------------------------------------------------------------------===//

def Atmoe_NormalizeRoutingOp : Atmoe_Op<"normalize_routing", [Pure]> {
  let summary = "turn router scores into routing weights, fused";
  let description = [{
    The normalisation half of `atmoe.route`, produced by
    `--atmoe-fuse-router`: from expert scores `v` (N x E) and, for
    `grouped_softmax`, group scores `u` (N x G), computes the routing weights
    with the kind's formula, temperatures and top-k, in one fused step (one
    `linalg.generic` after conversion) instead of a chain of elementwise ops.
    `cosine` routers arrive here with their cosine similarities as `v` and
    normalise like `softmax`.

    Example:

    ```mlir
    %w = atmoe.normalize_routing grouped_softmax %v groups [2, 2]
           group_scores(%u : tensor<?x2xf32>) {top_k_groups = 1 : i64}
           : tensor<?x4xf32> -> tensor<?x4xf32>
    ```
  }];
  let arguments = (ins
    Atmoe_RouterKind:$kind,
    OptionalAttr<DenseI64ArrayAttr>:$group_sizes,
    DefaultValuedAttr<F64Attr, "1.0">:$temperature,
    OptionalAttr<F64Attr>:$group_temperature,
    OptionalAttr<F64Attr>:$expert_temperature,
    OptionalAttr<I64Attr>:$top_k,
    OptionalAttr<I64Attr>:$top_k_groups,
    Atmoe_F32Matrix:$expert_scores,
    Optional<Atmoe_F32Matrix>:$group_scores);
  let results = (outs Atmoe_F32Matrix:$weights);
  let assemblyFormat = [{
    $kind $expert_scores (`groups` $group_sizes^)?
    (`group_scores` `(` $group_scores^ `:` type($group_scores) `)`)?
    attr-dict `:` type($expert_scores) `->` type($weights)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    double getGroupTau() {
      return getGroupTemperature().value_or(getTemperature()).convertToDouble();
    }
    double getExpertTau() {
      return getExpertTemperature().value_or(getTemperature()).convertToDouble();
    }
  }];
}

def Atmoe_CosineSimilarityOp : Atmoe_Op<"cosine_similarity", [Pure]> {
  let summary = "cosine similarity of every row of `lhs` with every row of `rhs`";
  let description = [{
    `result[i, j] = <lhs_i, rhs_j> / max(|lhs_i| |rhs_j|, 1e-12)`: the score of
    the cosine (X-MoE) router between projected router inputs (N x d_p) and
    expert embeddings (E x d_p). The floor keeps a zero vector's score at 0.

    Example:

    ```mlir
    %s = atmoe.cosine_similarity %z, %c
           : tensor<?x16xf32>, tensor<4x16xf32> -> tensor<?x4xf32>
    ```
  }];
  let arguments = (ins Atmoe_F32Matrix:$lhs, Atmoe_WeightMatrix:$rhs);
  let results = (outs Atmoe_F32Matrix:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Atmoe_LoraScalesOp : Atmoe_Op<"lora_scales", [Pure]> {
  let summary = "per-token scale of every rank slot of stacked adapters";
  let description = [{
    Produced by `--atmoe-fuse-lora`. Adapter i owns `ranks[i]` consecutive
    rank slots of the stacked adapters; its scale for token t is
    `factors[i] * routing[t, columns[i]]`, or `factors[i]` alone when
    `columns[i]` is -1 (the shared expert). `factors` already hold
    `lambda * alpha / r` (routed) or `(1 - lambda) * alpha / r` (shared).
    The result is T x R with R the sum of the ranks; `num_tokens` is T.

    Example:

    ```mlir
    %s = atmoe.lora_scales routing(%w : tensor<?x4xf32>) tokens %t
           ranks [16, 8] columns [0, -1] factors [1.6, 0.4]
           : tensor<?x24xf32>
    ```
  }];
  let arguments = (ins Optional<Atmoe_F32Matrix>:$routing, Index:$num_tokens,
                       DenseI64ArrayAttr:$ranks, DenseI64ArrayAttr:$columns,
                       DenseF64ArrayAttr:$factors);
  let results = (outs Atmoe_F32Matrix:$scales);
  let assemblyFormat = [{
    (`routing` `(` $routing^ `:` type($routing) `)`)? `tokens` $num_tokens
    `ranks` $ranks `columns` $columns `factors` $factors attr-dict
    `:` type($scales)
  }];
  let hasVerifier = 1;
}

def Atmoe_StackedLoraLinearOp : Atmoe_Op<"stacked_lora_linear", [
    Pure, AttrSizedOperandSegments]> {
  let summary = "base linear plus one stacked, per-token scaled LoRA update";
  let description = [{
    The fused form of `atmoe.lora_linear` (`--atmoe-fuse-lora`):

    ```
    y = x W^T + b + ((x down^T) * scales) up^T
    ```

    `down` (R x d_in) stacks the A matrices of all adapters row-wise, `up`
    (d_out x R) stacks the B matrices column-wise, with R the sum of the
    ranks (no padding to a common rank), and `scales` (T x R) is the
    per-token, per-rank-slot scale from `atmoe.lora_scales`. One skinny matmul
    pair replaces E small ones.

    PEFT's variants add two optional T x d_out terms (`--atmoe-fuse-lora`
    builds them from `bias` and `dora` adapters): `base_scale` multiplies the
    base product (DoRA's `1 + sum_i w_i (c_i - 1)`) and `offset` is added
    (the LoRA biases' `sum_i w_i s_i b_i`):

    ```
    y = (x W^T) * base_scale + b + offset + ((x down^T) * scales) up^T
    ```

    Example:

    ```mlir
    %y = atmoe.stacked_lora_linear %x, %w down(%a : tensor<24x64xf32>)
           up(%b : tensor<64x24xf32>) scales(%s : tensor<?x24xf32>)
           : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Atmoe_F32Matrix:$input, Atmoe_WeightMatrix:$weight,
                       Optional<Atmoe_WeightVector>:$bias,
                       Atmoe_WeightMatrix:$down, Atmoe_WeightMatrix:$up,
                       Atmoe_F32Matrix:$scales,
                       Optional<Atmoe_F32Matrix>:$base_scale,
                       Optional<Atmoe_F32Matrix>:$offset);
  let results = (outs Atmoe_F32Matrix:$output);
  let assemblyFormat = [{
    $input `,` $weight (`bias` `(` $bias^ `:` type($bias) `)`)?
    `down` `(` $down `:` type($down) `)` `up` `(` $up `:` type($up) `)`
    `scales` `(` $scales `:` type($scales) `)`
    (`base_scale` `(` $base_scale^ `:` type($base_scale) `)`)?
    (`offset` `(` $offset^ `:` type($offset) `)`)?
    attr-dict `:` type($input) `,` type($weight) `->` type($output)
  }];
  let builders = [
    OpBuilder<(ins "::mlir::Type":$output, "::mlir::Value":$input,
                   "::mlir::Value":$weight, "::mlir::Value":$bias,
                   "::mlir::Value":$down, "::mlir::Value":$up,
                   "::mlir::Value":$scales), [{
      build($_builder, $_state, output, input, weight, bias, down, up, scales,
            /*base_scale=*/::mlir::Value(), /*offset=*/::mlir::Value());
    }]>
  ];
  let hasVerifier = 1;
}

def Atmoe_DoraScaleOp : Atmoe_Op<"dora_scale", [Pure]> {
  let summary = "DoRA's per-feature scale m / ||W + s B A|| of one adapter";
  let description = [{
    The factor c of a DoRA adapter (PEFT's `mag_norm_scale`):

    ```
    c[o] = magnitude[o] / sqrt(sum_k (W[o, k] + scale * (B A)[o, k])^2)
    ```

    `weight` is the base W (d_out x d_in, in its storage type or
    dequantised), `lora_a` A (r x d_in), `lora_b` B (d_out x r),
    `magnitude` PEFT's `lora_magnitude_vector` m (d_out) and `scale` the
    adapter's `alpha / r`. It depends on weights only: the compiler hoists it
    to bind time (`--atmoe-hoist-dora-scale`), where the runtime computes it
    once per bound package; lowered in place it costs a d_out x d_in x r
    product per call.

    Example:

    ```mlir
    %c = atmoe.dora_scale %w, %a, %b, %m scale = 2.000000e+00
           : tensor<64x64xf32>, tensor<8x64xbf16>, tensor<64x8xbf16>,
             tensor<64xbf16> -> tensor<64xf32>
    ```
  }];
  let arguments = (ins Atmoe_WeightMatrix:$weight, Atmoe_WeightMatrix:$lora_a,
                       Atmoe_WeightMatrix:$lora_b, Atmoe_WeightVector:$magnitude,
                       F64Attr:$scale);
  let results = (outs Atmoe_F32Vector:$result);
  let assemblyFormat = [{
    $weight `,` $lora_a `,` $lora_b `,` $magnitude `scale` `=` $scale attr-dict
    `:` type($weight) `,` type($lora_a) `,` type($lora_b) `,` type($magnitude)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def Atmoe_ScaleRowsOp : Atmoe_Op<"scale_rows", [
    Pure, TypesMatchWith<"result is matrix's shape in f32", "matrix", "result",
        "::mlir::RankedTensorType::get("
        "::llvm::cast<::mlir::RankedTensorType>($_self).getShape(), "
        "::mlir::Float32Type::get($_self.getContext()))">]> {
  let summary = "multiply each row of a matrix by one value of a vector";
  let description = [{
    `result[o, j] = matrix[o, j] * scale[o]`, in f32. `--atmoe-fuse-lora`
    scales a DoRA adapter's B by its `atmoe.dora_scale` c this way
    (`c * (B A x) = (diag(c) B) A x`); of stored weights, the product is
    computed at bind time (`--atmoe-hoist-dora-scale`).

    Example:

    ```mlir
    %b2 = atmoe.scale_rows %b, %c : tensor<64x8xbf16>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Atmoe_WeightMatrix:$matrix, Atmoe_F32Vector:$scale);
  let results = (outs Atmoe_F32Matrix:$result);
  let assemblyFormat = [{
    $matrix `,` $scale attr-dict `:` type($matrix) `,` type($scale)
  }];
  let hasVerifier = 1;
}

def Atmoe_MergeLoraOp : Atmoe_Op<"merge_lora", [
    Pure, TypesMatchWith<"merged is weight's shape in f32", "weight", "merged",
        "::mlir::RankedTensorType::get("
        "::llvm::cast<::mlir::RankedTensorType>($_self).getShape(), "
        "::mlir::Float32Type::get($_self.getContext()))">]> {
  let summary = "fold one scaled, stacked LoRA update into a base weight";
  let description = [{
    Produced by `--atmoe-merge-sequence-adapters` for a sequence whose task
    plan (one routing row) holds for all of its tokens:

    ```
    merged = weight + (up * scales) down
    ```

    `weight` is W (d_out x d_in), `down` (R x d_in) and `up` (d_out x R) are
    the stacked adapters of `atmoe.stacked_lora_linear`, and `scales` (1 x R)
    is one row of `atmoe.lora_scales`, i.e. `lambda * w_e * alpha_e / r_e`
    (or `(1 - lambda) * alpha_S / r_S`) for every rank slot. The result is
    `W' = W + lambda * sum_e w_e s_e B_e A_e + (1 - lambda) s_S B_S A_S`, so
    `x W'^T + b` equals the adapted projection of every token that uses that
    routing row. The result is a new tensor: `weight` is never updated in
    place.

    Example:

    ```mlir
    %wm = atmoe.merge_lora %w down(%a : tensor<12x64xf32>)
            up(%b : tensor<32x12xf32>) scales(%s : tensor<1x12xf32>)
            : tensor<32x64xf32>
    ```
  }];
  let arguments = (ins Atmoe_WeightMatrix:$weight, Atmoe_WeightMatrix:$down,
                       Atmoe_WeightMatrix:$up, Atmoe_F32Matrix:$scales);
  let results = (outs Atmoe_F32Matrix:$merged);
  let assemblyFormat = [{
    $weight `down` `(` $down `:` type($down) `)` `up` `(` $up `:` type($up) `)`
    `scales` `(` $scales `:` type($scales) `)` attr-dict `:` type($weight)
  }];
  let hasVerifier = 1;
}

#endif // ATMOE_DIALECT_ATMOE_IR_ATMOEOPS_TD
