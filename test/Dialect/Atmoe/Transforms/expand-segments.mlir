// RUN: atmoe-opt %s --split-input-file --atmoe-expand-segments | FileCheck %s

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
}

// Tests that sequence routing with segments is expanded to one row per token.
// CHECK-LABEL: func.func @with_segments
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[W:.+]]: tensor<4x8xf32>, %[[A:.+]]: tensor<2x8xf32>, %[[B:.+]]: tensor<4x2xf32>, %[[R:.+]]: tensor<?x2xf32>, %[[S:.+]]: tensor<?xi64>)
// CHECK: %[[C0:.+]] = arith.constant 0 : index
// CHECK: %[[T:.+]] = tensor.dim %[[X]], %[[C0]] : tensor<?x8xf32>
// CHECK: %[[RT:.+]] = atmoe.expand_segments %[[R]] segments(%[[S]] : tensor<?xi64>) tokens %[[T]] : tensor<?x2xf32> -> tensor<?x2xf32>
// CHECK: atmoe.lora_linear %[[X]], %[[W]] layer(@l) adapters
// CHECK-SAME: routing(%[[RT]] : tensor<?x2xf32>) :
// CHECK-NOT: segments
func.func @with_segments(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>,
                         %a: tensor<2x8xf32>, %b: tensor<4x2xf32>,
                         %r: tensor<?x2xf32>, %s: tensor<?xi64>) -> tensor<?x4xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence)
         adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.0>]
         lora_a(%a : tensor<2x8xf32>) lora_b(%b : tensor<4x2xf32>)
         routing(%r : tensor<?x2xf32>) segments(%s : tensor<?xi64>)
         : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
}

// Tests that one sequence without segments broadcasts its row, with a static
// token count in the expanded type.
// CHECK-LABEL: func.func @one_sequence
// CHECK: %[[RT:.+]] = atmoe.expand_segments %{{.+}} tokens %{{.+}} : tensor<1x1xf32> -> tensor<6x1xf32>
// CHECK: atmoe.lora_linear
// CHECK-SAME: routing(%[[RT]] : tensor<6x1xf32>)
func.func @one_sequence(%x: tensor<6x8xf32>, %w: tensor<4x8xf32>,
                        %a: tensor<2x8xf32>, %b: tensor<4x2xf32>,
                        %r: tensor<1x1xf32>) -> tensor<6x4xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence)
         adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.0>]
         lora_a(%a : tensor<2x8xf32>) lora_b(%b : tensor<4x2xf32>)
         routing(%r : tensor<1x1xf32>)
         : tensor<6x8xf32>, tensor<4x8xf32> -> tensor<6x4xf32>
  return %y : tensor<6x4xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
}

// Tests that token granularity is left alone.
// CHECK-LABEL: func.func @token
// CHECK-NOT: atmoe.expand_segments
// CHECK: atmoe.lora_linear
func.func @token(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>,
                 %a: tensor<2x8xf32>, %b: tensor<4x2xf32>,
                 %r: tensor<?x1xf32>) -> tensor<?x4xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l)
         adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.0>]
         lora_a(%a : tensor<2x8xf32>) lora_b(%b : tensor<4x2xf32>)
         routing(%r : tensor<?x1xf32>)
         : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}
