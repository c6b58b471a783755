// The bundled example model "demo" in the atmoe dialect: two layers of a
// d = 64 model, four task experts in two task groups plus a shared expert.
// Layer 1 drops the expert @symptom and gives @icd a smaller rank
// (GuiLoMo-style heterogeneous allocation); its v_proj carries no expert and
// canonicalises to a plain linear, and its router has singleton groups only.
//
// Canonicalise it with:  atmoe-opt --canonicalize examples/demo/demo.mlir

atmoe.layer @layer0 {
  atmoe.expert_group @diagnosis {
    atmoe.lora_expert @icd
    atmoe.lora_expert @symptom
  }
  atmoe.expert_group @dialogue {
    atmoe.lora_expert @qa
    atmoe.lora_expert @summary
  }
  atmoe.shared_expert @general lambda = 0.8
}

func.func @layer0_forward(%x: tensor<?x64xf32>,
                  %q_w: tensor<64x64xf32>,
                  %q_a_icd: tensor<16x64xf32>, %q_b_icd: tensor<64x16xf32>,
                  %q_a_symptom: tensor<8x64xf32>, %q_b_symptom: tensor<64x8xf32>,
                  %q_a_qa: tensor<16x64xf32>, %q_b_qa: tensor<64x16xf32>,
                  %q_a_summary: tensor<4x64xf32>, %q_b_summary: tensor<64x4xf32>,
                  %q_a_general: tensor<8x64xf32>, %q_b_general: tensor<64x8xf32>,
                  %router_wg: tensor<2x64xf32>, %router_bg: tensor<2xf32>,
                  %router_we: tensor<4x64xf32>, %router_be: tensor<4xf32>)
    -> (tensor<?x64xf32>, tensor<?x4xf32>) {
  %w = atmoe.route grouped_softmax %x layer(@layer0) groups [2, 2]
         group_weight(%router_wg : tensor<2x64xf32>)
         group_bias(%router_bg : tensor<2xf32>)
         expert_weight(%router_we : tensor<4x64xf32>)
         expert_bias(%router_be : tensor<4xf32>)
         : tensor<?x64xf32> -> tensor<?x4xf32>
  %q = atmoe.lora_linear %x, %q_w layer(@layer0)
         adapters [#atmoe.lora<@icd, rank = 16, alpha = 32.0>,
                   #atmoe.lora<@symptom, rank = 8, alpha = 16.0>,
                   #atmoe.lora<@qa, rank = 16, alpha = 32.0>,
                   #atmoe.lora<@summary, rank = 4, alpha = 8.0>,
                   #atmoe.lora<@general, rank = 8, alpha = 16.0>]
         lora_a(%q_a_icd, %q_a_symptom, %q_a_qa, %q_a_summary, %q_a_general
                : tensor<16x64xf32>, tensor<8x64xf32>, tensor<16x64xf32>,
                  tensor<4x64xf32>, tensor<8x64xf32>)
         lora_b(%q_b_icd, %q_b_symptom, %q_b_qa, %q_b_summary, %q_b_general
                : tensor<64x16xf32>, tensor<64x8xf32>, tensor<64x16xf32>,
                  tensor<64x4xf32>, tensor<64x8xf32>)
         routing(%w : tensor<?x4xf32>)
         : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %q, %w : tensor<?x64xf32>, tensor<?x4xf32>
}

atmoe.layer @layer1 {
  atmoe.expert_group @diagnosis {
    atmoe.lora_expert @icd
  }
  atmoe.expert_group @dialogue {
    atmoe.lora_expert @qa
  }
  atmoe.shared_expert @general lambda = 1.0
}

func.func @layer1_forward(%x: tensor<?x64xf32>,
                  %q_w: tensor<64x64xf32>, %q_bias: tensor<64xf32>,
                  %q_a_icd: tensor<4x64xf32>, %q_b_icd: tensor<64x4xf32>,
                  %q_a_qa: tensor<16x64xf32>, %q_b_qa: tensor<64x16xf32>,
                  %q_a_general: tensor<8x64xf32>, %q_b_general: tensor<64x8xf32>,
                  %v_w: tensor<64x64xf32>,
                  %router_wg: tensor<2x64xf32>, %router_we: tensor<2x64xf32>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x2xf32>) {
  %w = atmoe.route grouped_softmax %x layer(@layer1) groups [1, 1]
         group_weight(%router_wg : tensor<2x64xf32>)
         expert_weight(%router_we : tensor<2x64xf32>)
         : tensor<?x64xf32> -> tensor<?x2xf32>
  %q = atmoe.lora_linear %x, %q_w bias(%q_bias : tensor<64xf32>) layer(@layer1)
         adapters [#atmoe.lora<@icd, rank = 4, alpha = 8.0>,
                   #atmoe.lora<@qa, rank = 16, alpha = 32.0>,
                   #atmoe.lora<@general, rank = 8, alpha = 16.0>]
         lora_a(%q_a_icd, %q_a_qa, %q_a_general
                : tensor<4x64xf32>, tensor<16x64xf32>, tensor<8x64xf32>)
         lora_b(%q_b_icd, %q_b_qa, %q_b_general
                : tensor<64x4xf32>, tensor<64x16xf32>, tensor<64x8xf32>)
         routing(%w : tensor<?x2xf32>)
         : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  %v = atmoe.lora_linear %x, %v_w layer(@layer1) adapters []
         : tensor<?x64xf32>, tensor<64x64xf32> -> tensor<?x64xf32>
  return %q, %v, %w : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x2xf32>
}
