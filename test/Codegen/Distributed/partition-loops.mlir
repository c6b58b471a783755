// RUN: atmoe-opt %s --split-input-file --verify-diagnostics \
// RUN:   --pass-pipeline="builtin.module(func.func(sharding-propagation,shard-partition))" \
// RUN:   | FileCheck %s

// Sequence granularity's loop over the sequences (each sequence's routing
// row copied to its tokens) runs whole on every process: it reads only
// whole values, and its body is cloned as it is.

shard.grid @atmoe_ranks(shape = 2)

// CHECK-LABEL: func.func @broadcast_rows
// CHECK-NOT: shard.all_
// CHECK: %[[ROWS:.*]]:2 = scf.for {{.*}} -> (tensor<?x3xf32>, index)
// CHECK: tensor.insert_slice
// CHECK: return %[[ROWS]]#0
func.func @broadcast_rows(%routing: tensor<?x3xf32>, %lengths: tensor<?xi64>, %tokens: index) -> tensor<?x3xf32> {
  %whole = shard.sharding @atmoe_ranks split_axes = [[]] : !shard.sharding
  %r = shard.shard %routing to %whole : tensor<?x3xf32>
  %l = shard.shard %lengths to %whole : tensor<?xi64>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = tensor.dim %l, %c0 : tensor<?xi64>
  %empty = tensor.empty(%tokens) : tensor<?x3xf32>
  %rows:2 = scf.for %s = %c0 to %n step %c1 iter_args(%acc = %empty, %at = %c0) -> (tensor<?x3xf32>, index) {
    %len64 = tensor.extract %l[%s] : tensor<?xi64>
    %len = arith.index_cast %len64 : i64 to index
    %row = tensor.extract_slice %r[%s, 0] [1, 3] [1, 1] : tensor<?x3xf32> to tensor<1x3xf32>
    %block = tensor.extract_slice %acc[%at, 0] [%len, 3] [1, 1] : tensor<?x3xf32> to tensor<?x3xf32>
    %copied = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%row : tensor<1x3xf32>) outs(%block : tensor<?x3xf32>) {
    ^bb0(%in: f32, %out: f32):
      linalg.yield %in : f32
    } -> tensor<?x3xf32>
    %next = tensor.insert_slice %copied into %acc[%at, 0] [%len, 3] [1, 1] : tensor<?x3xf32> into tensor<?x3xf32>
    %end = arith.addi %at, %len : index
    scf.yield %next, %end : tensor<?x3xf32>, index
  }
  %out = shard.shard %rows#0 to %whole annotate_for_users : tensor<?x3xf32>
  return %out : tensor<?x3xf32>
}

// -----

// A loop body reading a split value would compute on the local part as if
// it were whole.

shard.grid @atmoe_ranks(shape = 2)

func.func @reads_split(%w: tensor<4x8xf32>, %n: index) -> f32 {
  %rows = shard.sharding @atmoe_ranks split_axes = [[0]] : !shard.sharding
  %split = shard.shard %w to %rows : tensor<4x8xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  // expected-error @below {{reads a value split over processes in its body}}
  %sum = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %zero) -> (f32) {
    %v = tensor.extract %split[%c0, %i] : tensor<4x8xf32>
    %next = arith.addf %acc, %v : f32
    scf.yield %next : f32
  }
  return %sum : f32
}
