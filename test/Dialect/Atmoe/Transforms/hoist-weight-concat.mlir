// RUN: atmoe-opt %s --split-input-file --atmoe-hoist-weight-concat | FileCheck %s

// Tests that concatenations of weight arguments become one stacked argument,
// in place of the first part, described by its parts and dimension; other
// arguments keep their order.
// CHECK-LABEL: func.func @stack
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32> {atmoe.input = "x"},
// CHECK-SAME: %[[DOWN:.+]]: tensor<12x64xf32> {atmoe.concat_dim = 0 : i64, atmoe.parts = [{file = "w", shape = array<i64: 8, 64>, source = "a0", tensor = "a0"}, {file = "w", shape = array<i64: 4, 64>, source = "a1", tensor = "a1"}], atmoe.tensor = "stack(a0, a1)"},
// CHECK-SAME: %[[UP:.+]]: tensor<32x12xf32> {atmoe.concat_dim = 1 : i64, atmoe.parts = [{file = "w", shape = array<i64: 32, 8>, source = "b0", tensor = "b0"}, {file = "w", shape = array<i64: 32, 4>, source = "b1", tensor = "b1"}], atmoe.tensor = "stack(b0, b1)"},
// CHECK-SAME: %[[C:.+]]: tensor<3x64xf32> {atmoe.file = "w", atmoe.source = "c", atmoe.tensor = "c"})
// CHECK-NOT: tensor.concat
// CHECK: return %[[DOWN]], %[[UP]], %[[C]]
func.func @stack(%x: tensor<?x64xf32> {atmoe.input = "x"},
                 %a0: tensor<8x64xf32> {atmoe.tensor = "a0", atmoe.file = "w", atmoe.source = "a0"},
                 %b0: tensor<32x8xf32> {atmoe.tensor = "b0", atmoe.file = "w", atmoe.source = "b0"},
                 %a1: tensor<4x64xf32> {atmoe.tensor = "a1", atmoe.file = "w", atmoe.source = "a1"},
                 %b1: tensor<32x4xf32> {atmoe.tensor = "b1", atmoe.file = "w", atmoe.source = "b1"},
                 %c: tensor<3x64xf32> {atmoe.tensor = "c", atmoe.file = "w", atmoe.source = "c"})
    -> (tensor<12x64xf32>, tensor<32x12xf32>, tensor<3x64xf32>) {
  %down = tensor.concat dim(0) %a0, %a1 : (tensor<8x64xf32>, tensor<4x64xf32>) -> tensor<12x64xf32>
  %up = tensor.concat dim(1) %b0, %b1 : (tensor<32x8xf32>, tensor<32x4xf32>) -> tensor<32x12xf32>
  return %down, %up, %c : tensor<12x64xf32>, tensor<32x12xf32>, tensor<3x64xf32>
}

// -----

// Tests that a concat stays when a part is not a weight argument, or a
// weight is also used elsewhere.
// CHECK-LABEL: func.func @keep
// CHECK-COUNT-2: tensor.concat
func.func @keep(%x: tensor<8x64xf32> {atmoe.input = "x"},
                %a0: tensor<8x64xf32> {atmoe.tensor = "a0", atmoe.file = "w", atmoe.source = "a0"},
                %a1: tensor<4x64xf32> {atmoe.tensor = "a1", atmoe.file = "w", atmoe.source = "a1"})
    -> (tensor<16x64xf32>, tensor<12x64xf32>, tensor<4x64xf32>) {
  %mixed = tensor.concat dim(0) %x, %a0 : (tensor<8x64xf32>, tensor<8x64xf32>) -> tensor<16x64xf32>
  %shared = tensor.concat dim(0) %a0, %a1 : (tensor<8x64xf32>, tensor<4x64xf32>) -> tensor<12x64xf32>
  return %mixed, %shared, %a1 : tensor<16x64xf32>, tensor<12x64xf32>, tensor<4x64xf32>
}

// -----

// Tests that parts widened to f32 for stacking are hoisted too: the stacked
// argument is f32 and the runtime widens each part as it stacks.
// CHECK-LABEL: func.func @widened
// CHECK-SAME: %[[UP:.+]]: tensor<32x12xf32> {atmoe.concat_dim = 1 : i64, atmoe.parts = [{file = "w", shape = array<i64: 32, 8>, source = "b0", tensor = "b0"}, {file = "w", shape = array<i64: 32, 4>, source = "b1", tensor = "b1"}], atmoe.tensor = "stack(b0, b1)"})
// CHECK-NOT: arith.extf
// CHECK-NOT: tensor.concat
// CHECK: return %[[UP]]
func.func @widened(%b0: tensor<32x8xbf16> {atmoe.tensor = "b0", atmoe.file = "w", atmoe.source = "b0"},
                   %b1: tensor<32x4xf32> {atmoe.tensor = "b1", atmoe.file = "w", atmoe.source = "b1"})
    -> tensor<32x12xf32> {
  %w0 = arith.extf %b0 : tensor<32x8xbf16> to tensor<32x8xf32>
  %up = tensor.concat dim(1) %w0, %b1 : (tensor<32x8xf32>, tensor<32x4xf32>) -> tensor<32x12xf32>
  return %up : tensor<32x12xf32>
}

// -----

// Tests that a weight the runtime computes (a DoRA B with scaled rows) is
// not a part: only tensors stored in a file are stacked at bind time.
// CHECK-LABEL: func.func @computed_part
// CHECK: tensor.concat dim(1) %arg0, %arg1
func.func @computed_part(%bs: tensor<32x8xf32> {atmoe.tensor = "dora_rows(b0)", atmoe.dora_scale = 2.0 : f64,
                           atmoe.parts = [{tensor = "w", file = "w", source = "w", shape = array<i64: 32, 64>},
                                          {tensor = "a0", file = "w", source = "a0", shape = array<i64: 8, 64>},
                                          {tensor = "b0", file = "w", source = "b0", shape = array<i64: 32, 8>},
                                          {tensor = "m0", file = "w", source = "m0", shape = array<i64: 32>}]},
                         %b1: tensor<32x4xf32> {atmoe.tensor = "b1", atmoe.file = "w", atmoe.source = "b1"})
    -> tensor<32x12xf32> {
  %up = tensor.concat dim(1) %bs, %b1 : (tensor<32x8xf32>, tensor<32x4xf32>) -> tensor<32x12xf32>
  return %up : tensor<32x12xf32>
}
