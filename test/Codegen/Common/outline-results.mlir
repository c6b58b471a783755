// RUN: atmoe-opt %s --split-input-file --atmoe-outline-results | FileCheck %s

// Tests that two results computed alike share one private function: the
// callee writes into the tensor.empty the caller passes, copies the
// constants it uses, and is internal and never inlined.
// CHECK-LABEL: func.func private @alike_result0
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>, %[[W:.+]]: tensor<32x64xf32>, %[[INIT:.+]]: tensor<?x32xf32>) -> tensor<?x32xf32>
// CHECK-SAME: llvm.linkage = #llvm.linkage<internal>
// CHECK-SAME: passthrough = ["noinline"]
// CHECK: %[[ZERO:.+]] = arith.constant 0.0
// CHECK: %[[FILL:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%[[INIT]] : tensor<?x32xf32>)
// CHECK: %[[Y:.+]] = linalg.matmul ins(%[[X]], %[[W]] : {{.*}}) outs(%[[FILL]] : tensor<?x32xf32>)
// CHECK: return %[[Y]]
// CHECK-NOT: func.func private
// CHECK-LABEL: func.func @alike
// CHECK-SAME: (%[[A:.+]]: tensor<?x64xf32>, %[[B:.+]]: tensor<?x64xf32>, %[[WA:.+]]: tensor<32x64xf32>, %[[WB:.+]]: tensor<32x64xf32>)
// CHECK: %[[TA:.+]] = tensor.dim %[[A]]
// CHECK: %[[EA:.+]] = tensor.empty(%[[TA]])
// CHECK: %[[YA:.+]] = call @alike_result0(%[[A]], %[[WA]], %[[EA]])
// CHECK: %[[TB:.+]] = tensor.dim %[[B]]
// CHECK: %[[EB:.+]] = tensor.empty(%[[TB]])
// CHECK: %[[YB:.+]] = call @alike_result0(%[[B]], %[[WB]], %[[EB]])
// CHECK-NOT: linalg.
// CHECK: return %[[YA]], %[[YB]]
func.func @alike(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>,
                 %wa: tensor<32x64xf32>, %wb: tensor<32x64xf32>)
    -> (tensor<?x32xf32>, tensor<?x32xf32>) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %ta = tensor.dim %a, %c0 : tensor<?x64xf32>
  %ea = tensor.empty(%ta) : tensor<?x32xf32>
  %fa = linalg.fill ins(%zero : f32) outs(%ea : tensor<?x32xf32>) -> tensor<?x32xf32>
  %ya = linalg.matmul ins(%a, %wa : tensor<?x64xf32>, tensor<32x64xf32>)
                      outs(%fa : tensor<?x32xf32>) -> tensor<?x32xf32>
  %tb = tensor.dim %b, %c0 : tensor<?x64xf32>
  %eb = tensor.empty(%tb) : tensor<?x32xf32>
  %fb = linalg.fill ins(%zero : f32) outs(%eb : tensor<?x32xf32>) -> tensor<?x32xf32>
  %yb = linalg.matmul ins(%b, %wb : tensor<?x64xf32>, tensor<32x64xf32>)
                      outs(%fb : tensor<?x32xf32>) -> tensor<?x32xf32>
  return %ya, %yb : tensor<?x32xf32>, tensor<?x32xf32>
}

// -----

// Tests that results of different shapes get a function each, and that
// what both use (here a shared scale, like routing weights) stays in the
// caller and is passed, as is a value a region captures.
// CHECK-LABEL: func.func private @shapes_result0
// CHECK-SAME: (%{{.+}}: tensor<?x64xf32>, %{{.+}}: tensor<32x64xf32>, %[[S0:.+]]: tensor<?x32xf32>, %[[F0:.+]]: f32, %{{.+}}: tensor<?x32xf32>)
// CHECK: linalg.generic
// CHECK: arith.mulf %{{.+}}, %[[F0]]
// CHECK-LABEL: func.func private @shapes_result1
// CHECK-SAME: tensor<16x64xf32>
// CHECK-LABEL: func.func @shapes
// CHECK: %[[SCALE:.+]] = linalg.fill
// CHECK: call @shapes_result0({{.*}}%[[SCALE]], %{{.+}}, %{{.+}})
// CHECK: call @shapes_result1({{.*}}%[[SCALE]], %{{.+}}, %{{.+}})
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @shapes(%a: tensor<?x64xf32>, %wa: tensor<32x64xf32>,
                  %wb: tensor<16x64xf32>, %factor: f32)
    -> (tensor<?x32xf32>, tensor<?x16xf32>) {
  %c0 = arith.constant 0 : index
  %one = arith.constant 1.0 : f32
  %t = tensor.dim %a, %c0 : tensor<?x64xf32>
  %es = tensor.empty(%t) : tensor<?x32xf32>
  %scale = linalg.fill ins(%one : f32) outs(%es : tensor<?x32xf32>) -> tensor<?x32xf32>
  %ea = tensor.empty(%t) : tensor<?x32xf32>
  %ya = linalg.matmul ins(%a, %wa : tensor<?x64xf32>, tensor<32x64xf32>)
                      outs(%ea : tensor<?x32xf32>) -> tensor<?x32xf32>
  %za = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%scale : tensor<?x32xf32>) outs(%ya : tensor<?x32xf32>) {
  ^bb0(%s: f32, %y: f32):
    %p = arith.mulf %y, %factor : f32
    %q = arith.mulf %p, %s : f32
    linalg.yield %q : f32
  } -> tensor<?x32xf32>
  %eb = tensor.empty(%t) : tensor<?x16xf32>
  %yb = linalg.matmul ins(%a, %wb : tensor<?x64xf32>, tensor<16x64xf32>)
                      outs(%eb : tensor<?x16xf32>) -> tensor<?x16xf32>
  %sb = tensor.extract_slice %scale[0, 0] [%t, 16] [1, 1] : tensor<?x32xf32> to tensor<?x16xf32>
  %zb = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%sb : tensor<?x16xf32>) outs(%yb : tensor<?x16xf32>) {
  ^bb0(%s: f32, %y: f32):
    %q = arith.mulf %y, %s : f32
    linalg.yield %q : f32
  } -> tensor<?x16xf32>
  return %za, %zb : tensor<?x32xf32>, tensor<?x16xf32>
}

// -----

// Tests that a result whose chain of destinations starts at an argument is
// outlined with that argument as the destination.
// CHECK-LABEL: func.func private @into_argument_result0
// CHECK-SAME: (%[[X:.+]]: tensor<8x4xf32>, %[[W:.+]]: tensor<4x4xf32>, %[[INIT:.+]]: tensor<8x4xf32>)
// CHECK: linalg.matmul ins(%[[X]], %[[W]] : {{.*}}) outs(%[[INIT]] : tensor<8x4xf32>)
// CHECK-LABEL: func.func @into_argument
// CHECK-SAME: (%[[ACC:.+]]: tensor<8x4xf32>, %[[XX:.+]]: tensor<8x4xf32>, %[[WW:.+]]: tensor<4x4xf32>)
// CHECK: call @into_argument_result0(%[[XX]], %[[WW]], %[[ACC]])
func.func @into_argument(%acc: tensor<8x4xf32>, %x: tensor<8x4xf32>,
                         %w: tensor<4x4xf32>) -> tensor<8x4xf32> {
  %y = linalg.matmul ins(%x, %w : tensor<8x4xf32>, tensor<4x4xf32>)
                     outs(%acc : tensor<8x4xf32>) -> tensor<8x4xf32>
  return %y : tensor<8x4xf32>
}

// -----

// Tests what stays inline: a result another result uses, a result returned
// twice, an argument returned as it is, and a result no destination-passing
// op computes.
// CHECK-LABEL: func.func @inline
// CHECK-NOT: call
// CHECK: linalg.matmul
// CHECK: linalg.matmul
// CHECK: tensor.concat
// CHECK-NOT: func.func private
func.func @inline(%x: tensor<8x4xf32>, %w: tensor<4x4xf32>)
    -> (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>,
        tensor<8x4xf32>, tensor<16x4xf32>) {
  %e = tensor.empty() : tensor<8x4xf32>
  %y = linalg.matmul ins(%x, %w : tensor<8x4xf32>, tensor<4x4xf32>)
                     outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  %z = linalg.matmul ins(%y, %w : tensor<8x4xf32>, tensor<4x4xf32>)
                     outs(%y : tensor<8x4xf32>) -> tensor<8x4xf32>
  %c = tensor.concat dim(0) %x, %x : (tensor<8x4xf32>, tensor<8x4xf32>) -> tensor<16x4xf32>
  return %y, %z, %z, %x, %x, %c : tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>,
                                  tensor<8x4xf32>, tensor<8x4xf32>, tensor<16x4xf32>
}
