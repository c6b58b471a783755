// RUN: atmoe-opt %s --split-input-file --atmoe-hoist-dora-scale | FileCheck %s

// Tests that a DoRA scale of stored weights becomes an argument the runtime
// computes from its four parts; the magnitude, read by nothing else, goes.
// CHECK-LABEL: func.func @hoisted
// CHECK-SAME:    (%[[W:[^:]*]]: tensor<32x64xf32> {atmoe.file = "w.safetensors", atmoe.source = "w", atmoe.tensor = "w"},
// CHECK-SAME:     %[[A:[^:]*]]: tensor<8x64xbf16> {{{.*}}atmoe.tensor = "a"},
// CHECK-SAME:     %[[B:[^:]*]]: tensor<32x8xbf16> {{{.*}}atmoe.tensor = "b"},
// CHECK-SAME:     %[[C:[^:]*]]: tensor<32xf32> {atmoe.dora_scale = 2.000000e+00 : f64, atmoe.parts = [{file = "w.safetensors", shape = array<i64: 32, 64>, source = "w", tensor = "w"}, {file = "a.safetensors", shape = array<i64: 8, 64>, source = "a", tensor = "a"}, {file = "a.safetensors", shape = array<i64: 32, 8>, source = "b", tensor = "b"}, {file = "a.safetensors", shape = array<i64: 32>, source = "m", tensor = "m"}], atmoe.tensor = "dora_scale(m)"})
// CHECK-NOT:     atmoe.dora_scale %
// CHECK:         return %[[W]], %[[A]], %[[B]], %[[C]]
func.func @hoisted(%w: tensor<32x64xf32> {atmoe.tensor = "w", atmoe.file = "w.safetensors", atmoe.source = "w"},
                   %a: tensor<8x64xbf16> {atmoe.tensor = "a", atmoe.file = "a.safetensors", atmoe.source = "a"},
                   %b: tensor<32x8xbf16> {atmoe.tensor = "b", atmoe.file = "a.safetensors", atmoe.source = "b"},
                   %m: tensor<32xbf16> {atmoe.tensor = "m", atmoe.file = "a.safetensors", atmoe.source = "m"})
    -> (tensor<32x64xf32>, tensor<8x64xbf16>, tensor<32x8xbf16>, tensor<32xf32>) {
  %c = atmoe.dora_scale %w, %a, %b, %m scale = 2.0
         : tensor<32x64xf32>, tensor<8x64xbf16>, tensor<32x8xbf16>, tensor<32xbf16> -> tensor<32xf32>
  return %w, %a, %b, %c : tensor<32x64xf32>, tensor<8x64xbf16>, tensor<32x8xbf16>, tensor<32xf32>
}

// -----

// Tests that a scale of a computed weight (a dequantised GPTQ base) stays in
// place: the runtime only reads stored tensors.
// CHECK-LABEL: func.func @computed_weight
// CHECK:         atmoe.dora_scale %arg0, %arg1, %arg2, %arg3 scale = 2.000000e+00
func.func @computed_weight(%w: tensor<32x64xf32>,
                           %a: tensor<8x64xf32> {atmoe.tensor = "a", atmoe.file = "a.safetensors", atmoe.source = "a"},
                           %b: tensor<32x8xf32> {atmoe.tensor = "b", atmoe.file = "a.safetensors", atmoe.source = "b"},
                           %m: tensor<32xf32> {atmoe.tensor = "m", atmoe.file = "a.safetensors", atmoe.source = "m"})
    -> tensor<32xf32> {
  %c = atmoe.dora_scale %w, %a, %b, %m scale = 2.0
         : tensor<32x64xf32>, tensor<8x64xf32>, tensor<32x8xf32>, tensor<32xf32> -> tensor<32xf32>
  return %c : tensor<32xf32>
}

// -----

// Tests that the rows of the same stored lora_B scaled by a hoisted DoRA
// scale become an argument of B's shape computed from the same parts; B,
// read by nothing else, goes, and c stays for its other user.
// CHECK-LABEL: func.func @scaled_rows
// CHECK-SAME:    %[[BS:[^:]*]]: tensor<32x8xf32> {atmoe.dora_scale = 2.000000e+00 : f64, atmoe.parts = [{{.*}}source = "m", tensor = "m"}], atmoe.tensor = "dora_rows(b)"}
// CHECK-SAME:    %[[C:[^:]*]]: tensor<32xf32> {atmoe.dora_scale = 2.000000e+00 : f64, {{.*}}atmoe.tensor = "dora_scale(m)"}
// CHECK-NOT:     atmoe.scale_rows
// CHECK:         return %[[BS]], %[[C]]
func.func @scaled_rows(%w: tensor<32x64xf32> {atmoe.tensor = "w", atmoe.file = "w.safetensors", atmoe.source = "w"},
                       %a: tensor<8x64xf32> {atmoe.tensor = "a", atmoe.file = "a.safetensors", atmoe.source = "a"},
                       %b: tensor<32x8xf32> {atmoe.tensor = "b", atmoe.file = "a.safetensors", atmoe.source = "b"},
                       %m: tensor<32xf32> {atmoe.tensor = "m", atmoe.file = "a.safetensors", atmoe.source = "m"})
    -> (tensor<32x8xf32>, tensor<32xf32>) {
  %c = atmoe.dora_scale %w, %a, %b, %m scale = 2.0
         : tensor<32x64xf32>, tensor<8x64xf32>, tensor<32x8xf32>, tensor<32xf32> -> tensor<32xf32>
  %bs = atmoe.scale_rows %b, %c : tensor<32x8xf32>, tensor<32xf32>
  return %bs, %c : tensor<32x8xf32>, tensor<32xf32>
}

// -----

// Tests that rows scaled by a DoRA scale of another lora_B stay in place:
// the runtime scales only the B it computed c from.
// CHECK-LABEL: func.func @other_rows
// CHECK:         atmoe.scale_rows %arg4, %{{.*}}
func.func @other_rows(%w: tensor<32x64xf32> {atmoe.tensor = "w", atmoe.file = "w.safetensors", atmoe.source = "w"},
                      %a: tensor<8x64xf32> {atmoe.tensor = "a", atmoe.file = "a.safetensors", atmoe.source = "a"},
                      %b: tensor<32x8xf32> {atmoe.tensor = "b", atmoe.file = "a.safetensors", atmoe.source = "b"},
                      %m: tensor<32xf32> {atmoe.tensor = "m", atmoe.file = "a.safetensors", atmoe.source = "m"},
                      %b2: tensor<32x8xf32> {atmoe.tensor = "b2", atmoe.file = "a.safetensors", atmoe.source = "b2"})
    -> tensor<32x8xf32> {
  %c = atmoe.dora_scale %w, %a, %b, %m scale = 2.0
         : tensor<32x64xf32>, tensor<8x64xf32>, tensor<32x8xf32>, tensor<32xf32> -> tensor<32xf32>
  %bs = atmoe.scale_rows %b2, %c : tensor<32x8xf32>, tensor<32xf32>
  return %bs : tensor<32x8xf32>
}
