// RUN: atmoe-opt %s --split-input-file --verify-diagnostics \
// RUN:   --atmoe-shard-layers=ranks=2 | FileCheck %s

// A LoRA projection with a bias: W, its bias and B split by output features,
// A by input features, x replicated, the result replicated for its users.

// CHECK-LABEL: module attributes {atmoe.ranks = 2 : i64}
// CHECK: shard.grid @atmoe_ranks(shape = 2)
// CHECK-LABEL: func.func @layer0_forward
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<?x64xf32> {atmoe.input = "q_proj"}
// CHECK-SAME: %[[W:[a-z0-9]+]]: tensor<64x64xf32> {{{[^}]*}}atmoe.shard_dim = 0 : i64
// CHECK-SAME: %[[A:[a-z0-9]+]]: tensor<32x64xf32> {{{[^}]*}}atmoe.shard_dim = 1 : i64
// CHECK-SAME: %[[B:[a-z0-9]+]]: tensor<64x32xf32> {{{[^}]*}}atmoe.shard_dim = 0 : i64
// CHECK-SAME: %[[BIAS:[a-z0-9]+]]: tensor<64xf32> {{{[^}]*}}atmoe.shard_dim = 0 : i64
// CHECK: %[[WHOLE:.*]] = shard.sharding @atmoe_ranks split_axes = {{\[\[\]\]}}
// CHECK: shard.shard %[[X]] to %[[WHOLE]] : tensor<?x64xf32>
// CHECK: %[[ROWS:.*]] = shard.sharding @atmoe_ranks split_axes = {{\[\[}}0]]
// CHECK: shard.shard %[[W]] to %[[ROWS]] : tensor<64x64xf32>
// CHECK: %[[COLUMNS:.*]] = shard.sharding @atmoe_ranks split_axes = {{\[\[}}], [0]]
// CHECK: shard.shard %[[A]] to %[[COLUMNS]] : tensor<32x64xf32>
// CHECK: shard.shard %[[B]] to
// CHECK: shard.shard %[[BIAS]] to
// CHECK: %[[Y:.*]] = linalg.matmul {{.*}}"lora_up"
// CHECK: %[[RESULT:.*]] = shard.shard %[[Y]] to %{{.*}} annotate_for_users
// CHECK: return %[[RESULT]]
func.func @layer0_forward(%x: tensor<?x64xf32> {atmoe.input = "q_proj"},
    %w: tensor<64x64xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.weight", atmoe.tensor = "q.weight"},
    %a: tensor<32x64xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.lora_A", atmoe.tensor = "q.lora_A"},
    %b: tensor<64x32xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.lora_B", atmoe.tensor = "q.lora_B"}, %bias: tensor<64xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.bias", atmoe.tensor = "q.bias"})
    -> (tensor<?x64xf32> {atmoe.output = "q_proj"}) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%t) : tensor<?x64xf32>
  %f = linalg.broadcast ins(%bias : tensor<64xf32>) outs(%e : tensor<?x64xf32>) dimensions = [0]
  %base = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>] {atmoe.matmul_role = "lora_base"} ins(%x, %w : tensor<?x64xf32>, tensor<64x64xf32>) outs(%f : tensor<?x64xf32>) -> tensor<?x64xf32>
  %e2 = tensor.empty(%t) : tensor<?x32xf32>
  %f2 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<?x32xf32>) -> tensor<?x32xf32>
  %down = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>] {atmoe.matmul_role = "lora_down"} ins(%x, %a : tensor<?x64xf32>, tensor<32x64xf32>) outs(%f2 : tensor<?x32xf32>) -> tensor<?x32xf32>
  %up = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>] {atmoe.matmul_role = "lora_up"} ins(%down, %b : tensor<?x32xf32>, tensor<64x32xf32>) outs(%base : tensor<?x64xf32>) -> tensor<?x64xf32>
  return %up : tensor<?x64xf32>
}

// -----

// The router's weights and a projection without experts feeding only a
// router stay whole; so does every weight of a function that is not a layer.

// CHECK-LABEL: func.func @router_only
// CHECK-NOT: atmoe.shard_dim
// CHECK: return
func.func @router_only(%h: tensor<?x8xf32> {atmoe.input = "h"},
    %w: tensor<3x8xf32> {atmoe.file = "w.safetensors", atmoe.source = "r.weight", atmoe.tensor = "r.weight"})
    -> (tensor<?x3xf32> {atmoe.output = "routing"}) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %h, %c0 : tensor<?x8xf32>
  %e = tensor.empty(%t) : tensor<?x3xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x3xf32>) -> tensor<?x3xf32>
  %r = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>] {atmoe.matmul_role = "router"} ins(%h, %w : tensor<?x8xf32>, tensor<3x8xf32>) outs(%f : tensor<?x3xf32>) -> tensor<?x3xf32>
  return %r : tensor<?x3xf32>
}

// -----

// A split dimension that the processes do not divide.

// expected-error @below {{cannot split q.weight over 2 processes: its dimension 0 has 63 entries, not a multiple of 2}}
func.func @odd(%x: tensor<?x8xf32> {atmoe.input = "q_proj"},
    %w: tensor<63x8xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.weight", atmoe.tensor = "q.weight"})
    -> (tensor<?x63xf32> {atmoe.output = "q_proj"}) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x8xf32>
  %e = tensor.empty(%t) : tensor<?x63xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x63xf32>) -> tensor<?x63xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>] {atmoe.matmul_role = "projection"} ins(%x, %w : tensor<?x8xf32>, tensor<63x8xf32>) outs(%f : tensor<?x63xf32>) -> tensor<?x63xf32>
  return %y : tensor<?x63xf32>
}

// -----

// An op sharding-propagation cannot see through (a branch of sequence
// granularity's merged path) is refused up front, naming what it comes from.

func.func @segments(%x: tensor<?x8xf32> {atmoe.input = "q_proj"},
    %w: tensor<8x8xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.weight", atmoe.tensor = "q.weight"},
    %merge: i1)
    -> (tensor<?x8xf32> {atmoe.output = "q_proj"}) {
  // expected-error @below {{cannot split this layer over processes: 'scf.if' has no sharding model (sequence granularity's merged path: compile it with --sequence-merge=unmerged)}}
  %y = scf.if %merge -> (tensor<?x8xf32>) {
    scf.yield %x : tensor<?x8xf32>
  } else {
    scf.yield %x : tensor<?x8xf32>
  }
  return %y : tensor<?x8xf32>
}
