// RUN: atmoe-opt %s --split-input-file --atmoe-fuse-router | FileCheck %s

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
  atmoe.expert_group @b {
    atmoe.lora_expert @sum
  }
}

// Tests that a grouped router becomes two affine logits and one fused
// normalisation carrying all of its semantics.
// CHECK-LABEL: func.func @grouped
// CHECK-SAME: (%[[H:.+]]: tensor<?x8xf32>, %[[WG:.+]]: tensor<2x8xf32>, %[[BG:.+]]: tensor<2xf32>, %[[WE:.+]]: tensor<3x8xf32>)
// CHECK-DAG: %[[V:.+]] = atmoe.linear %[[H]], %[[WE]] : tensor<?x8xf32>, tensor<3x8xf32> -> tensor<?x3xf32>
// CHECK-DAG: %[[U:.+]] = atmoe.linear %[[H]], %[[WG]] bias(%[[BG]] : tensor<2xf32>) : tensor<?x8xf32>, tensor<2x8xf32> -> tensor<?x2xf32>
// CHECK: %[[W:.+]] = atmoe.normalize_routing grouped_softmax %[[V]] groups [2, 1] group_scores(%[[U]] : tensor<?x2xf32>)
// CHECK-SAME: group_temperature = 2.000000e+00 : f64, temperature = 5.000000e-01 : f64, top_k_groups = 1 : i64
// CHECK: return %[[W]]
func.func @grouped(%h: tensor<?x8xf32>, %wg: tensor<2x8xf32>, %bg: tensor<2xf32>,
                   %we: tensor<3x8xf32>) -> tensor<?x3xf32> {
  %w = atmoe.route grouped_softmax %h layer(@l) groups [2, 1]
         group_weight(%wg : tensor<2x8xf32>) group_bias(%bg : tensor<2xf32>)
         expert_weight(%we : tensor<3x8xf32>)
         {temperature = 0.5, group_temperature = 2.0, top_k_groups = 1 : i64}
         : tensor<?x8xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
}

// Tests that a cosine router projects, takes cosine similarities with the
// expert embeddings, and normalises them.
// CHECK-LABEL: func.func @cosine
// CHECK-SAME: (%[[H:.+]]: tensor<?x8xf32>, %[[P:.+]]: tensor<4x8xf32>, %[[C:.+]]: tensor<2x4xf32>)
// CHECK: %[[Z:.+]] = atmoe.linear %[[H]], %[[P]] : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
// CHECK: %[[S:.+]] = atmoe.cosine_similarity %[[Z]], %[[C]] : tensor<?x4xf32>, tensor<2x4xf32> -> tensor<?x2xf32>
// CHECK: atmoe.normalize_routing cosine %[[S]] {temperature = 1.000000e-01 : f64, top_k = 1 : i64}
func.func @cosine(%h: tensor<?x8xf32>, %p: tensor<4x8xf32>, %c: tensor<2x4xf32>) -> tensor<?x2xf32> {
  %w = atmoe.route cosine %h layer(@l) proj_weight(%p : tensor<4x8xf32>)
         expert_embedding(%c : tensor<2x4xf32>) {temperature = 0.1, top_k = 1 : i64}
         : tensor<?x8xf32> -> tensor<?x2xf32>
  return %w : tensor<?x2xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
}

// Tests sigmoid routers with an expert bias.
// CHECK-LABEL: func.func @sigmoid
// CHECK: %[[V:.+]] = atmoe.linear %{{.+}}, %{{.+}} bias(%{{.+}} : tensor<2xf32>)
// CHECK: atmoe.normalize_routing sigmoid %[[V]] :
func.func @sigmoid(%h: tensor<?x8xf32>, %we: tensor<2x8xf32>, %be: tensor<2xf32>) -> tensor<?x2xf32> {
  %w = atmoe.route sigmoid %h layer(@l) expert_weight(%we : tensor<2x8xf32>)
         expert_bias(%be : tensor<2xf32>) : tensor<?x8xf32> -> tensor<?x2xf32>
  return %w : tensor<?x2xf32>
}
