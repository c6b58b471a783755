// RUN: atmoe-opt %s --split-input-file --atmoe-apply-cpu-schedule | FileCheck %s
// RUN: not atmoe-opt %s --atmoe-apply-cpu-schedule=transform-schedule=%S/missing.mlir 2>&1 | FileCheck %s --check-prefix=MISSING

// RUN: not atmoe-opt %s --atmoe-apply-cpu-schedule=transform-schedule=%S/Inputs/no-entry-schedule.mlir 2>&1 | FileCheck %s --check-prefix=NO-ENTRY

// MISSING: missing.mlir
// NO-ENTRY: error: the schedule has no @__transform_main

// Tests that a matmul is split into feature blocks across threads, and
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
         ins(%x, %w : tensor<?x4096xf32>, tensor<4096x4096xf32>)
         outs(%init : tensor<?x4096xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
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
