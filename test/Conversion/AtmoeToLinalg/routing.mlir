// RUN: atmoe-opt %s --split-input-file --convert-atmoe-to-linalg | FileCheck %s

// Tests that a grouped softmax is one linalg.generic over (row, expert) that
// reads its row, takes stable softmaxes over the groups and inside each group
// (subtracting the maxima), and picks its own expert's weight.
// CHECK-LABEL: func.func @grouped
// CHECK-SAME: (%[[V:.+]]: tensor<?x3xf32>, %[[U:.+]]: tensor<?x2xf32>)
// CHECK: %[[W:.+]] = linalg.generic {{{.*}}iterator_types = ["parallel", "parallel"]} outs(
// CHECK-DAG: %[[T:.+]] = linalg.index 0
// CHECK-DAG: %[[E:.+]] = linalg.index 1
// CHECK-DAG: tensor.extract %[[V]][%[[T]],
// CHECK-DAG: tensor.extract %[[U]][%[[T]],
// CHECK: arith.maximumf
// CHECK: math.exp
// CHECK: arith.cmpi eq, %[[E]]
// CHECK: linalg.yield
// CHECK-NOT: linalg.generic
// CHECK: return %[[W]]
func.func @grouped(%v: tensor<?x3xf32>, %u: tensor<?x2xf32>) -> tensor<?x3xf32> {
  %w = atmoe.normalize_routing grouped_softmax %v groups [2, 1]
         group_scores(%u : tensor<?x2xf32>) : tensor<?x3xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that top-k counts, for each score, the scores that beat it (lower
// index wins ties: >= against earlier experts, > against later ones).
// CHECK-LABEL: func.func @top_k
// CHECK: linalg.generic
// CHECK-DAG: arith.cmpf oge
// CHECK-DAG: arith.cmpf ogt
// CHECK-DAG: arith.cmpi slt
// CHECK: arith.select
func.func @top_k(%v: tensor<?x3xf32>) -> tensor<?x3xf32> {
  %w = atmoe.normalize_routing softmax %v {top_k = 2 : i64} : tensor<?x3xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that the temperature divides the scores (as a multiplication by 1/tau).
// CHECK-LABEL: func.func @sigmoid_temperature
// CHECK: linalg.generic
// CHECK: %[[INV:.+]] = arith.constant 2.500000e-01 : f32
// CHECK: arith.mulf %{{.+}}, %[[INV]]
// CHECK: math.exp
func.func @sigmoid_temperature(%v: tensor<?x2xf32>) -> tensor<?x2xf32> {
  %w = atmoe.normalize_routing sigmoid %v {temperature = 4.0} : tensor<?x2xf32> -> tensor<?x2xf32>
  return %w : tensor<?x2xf32>
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
