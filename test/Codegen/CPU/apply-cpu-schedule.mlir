// RUN: atmoe-opt %s --split-input-file --atmoe-apply-cpu-schedule | FileCheck %s
// RUN: not atmoe-opt %s --atmoe-apply-cpu-schedule=transform-schedule=%S/missing.mlir 2>&1 | FileCheck %s --check-prefix=MISSING

// RUN: not atmoe-opt %s --atmoe-apply-cpu-schedule=transform-schedule=%S/Inputs/no-entry-schedule.mlir 2>&1 | FileCheck %s --check-prefix=NO-ENTRY

// MISSING: missing.mlir
// NO-ENTRY: error: the schedule has no @__transform_main

// Tests that a projection is split into feature blocks across threads, and
// nothing more (--atmoe-lower-cpu-matmuls blocks each block after
// bufferization).
// CHECK-LABEL: func.func @projection
// CHECK: scf.forall (%{{.+}}) in (64) shared_outs
// CHECK-NOT:   scf.for
// CHECK:     linalg.matmul {{.*}} ins(%{{.+}}, %{{.+}} : tensor<?x4096xf32>, tensor<64x4096xf32>) outs(%{{.+}} : tensor<?x64xf32>)
// CHECK:   scf.forall.in_parallel
func.func @projection(%x: tensor<?x4096xf32>, %w: tensor<4096x4096xf32>,
                      %init: tensor<?x4096xf32>) -> tensor<?x4096xf32> {
  %y = linalg.matmul
         indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                          affine_map<(m, n, k) -> (n, k)>,
                          affine_map<(m, n, k) -> (m, n)>]
         {atmoe.matmul_role = "projection"}
         ins(%x, %w : tensor<?x4096xf32>, tensor<4096x4096xf32>)
         outs(%init : tensor<?x4096xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// -----

// Tests that the LoRA up-projection and the base product it accumulates
// onto share one parallel loop: the base tile is computed in the loop body,
// then the up-projection adds to it; the down-projection has its own loop,
// marked to run serially at small T (--atmoe-serialize-small-foralls).
// CHECK-LABEL: func.func @fused_adapters
// CHECK: scf.forall (%{{.+}}) in (2) shared_outs
// CHECK:   linalg.matmul {{.*}} {atmoe.matmul_role = "lora_down"}
// CHECK: } {atmoe.serial_max_rows = 32 : i64}
// CHECK: scf.forall (%{{.+}}) in (4) shared_outs
// CHECK:   %[[BASE:.+]] = linalg.matmul {{.*}} {atmoe.matmul_role = "lora_base"} {{.*}} -> tensor<?x64xf32>
// CHECK:   linalg.matmul {{.*}} {atmoe.matmul_role = "lora_up"} {{.*}} outs(%[[BASE]] : tensor<?x64xf32>)
// CHECK: scf.forall.in_parallel
// CHECK-NOT: scf.forall
func.func @fused_adapters(%x: tensor<?x512xf32>, %w: tensor<256x512xf32>,
                          %a: tensor<128x512xf32>, %b: tensor<256x128xf32>,
                          %init: tensor<?x256xf32>, %zinit: tensor<?x128xf32>)
    -> tensor<?x256xf32> {
  %base = linalg.matmul
         indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                          affine_map<(m, n, k) -> (n, k)>,
                          affine_map<(m, n, k) -> (m, n)>]
         {atmoe.matmul_role = "lora_base"}
         ins(%x, %w : tensor<?x512xf32>, tensor<256x512xf32>)
         outs(%init : tensor<?x256xf32>) -> tensor<?x256xf32>
  %z = linalg.matmul
         indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                          affine_map<(m, n, k) -> (n, k)>,
                          affine_map<(m, n, k) -> (m, n)>]
         {atmoe.matmul_role = "lora_down"}
         ins(%x, %a : tensor<?x512xf32>, tensor<128x512xf32>)
         outs(%zinit : tensor<?x128xf32>) -> tensor<?x128xf32>
  %y = linalg.matmul
         indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                          affine_map<(m, n, k) -> (n, k)>,
                          affine_map<(m, n, k) -> (m, n)>]
         {atmoe.matmul_role = "lora_up"}
         ins(%z, %b : tensor<?x128xf32>, tensor<256x128xf32>)
         outs(%base : tensor<?x256xf32>) -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

// -----

// Tests that small products (router logits) and untagged matmuls stay on
// the calling thread.
// CHECK-LABEL: func.func @small_products
// CHECK-NOT: scf.forall
// CHECK: linalg.matmul {atmoe.matmul_role = "router"}
// CHECK-NOT: scf.forall
// CHECK: linalg.matmul
// CHECK-NOT: scf.forall
func.func @small_products(%r: tensor<?x8xf32>, %m: tensor<8x128xf32>,
                          %init: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %s = linalg.matmul {atmoe.matmul_role = "router"}
         ins(%r, %m : tensor<?x8xf32>, tensor<8x128xf32>)
         outs(%init : tensor<?x128xf32>) -> tensor<?x128xf32>
  %t = linalg.matmul ins(%r, %m : tensor<?x8xf32>, tensor<8x128xf32>)
         outs(%s : tensor<?x128xf32>) -> tensor<?x128xf32>
  return %t : tensor<?x128xf32>
}

// -----

// Tests that elementwise generics are left alone.
// CHECK-LABEL: func.func @elementwise
// CHECK-NOT: scf.forall
// CHECK: linalg.generic
func.func @elementwise(%a: tensor<?x8xf32>, %b: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %r = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}
         ins(%a : tensor<?x8xf32>) outs(%b : tensor<?x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %s = arith.addf %in, %out : f32
    linalg.yield %s : f32
  } -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}
