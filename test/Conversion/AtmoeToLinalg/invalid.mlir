// RUN: atmoe-opt %s --split-input-file --convert-atmoe-to-linalg --verify-diagnostics

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
}

// Tests that an unfused router is reported with the pass that fuses it.
func.func @f(%h: tensor<?x8xf32>, %we: tensor<1x8xf32>) -> tensor<?x1xf32> {
  // expected-error @+1 {{must be split by --atmoe-fuse-router before conversion to linalg}}
  %w = atmoe.route sigmoid %h layer(@l) expert_weight(%we : tensor<1x8xf32>) : tensor<?x8xf32> -> tensor<?x1xf32>
  return %w : tensor<?x1xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
}

// Tests that an unfused projection is reported with the passes that fuse it.
func.func @f(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>) -> tensor<?x4xf32> {
  // expected-error @+1 {{must be fused by --atmoe-expand-segments and --atmoe-fuse-lora before conversion to linalg}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [] : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Tests that routing normalisation needs a static expert count.
func.func @f(%v: tensor<?x?xf32>) -> tensor<?x?xf32> {
  // expected-error @+1 {{failed to legalize operation 'atmoe.normalize_routing'}}
  %w = atmoe.normalize_routing softmax %v : tensor<?x?xf32> -> tensor<?x?xf32>
  return %w : tensor<?x?xf32>
}
