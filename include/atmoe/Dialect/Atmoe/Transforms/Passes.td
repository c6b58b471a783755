//===- Passes.td - atmoe transformation passes -------------*- tablegen -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_DIALECT_ATMOE_TRANSFORMS_PASSES_TD
#define ATMOE_DIALECT_ATMOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def ExpandSegmentsPass : Pass<"atmoe-expand-segments"> {
  let summary = "Turn sequence-granularity projections into token granularity";
  let description = [{
    Rewrites every `atmoe.lora_linear` with `granularity(sequence)` so that it
    takes one routing row per token: the per-sequence weights (S x E) are
    repeated for the tokens of each sequence by `atmoe.expand_segments`. Later
    passes then only handle token granularity. The expansion reads S x E
    values and writes T x E, which is negligible next to the projection.

    Before:

    ```mlir
    %y = atmoe.lora_linear %x, %w layer(@layer0) granularity(sequence)
           adapters [#atmoe.lora<@icd, rank = 4, alpha = 8.0>]
           lora_a(%a : tensor<4x64xf32>) lora_b(%b : tensor<64x4xf32>)
           routing(%r : tensor<?x2xf32>) segments(%s : tensor<?xi64>)
           : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    ```

    After:

    ```mlir
    %c0 = arith.constant 0 : index
    %t = tensor.dim %x, %c0 : tensor<?x64xf32>
    %rt = atmoe.expand_segments %r segments(%s : tensor<?xi64>) tokens %t
            : tensor<?x2xf32> -> tensor<?x2xf32>
    %y = atmoe.lora_linear %x, %w layer(@layer0)
           adapters [#atmoe.lora<@icd, rank = 4, alpha = 8.0>]
           lora_a(%a : tensor<4x64xf32>) lora_b(%b : tensor<64x4xf32>)
           routing(%rt : tensor<?x2xf32>)
           : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

def FuseLoraPass : Pass<"atmoe-fuse-lora"> {
  let summary = "Stack the LoRA adapters of each projection into one update";
  let description = [{
    Rewrites every token-granularity `atmoe.lora_linear` into one
    `atmoe.stacked_lora_linear`: the adapters' A matrices are stacked into
    one down-projection (R x d_in, R the sum of the ranks, no padding), their
    B matrices into one up-projection (d_out x R), and
    `atmoe.lora_scales` gives every (token, rank slot) its scale
    `lambda * w_e * alpha_e / r_e` (or `(1 - lambda) * alpha_S / r_S` for the
    shared expert). E small matmul pairs become one skinny pair. Run
    `--atmoe-expand-segments` first: sequence-granularity ops are left alone.

    Before:

    ```mlir
    %y = atmoe.lora_linear %x, %w layer(@l)
           adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>,
                     #atmoe.lora<@general, rank = 4, alpha = 8.0>]
           lora_a(%a0, %a1 : tensor<8x64xf32>, tensor<4x64xf32>)
           lora_b(%b0, %b1 : tensor<32x8xf32>, tensor<32x4xf32>)
           routing(%r : tensor<?x3xf32>)
           : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
    ```

    After (layer @l has lambda = 0.8):

    ```mlir
    %down = tensor.concat dim(0) %a0, %a1
              : (tensor<8x64xf32>, tensor<4x64xf32>) -> tensor<12x64xf32>
    %up = tensor.concat dim(1) %b0, %b1
              : (tensor<32x8xf32>, tensor<32x4xf32>) -> tensor<32x12xf32>
    %s = atmoe.lora_scales routing(%r : tensor<?x3xf32>) tokens %t
           ranks [8, 4] columns [0, -1] factors [1.6, 0.4] : tensor<?x12xf32>
    %y = atmoe.stacked_lora_linear %x, %w down(%down : tensor<12x64xf32>)
           up(%up : tensor<32x12xf32>) scales(%s : tensor<?x12xf32>)
           : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
    ```

    PEFT's variants (`#atmoe.lora<..., bias>`, `<..., dora>`) become the
    stacked op's optional terms, each a contraction of per-token factors
    (another `atmoe.lora_scales`, one slot per adapter) with one row per
    adapter: `offset = sum_i w_i s_i b_i` for LoRA biases, and
    `base_scale = 1 + sum_i w_i (c_i - 1)` for DoRA, whose up-projection
    columns are also scaled by c_i (`diag(c_i) B_i`).
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def FuseRouterPass : Pass<"atmoe-fuse-router"> {
  let summary = "Split routers into affine logits and one fused normalisation";
  let description = [{
    Rewrites every `atmoe.route` into its affine logits (`atmoe.linear` for
    `u = h W_g^T + b_g` and `v = h W_e^T + b_e`; for `cosine`, the projection
    `atmoe.linear` then `atmoe.cosine_similarity` with the expert embeddings)
    followed by one `atmoe.normalize_routing` that applies the kind's
    normalisation, temperatures and top-k in a single fused step. The
    conversion to linalg turns that step into one `linalg.generic` instead of
    a chain of max / exp / sum / divide ops with intermediate tensors.

    Before:

    ```mlir
    %w = atmoe.route grouped_softmax %h layer(@l) groups [2, 2]
           group_weight(%wg : tensor<2x64xf32>)
           expert_weight(%we : tensor<4x64xf32>)
           : tensor<?x64xf32> -> tensor<?x4xf32>
    ```

    After:

    ```mlir
    %u = atmoe.linear %h, %wg : tensor<?x64xf32>, tensor<2x64xf32> -> tensor<?x2xf32>
    %v = atmoe.linear %h, %we : tensor<?x64xf32>, tensor<4x64xf32> -> tensor<?x4xf32>
    %w = atmoe.normalize_routing grouped_softmax %v groups [2, 2]
           group_scores(%u : tensor<?x2xf32>) : tensor<?x4xf32> -> tensor<?x4xf32>
    ```
  }];
}

def HoistWeightConcatPass : Pass<"atmoe-hoist-weight-concat", "mlir::ModuleOp"> {
  let summary = "Stack concatenated weights once at bind time, not per call";
  let description = [{
    `--atmoe-fuse-lora` stacks a projection's A and B matrices with
    `tensor.concat`. When every operand of such a concat is a weight argument
    of a layer function (an argument with `atmoe.tensor`, see
    docs/ModelABI.md) used only there, the concatenation does not depend on
    the call: this pass replaces those arguments by one argument holding the
    stacked tensor, described by `atmoe.parts` (the parts' names, files and
    shapes, in order) and `atmoe.concat_dim`. The runtime builds the stacked
    buffer once when it binds the weights, so each forward call no longer
    copies every adapter.

    Before:

    ```mlir
    func.func @f(%a0: tensor<8x64xf32> {atmoe.tensor = "a0", atmoe.file = "w", atmoe.source = "a0"},
                 %a1: tensor<4x64xf32> {atmoe.tensor = "a1", atmoe.file = "w", atmoe.source = "a1"}) -> tensor<12x64xf32> {
      %s = tensor.concat dim(0) %a0, %a1 : (tensor<8x64xf32>, tensor<4x64xf32>) -> tensor<12x64xf32>
      return %s : tensor<12x64xf32>
    }
    ```

    After:

    ```mlir
    func.func @f(%s: tensor<12x64xf32> {atmoe.concat_dim = 0 : i64,
                   atmoe.parts = [{file = "w", shape = array<i64: 8, 64>, source = "a0", tensor = "a0"},
                                  {file = "w", shape = array<i64: 4, 64>, source = "a1", tensor = "a1"} ],
                   atmoe.tensor = "stack(a0, a1)"}) -> tensor<12x64xf32> {
      return %s : tensor<12x64xf32>
    }
    ```
  }];
}

def HoistDoraScalePass : Pass<"atmoe-hoist-dora-scale", "mlir::ModuleOp"> {
  let summary = "Compute DoRA's scales once at bind time, not per call";
  let description = [{
    `atmoe.dora_scale` reads only weights, and lowered in place it costs a
    d_out x d_in x r product and a pass over W on every call. When its
    weight, lora_a, lora_b and magnitude are weight arguments of a layer
    function stored as they are (`atmoe.file` / `atmoe.source`, see
    docs/ModelABI.md; a GPTQ weight is dequantised first and stays in
    place), this pass replaces the op by a new f32 argument described by
    `atmoe.parts` (the four tensors, in that order) and `atmoe.dora_scale`
    (the op's scale). The runtime computes `m / ||W + s B A||` per row once
    when it binds the weights, accumulating in double. The magnitude
    argument, used by nothing else, is removed. An `atmoe.scale_rows` of the
    same stored lora_B by such a scale (`--atmoe-fuse-lora`'s `diag(c) B`)
    becomes an argument of B's shape computed the same way: the runtime
    scales B's rows by c once, not every call.

    Before:

    ```mlir
    func.func @f(%w: tensor<32x64xf32> {atmoe.tensor = "w", ...}, %a: ..., %b: ...,
                 %m: tensor<32xf32> {atmoe.tensor = "m", ...}) -> tensor<32xf32> {
      %c = atmoe.dora_scale %w, %a, %b, %m scale = 2.0 : ...
      return %c : tensor<32xf32>
    }
    ```

    After:

    ```mlir
    func.func @f(%w: ..., %a: ..., %b: ...,
                 %c: tensor<32xf32> {atmoe.dora_scale = 2.0 : f64,
                   atmoe.parts = [{tensor = "w", ...}, {tensor = "a", ...},
                                  {tensor = "b", ...}, {tensor = "m", ...} ],
                   atmoe.tensor = "dora_scale(a)"}) -> tensor<32xf32> {
      return %c : tensor<32xf32>
    }
    ```
  }];
}

def MergeSequenceAdaptersPass : Pass<"atmoe-merge-sequence-adapters"> {
  let summary = "Merge a sequence's experts into its base weight when cheaper";
  let description = [{
    With `granularity(sequence)` every token of a sequence (segment) uses
    the same routing row, so its adapted projection is a plain linear with
    the merged weight

    ```
    W' = W + lambda * sum_e w_e s_e B_e A_e + (1 - lambda) s_S B_S A_S
    ```

    Building W' costs `d_out * d_in * R` multiply-adds (R the sum of the
    ranks) plus writing and reading W' once more; it saves the LoRA work of
    the unmerged fused path, `T_seg * R * (d_in + d_out)`. A cost model
    (docs/Passes.md) turns the static shapes into a threshold `N`: merging
    a segment is cheaper iff it has at least `N` tokens. Segment lengths are
    dynamic, so the pass rewrites every sequence-granularity
    `atmoe.lora_linear` into

    * nothing, when merging can never pay (`policy=unmerged`, or the token
      count is static and below `N`): `--atmoe-expand-segments` and
      `--atmoe-fuse-lora` handle the op as before;
    * otherwise a run-time test: when no segment reaches `N`, the whole
      batch takes the unmerged fused path
      (`atmoe.expand_segments` + `atmoe.lora_scales` +
      `atmoe.stacked_lora_linear`); else an `scf.for` over the segments
      merges each segment of at least `N` tokens (`atmoe.lora_scales` of its
      input) and computes the shorter ones unmerged. Empty segments never
      build a merged weight. `policy=merge` (or `N <= 1`) merges every
      non-empty segment and skips empty ones, without the test.

    The cost model assumes that the projection runs the same kernel on W
    and on a merged W'. With `panel-width` (the CPU targets'
    `--atmoe-pack-weight-panels` width), a W whose output features it
    divides is packed into panels with a faster kernel, while W' stays in
    the stored layout; merging then loses at any segment length (measured
    at d = 2048, one segment of 2048 tokens: 103 ms merged, 78 ms
    unmerged), so `policy=auto` leaves such projections unmerged.

    Both paths share one stacked down- and up-projection, so
    `--atmoe-hoist-weight-concat` still stacks the adapters at bind time.
    Projections whose adapters are all shared (no routing weights) merge
    once for the whole batch.

    Before:

    ```mlir
    %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence)
           adapters [#atmoe.lora<@a, rank = 2, alpha = 4.0>]
           lora_a(%a : tensor<2x64xf32>) lora_b(%b : tensor<32x2xf32>)
           routing(%r : tensor<?x1xf32>) segments(%s : tensor<?xi64>)
           : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
    ```

    After (`policy=merge`, abridged):

    ```mlir
    %t = tensor.dim %x, %c0 : tensor<?x64xf32>
    %n = tensor.dim %s, %c0 : tensor<?xi64>
    %init = tensor.empty(%t) : tensor<?x32xf32>
    %y:2 = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %init, %off = %c0)
        -> (tensor<?x32xf32>, index) {
      %len = ... tensor.extract %s[%i] ...
      %next = scf.if ... -> (tensor<?x32xf32>) {
        %xs = tensor.extract_slice %x[%off, 0] [%len, 64] [1, 1]
        %row = tensor.extract_slice %r[%i, 0] [1, 1] [1, 1]
        %c = atmoe.lora_scales routing(%row : tensor<1x1xf32>) tokens %c1
               ranks [2] columns [0] factors [2.0] : tensor<1x2xf32>
        %wm = atmoe.merge_lora %w down(%a : tensor<2x64xf32>)
                up(%b : tensor<32x2xf32>) scales(%c : tensor<1x2xf32>)
                : tensor<32x64xf32>
        %ys = atmoe.linear %xs, %wm
                : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
        %ins = tensor.insert_slice %ys into %acc[%off, 0] [%len, 32] [1, 1]
        scf.yield %ins : tensor<?x32xf32>
      } else {
        scf.yield %acc : tensor<?x32xf32>
      }
      ...
    }
    ```
  }];
  let options = [
    Option<"policy", "policy", "::mlir::atmoe::SequenceMergePolicy",
           "::mlir::atmoe::SequenceMergePolicy::Auto",
           "When to merge a segment's experts into the base weight",
           [{::llvm::cl::values(
             clEnumValN(::mlir::atmoe::SequenceMergePolicy::Auto, "auto",
                        "the cost model decides"),
             clEnumValN(::mlir::atmoe::SequenceMergePolicy::Merge, "merge",
                        "every non-empty segment"),
             clEnumValN(::mlir::atmoe::SequenceMergePolicy::Unmerged,
                        "unmerged",
                        "never (leave the ops to --atmoe-expand-segments)"))}]>,
    Option<"mergeThreshold", "merge-threshold", "int64_t", "-1",
           "With policy=auto: merge segments of at least this many tokens "
           "instead of the cost model's threshold (-1)">,
    Option<"panelWidth", "panel-width", "int64_t", "0",
           "With policy=auto: the width of the target's weight panels (0: "
           "none); projections whose W they would pack stay unmerged">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // ATMOE_DIALECT_ATMOE_TRANSFORMS_PASSES_TD
