// RUN: atmoe-opt %s --split-input-file --atmoe-fuse-lora | FileCheck %s

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
  atmoe.expert_group @b {
    atmoe.lora_expert @sum
  }
  atmoe.shared_expert @general lambda = 0.8
}

// Tests that adapters of different ranks are stacked without padding, that
// each routed adapter reads its expert's routing column, and that the scale
// factors are lambda * alpha / r and (1 - lambda) * alpha / r.
// CHECK-LABEL: func.func @heterogeneous
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>, %[[W:.+]]: tensor<32x64xf32>, %[[B:.+]]: tensor<32xf32>, %[[A0:.+]]: tensor<8x64xf32>, %[[B0:.+]]: tensor<32x8xf32>, %[[A1:.+]]: tensor<16x64xf32>, %[[B1:.+]]: tensor<32x16xf32>, %[[A2:.+]]: tensor<4x64xf32>, %[[B2:.+]]: tensor<32x4xf32>, %[[R:.+]]: tensor<?x3xf32>)
// CHECK-DAG: %[[DOWN:.+]] = tensor.concat dim(0) %[[A0]], %[[A1]], %[[A2]] : (tensor<8x64xf32>, tensor<16x64xf32>, tensor<4x64xf32>) -> tensor<28x64xf32>
// CHECK-DAG: %[[UP:.+]] = tensor.concat dim(1) %[[B0]], %[[B1]], %[[B2]] : (tensor<32x8xf32>, tensor<32x16xf32>, tensor<32x4xf32>) -> tensor<32x28xf32>
// CHECK-DAG: %[[T:.+]] = tensor.dim %[[X]], %{{.+}} : tensor<?x64xf32>
// CHECK: %[[S:.+]] = atmoe.lora_scales routing(%[[R]] : tensor<?x3xf32>) tokens %[[T]] ranks [8, 16, 4] columns [2, 0, -1] factors [1.600000e+00, 1.600000e+00, 4.000000e-01] : tensor<?x28xf32>
// CHECK: %[[Y:.+]] = atmoe.stacked_lora_linear %[[X]], %[[W]] bias(%[[B]] : tensor<32xf32>) down(%[[DOWN]] : tensor<28x64xf32>) up(%[[UP]] : tensor<32x28xf32>) scales(%[[S]] : tensor<?x28xf32>)
// CHECK: return %[[Y]]
func.func @heterogeneous(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %b: tensor<32xf32>,
                         %a0: tensor<8x64xf32>, %b0: tensor<32x8xf32>,
                         %a1: tensor<16x64xf32>, %b1: tensor<32x16xf32>,
                         %a2: tensor<4x64xf32>, %b2: tensor<32x4xf32>,
                         %r: tensor<?x3xf32>) -> tensor<?x32xf32> {
  %y = atmoe.lora_linear %x, %w bias(%b : tensor<32xf32>) layer(@l)
         adapters [#atmoe.lora<@sum, rank = 8, alpha = 16.0>,
                   #atmoe.lora<@icd, rank = 16, alpha = 32.0>,
                   #atmoe.lora<@general, rank = 4, alpha = 8.0>]
         lora_a(%a0, %a1, %a2 : tensor<8x64xf32>, tensor<16x64xf32>, tensor<4x64xf32>)
         lora_b(%b0, %b1, %b2 : tensor<32x8xf32>, tensor<32x16xf32>, tensor<32x4xf32>)
         routing(%r : tensor<?x3xf32>)
         : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
  atmoe.shared_expert @general lambda = 0.25
}

// Tests that a projection with only the shared expert needs no routing and
// no concatenation.
// CHECK-LABEL: func.func @shared_only
// CHECK-SAME: (%[[X:.+]]: tensor<?x64xf32>, %[[W:.+]]: tensor<32x64xf32>, %[[A:.+]]: tensor<4x64xf32>, %[[B:.+]]: tensor<32x4xf32>)
// CHECK-NOT: tensor.concat
// CHECK: %[[S:.+]] = atmoe.lora_scales tokens %{{.+}} ranks [4] columns [-1] factors [1.500000e+00] : tensor<?x4xf32>
// CHECK: atmoe.stacked_lora_linear %[[X]], %[[W]] down(%[[A]] : tensor<4x64xf32>) up(%[[B]] : tensor<32x4xf32>) scales(%[[S]] : tensor<?x4xf32>)
func.func @shared_only(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>,
                       %a: tensor<4x64xf32>, %b: tensor<32x4xf32>) -> tensor<?x32xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l)
         adapters [#atmoe.lora<@general, rank = 4, alpha = 8.0>]
         lora_a(%a : tensor<4x64xf32>) lora_b(%b : tensor<32x4xf32>)
         : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
}

// Tests that sequence granularity is left for --atmoe-expand-segments and
// that a projection without adapters becomes the plain linear.
// CHECK-LABEL: func.func @sequence_and_plain
// CHECK: atmoe.lora_linear {{.*}} granularity(sequence)
// CHECK: atmoe.linear
func.func @sequence_and_plain(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>,
                              %a: tensor<4x64xf32>, %b: tensor<32x4xf32>,
                              %r: tensor<1x1xf32>) -> (tensor<?x32xf32>, tensor<?x32xf32>) {
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence)
         adapters [#atmoe.lora<@icd, rank = 4, alpha = 8.0>]
         lora_a(%a : tensor<4x64xf32>) lora_b(%b : tensor<32x4xf32>)
         routing(%r : tensor<1x1xf32>)
         : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  %p = atmoe.lora_linear %x, %w layer(@l) adapters []
         : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y, %p : tensor<?x32xf32>, tensor<?x32xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
}

// Tests that adapters sharing a storage type are stacked in it, and that
// mixed storage types are widened to f32 (exactly) before stacking.
// CHECK-LABEL: func.func @storage_types
// CHECK-SAME: %[[A0:[^:]+]]: tensor<8x64xbf16>, %[[B0:[^:]+]]: tensor<32x8xbf16>, %[[A1:[^:]+]]: tensor<4x64xbf16>, %[[B1:[^:]+]]: tensor<32x4xf16>
// CHECK-DAG: tensor.concat dim(0) %[[A0]], %[[A1]] : (tensor<8x64xbf16>, tensor<4x64xbf16>) -> tensor<12x64xbf16>
// CHECK-DAG: %[[W0:.+]] = arith.extf %[[B0]] : tensor<32x8xbf16> to tensor<32x8xf32>
// CHECK-DAG: %[[W1:.+]] = arith.extf %[[B1]] : tensor<32x4xf16> to tensor<32x4xf32>
// CHECK-DAG: tensor.concat dim(1) %[[W0]], %[[W1]] : (tensor<32x8xf32>, tensor<32x4xf32>) -> tensor<32x12xf32>
// CHECK: atmoe.stacked_lora_linear {{.*}} down(%{{.+}} : tensor<12x64xbf16>) up(%{{.+}} : tensor<32x12xf32>)
func.func @storage_types(%x: tensor<?x64xf32>, %w: tensor<32x64xbf16>,
                         %a0: tensor<8x64xbf16>, %b0: tensor<32x8xbf16>,
                         %a1: tensor<4x64xbf16>, %b1: tensor<32x4xf16>,
                         %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l)
         adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>,
                   #atmoe.lora<@qa, rank = 4, alpha = 8.0>]
         lora_a(%a0, %a1 : tensor<8x64xbf16>, tensor<4x64xbf16>)
         lora_b(%b0, %b1 : tensor<32x8xbf16>, tensor<32x4xf16>)
         routing(%r : tensor<?x2xf32>)
         : tensor<?x64xf32>, tensor<32x64xbf16> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests PEFT's variants: the lora bias becomes `offset` (per-token factors
// lambda * w_p * alpha / r of one slot, times the bias row), DoRA becomes
// `base_scale` = 1 + sum of w_i (c_i - 1) with factors lambda * w_d and
// 1 - lambda (no alpha / r), and each DoRA adapter's up matrix is scaled by
// c_i row by row.
// CHECK-LABEL: func.func @variants
// CHECK-SAME:    %[[B0:[^:]*]]: tensor<32x8xbf16>, %[[C0:[^:]*]]: tensor<32xf32>
// CHECK:         %[[BF:.*]] = atmoe.lora_scales routing(%{{.*}}) tokens %{{.*}} ranks [1] columns [1] factors [8.000000e-01] : tensor<?x1xf32>
// CHECK:         %[[OFFSET:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "parallel"]} ins(%[[BF]], %{{.*}} : tensor<?x1xf32>, tensor<1x32xf16>)
// CHECK:         %[[DF:.*]] = atmoe.lora_scales routing(%{{.*}}) tokens %{{.*}} ranks [1, 1] columns [0, -1] factors [8.000000e-01, 2.000000e-01] : tensor<?x2xf32>
// CHECK:         %[[ONES:.*]] = linalg.fill ins(%cst : f32)
// CHECK:         %[[BASE:.*]] = linalg.generic {{.*}} ins(%[[DF]], %{{.*}} : tensor<?x2xf32>, tensor<2x32xf32>) outs(%[[ONES]] : tensor<?x32xf32>)
// CHECK:           arith.subf
// CHECK:         %[[UP0:.*]] = atmoe.scale_rows %[[B0]], %[[C0]] : tensor<32x8xbf16>, tensor<32xf32>
// CHECK:         %[[UP:.*]] = tensor.concat dim(1) %[[UP0]], %{{.*}}, %{{.*}} : (tensor<32x8xf32>, tensor<32x4xf32>, tensor<32x2xf32>) -> tensor<32x14xf32>
// CHECK:         atmoe.lora_scales {{.*}} ranks [8, 4, 2] columns [0, 1, -1] factors [1.600000e+00, 8.000000e-01, 4.000000e-01]
// CHECK:         atmoe.stacked_lora_linear {{.*}} up(%[[UP]] : tensor<32x14xf32>) {{.*}} base_scale(%[[BASE]] : tensor<?x32xf32>) offset(%[[OFFSET]] : tensor<?x32xf32>)
atmoe.layer @l {
  atmoe.expert_group @g {
    atmoe.lora_expert @d
    atmoe.lora_expert @p
  }
  atmoe.shared_expert @s lambda = 8.000000e-01
}
func.func @variants(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>,
                    %a0: tensor<8x64xbf16>, %b0: tensor<32x8xbf16>, %c0: tensor<32xf32>,
                    %a1: tensor<4x64xf32>, %b1: tensor<32x4xf32>, %v1: tensor<32xf16>,
                    %a2: tensor<2x64xf32>, %b2: tensor<32x2xf32>, %c2: tensor<32xf32>,
                    %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l)
         adapters [#atmoe.lora<@d, rank = 8, alpha = 16.0, dora>,
                   #atmoe.lora<@p, rank = 4, alpha = 4.0, bias>,
                   #atmoe.lora<@s, rank = 2, alpha = 4.0, dora>]
         lora_a(%a0, %a1, %a2 : tensor<8x64xbf16>, tensor<4x64xf32>, tensor<2x64xf32>)
         lora_b(%b0, %b1, %b2 : tensor<32x8xbf16>, tensor<32x4xf32>, tensor<32x2xf32>)
         lora_bias(%v1 : tensor<32xf16>) dora_scale(%c0, %c2 : tensor<32xf32>, tensor<32xf32>)
         routing(%r : tensor<?x2xf32>)
         : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
