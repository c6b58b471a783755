//===- Passes.td - atmoe conversion passes -----------------*- tablegen -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_CONVERSION_PASSES_TD
#define ATMOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertAtmoeToLinalgPass : Pass<"convert-atmoe-to-linalg", "mlir::ModuleOp"> {
  let summary = "Lower fused atmoe compute to linalg, tensor and arith";
  let description = [{
    Lowers the fused atmoe compute ops to upstream dialects on tensors and
    erases the layer structure symbols:

    * `atmoe.linear`: `linalg.matmul` with a transposed-B indexing map into a
      bias broadcast (or zero fill);
    * `atmoe.stacked_lora_linear`: the base matmul, the skinny down-projection
      matmul, one elementwise scale, and the up-projection matmul
      accumulating into the base result;
    * `atmoe.lora_scales`: a T x E by E x R matmul with a constant selection
      matrix, accumulating into the broadcast shared-expert factors;
    * `atmoe.normalize_routing`: one `linalg.generic` computing every routing
      weight of a row from the row's scores (stable softmax, group softmax,
      sigmoid, top-k ranks), with no intermediate tensors;
    * `atmoe.cosine_similarity`: a matmul, two row-norm reductions and one
      elementwise division;
    * `atmoe.expand_segments`: a loop over segments broadcasting each row;
    * a base weight from `atmoe.dequantize` (GPTQ): the base product is one
      `linalg.generic` over (t, n, k) reading the packed integers, scales and
      zero points through `floordiv` maps and unpacking in its body, tagged
      `atmoe.quantization` for the CPU kernel; `atmoe.dequantize` itself
      becomes a generic that writes W, for ops that need all of it.

    Weights keep their storage type (f16, bf16): the named matmuls read them
    as they are; only biases and weights copied whole are widened by a
    generic.

    `atmoe.route` and `atmoe.lora_linear` must be fused first
    (`--atmoe-fuse-router`, `--atmoe-expand-segments`, `--atmoe-fuse-lora`);
    the pass reports any that remain.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // ATMOE_CONVERSION_PASSES_TD
