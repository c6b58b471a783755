// RUN: atmoe-opt %s --split-input-file --verify-diagnostics \
// RUN:   --atmoe-shard-layers="ranks=2 strategy=expert" | FileCheck %s

// Expert parallelism: the stacked experts split along their rank slots (A by
// rows, B by columns); W and its bias by output features as in tensor
// parallelism; x replicated.

// CHECK-LABEL: module attributes {atmoe.ranks = 2 : i64}
// CHECK-LABEL: func.func @layer0_forward
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<?x64xf32> {atmoe.input = "q_proj"}
// CHECK-SAME: %[[W:[a-z0-9]+]]: tensor<64x64xf32> {{{[^}]*}}atmoe.shard_dim = 0 : i64
// CHECK-SAME: %[[A:[a-z0-9]+]]: tensor<32x64xf32> {{{[^}]*}}atmoe.shard_dim = 0 : i64
// CHECK-SAME: %[[B:[a-z0-9]+]]: tensor<64x32xf32> {{{[^}]*}}atmoe.shard_dim = 1 : i64
// CHECK-SAME: %[[BIAS:[a-z0-9]+]]: tensor<64xf32> {{{[^}]*}}atmoe.shard_dim = 0 : i64
// CHECK: %[[WHOLE:.*]] = shard.sharding @atmoe_ranks split_axes = {{\[\[\]\]}}
// CHECK: shard.shard %[[X]] to %[[WHOLE]] : tensor<?x64xf32>
// CHECK: %[[W_ROWS:.*]] = shard.sharding @atmoe_ranks split_axes = {{\[\[}}0]]
// CHECK: shard.shard %[[W]] to %[[W_ROWS]] : tensor<64x64xf32>
// CHECK: %[[A_ROWS:.*]] = shard.sharding @atmoe_ranks split_axes = {{\[\[}}0]]
// CHECK: shard.shard %[[A]] to %[[A_ROWS]] : tensor<32x64xf32>
// CHECK: %[[B_COLUMNS:.*]] = shard.sharding @atmoe_ranks split_axes = {{\[\[}}], [0]]
// CHECK: shard.shard %[[B]] to %[[B_COLUMNS]] : tensor<64x32xf32>
// CHECK: %[[BIAS_ROWS:.*]] = shard.sharding @atmoe_ranks split_axes = {{\[\[}}0]]
// CHECK: shard.shard %[[BIAS]] to %[[BIAS_ROWS]] : tensor<64xf32>
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

// Rank slots the processes do not divide (R = 3): tensor parallelism would
// split this A by its 64 input features; expert parallelism cannot.

// expected-error @below {{cannot split q.lora_A over 2 processes: its dimension 0 has 3 entries, not a multiple of 2}}
func.func @odd_rank(%x: tensor<?x64xf32> {atmoe.input = "q_proj"},
    %w: tensor<64x64xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.weight", atmoe.tensor = "q.weight"},
    %a: tensor<3x64xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.lora_A", atmoe.tensor = "q.lora_A"},
    %b: tensor<64x3xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.lora_B", atmoe.tensor = "q.lora_B"})
    -> (tensor<?x64xf32> {atmoe.output = "q_proj"}) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%t) : tensor<?x64xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<?x64xf32>) -> tensor<?x64xf32>
  %base = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>] {atmoe.matmul_role = "lora_base"} ins(%x, %w : tensor<?x64xf32>, tensor<64x64xf32>) outs(%f : tensor<?x64xf32>) -> tensor<?x64xf32>
  %e2 = tensor.empty(%t) : tensor<?x3xf32>
  %f2 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<?x3xf32>) -> tensor<?x3xf32>
  %down = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>] {atmoe.matmul_role = "lora_down"} ins(%x, %a : tensor<?x64xf32>, tensor<3x64xf32>) outs(%f2 : tensor<?x3xf32>) -> tensor<?x3xf32>
  %up = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>] {atmoe.matmul_role = "lora_up"} ins(%down, %b : tensor<?x3xf32>, tensor<64x3xf32>) outs(%base : tensor<?x64xf32>) -> tensor<?x64xf32>
  return %up : tensor<?x64xf32>
}
