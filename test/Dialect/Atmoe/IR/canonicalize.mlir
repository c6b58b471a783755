// RUN: atmoe-opt %s --split-input-file --canonicalize | FileCheck %s

atmoe.layer @l {
  atmoe.expert_group @only {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
}

// Tests that a grouped softmax over one group is a flat softmax of the expert
// logits at the expert temperature.
// CHECK-LABEL: func.func @single_group
// CHECK-SAME: (%[[H:.+]]: tensor<?x8xf32>, %[[WG:.+]]: tensor<1x8xf32>, %[[WE:.+]]: tensor<2x8xf32>, %[[BE:.+]]: tensor<2xf32>)
// CHECK: %[[R:.+]] = atmoe.route softmax %[[H]] layer(@l)
// CHECK-SAME: expert_weight(%[[WE]] : tensor<2x8xf32>) expert_bias(%[[BE]] : tensor<2xf32>)
// CHECK-SAME: {temperature = 3.000000e+00 : f64}
// CHECK-NOT: group
// CHECK: return %[[R]]
func.func @single_group(%h: tensor<?x8xf32>, %wg: tensor<1x8xf32>,
                        %we: tensor<2x8xf32>, %be: tensor<2xf32>) -> tensor<?x2xf32> {
  %w = atmoe.route grouped_softmax %h layer(@l) groups [2]
         group_weight(%wg : tensor<1x8xf32>) expert_weight(%we : tensor<2x8xf32>)
         expert_bias(%be : tensor<2xf32>)
         {group_temperature = 2.0, expert_temperature = 3.0}
         : tensor<?x8xf32> -> tensor<?x2xf32>
  return %w : tensor<?x2xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
  atmoe.expert_group @b {
    atmoe.lora_expert @qa
  }
  atmoe.expert_group @c {
    atmoe.lora_expert @sum
  }
}

// Tests that when every group holds one expert, its local weight is 1: the
// router is a flat softmax of the group logits at the group temperature, and
// top_k_groups becomes top_k.
// CHECK-LABEL: func.func @singleton_groups
// CHECK-SAME: (%[[H:.+]]: tensor<?x8xf32>, %[[WG:.+]]: tensor<3x8xf32>, %[[BG:.+]]: tensor<3xf32>, %[[WE:.+]]: tensor<3x8xf32>)
// CHECK: %[[R:.+]] = atmoe.route softmax %[[H]] layer(@l)
// CHECK-SAME: expert_weight(%[[WG]] : tensor<3x8xf32>) expert_bias(%[[BG]] : tensor<3xf32>)
// CHECK-SAME: {temperature = 2.000000e+00 : f64, top_k = 2 : i64}
// CHECK: return %[[R]]
func.func @singleton_groups(%h: tensor<?x8xf32>, %wg: tensor<3x8xf32>,
                            %bg: tensor<3xf32>, %we: tensor<3x8xf32>) -> tensor<?x3xf32> {
  %w = atmoe.route grouped_softmax %h layer(@l) groups [1, 1, 1]
         group_weight(%wg : tensor<3x8xf32>) group_bias(%bg : tensor<3xf32>)
         expert_weight(%we : tensor<3x8xf32>)
         {group_temperature = 2.0, top_k_groups = 2 : i64}
         : tensor<?x8xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
  atmoe.expert_group @b {
    atmoe.lora_expert @qa
    atmoe.lora_expert @sum
  }
}

// Tests that a grouped router with a multi-expert group is left alone.
// CHECK-LABEL: func.func @mixed_groups
// CHECK: atmoe.route grouped_softmax
func.func @mixed_groups(%h: tensor<?x8xf32>, %wg: tensor<2x8xf32>,
                        %we: tensor<3x8xf32>) -> tensor<?x3xf32> {
  %w = atmoe.route grouped_softmax %h layer(@l) groups [1, 2]
         group_weight(%wg : tensor<2x8xf32>) expert_weight(%we : tensor<3x8xf32>)
         : tensor<?x8xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
}

// Tests that a normalised router over one expert folds to 1, and that a
// sigmoid one does not.
// CHECK-LABEL: func.func @one_expert
// CHECK-DAG: %[[ONE:.+]] = arith.constant dense<1.000000e+00> : tensor<4x1xf32>
// CHECK-DAG: %[[SIG:.+]] = atmoe.route sigmoid
// CHECK: return %[[ONE]], %[[SIG]]
func.func @one_expert(%h: tensor<4x8xf32>, %we: tensor<1x8xf32>)
    -> (tensor<4x1xf32>, tensor<4x1xf32>) {
  %w = atmoe.route softmax %h layer(@l) expert_weight(%we : tensor<1x8xf32>)
         : tensor<4x8xf32> -> tensor<4x1xf32>
  %s = atmoe.route sigmoid %h layer(@l) expert_weight(%we : tensor<1x8xf32>)
         : tensor<4x8xf32> -> tensor<4x1xf32>
  return %w, %s : tensor<4x1xf32>, tensor<4x1xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
  atmoe.shared_expert @general lambda = 1.0
}

// Tests that lambda = 1 drops the shared expert's adapter.
// CHECK-LABEL: func.func @lambda_one
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[W:.+]]: tensor<4x8xf32>, %[[A0:.+]]: tensor<2x8xf32>, %[[B0:.+]]: tensor<4x2xf32>, %[[A1:.+]]: tensor<3x8xf32>, %[[B1:.+]]: tensor<4x3xf32>, %[[R:.+]]: tensor<?x2xf32>)
// CHECK: atmoe.lora_linear %[[X]], %[[W]] layer(@l)
// CHECK-SAME: adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.000000e+00>]
// CHECK-SAME: lora_a(%[[A0]] : tensor<2x8xf32>) lora_b(%[[B0]] : tensor<4x2xf32>)
// CHECK-SAME: routing(%[[R]] : tensor<?x2xf32>)
func.func @lambda_one(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>,
                      %a0: tensor<2x8xf32>, %b0: tensor<4x2xf32>,
                      %a1: tensor<3x8xf32>, %b1: tensor<4x3xf32>,
                      %r: tensor<?x2xf32>) -> tensor<?x4xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l)
         adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.0>,
                   #atmoe.lora<@general, rank = 3, alpha = 6.0>]
         lora_a(%a0, %a1 : tensor<2x8xf32>, tensor<3x8xf32>)
         lora_b(%b0, %b1 : tensor<4x2xf32>, tensor<4x3xf32>)
         routing(%r : tensor<?x2xf32>)
         : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
  atmoe.shared_expert @general lambda = 0.0
}

// Tests that lambda = 0 drops the routed adapters, then the routing weights,
// segments and the router that computed them.
// CHECK-LABEL: func.func @lambda_zero
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[W:.+]]: tensor<4x8xf32>, %{{.+}}: tensor<?x8xf32>, %{{.+}}: tensor<2x8xf32>, %{{.+}}: tensor<2x8xf32>, %{{.+}}: tensor<4x2xf32>, %[[A1:.+]]: tensor<3x8xf32>, %[[B1:.+]]: tensor<4x3xf32>, %{{.+}}: tensor<?xi64>)
// CHECK-NOT: atmoe.route
// CHECK: %[[Y:.+]] = atmoe.lora_linear %[[X]], %[[W]] layer(@l)
// CHECK-SAME: adapters [#atmoe.lora<@general, rank = 3, alpha = 6.000000e+00>]
// CHECK-SAME: lora_a(%[[A1]] : tensor<3x8xf32>) lora_b(%[[B1]] : tensor<4x3xf32>)
// CHECK-NOT: routing
// CHECK-NOT: segments
// CHECK: return %[[Y]]
func.func @lambda_zero(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>,
                       %h: tensor<?x8xf32>, %we: tensor<2x8xf32>,
                       %a0: tensor<2x8xf32>, %b0: tensor<4x2xf32>,
                       %a1: tensor<3x8xf32>, %b1: tensor<4x3xf32>,
                       %s: tensor<?xi64>) -> tensor<?x4xf32> {
  %r = atmoe.route softmax %h layer(@l) expert_weight(%we : tensor<2x8xf32>)
         : tensor<?x8xf32> -> tensor<?x2xf32>
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence)
         adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.0>,
                   #atmoe.lora<@general, rank = 3, alpha = 6.0>]
         lora_a(%a0, %a1 : tensor<2x8xf32>, tensor<3x8xf32>)
         lora_b(%b0, %b1 : tensor<4x2xf32>, tensor<4x3xf32>)
         routing(%r : tensor<?x2xf32>) segments(%s : tensor<?xi64>)
         : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
  atmoe.shared_expert @general lambda = 0.5
}

// Tests that adapters are kept when lambda is strictly between 0 and 1.
// CHECK-LABEL: func.func @lambda_half
// CHECK: adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.000000e+00>, #atmoe.lora<@general, rank = 3, alpha = 6.000000e+00>]
func.func @lambda_half(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>,
                       %a0: tensor<2x8xf32>, %b0: tensor<4x2xf32>,
                       %a1: tensor<3x8xf32>, %b1: tensor<4x3xf32>,
                       %r: tensor<?x1xf32>) -> tensor<?x4xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l)
         adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.0>,
                   #atmoe.lora<@general, rank = 3, alpha = 6.0>]
         lora_a(%a0, %a1 : tensor<2x8xf32>, tensor<3x8xf32>)
         lora_b(%b0, %b1 : tensor<4x2xf32>, tensor<4x3xf32>)
         routing(%r : tensor<?x1xf32>)
         : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
}

// Tests that a projection without adapters is the plain linear, and that an
// unused router goes with it.
// CHECK-LABEL: func.func @no_adapters
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[W:.+]]: tensor<4x8xf32>, %[[B:.+]]: tensor<4xf32>, %{{.+}}: tensor<1x8xf32>)
// CHECK-NOT: atmoe.route
// CHECK: %[[Y:.+]] = atmoe.linear %[[X]], %[[W]] bias(%[[B]] : tensor<4xf32>) : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
// CHECK: return %[[Y]]
func.func @no_adapters(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>,
                       %b: tensor<4xf32>, %we: tensor<1x8xf32>) -> tensor<?x4xf32> {
  %r = atmoe.route sigmoid %x layer(@l) expert_weight(%we : tensor<1x8xf32>)
         : tensor<?x8xf32> -> tensor<?x1xf32>
  %y = atmoe.lora_linear %x, %w bias(%b : tensor<4xf32>) layer(@l) adapters []
         routing(%r : tensor<?x1xf32>)
         : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}
