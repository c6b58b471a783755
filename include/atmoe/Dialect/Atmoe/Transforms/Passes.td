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
  }];
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
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

def MemRefCopyToLinalgPass : Pass<"atmoe-memref-copy-to-linalg"> {
  let summary = "Rewrite memref.copy as linalg.copy";
  let description = [{
    Strided `memref.copy` ops (into subviews, e.g. from bufferized
    `tensor.concat`) lower to a call of `memrefCopy` from MLIR's C runner
    utilities. Compiled models must not depend on that library, so the CPU
    pipeline turns every copy into a `linalg.copy`, which lowers to loops
    (and later vector code) like any other linalg op.

    ```mlir
    memref.copy %a, %b : memref<4x2xf32> to memref<4x2xf32, strided<[5, 1]>>
    // becomes
    linalg.copy ins(%a : memref<4x2xf32>) outs(%b : memref<4x2xf32, strided<[5, 1]>>)
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def ApplyCPUSchedulePass : Pass<"atmoe-apply-cpu-schedule", "mlir::ModuleOp"> {
  let summary = "Tile linalg on tensors for the CPU with a transform script";
  let description = [{
    Runs atmoe's CPU schedule, a transform-dialect script kept in
    `lib/Dialect/Atmoe/Transforms/CPUSchedule.mlir`, on the module. For every
    `linalg.matmul` (the base projection, the LoRA down- and up-projections,
    the router logits):

    1. the output features are split into blocks of `feature-block` across
       threads (`scf.forall`, later OpenMP);
    2. inside a block, tokens are taken `token-block` at a time and the
       reduction `k-block` at a time, so a token block of x and a feature
       block of W stay in cache;
    3. the innermost op computes one weight row for the whole token block:
       that row stays in L1 while every token uses it, and its reduction loop
       is contiguous, which LLVM vectorises once reassociation is allowed
       (`--atmoe-allow-fp-reassociation`).

    Pass `--transform-schedule=<file>` to experiment with another script
    with the same entry point (`@__transform_main`).
  }];
  let options = [
    Option<"scheduleFile", "transform-schedule", "std::string", "\"\"",
           "Transform script to run instead of the built-in CPU schedule">
  ];
  let dependentDialects = ["::mlir::transform::TransformDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def AllowFPReassociationPass : Pass<"atmoe-allow-fp-reassociation"> {
  let summary = "Allow reassociation and contraction of floating-point ops";
  let description = [{
    Sets `fastmath<reassoc, contract>` on every arith op that takes fast-math
    flags. Reassociation lets LLVM vectorise reductions (matmul inner
    products, softmax sums) and contraction lets it use FMA. Both change
    rounding only; results stay well within SPEC §2's tolerance (checked by
    the end-to-end tests against a float64 reference). No-NaN/no-inf flags
    are not set: inputs may legitimately hold them.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
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

#endif // ATMOE_DIALECT_ATMOE_TRANSFORMS_PASSES_TD
