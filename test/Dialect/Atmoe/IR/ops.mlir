// RUN: atmoe-opt %s | atmoe-opt | FileCheck %s
// RUN: atmoe-opt %s --mlir-print-op-generic | atmoe-opt | FileCheck %s

// Tests that a layer's structure round-trips: groups, experts, shared expert.
// CHECK-LABEL: atmoe.layer @layer0 {
// CHECK-NEXT:    atmoe.expert_group @diagnosis {
// CHECK-NEXT:      atmoe.lora_expert @icd
// CHECK-NEXT:      atmoe.lora_expert @symptom
// CHECK-NEXT:    }
// CHECK-NEXT:    atmoe.expert_group @dialogue {
// CHECK-NEXT:      atmoe.lora_expert @qa
// CHECK-NEXT:    }
// CHECK-NEXT:    atmoe.shared_expert @general lambda = 8.000000e-01
// CHECK-NEXT:  }
atmoe.layer @layer0 {
  atmoe.expert_group @diagnosis {
    atmoe.lora_expert @icd
    atmoe.lora_expert @symptom
  }
  atmoe.expert_group @dialogue {
    atmoe.lora_expert @qa
  }
  atmoe.shared_expert @general lambda = 0.8
}

// Tests a private layer without shared expert.
// CHECK-LABEL: atmoe.layer "private" @layer1 {
atmoe.layer "private" @layer1 {
  atmoe.expert_group @all {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
}

// Tests every router kind with its operands and attributes.
// CHECK-LABEL: func.func @routers
func.func @routers(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>,
                   %bg: tensor<2xf32>, %we: tensor<3x64xf32>,
                   %be: tensor<3xf32>, %p: tensor<16x64xf32>,
                   %c: tensor<3x16xf32>)
    -> (tensor<?x3xf32>, tensor<?x3xf32>, tensor<?x3xf32>, tensor<?x3xf32>) {
  // CHECK: atmoe.route grouped_softmax %{{.*}} layer(@layer0) groups [2, 1]
  // CHECK-SAME: group_weight(%{{.*}} : tensor<2x64xf32>)
  // CHECK-SAME: group_bias(%{{.*}} : tensor<2xf32>)
  // CHECK-SAME: expert_weight(%{{.*}} : tensor<3x64xf32>)
  // CHECK-SAME: expert_bias(%{{.*}} : tensor<3xf32>)
  // CHECK-SAME: group_temperature = 2.000000e+00 : f64
  // CHECK-SAME: top_k_groups = 1 : i64
  // CHECK-SAME: : tensor<?x64xf32> -> tensor<?x3xf32>
  %0 = atmoe.route grouped_softmax %h layer(@layer0) groups [2, 1]
         group_weight(%wg : tensor<2x64xf32>) group_bias(%bg : tensor<2xf32>)
         expert_weight(%we : tensor<3x64xf32>) expert_bias(%be : tensor<3xf32>)
         {group_temperature = 2.0, top_k_groups = 1 : i64}
         : tensor<?x64xf32> -> tensor<?x3xf32>
  // CHECK: atmoe.route softmax %{{.*}} layer(@layer0)
  // CHECK-SAME: {temperature = 5.000000e-01 : f64, top_k = 2 : i64}
  %1 = atmoe.route softmax %h layer(@layer0)
         expert_weight(%we : tensor<3x64xf32>)
         {temperature = 0.5, top_k = 2 : i64}
         : tensor<?x64xf32> -> tensor<?x3xf32>
  // CHECK: atmoe.route sigmoid %{{.*}} layer(@layer0)
  // CHECK-SAME: expert_bias
  %2 = atmoe.route sigmoid %h layer(@layer0)
         expert_weight(%we : tensor<3x64xf32>) expert_bias(%be : tensor<3xf32>)
         : tensor<?x64xf32> -> tensor<?x3xf32>
  // CHECK: atmoe.route cosine %{{.*}} layer(@layer0)
  // CHECK-SAME: proj_weight(%{{.*}} : tensor<16x64xf32>)
  // CHECK-SAME: expert_embedding(%{{.*}} : tensor<3x16xf32>)
  %3 = atmoe.route cosine %h layer(@layer0)
         proj_weight(%p : tensor<16x64xf32>) expert_embedding(%c : tensor<3x16xf32>)
         : tensor<?x64xf32> -> tensor<?x3xf32>
  return %0, %1, %2, %3
      : tensor<?x3xf32>, tensor<?x3xf32>, tensor<?x3xf32>, tensor<?x3xf32>
}

// Tests an adapted projection with heterogeneous ranks, a shared expert and
// bias, at token granularity.
// CHECK-LABEL: func.func @token_projection
func.func @token_projection(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>,
                            %b: tensor<32xf32>, %a0: tensor<8x64xf32>,
                            %b0: tensor<32x8xf32>, %a1: tensor<4x64xf32>,
                            %b1: tensor<32x4xf32>, %r: tensor<?x3xf32>)
    -> tensor<?x32xf32> {
  // CHECK: atmoe.lora_linear %{{.*}}, %{{.*}} bias(%{{.*}} : tensor<32xf32>) layer(@layer0)
  // CHECK-SAME: adapters [#atmoe.lora<@icd, rank = 8, alpha = 1.600000e+01>, #atmoe.lora<@general, rank = 4, alpha = 8.000000e+00>]
  // CHECK-SAME: lora_a(%{{.*}}, %{{.*}} : tensor<8x64xf32>, tensor<4x64xf32>)
  // CHECK-SAME: lora_b(%{{.*}}, %{{.*}} : tensor<32x8xf32>, tensor<32x4xf32>)
  // CHECK-SAME: routing(%{{.*}} : tensor<?x3xf32>)
  // CHECK-SAME: : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  %y = atmoe.lora_linear %x, %w bias(%b : tensor<32xf32>) layer(@layer0)
         adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>,
                   #atmoe.lora<@general, rank = 4, alpha = 8.0>]
         lora_a(%a0, %a1 : tensor<8x64xf32>, tensor<4x64xf32>)
         lora_b(%b0, %b1 : tensor<32x8xf32>, tensor<32x4xf32>)
         routing(%r : tensor<?x3xf32>)
         : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// Tests sequence granularity with segments, with constant segment lengths.
// CHECK-LABEL: func.func @sequence_projection
func.func @sequence_projection(%x: tensor<5x64xf32>, %w: tensor<32x64xf32>,
                               %a: tensor<8x64xf32>, %b: tensor<32x8xf32>,
                               %r: tensor<2x3xf32>) -> tensor<5x32xf32> {
  %s = arith.constant dense<[2, 3]> : tensor<2xi64>
  // CHECK: atmoe.lora_linear %{{.*}} layer(@layer0) granularity(sequence)
  // CHECK-SAME: segments(%{{.*}} : tensor<2xi64>)
  %y = atmoe.lora_linear %x, %w layer(@layer0) granularity(sequence)
         adapters [#atmoe.lora<@qa, rank = 8, alpha = 16.0>]
         lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>)
         routing(%r : tensor<2x3xf32>) segments(%s : tensor<2xi64>)
         : tensor<5x64xf32>, tensor<32x64xf32> -> tensor<5x32xf32>
  return %y : tensor<5x32xf32>
}

// Tests the plain linear and segment expansion.
// CHECK-LABEL: func.func @linear_and_expand
func.func @linear_and_expand(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>,
                             %r: tensor<?x3xf32>, %s: tensor<?xi64>,
                             %t: index) -> (tensor<?x32xf32>, tensor<?x3xf32>) {
  // CHECK: atmoe.linear %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  %y = atmoe.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  // CHECK: atmoe.expand_segments %{{.*}} segments(%{{.*}} : tensor<?xi64>) tokens %{{.*}} : tensor<?x3xf32> -> tensor<?x3xf32>
  %e = atmoe.expand_segments %r segments(%s : tensor<?xi64>) tokens %t
         : tensor<?x3xf32> -> tensor<?x3xf32>
  return %y, %e : tensor<?x32xf32>, tensor<?x3xf32>
}

// Tests the fused ops that the fusion passes produce.
// CHECK-LABEL: func.func @fused
func.func @fused(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %u: tensor<?x2xf32>,
                 %v: tensor<?x3xf32>, %z: tensor<?x16xf32>, %c: tensor<3x16xf32>,
                 %down: tensor<12x64xf32>, %up: tensor<32x12xf32>, %t: index)
    -> (tensor<?x3xf32>, tensor<?x3xf32>, tensor<?x32xf32>) {
  // CHECK: atmoe.normalize_routing grouped_softmax %{{.*}} groups [2, 1] group_scores(%{{.*}} : tensor<?x2xf32>) {top_k_groups = 1 : i64} : tensor<?x3xf32> -> tensor<?x3xf32>
  %w0 = atmoe.normalize_routing grouped_softmax %v groups [2, 1]
          group_scores(%u : tensor<?x2xf32>) {top_k_groups = 1 : i64}
          : tensor<?x3xf32> -> tensor<?x3xf32>
  // CHECK: atmoe.cosine_similarity %{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<3x16xf32> -> tensor<?x3xf32>
  %s = atmoe.cosine_similarity %z, %c : tensor<?x16xf32>, tensor<3x16xf32> -> tensor<?x3xf32>
  // CHECK: atmoe.lora_scales routing(%{{.*}} : tensor<?x3xf32>) tokens %{{.*}} ranks [8, 4] columns [0, -1] factors [1.600000e+00, 4.000000e-01] : tensor<?x12xf32>
  %sc = atmoe.lora_scales routing(%w0 : tensor<?x3xf32>) tokens %t
          ranks [8, 4] columns [0, -1] factors [1.6, 0.4] : tensor<?x12xf32>
  // CHECK: atmoe.stacked_lora_linear %{{.*}}, %{{.*}} down(%{{.*}} : tensor<12x64xf32>) up(%{{.*}} : tensor<32x12xf32>) scales(%{{.*}} : tensor<?x12xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  %y = atmoe.stacked_lora_linear %x, %w down(%down : tensor<12x64xf32>)
         up(%up : tensor<32x12xf32>) scales(%sc : tensor<?x12xf32>)
         : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %w0, %s, %y : tensor<?x3xf32>, tensor<?x3xf32>, tensor<?x32xf32>
}

// Tests the merged weight that --atmoe-merge-sequence-adapters produces.
// CHECK-LABEL: func.func @merge_lora
func.func @merge_lora(%w: tensor<32x64xf32>, %down: tensor<12x64xf32>,
                      %up: tensor<32x12xf32>, %s: tensor<1x12xf32>) -> tensor<32x64xf32> {
  // CHECK: atmoe.merge_lora %{{.*}} down(%{{.*}} : tensor<12x64xf32>) up(%{{.*}} : tensor<32x12xf32>) scales(%{{.*}} : tensor<1x12xf32>) : tensor<32x64xf32>
  %m = atmoe.merge_lora %w down(%down : tensor<12x64xf32>) up(%up : tensor<32x12xf32>)
         scales(%s : tensor<1x12xf32>) : tensor<32x64xf32>
  return %m : tensor<32x64xf32>
}

// Tests that weights keep their storage type (f32, f16, bf16) while inputs,
// outputs and routing weights are f32, and that merging into a bf16 weight
// gives an f32 weight.
// CHECK-LABEL: func.func @storage_types
// CHECK: atmoe.stacked_lora_linear %{{.*}}, %{{.*}} bias(%{{.*}} : tensor<32xf16>) down(%{{.*}} : tensor<12x64xbf16>) up(%{{.*}} : tensor<32x12xf32>) scales(%{{.*}} : tensor<?x12xf32>) : tensor<?x64xf32>, tensor<32x64xbf16> -> tensor<?x32xf32>
// CHECK: atmoe.merge_lora %{{.*}} down(%{{.*}} : tensor<12x64xbf16>) up(%{{.*}} : tensor<32x12xf32>) scales(%{{.*}} : tensor<1x12xf32>) : tensor<32x64xbf16>
func.func @storage_types(%x: tensor<?x64xf32>, %w: tensor<32x64xbf16>,
                         %b: tensor<32xf16>, %down: tensor<12x64xbf16>,
                         %up: tensor<32x12xf32>, %s: tensor<?x12xf32>,
                         %row: tensor<1x12xf32>)
    -> (tensor<?x32xf32>, tensor<32x64xf32>) {
  %y = atmoe.stacked_lora_linear %x, %w bias(%b : tensor<32xf16>)
         down(%down : tensor<12x64xbf16>) up(%up : tensor<32x12xf32>)
         scales(%s : tensor<?x12xf32>)
         : tensor<?x64xf32>, tensor<32x64xbf16> -> tensor<?x32xf32>
  %m = atmoe.merge_lora %w down(%down : tensor<12x64xbf16>) up(%up : tensor<32x12xf32>)
         scales(%row : tensor<1x12xf32>) : tensor<32x64xbf16>
  return %y, %m : tensor<?x32xf32>, tensor<32x64xf32>
}

// Tests that a GPTQ base weight round-trips: packed integers, scales and
// optional zero points with their quantisation.
// CHECK-LABEL: func.func @dequantize
// CHECK: atmoe.dequantize #atmoe.gptq<bits = 4, group_size = 32, zero_offset = 1> %{{.*}} scales(%{{.*}} : tensor<2x64xf16>) zeros(%{{.*}} : tensor<2x8xi32>) : tensor<8x64xi32> -> tensor<64x64xf32>
// CHECK: atmoe.dequantize #atmoe.gptq<bits = 8, group_size = 64, zero_offset = 0> %{{.*}} scales(%{{.*}} : tensor<1x64xbf16>) : tensor<16x64xi32> -> tensor<64x64xf32>
func.func @dequantize(%q4: tensor<8x64xi32>, %s4: tensor<2x64xf16>,
                      %z4: tensor<2x8xi32>, %q8: tensor<16x64xi32>,
                      %s8: tensor<1x64xbf16>)
    -> (tensor<64x64xf32>, tensor<64x64xf32>) {
  %w4 = atmoe.dequantize #atmoe.gptq<bits = 4, group_size = 32, zero_offset = 1> %q4 scales(%s4 : tensor<2x64xf16>) zeros(%z4 : tensor<2x8xi32>)
          : tensor<8x64xi32> -> tensor<64x64xf32>
  %w8 = atmoe.dequantize #atmoe.gptq<bits = 8, group_size = 64, zero_offset = 0> %q8 scales(%s8 : tensor<1x64xbf16>)
          : tensor<16x64xi32> -> tensor<64x64xf32>
  return %w4, %w8 : tensor<64x64xf32>, tensor<64x64xf32>
}

// Tests PEFT's variants: a `bias` adapter with its lora_bias, a `dora`
// adapter with its dora_scale (atmoe.dora_scale of the weights), and the
// stacked op's base_scale and offset.
atmoe.layer @variants {
  atmoe.expert_group @all {
    atmoe.lora_expert @a
    atmoe.lora_expert @b
  }
}
// CHECK-LABEL: func.func @peft_variants
// CHECK: %[[C:.*]] = atmoe.dora_scale %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} scale = 2.000000e+00 : tensor<32x64xf32>, tensor<8x64xbf16>, tensor<32x8xbf16>, tensor<32xbf16> -> tensor<32xf32>
// CHECK: atmoe.lora_linear %{{.*}}, %{{.*}} layer(@variants) adapters [#atmoe.lora<@a, rank = 8, alpha = 1.600000e+01, dora>, #atmoe.lora<@b, rank = 4, alpha = 4.000000e+00, bias>] lora_a(%{{.*}}, %{{.*}} : tensor<8x64xbf16>, tensor<4x64xf32>) lora_b(%{{.*}}, %{{.*}} : tensor<32x8xbf16>, tensor<32x4xf32>) lora_bias(%{{.*}} : tensor<32xf16>) dora_scale(%[[C]] : tensor<32xf32>) routing(%{{.*}} : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
// CHECK: atmoe.scale_rows %{{.*}}, %[[C]] : tensor<32x8xbf16>, tensor<32xf32>
// CHECK: atmoe.stacked_lora_linear %{{.*}}, %{{.*}} down(%{{.*}} : tensor<12x64xf32>) up(%{{.*}} : tensor<32x12xf32>) scales(%{{.*}} : tensor<?x12xf32>) base_scale(%{{.*}} : tensor<?x32xf32>) offset(%{{.*}} : tensor<?x32xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
func.func @peft_variants(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>,
                    %a0: tensor<8x64xbf16>, %b0: tensor<32x8xbf16>,
                    %m0: tensor<32xbf16>, %a1: tensor<4x64xf32>,
                    %b1: tensor<32x4xf32>, %bias1: tensor<32xf16>,
                    %r: tensor<?x2xf32>, %down: tensor<12x64xf32>,
                    %up: tensor<32x12xf32>, %s: tensor<?x12xf32>,
                    %t: tensor<?x32xf32>)
    -> (tensor<?x32xf32>, tensor<?x32xf32>) {
  %c = atmoe.dora_scale %w, %a0, %b0, %m0 scale = 2.0
         : tensor<32x64xf32>, tensor<8x64xbf16>, tensor<32x8xbf16>,
           tensor<32xbf16> -> tensor<32xf32>
  %y = atmoe.lora_linear %x, %w layer(@variants)
         adapters [#atmoe.lora<@a, rank = 8, alpha = 16.0, dora>,
                   #atmoe.lora<@b, rank = 4, alpha = 4.0, bias>]
         lora_a(%a0, %a1 : tensor<8x64xbf16>, tensor<4x64xf32>)
         lora_b(%b0, %b1 : tensor<32x8xbf16>, tensor<32x4xf32>)
         lora_bias(%bias1 : tensor<32xf16>) dora_scale(%c : tensor<32xf32>)
         routing(%r : tensor<?x2xf32>)
         : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  %b2 = atmoe.scale_rows %b0, %c : tensor<32x8xbf16>, tensor<32xf32>
  %z = atmoe.stacked_lora_linear %x, %w down(%down : tensor<12x64xf32>)
         up(%up : tensor<32x12xf32>) scales(%s : tensor<?x12xf32>)
         base_scale(%t : tensor<?x32xf32>) offset(%t : tensor<?x32xf32>)
         : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y, %z : tensor<?x32xf32>, tensor<?x32xf32>
}
