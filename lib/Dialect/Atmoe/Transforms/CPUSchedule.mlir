// atmoe's CPU schedule: how every linalg.matmul of a lowered layer is tiled.
// Run by --atmoe-apply-cpu-schedule (embedded at build time); see that
// pass's description for the reasoning behind each step.
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(
      %root: !transform.any_op {transform.readonly}) {
    %matmuls = transform.structured.match ops{["linalg.matmul"]} in %root
        : (!transform.any_op) -> !transform.any_op
    transform.foreach %matmuls : !transform.any_op {
    ^bb0(%matmul: !transform.any_op):
      // Output features across threads; --atmoe-lower-cpu-matmuls blocks
      // and vectorises each thread's tile after bufferization.
      %block, %forall = transform.structured.tile_using_forall %matmul
          tile_sizes [0, 64]
          : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    }
    transform.yield
  }
}
