// RUN: atmoe-opt %s --split-input-file --verify-diagnostics \
// RUN:   --atmoe-lower-collectives | FileCheck %s

// The T x R partial sums reduced through the collective function, on the
// tensor's buffer and a new one.

shard.grid @atmoe_ranks(shape = 2)

// CHECK-LABEL: func.func @reduce
// CHECK-SAME: (%[[PARTIAL:.*]]: tensor<?x32xf32>)
// CHECK: %[[SEND:.*]] = bufferization.to_buffer %[[PARTIAL]] read_only
// CHECK: %[[RECV:.*]] = memref.alloc(%{{.*}}) : memref<?x32xf32>
// CHECK: %[[SEND_FLAT:.*]] = memref.collapse_shape %[[SEND]] {{\[\[}}0, 1]]
// CHECK: %[[RECV_FLAT:.*]] = memref.collapse_shape %[[RECV]] {{\[\[}}0, 1]]
// CHECK: call @atmoe_all_reduce_sum_f32(%[[SEND_FLAT]], %[[RECV_FLAT]])
// CHECK: %[[SUM:.*]] = bufferization.to_tensor %[[RECV]] restrict writable
// CHECK: return %[[SUM]]
// CHECK: func.func private @atmoe_all_reduce_sum_f32(memref<?xf32>, memref<?xf32>)
func.func @reduce(%partial: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %sum = shard.all_reduce %partial on @atmoe_ranks grid_axes = [0] : tensor<?x32xf32> -> tensor<?x32xf32>
  return %sum : tensor<?x32xf32>
}

// -----

// A gather along the features: the local columns placed at this process's
// offset into zeros, then summed.

shard.grid @atmoe_ranks(shape = 2)

// CHECK-LABEL: func.func @gather
// CHECK-SAME: (%[[LOCAL:.*]]: tensor<?x32xf32>)
// CHECK: %[[ZEROS:.*]] = linalg.fill
// CHECK: %[[RANK:.*]] = shard.process_linear_index on @atmoe_ranks
// CHECK: %[[OFFSET:.*]] = arith.muli %[[RANK]], %c32
// CHECK: %[[PLACED:.*]] = tensor.insert_slice %[[LOCAL]] into %[[ZEROS]][0, %[[OFFSET]]] [%{{.*}}, 32] [1, 1]
// CHECK: bufferization.to_buffer %[[PLACED]]
// CHECK: call @atmoe_all_reduce_sum_f32
// CHECK-NOT: shard.all_gather
func.func @gather(%local: tensor<?x32xf32>) -> tensor<?x64xf32> {
  %whole = shard.all_gather %local on @atmoe_ranks grid_axes = [0] gather_axis = 1 : tensor<?x32xf32> -> tensor<?x64xf32>
  return %whole : tensor<?x64xf32>
}

// -----

// Only sums are lowered.

shard.grid @atmoe_ranks(shape = 2)

func.func @maximum(%partial: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @below {{is a collective atmoe cannot lower}}
  %max = shard.all_reduce %partial on @atmoe_ranks grid_axes = [0] reduction = max : tensor<4xf32> -> tensor<4xf32>
  return %max : tensor<4xf32>
}
