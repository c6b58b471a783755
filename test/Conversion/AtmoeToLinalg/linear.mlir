// RUN: atmoe-opt %s --split-input-file --convert-atmoe-to-linalg | FileCheck %s

// CHECK-DAG: #[[$LHS:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[$RHST:.+]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[$OUT:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>

// Tests that a plain linear is a transposed-B matmul into the broadcast bias.
// CHECK-LABEL: func.func @linear_bias
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[W:.+]]: tensor<4x8xf32>, %[[B:.+]]: tensor<4xf32>)
// CHECK: %[[T:.+]] = tensor.dim %[[X]], %{{.+}}
// CHECK: %[[E:.+]] = tensor.empty(%[[T]]) : tensor<?x4xf32>
// CHECK: %[[INIT:.+]] = linalg.broadcast ins(%[[B]] : tensor<4xf32>) outs(%[[E]] : tensor<?x4xf32>) dimensions = [0]
// CHECK: %[[Y:.+]] = linalg.matmul indexing_maps = [#[[$LHS]], #[[$RHST]], #[[$OUT]]] {atmoe.matmul_role = "projection"} ins(%[[X]], %[[W]] : tensor<?x8xf32>, tensor<4x8xf32>) outs(%[[INIT]] : tensor<?x4xf32>)
// CHECK: return %[[Y]]
// CHECK-NOT: {{(= |^ *)atmoe\.}}
func.func @linear_bias(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>, %b: tensor<4xf32>) -> tensor<?x4xf32> {
  %y = atmoe.linear %x, %w bias(%b : tensor<4xf32>) : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Tests the stacked LoRA update: base matmul, down matmul, one scale, and the
// up matmul accumulating into the base result.
// CHECK-LABEL: func.func @stacked
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[W:.+]]: tensor<4x8xf32>, %[[D:.+]]: tensor<3x8xf32>, %[[U:.+]]: tensor<4x3xf32>, %[[S:.+]]: tensor<?x3xf32>)
// CHECK: %[[ZERO:.+]] = linalg.fill {{.*}} -> tensor<?x4xf32>
// CHECK: %[[BASE:.+]] = linalg.matmul {{.*}} {atmoe.matmul_role = "lora_base"} ins(%[[X]], %[[W]] : {{.*}}) outs(%[[ZERO]] : tensor<?x4xf32>)
// CHECK: %[[ZD:.+]] = linalg.fill {{.*}} -> tensor<?x3xf32>
// CHECK: %[[DOWN:.+]] = linalg.matmul {{.*}} {atmoe.matmul_role = "lora_down"} ins(%[[X]], %[[D]] : {{.*}}) outs(%[[ZD]] : tensor<?x3xf32>)
// CHECK: %[[SCALED:.+]] = linalg.generic {{.*}} ins(%[[S]] : tensor<?x3xf32>) outs(%[[DOWN]] : tensor<?x3xf32>)
// CHECK:   arith.mulf
// CHECK: %[[Y:.+]] = linalg.matmul {{.*}} {atmoe.matmul_role = "lora_up"} ins(%[[SCALED]], %[[U]] : {{.*}}) outs(%[[BASE]] : tensor<?x4xf32>)
// CHECK: return %[[Y]]
// CHECK-NOT: {{(= |^ *)atmoe\.}}
func.func @stacked(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>, %d: tensor<3x8xf32>,
                   %u: tensor<4x3xf32>, %s: tensor<?x3xf32>) -> tensor<?x4xf32> {
  %y = atmoe.stacked_lora_linear %x, %w down(%d : tensor<3x8xf32>) up(%u : tensor<4x3xf32>)
         scales(%s : tensor<?x3xf32>) : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Tests that rank-slot scales gather each slot's routing weight (its column
// and factor are constants per slot) onto the broadcast shared-expert
// factors: linear in the slots, with no experts x slots matrix.
// CHECK-LABEL: func.func @scales
// CHECK-SAME: (%[[R:.+]]: tensor<?x2xf32>, %[[T:.+]]: index)
// CHECK: %[[EMPTY:.+]] = tensor.empty(%[[T]]) : tensor<?x3xf32>
// CHECK: %[[SHARED:.+]] = arith.constant dense<[0.000000e+00, 0.000000e+00, 5.000000e-01]> : tensor<3xf32>
// CHECK: %[[INIT:.+]] = linalg.broadcast ins(%[[SHARED]] : tensor<3xf32>) outs(%[[EMPTY]]
// CHECK: %[[COLUMNS:.+]] = arith.constant dense<[1, 1, 0]> : tensor<3xi32>
// CHECK: %[[FACTORS:.+]] = arith.constant dense<[2.000000e+00, 2.000000e+00, 0.000000e+00]> : tensor<3xf32>
// CHECK: linalg.generic {{.*}} ins(%[[COLUMNS]], %[[FACTORS]] : tensor<3xi32>, tensor<3xf32>) outs(%[[INIT]] : tensor<?x3xf32>)
// CHECK: ^bb0(%[[COLUMN:.+]]: i32, %[[FACTOR:.+]]: f32, %[[ACC:.+]]: f32):
// CHECK:   %[[TOKEN:.+]] = linalg.index 0
// CHECK:   %[[INDEX:.+]] = arith.index_cast %[[COLUMN]] : i32 to index
// CHECK:   %[[WEIGHT:.+]] = tensor.extract %[[R]][%[[TOKEN]], %[[INDEX]]]
// CHECK:   %[[TERM:.+]] = arith.mulf %[[WEIGHT]], %[[FACTOR]]
// CHECK:   %[[SUM:.+]] = arith.addf %[[ACC]], %[[TERM]]
// CHECK:   linalg.yield %[[SUM]]
// CHECK-NOT: linalg.matmul
func.func @scales(%r: tensor<?x2xf32>, %t: index) -> tensor<?x3xf32> {
  %s = atmoe.lora_scales routing(%r : tensor<?x2xf32>) tokens %t ranks [2, 1] columns [1, -1] factors [2.0, 0.5] : tensor<?x3xf32>
  return %s : tensor<?x3xf32>
}

// -----

// Tests that a merged weight scales the up-projection's columns by the single
// row of scales and accumulates up * down into a copy of W, never into W.
// CHECK-LABEL: func.func @merge_lora
// CHECK-SAME: (%[[W:.+]]: tensor<4x8xf32>, %[[D:.+]]: tensor<3x8xf32>, %[[U:.+]]: tensor<4x3xf32>, %[[S:.+]]: tensor<1x3xf32>)
// CHECK: %[[SCALED:.+]] = linalg.generic {{.*}} ins(%[[U]], %[[S]] : tensor<4x3xf32>, tensor<1x3xf32>)
// CHECK:   arith.mulf
// CHECK: %[[EMPTY:.+]] = tensor.empty() : tensor<4x8xf32>
// CHECK: %[[COPY:.+]] = linalg.copy ins(%[[W]] : tensor<4x8xf32>) outs(%[[EMPTY]] : tensor<4x8xf32>)
// CHECK: %[[M:.+]] = linalg.matmul {atmoe.matmul_role = "merge_lora"} ins(%[[SCALED]], %[[D]] : tensor<4x3xf32>, tensor<3x8xf32>) outs(%[[COPY]] : tensor<4x8xf32>)
// CHECK: return %[[M]]
// CHECK-NOT: {{(= |^ *)atmoe\.}}
func.func @merge_lora(%w: tensor<4x8xf32>, %d: tensor<3x8xf32>, %u: tensor<4x3xf32>,
                      %s: tensor<1x3xf32>) -> tensor<4x8xf32> {
  %m = atmoe.merge_lora %w down(%d : tensor<3x8xf32>) up(%u : tensor<4x3xf32>)
         scales(%s : tensor<1x3xf32>) : tensor<4x8xf32>
  return %m : tensor<4x8xf32>
}

// -----

// Tests that the structure is erased with the compute.
// CHECK-LABEL: module
// CHECK-NOT: {{(= |^ *)atmoe\.}}
atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
}

// -----

// Tests that weights stored in bf16 and f16 stay in their storage type:
// the matmuls read them as they are (linalg widens inside the body), and
// only the small bias is widened, as it is broadcast into the f32 result.
// CHECK-LABEL: func.func @storage_types
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[W:.+]]: tensor<4x8xbf16>, %[[B:.+]]: tensor<4xf16>, %[[D:.+]]: tensor<3x8xbf16>, %[[U:.+]]: tensor<4x3xbf16>, %[[S:.+]]: tensor<?x3xf32>)
// CHECK: %[[INIT:.+]] = linalg.generic {{.*}} ins(%[[B]] : tensor<4xf16>) outs(%{{.+}} : tensor<?x4xf32>)
// CHECK:   arith.extf %{{.+}} : f16 to f32
// CHECK: linalg.matmul {{.*}} {atmoe.matmul_role = "lora_base"} ins(%[[X]], %[[W]] : tensor<?x8xf32>, tensor<4x8xbf16>) outs(%[[INIT]] : tensor<?x4xf32>)
// CHECK: linalg.matmul {{.*}} {atmoe.matmul_role = "lora_down"} ins(%[[X]], %[[D]] : tensor<?x8xf32>, tensor<3x8xbf16>)
// CHECK: linalg.matmul {{.*}} {atmoe.matmul_role = "lora_up"} ins(%{{.+}}, %[[U]] : tensor<?x3xf32>, tensor<4x3xbf16>)
func.func @storage_types(%x: tensor<?x8xf32>, %w: tensor<4x8xbf16>, %b: tensor<4xf16>,
                         %d: tensor<3x8xbf16>, %u: tensor<4x3xbf16>,
                         %s: tensor<?x3xf32>) -> tensor<?x4xf32> {
  %y = atmoe.stacked_lora_linear %x, %w bias(%b : tensor<4xf16>)
         down(%d : tensor<3x8xbf16>) up(%u : tensor<4x3xbf16>)
         scales(%s : tensor<?x3xf32>) : tensor<?x8xf32>, tensor<4x8xbf16> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Tests that merging into a bf16 weight produces an f32 weight: W is widened
// into the copy and the scaled up-projection is computed in f32.
// CHECK-LABEL: func.func @merge_lora_bf16
// CHECK-SAME: (%[[W:.+]]: tensor<4x8xbf16>, %[[D:.+]]: tensor<3x8xbf16>, %[[U:.+]]: tensor<4x3xbf16>, %[[S:.+]]: tensor<1x3xf32>)
// CHECK: %[[SCALED:.+]] = linalg.generic {{.*}} ins(%[[U]], %[[S]] : tensor<4x3xbf16>, tensor<1x3xf32>) outs(%{{.+}} : tensor<4x3xf32>)
// CHECK:   arith.extf %{{.+}} : bf16 to f32
// CHECK: %[[COPY:.+]] = linalg.generic {{.*}} ins(%[[W]] : tensor<4x8xbf16>) outs(%{{.+}} : tensor<4x8xf32>)
// CHECK: linalg.matmul {atmoe.matmul_role = "merge_lora"} ins(%[[SCALED]], %[[D]] : tensor<4x3xf32>, tensor<3x8xbf16>) outs(%[[COPY]] : tensor<4x8xf32>)
func.func @merge_lora_bf16(%w: tensor<4x8xbf16>, %d: tensor<3x8xbf16>, %u: tensor<4x3xbf16>,
                           %s: tensor<1x3xf32>) -> tensor<4x8xf32> {
  %m = atmoe.merge_lora %w down(%d : tensor<3x8xbf16>) up(%u : tensor<4x3xbf16>)
         scales(%s : tensor<1x3xf32>) : tensor<4x8xbf16>
  return %m : tensor<4x8xf32>
}

// -----

// Tests that a projection's GPTQ weight is never materialised: the base
// product is one generic over (t, n, k) that reads the packed word
// (k / 8, n), the group's scale (k / 32, n) and zero-point word
// (k / 32, n / 8), unpacks both 4-bit values, adds the zero offset and scales
// in its body, and carries the quantisation for the CPU kernel.
// CHECK-DAG: #[[$X:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[$QW:.+]] = affine_map<(d0, d1, d2) -> (d2 floordiv 8, d1)>
// CHECK-DAG: #[[$SC:.+]] = affine_map<(d0, d1, d2) -> (d2 floordiv 32, d1)>
// CHECK-DAG: #[[$ZP:.+]] = affine_map<(d0, d1, d2) -> (d2 floordiv 32, d1 floordiv 8)>
// CHECK-DAG: #[[$Y:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @gptq_projection
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>, %[[Q:.+]]: tensor<8x16xi32>, %[[S:.+]]: tensor<2x16xf16>, %[[Z:.+]]: tensor<2x2xi32>)
// CHECK: linalg.generic {indexing_maps = [#[[$X]], #[[$QW]], #[[$SC]], #[[$ZP]], #[[$Y]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%[[X]], %[[Q]], %[[S]], %[[Z]] : tensor<?x64xf32>, tensor<8x16xi32>, tensor<2x16xf16>, tensor<2x2xi32>)
// CHECK-SAME: attrs = {atmoe.matmul_role = "projection", atmoe.quantization = #atmoe.gptq<bits = 4, group_size = 32, zero_offset = 1>}
// CHECK: ^bb0(%[[XV:.+]]: f32, %[[WORD:.+]]: i32, %[[SCALE:.+]]: f16, %[[ZWORD:.+]]: i32, %[[ACC:.+]]: f32):
// CHECK-DAG: %[[N:.+]] = linalg.index 1
// CHECK-DAG: %[[K:.+]] = linalg.index 2
// CHECK: arith.remui %[[K]], %c8
// CHECK: arith.shrui %[[WORD]]
// CHECK: arith.andi {{.*}}, %c15_i32
// CHECK: arith.uitofp
// CHECK: arith.remui %[[N]], %c8
// CHECK: arith.shrui %[[ZWORD]]
// CHECK: arith.addf {{.*}}, %cst
// CHECK: arith.extf %[[SCALE]] : f16 to f32
// CHECK: arith.subf
// CHECK: arith.mulf
// CHECK: arith.mulf %[[XV]]
// CHECK: arith.addf %[[ACC]]
// CHECK-NOT: atmoe.dequantize
func.func @gptq_projection(%x: tensor<?x64xf32>, %q: tensor<8x16xi32>,
                           %s: tensor<2x16xf16>, %z: tensor<2x2xi32>) -> tensor<?x16xf32> {
  %w = atmoe.dequantize #atmoe.gptq<bits = 4, group_size = 32, zero_offset = 1> %q
         scales(%s : tensor<2x16xf16>) zeros(%z : tensor<2x2xi32>)
         : tensor<8x16xi32> -> tensor<16x64xf32>
  %y = atmoe.linear %x, %w : tensor<?x64xf32>, tensor<16x64xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// Tests that a GPTQ weight another op needs whole (a merged sequence) is
// materialised by a generic over (out, in), symmetric without zero points:
// every zero point is 2^(bits - 1) = 128.
// CHECK-LABEL: func.func @gptq_materialised
// CHECK: %[[W:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]} ins(%{{.+}}, %{{.+}} : tensor<16x16xi32>, tensor<1x16xbf16>) outs(%{{.+}} : tensor<16x64xf32>)
// CHECK: arith.andi {{.*}}, %c255_i32
// CHECK: arith.constant 1.280000e+02 : f32
// CHECK: linalg.copy ins(%[[W]] : tensor<16x64xf32>)
func.func @gptq_materialised(%q: tensor<16x16xi32>, %s: tensor<1x16xbf16>,
                             %d: tensor<3x64xf32>, %u: tensor<16x3xf32>,
                             %r: tensor<1x3xf32>) -> tensor<16x64xf32> {
  %w = atmoe.dequantize #atmoe.gptq<bits = 8, group_size = 64, zero_offset = 0> %q
         scales(%s : tensor<1x16xbf16>) : tensor<16x16xi32> -> tensor<16x64xf32>
  %m = atmoe.merge_lora %w down(%d : tensor<3x64xf32>) up(%u : tensor<16x3xf32>)
         scales(%r : tensor<1x3xf32>) : tensor<16x64xf32>
  return %m : tensor<16x64xf32>
}

// -----

// Tests DoRA's scale in place: B A as a "dora_norm" matmul, the squared row
// sums of W + s B A (widened from bf16), then m / sqrt.
// CHECK-LABEL: func.func @dora_scale
// CHECK:         %[[BA:.*]] = linalg.matmul {atmoe.matmul_role = "dora_norm"} ins(%arg2, %arg1 : tensor<32x8xbf16>, tensor<8x64xbf16>) outs(%{{.*}} : tensor<32x64xf32>)
// CHECK:         %[[SUMS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%arg0, %[[BA]] : tensor<32x64xbf16>, tensor<32x64xf32>)
// CHECK:           %[[S:.*]] = arith.constant 2.000000e+00 : f32
// CHECK:           arith.mulf %[[S]]
// CHECK:         linalg.generic {{.*}} ins(%arg3, %[[SUMS]] : tensor<32xbf16>, tensor<32xf32>)
// CHECK:           math.sqrt
// CHECK:           arith.divf
func.func @dora_scale(%w: tensor<32x64xbf16>, %a: tensor<8x64xbf16>, %b: tensor<32x8xbf16>, %m: tensor<32xbf16>) -> tensor<32xf32> {
  %c = atmoe.dora_scale %w, %a, %b, %m scale = 2.0 : tensor<32x64xbf16>, tensor<8x64xbf16>, tensor<32x8xbf16>, tensor<32xbf16> -> tensor<32xf32>
  return %c : tensor<32xf32>
}

// -----

// Tests the stacked op's variant terms: the offset joins the bias, the base
// product is scaled by base_scale before that sum (so it is a "projection"
// of its own for the CPU schedule, not fused into the up-projection's loop),
// and the up-projection accumulates onto the result.
// CHECK-LABEL: func.func @variant_terms
// CHECK:         %[[BIAS:.*]] = linalg.broadcast ins(%arg2
// CHECK:         %[[INIT:.*]] = linalg.generic {{.*}} ins(%[[BIAS]], %arg7 : tensor<?x32xf32>, tensor<?x32xf32>)
// CHECK:           arith.addf
// CHECK:         %[[BASE:.*]] = linalg.matmul {{.*}} {atmoe.matmul_role = "projection"} ins(%arg0, %arg1
// CHECK:         %[[PRE:.*]] = linalg.generic {{.*}} ins(%[[BASE]], %arg6, %[[INIT]] : tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>)
// CHECK:           arith.mulf
// CHECK:           arith.addf
// CHECK:         linalg.matmul {{.*}} {atmoe.matmul_role = "lora_up"} ins(%{{.*}}, %arg4 : tensor<?x12xf32>, tensor<32x12xf32>) outs(%[[PRE]] : tensor<?x32xf32>)
func.func @variant_terms(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %b: tensor<32xf32>, %down: tensor<12x64xf32>, %up: tensor<32x12xf32>, %s: tensor<?x12xf32>, %scale: tensor<?x32xf32>, %offset: tensor<?x32xf32>) -> tensor<?x32xf32> {
  %y = atmoe.stacked_lora_linear %x, %w bias(%b : tensor<32xf32>) down(%down : tensor<12x64xf32>) up(%up : tensor<32x12xf32>) scales(%s : tensor<?x12xf32>) base_scale(%scale : tensor<?x32xf32>) offset(%offset : tensor<?x32xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests a widening of a whole adapter matrix that was not hoisted to bind
// time: a linalg.generic, which bufferizes (arith.extf on tensors does not).
// CHECK-LABEL: func.func @widen
// CHECK:         linalg.generic {{.*}} ins(%arg0 : tensor<8x64xbf16>) outs(%{{.*}} : tensor<8x64xf32>)
// CHECK:           arith.extf %{{.*}} : bf16 to f32
// CHECK-NOT:     arith.extf %{{.*}} : tensor
func.func @widen(%a: tensor<8x64xbf16>) -> tensor<8x64xf32> {
  %0 = arith.extf %a : tensor<8x64xbf16> to tensor<8x64xf32>
  return %0 : tensor<8x64xf32>
}

// -----

// Tests the rows of a DoRA adapter's B scaled by its c, in f32.
// CHECK-LABEL: func.func @scale_rows
// CHECK:         linalg.generic {indexing_maps = [#{{.*}}, #[[ROW:.*]], #{{.*}}], iterator_types = ["parallel", "parallel"]} ins(%arg0, %arg1 : tensor<32x8xbf16>, tensor<32xf32>) outs(%{{.*}} : tensor<32x8xf32>)
// CHECK:           arith.extf
// CHECK:           arith.mulf
func.func @scale_rows(%b: tensor<32x8xbf16>, %c: tensor<32xf32>) -> tensor<32x8xf32> {
  %0 = atmoe.scale_rows %b, %c : tensor<32x8xbf16>, tensor<32xf32>
  return %0 : tensor<32x8xf32>
}
