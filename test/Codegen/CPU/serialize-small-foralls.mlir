// RUN: atmoe-opt %s --split-input-file --verify-diagnostics --atmoe-serialize-small-foralls | FileCheck %s

// Tests that an annotated parallel loop runs serially up to N rows (the
// token count, dimension 0 of its shared output) and in parallel above, with
// the same tiles in both branches.
// CHECK-LABEL: func.func @down_projection
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>, %[[A:.+]]: tensor<128x64xf32>, %[[INIT:.+]]: tensor<?x128xf32>)
// CHECK: %[[T:.+]] = tensor.dim %[[INIT]], %{{.+}} : tensor<?x128xf32>
// CHECK: %[[SMALL:.+]] = arith.cmpi ule, %[[T]], %{{.+}} : index
// CHECK: %[[R:.+]] = scf.if %[[SMALL]] -> (tensor<?x128xf32>) {
// CHECK:   %[[S:.+]] = scf.for %[[I:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[ACC:.+]] = %[[INIT]]) -> (tensor<?x128xf32>) {
// CHECK:     %[[TILE:.+]] = linalg.matmul
// CHECK:     %[[INS:.+]] = tensor.insert_slice %[[TILE]] into %[[ACC]]
// CHECK:     scf.yield %[[INS]]
// CHECK:   scf.yield %[[S]]
// CHECK: } else {
// CHECK:   %[[P:.+]] = scf.forall
// CHECK:     tensor.parallel_insert_slice
// CHECK-NOT: atmoe.serial_max_rows
// CHECK:   scf.yield %[[P]]
// CHECK: return %[[R]]
func.func @down_projection(%x: tensor<?x64xf32>, %a: tensor<128x64xf32>,
                           %init: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x64xf32>
  %r = scf.forall (%i) in (2) shared_outs(%out = %init) -> (tensor<?x128xf32>) {
    %n = affine.apply affine_map<(i) -> (i * 64)>(%i)
    %xs = tensor.extract_slice %x[0, 0] [%t, 64] [1, 1] : tensor<?x64xf32> to tensor<?x64xf32>
    %as = tensor.extract_slice %a[%n, 0] [64, 64] [1, 1] : tensor<128x64xf32> to tensor<64x64xf32>
    %os = tensor.extract_slice %out[0, %n] [%t, 64] [1, 1] : tensor<?x128xf32> to tensor<?x64xf32>
    %tile = linalg.matmul
              indexing_maps = [affine_map<(m, n, k) -> (m, k)>,
                               affine_map<(m, n, k) -> (n, k)>,
                               affine_map<(m, n, k) -> (m, n)>]
              ins(%xs, %as : tensor<?x64xf32>, tensor<64x64xf32>)
              outs(%os : tensor<?x64xf32>) -> tensor<?x64xf32>
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %tile into %out[0, %n] [%t, 64] [1, 1] : tensor<?x64xf32> into tensor<?x128xf32>
    }
  } {atmoe.serial_max_rows = 32 : i64}
  return %r : tensor<?x128xf32>
}

// -----

// Tests that loops without the annotation are left alone.
// CHECK-LABEL: func.func @unannotated
// CHECK-NOT: scf.if
// CHECK: scf.forall
func.func @unannotated(%init: tensor<?x128xf32>, %v: tensor<?x64xf32>) -> tensor<?x128xf32> {
  %r = scf.forall (%i) in (2) shared_outs(%out = %init) -> (tensor<?x128xf32>) {
    %c0 = arith.constant 0 : index
    %t = tensor.dim %v, %c0 : tensor<?x64xf32>
    %n = affine.apply affine_map<(i) -> (i * 64)>(%i)
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %v into %out[0, %n] [%t, 64] [1, 1] : tensor<?x64xf32> into tensor<?x128xf32>
    }
  }
  return %r : tensor<?x128xf32>
}

// -----

func.func @two_dimensional(%init: tensor<?x128xf32>, %v: tensor<?x64xf32>) -> tensor<?x128xf32> {
  // expected-error @below {{with atmoe.serial_max_rows must be one-dimensional, with tensor shared outputs written by tensor.parallel_insert_slice}}
  %r = scf.forall (%i, %j) in (2, 1) shared_outs(%out = %init) -> (tensor<?x128xf32>) {
    %c0 = arith.constant 0 : index
    %t = tensor.dim %v, %c0 : tensor<?x64xf32>
    %n = affine.apply affine_map<(i) -> (i * 64)>(%i)
    scf.forall.in_parallel {
      tensor.parallel_insert_slice %v into %out[0, %n] [%t, 64] [1, 1] : tensor<?x64xf32> into tensor<?x128xf32>
    }
  } {atmoe.serial_max_rows = 32 : i64}
  return %r : tensor<?x128xf32>
}

// -----

func.func @no_shared_outputs(%m: memref<4xf32>) {
  // expected-error @below {{with atmoe.serial_max_rows must be one-dimensional}}
  scf.forall (%i) in (4) {
    %c = arith.constant 0.0 : f32
    memref.store %c, %m[%i] : memref<4xf32>
  } {atmoe.serial_max_rows = 32 : i64}
  return
}
