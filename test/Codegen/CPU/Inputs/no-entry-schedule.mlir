// A transform script without @__transform_main, for apply-cpu-schedule.mlir.
module attributes {transform.with_named_sequence} {
  transform.named_sequence @other(%root: !transform.any_op {transform.readonly}) {
    transform.yield
  }
}
