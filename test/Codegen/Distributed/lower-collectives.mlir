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

// A gather along the features: every process's columns received rank-major
// into [N, T, 32] by the collective function, the rank axis moved next to
// the features and merged with them.

shard.grid @atmoe_ranks(shape = 2)

// CHECK-LABEL: func.func @gather
// CHECK-SAME: (%[[LOCAL:.*]]: tensor<?x32xf32>)
// CHECK: %[[SEND:.*]] = bufferization.to_buffer %[[LOCAL]] read_only : tensor<?x32xf32> to memref<?x32xf32>
// CHECK: %[[PARTS:.*]] = memref.alloc(%{{.*}}) : memref<2x?x32xf32>
// CHECK: %[[SEND_FLAT:.*]] = memref.collapse_shape %[[SEND]] {{\[\[}}0, 1]]
// CHECK: %[[PARTS_FLAT:.*]] = memref.collapse_shape %[[PARTS]] {{\[\[}}0, 1, 2]]
// CHECK: call @atmoe_all_gather_f32(%[[SEND_FLAT]], %[[PARTS_FLAT]])
// CHECK: %[[RECEIVED:.*]] = bufferization.to_tensor %[[PARTS]] restrict writable : memref<2x?x32xf32> to tensor<2x?x32xf32>
// CHECK: %[[MOVED:.*]] = linalg.transpose ins(%[[RECEIVED]] : tensor<2x?x32xf32>) outs(%{{.*}} : tensor<?x2x32xf32>) permutation = [1, 0, 2]
// CHECK: %[[WHOLE:.*]] = tensor.collapse_shape %[[MOVED]] {{\[\[}}0], [1, 2]] : tensor<?x2x32xf32> into tensor<?x64xf32>
// CHECK: return %[[WHOLE]]
// CHECK-NOT: shard.all_gather
// CHECK: func.func private @atmoe_all_gather_f32(memref<?xf32>, memref<?xf32>)
func.func @gather(%local: tensor<?x32xf32>) -> tensor<?x64xf32> {
  %whole = shard.all_gather %local on @atmoe_ranks grid_axes = [0] gather_axis = 1 : tensor<?x32xf32> -> tensor<?x64xf32>
  return %whole : tensor<?x64xf32>
}

// -----

// A gather along the leading dimension needs no transpose.

shard.grid @atmoe_ranks(shape = 2)

// CHECK-LABEL: func.func @gather_rows
// CHECK: call @atmoe_all_gather_f32
// CHECK: %[[RECEIVED:.*]] = bufferization.to_tensor %{{.*}} : memref<2x4x8xf32> to tensor<2x4x8xf32>
// CHECK-NOT: linalg.transpose
// CHECK: tensor.collapse_shape %[[RECEIVED]] {{\[\[}}0, 1], [2]] : tensor<2x4x8xf32> into tensor<8x8xf32>
func.func @gather_rows(%local: tensor<4x8xf32>) -> tensor<8x8xf32> {
  %whole = shard.all_gather %local on @atmoe_ranks grid_axes = [0] gather_axis = 0 : tensor<4x8xf32> -> tensor<8x8xf32>
  return %whole : tensor<8x8xf32>
}

// -----

// Only sums are lowered.

shard.grid @atmoe_ranks(shape = 2)

func.func @maximum(%partial: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @below {{is a collective atmoe cannot lower}}
  %max = shard.all_reduce %partial on @atmoe_ranks grid_axes = [0] reduction = max : tensor<4xf32> -> tensor<4xf32>
  return %max : tensor<4xf32>
}
