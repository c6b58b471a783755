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
      // Output features across threads.
      %block, %forall = transform.structured.tile_using_forall %matmul
          tile_sizes [0, 64]
          : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
      // Token and reduction blocks that stay in cache.
      %inner, %loops:2 = transform.structured.tile_using_for %block
          tile_sizes [16, 0, 512]
          : (!transform.any_op)
          -> (!transform.any_op, !transform.any_op, !transform.any_op)
      // One weight row for the whole token block.
      %row, %rowLoop = transform.structured.tile_using_for %inner
          tile_sizes [0, 1]
          : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    }
    transform.yield
  }
}
