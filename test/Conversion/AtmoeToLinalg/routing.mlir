// RUN: atmoe-opt %s --split-input-file --convert-atmoe-to-linalg | FileCheck %s

// Tests that a grouped softmax is a fixed number of whole-tensor ops,
// whatever the expert and group counts: scores clamped to finite values, a
// softmax over the groups (segment maxima, sums of exp(max(x - m, -FLT_MAX)
// * 1/tau), weights) and one inside the groups, scaled by the group weights.
// CHECK-DAG: #[[$ROW_COL:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[$COL:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-DAG: #[[$ROW_SEG:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[$SEG:.+]] = affine_map<(d0, d1, d2) -> (d1)>
// CHECK-LABEL: func.func @grouped
// CHECK-SAME: (%[[V:.+]]: tensor<?x3xf32>, %[[U:.+]]: tensor<?x2xf32>)
// CHECK: %[[VF:.+]] = linalg.generic {{.*}} ins(%[[V]] :
// CHECK: arith.minimumf
// CHECK: arith.maximumf
// CHECK: %[[UF:.+]] = linalg.generic {{.*}} ins(%[[U]] :
// CHECK: %[[ONE_GROUP:.+]] = arith.constant dense<0> : tensor<2xi32>
// CHECK: %[[GMAX:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[UF]], %[[ONE_GROUP]] :
// CHECK: %[[GSUM:.+]] = linalg.generic {{.*}} ins(%[[UF]], %[[ONE_GROUP]], %[[GMAX]] :
// CHECK: arith.maximumf %{{.+}}, %{{.+}} : f32
// CHECK: math.exp
// CHECK: %[[P:.+]] = linalg.generic {indexing_maps = [#[[$ROW_SEG]], #[[$SEG]], #[[$ROW_COL]], #[[$ROW_COL]], #[[$ROW_SEG]]], {{.*}} ins(%[[UF]], %[[ONE_GROUP]], %[[GMAX]], %[[GSUM]] :
// CHECK: arith.divf
// CHECK: %[[GROUP_OF:.+]] = arith.constant dense<[0, 0, 1]> : tensor<3xi32>
// CHECK: %[[EMAX:.+]] = linalg.generic {{.*}} ins(%[[VF]], %[[GROUP_OF]] :
// CHECK: %[[ESUM:.+]] = linalg.generic {{.*}} ins(%[[VF]], %[[GROUP_OF]], %[[EMAX]] :
// CHECK: %[[W:.+]] = linalg.generic {{.*}} ins(%[[VF]], %[[GROUP_OF]], %[[EMAX]], %[[ESUM]], %[[P]] :
// CHECK: arith.divf
// CHECK: arith.mulf
// CHECK: return %[[W]]
func.func @grouped(%v: tensor<?x3xf32>, %u: tensor<?x2xf32>) -> tensor<?x3xf32> {
  %w = atmoe.normalize_routing grouped_softmax %v groups [2, 1]
         group_scores(%u : tensor<?x2xf32>) : tensor<?x3xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that many experts in many groups give the same ops: the code does
// not grow with E (compile time stays linear in the experts).
// CHECK-LABEL: func.func @wide
// CHECK-COUNT-10: linalg.generic
// CHECK-NOT: linalg.generic
func.func @wide(%v: tensor<?x512xf32>, %u: tensor<?x64xf32>) -> tensor<?x512xf32> {
  %w = atmoe.normalize_routing grouped_softmax %v groups [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]
         group_scores(%u : tensor<?x64xf32>) {top_k_groups = 4 : i64} : tensor<?x512xf32> -> tensor<?x512xf32>
  return %w : tensor<?x512xf32>
}

// -----

// Tests that top-k counts, for each score, the scores that beat it in one
// reduction over (row, expert, other expert): a lower index wins ties (>=
// against earlier experts, > against later ones); the kept mask then gates
// the softmax's sum and weights.
// CHECK-LABEL: func.func @top_k
// CHECK: %[[COUNTS:.+]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-DAG: arith.cmpi ult
// CHECK-DAG: arith.cmpf oge
// CHECK-DAG: arith.cmpf ogt
// CHECK: arith.extui
// CHECK: %[[KEPT:.+]] = linalg.generic {{.*}} ins(%[[COUNTS]] : tensor<?x3xi32>)
// CHECK: arith.cmpi slt, %{{.+}}, %c2_i32
// CHECK: linalg.generic {{.*}} ins({{.*}}, %[[KEPT]] : {{.*}}tensor<?x3xi1>)
// CHECK: arith.andi
func.func @top_k(%v: tensor<?x3xf32>) -> tensor<?x3xf32> {
  %w = atmoe.normalize_routing softmax %v {top_k = 2 : i64} : tensor<?x3xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that the temperature divides the scores (as a multiplication by 1/tau,
// the product clamped to finite values).
// CHECK-LABEL: func.func @sigmoid_temperature
// CHECK: linalg.generic
// CHECK: linalg.generic
// CHECK: %[[INV:.+]] = arith.constant 2.500000e-01 : f32
// CHECK: arith.mulf %{{.+}}, %[[INV]]
// CHECK: arith.minimumf
// CHECK: math.exp
func.func @sigmoid_temperature(%v: tensor<?x2xf32>) -> tensor<?x2xf32> {
  %w = atmoe.normalize_routing sigmoid %v {temperature = 4.0} : tensor<?x2xf32> -> tensor<?x2xf32>
  return %w : tensor<?x2xf32>
}

// -----

// Tests that a temperature whose reciprocal overflows f32 scales by the
// largest finite f32 (the arg-max limit), not by inf.
// CHECK-LABEL: func.func @tiny_temperature
// CHECK: arith.subf
// CHECK: arith.maximumf
// CHECK: %[[FACTOR:.+]] = arith.constant 3.40282347E+38 : f32
// CHECK-NEXT: arith.mulf %{{.+}}, %[[FACTOR]]
// CHECK-NOT: 0x7F800000
func.func @tiny_temperature(%v: tensor<?x2xf32>) -> tensor<?x2xf32> {
  %w = atmoe.normalize_routing softmax %v {temperature = 1.0e-39} : tensor<?x2xf32> -> tensor<?x2xf32>
  return %w : tensor<?x2xf32>
}

// -----

// Tests that sigmoid with top-k renormalises through log-sigmoids (a softmax
// of min(z, 0) - log1p(exp(-|z|)) over the kept experts), which stays finite
// where all kept sigmoids underflow.
// CHECK-LABEL: func.func @sigmoid_top_k
// CHECK: arith.cmpi slt
// CHECK: math.log1p
// CHECK: arith.andi
func.func @sigmoid_top_k(%v: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %w = atmoe.normalize_routing sigmoid %v {top_k = 2 : i64} : tensor<?x4xf32> -> tensor<?x4xf32>
  return %w : tensor<?x4xf32>
}

// -----

// Tests cosine similarity: a matmul, two squared-norm reductions, and one
// division by the floored product of norms.
// CHECK-LABEL: func.func @cosine
// CHECK: linalg.matmul
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK: linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK: linalg.generic
// CHECK: math.sqrt
// CHECK: arith.maximumf
// CHECK: arith.divf
func.func @cosine(%z: tensor<?x4xf32>, %c: tensor<2x4xf32>) -> tensor<?x2xf32> {
  %s = atmoe.cosine_similarity %z, %c : tensor<?x4xf32>, tensor<2x4xf32> -> tensor<?x2xf32>
  return %s : tensor<?x2xf32>
}

// -----

// Tests that segment expansion loops over the segments and broadcasts each
// routing row over its tokens.
// CHECK-DAG: #[[$FIRST_ROW:.+]] = affine_map<(d0, d1) -> (0, d1)>
// CHECK-DAG: #[[$ID:.+]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @expand
// CHECK: scf.for
// CHECK:   tensor.extract %{{.+}}[%{{.+}}] : tensor<?xi64>
// CHECK:   linalg.generic {indexing_maps = [#[[$FIRST_ROW]], #[[$ID]]]
// CHECK:   tensor.insert_slice
func.func @expand(%r: tensor<?x3xf32>, %s: tensor<?xi64>, %t: index) -> tensor<?x3xf32> {
  %e = atmoe.expand_segments %r segments(%s : tensor<?xi64>) tokens %t : tensor<?x3xf32> -> tensor<?x3xf32>
  return %e : tensor<?x3xf32>
}
