// RUN: atmoe-opt %s --pass-pipeline="builtin.module(atmoe-shard-layers{ranks=2 \
// RUN:   strategy=tensor},func.func(sharding-propagation,shard-partition))" \
// RUN:   | FileCheck %s --check-prefix=TENSOR
// RUN: atmoe-opt %s --pass-pipeline="builtin.module(atmoe-shard-layers{ranks=2 \
// RUN:   strategy=expert},func.func(sharding-propagation,shard-partition))" \
// RUN:   | FileCheck %s --check-prefix=EXPERT

// The collectives MLIR's propagation and partitioning derive from each
// strategy's shardings, on a LoRA projection shaped like the conversion's
// output: base product, down-projection, rank-slot scaling (a scale built
// per token by a generic that indexes the routing weights, then an
// elementwise product), up-projection accumulating onto the base.

// Tensor: A split by input features, so the T x R down-projection is a
// partial sum, all-reduced; the scaling runs whole; B and W split by output
// features, so y is gathered.
// TENSOR-LABEL: func.func @layer0_forward
// TENSOR-SAME: tensor<32x64xf32>
// TENSOR-SAME: tensor<16x32xf32>
// TENSOR-SAME: tensor<32x16xf32>
// TENSOR: linalg.matmul {{.*}}"lora_base"{{.*}} -> tensor<?x32xf32>
// TENSOR: %[[DOWN:.*]] = linalg.matmul {{.*}}"lora_down"{{.*}} -> tensor<?x16xf32>
// TENSOR: %[[SUM:.*]] = shard.all_reduce %[[DOWN]] {{.*}} : tensor<?x16xf32> -> tensor<?x16xf32>
// TENSOR: linalg.generic {{.*}} outs(%[[SUM]] : tensor<?x16xf32>)
// TENSOR: %[[UP:.*]] = linalg.matmul {{.*}}"lora_up"{{.*}} -> tensor<?x32xf32>
// TENSOR: %[[Y:.*]] = shard.all_gather %[[UP]] {{.*}} gather_axis = 1 : tensor<?x32xf32> -> tensor<?x64xf32>
// TENSOR-NOT: shard.all_reduce
// TENSOR: %[[CAST:.*]] = tensor.cast %[[Y]]
// TENSOR: return %[[CAST]]

// Expert: A and B split along the rank slots, so the down-projection and
// the elementwise scaling stay local (the per-token scale is computed whole
// and sliced, no communication); the up-projection's partial sums are
// all-reduced, with the base output (W split by output features) gathered
// as the init of the first process only.
// EXPERT-LABEL: func.func @layer0_forward
// EXPERT-SAME: tensor<32x64xf32>
// EXPERT-SAME: tensor<8x64xf32>
// EXPERT-SAME: tensor<64x8xf32>
// EXPERT: %[[BASE:.*]] = linalg.matmul {{.*}}"lora_base"{{.*}} -> tensor<?x32xf32>
// EXPERT: %[[GATHERED:.*]] = shard.all_gather %[[BASE]] {{.*}} gather_axis = 1 : tensor<?x32xf32> -> tensor<?x64xf32>
// EXPERT: %[[WHOLE:.*]] = tensor.cast %[[GATHERED]]
// EXPERT: %[[DOWN:.*]] = linalg.matmul {{.*}}"lora_down"{{.*}} -> tensor<?x8xf32>
// EXPERT-NOT: shard.all_gather
// EXPERT: %[[SCALE:.*]] = shard.all_slice %{{.*}} slice_axis = 1 : tensor<?x16xf32> -> tensor<?x8xf32>
// EXPERT: %[[SCALED:.*]] = linalg.generic {{.*}} ins(%[[SCALE]] : tensor<?x8xf32>) outs(%[[DOWN]] : tensor<?x8xf32>)
// EXPERT: %[[LEAD:.*]] = arith.cmpi eq
// EXPERT: %[[INIT:.*]] = scf.if %[[LEAD]]
// EXPERT-NEXT: scf.yield %[[WHOLE]]
// EXPERT: linalg.fill
// EXPERT: %[[UP:.*]] = linalg.matmul {{.*}}"lora_up"{{.*}} ins(%[[SCALED]], %{{.*}} : tensor<?x8xf32>, tensor<64x8xf32>) outs(%[[INIT]] : tensor<?x64xf32>)
// EXPERT: %[[Y:.*]] = shard.all_reduce %[[UP]] {{.*}} : tensor<?x64xf32> -> tensor<?x64xf32>
// EXPERT-NOT: shard.all_gather
// EXPERT: return %[[Y]]
func.func @layer0_forward(%x: tensor<?x64xf32> {atmoe.input = "q_proj"},
    %routing: tensor<?x4xf32> {atmoe.input = "routing"},
    %w: tensor<64x64xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.weight", atmoe.tensor = "q.weight"},
    %a: tensor<16x64xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.lora_A", atmoe.tensor = "q.lora_A"},
    %b: tensor<64x16xf32> {atmoe.file = "w.safetensors", atmoe.source = "q.lora_B", atmoe.tensor = "q.lora_B"})
    -> (tensor<?x64xf32> {atmoe.output = "q_proj"}) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %slot_expert = arith.constant dense<[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]> : tensor<16xi32>
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %ey = tensor.empty(%t) : tensor<?x64xf32>
  %fy = linalg.fill ins(%zero : f32) outs(%ey : tensor<?x64xf32>) -> tensor<?x64xf32>
  %base = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>] {atmoe.matmul_role = "lora_base"} ins(%x, %w : tensor<?x64xf32>, tensor<64x64xf32>) outs(%fy : tensor<?x64xf32>) -> tensor<?x64xf32>
  %er = tensor.empty(%t) : tensor<?x16xf32>
  %scale = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%slot_expert : tensor<16xi32>) outs(%er : tensor<?x16xf32>) {
  ^bb0(%expert: i32, %out: f32):
    %token = linalg.index 0 : index
    %e = arith.index_cast %expert : i32 to index
    %weight = tensor.extract %routing[%token, %e] : tensor<?x4xf32>
    linalg.yield %weight : f32
  } -> tensor<?x16xf32>
  %fr = linalg.fill ins(%zero : f32) outs(%er : tensor<?x16xf32>) -> tensor<?x16xf32>
  %down = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>] {atmoe.matmul_role = "lora_down"} ins(%x, %a : tensor<?x64xf32>, tensor<16x64xf32>) outs(%fr : tensor<?x16xf32>) -> tensor<?x16xf32>
  %scaled = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%scale : tensor<?x16xf32>) outs(%down : tensor<?x16xf32>) {
  ^bb0(%s: f32, %h: f32):
    %p = arith.mulf %h, %s : f32
    linalg.yield %p : f32
  } -> tensor<?x16xf32>
  %up = linalg.matmul indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>] {atmoe.matmul_role = "lora_up"} ins(%scaled, %b : tensor<?x16xf32>, tensor<64x16xf32>) outs(%base : tensor<?x64xf32>) -> tensor<?x64xf32>
  return %up : tensor<?x64xf32>
}
