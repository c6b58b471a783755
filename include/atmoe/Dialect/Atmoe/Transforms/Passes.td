//===- Passes.td - atmoe transformation passes -------------*- tablegen -*-===//
//
// Part of the atmoe project, under the Apache License v2.0 with LLVM Exceptions.
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

#endif // ATMOE_DIALECT_ATMOE_TRANSFORMS_PASSES_TD
