// atmoe's CPU schedule: how the matmuls of a lowered layer are spread over
// threads. Run by --atmoe-apply-cpu-schedule (embedded at build time); see
// that pass's description for the reasoning behind each step. Matmuls are
// told apart by the atmoe.matmul_role the conversion to linalg gives them
// (a product with a GPTQ weight is a linalg.generic with the same role).
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(
      %root: !transform.any_op {transform.readonly}) {
    // A LoRA up-projection accumulates onto the base product: one parallel
    // loop over output features computes both for its tile (the base tile
    // is fused in), so a call wakes the threads once for the two and each
    // thread adds its LoRA part while its y tile is in cache.
    %ups = transform.structured.match ops{["linalg.matmul"]}
        attributes{atmoe.matmul_role = "lora_up"} in %root
        : (!transform.any_op) -> !transform.any_op
    transform.foreach %ups : !transform.any_op {
    ^bb0(%up: !transform.any_op):
      %base = transform.get_producer_of_operand %up[2]
          : (!transform.any_op) -> !transform.any_op
      %block, %forall = transform.structured.tile_using_forall %up
          tile_sizes [0, 64]
          : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
      // Under expert parallelism the init is the base output gathered from
      // the processes (or zeros), not a product: nothing to fuse.
      transform.sequence %forall : !transform.any_op failures(suppress) {
      ^bb1(%loop: !transform.any_op):
        transform.match.operation_name %base
            ["linalg.matmul", "linalg.generic"] : !transform.any_op
        %fused, %containing = transform.structured.fuse_into_containing_op
            %base into %loop
            : (!transform.any_op, !transform.any_op)
            -> (!transform.any_op, !transform.any_op)
      }
    }
    // The other large products: output features across threads. Router
    // logits and the routing-to-scales expansion are too small to be worth
    // waking a thread for; they stay on the calling thread.
    %projections = transform.structured.match ops{["linalg.matmul", "linalg.generic"]}
        attributes{atmoe.matmul_role = "projection"} in %root
        : (!transform.any_op) -> !transform.any_op
    %downs = transform.structured.match ops{["linalg.matmul"]}
        attributes{atmoe.matmul_role = "lora_down"} in %root
        : (!transform.any_op) -> !transform.any_op
    %merges = transform.structured.match ops{["linalg.matmul"]}
        attributes{atmoe.matmul_role = "merge_lora"} in %root
        : (!transform.any_op) -> !transform.any_op
    // The down-projection (R x d weights, 1-2 MiB) is not worth waking a
    // thread for at small T: --atmoe-serialize-small-foralls runs its loop on
    // the calling thread up to 32 tokens.
    transform.foreach %downs : !transform.any_op {
    ^bb0(%down: !transform.any_op):
      %block, %forall = transform.structured.tile_using_forall %down
          tile_sizes [0, 64]
          : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
      %max_rows = transform.param.constant 32 : i64 -> !transform.param<i64>
      transform.annotate %forall "atmoe.serial_max_rows" = %max_rows
          : !transform.any_op, !transform.param<i64>
    }
    %large = transform.merge_handles %projections, %merges
        : !transform.any_op
    transform.foreach %large : !transform.any_op {
    ^bb0(%matmul: !transform.any_op):
      // --atmoe-lower-cpu-matmuls blocks and vectorises each thread's tile
      // after bufferization.
      %block, %forall = transform.structured.tile_using_forall %matmul
          tile_sizes [0, 64]
          : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    }
    transform.yield
  }
}
