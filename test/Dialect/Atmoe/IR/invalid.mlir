// RUN: atmoe-opt %s --split-input-file --verify-diagnostics

// Tests that an empty layer is rejected.
// expected-error @+1 {{expects at least one expert group or shared expert}}
atmoe.layer @l {
}

// -----

// Tests that a layer holds only groups and a shared expert.
// expected-error @+1 {{expects only atmoe.expert_group and atmoe.shared_expert ops in its body, found 'arith.constant'}}
atmoe.layer @l {
  %c = arith.constant 0 : index
}

// -----

// Tests that a layer has at most one shared expert.
// expected-error @+1 {{has two shared experts: @s1 and @s2}}
atmoe.layer @l {
  // expected-note @+1 {{first shared expert declared here}}
  atmoe.shared_expert @s1 lambda = 0.5
  atmoe.shared_expert @s2 lambda = 0.5
}

// -----

// Tests that every expert is in exactly one group.
// expected-error @+1 {{expects expert @icd to be in exactly one group, but it is in @a and @b}}
atmoe.layer @l {
  // expected-note @+1 {{first group declared here}}
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
  }
  atmoe.expert_group @b {
    atmoe.lora_expert @icd
  }
}

// -----

// Tests that the shared expert is in no group.
// expected-error @+1 {{expects shared expert @g to be in no group, but group @a routes it}}
atmoe.layer @l {
  // expected-note @+1 {{group declared here}}
  atmoe.expert_group @a {
    atmoe.lora_expert @g
  }
  atmoe.shared_expert @g lambda = 0.5
}

// -----

// Tests that group names are unique within a layer.
atmoe.layer @l {
  // expected-note @+1 {{see existing symbol definition here}}
  atmoe.expert_group @a {
    atmoe.lora_expert @x
  }
  // expected-error @+1 {{redefinition of symbol named 'a'}}
  atmoe.expert_group @a {
    atmoe.lora_expert @y
  }
}

// -----

// Tests that a group is not empty.
atmoe.layer @l {
  // expected-error @+1 {{expects group @a to hold at least one expert}}
  atmoe.expert_group @a {
  }
}

// -----

// Tests that a group holds only experts.
atmoe.layer @l {
  // expected-error @+1 {{expects only atmoe.lora_expert ops in group @a, found 'arith.constant'}}
  atmoe.expert_group @a {
    %c = arith.constant 0 : index
  }
}

// -----

// Tests that experts live in groups.
atmoe.layer @l {
  // expected-error @+1 {{expects parent op 'atmoe.expert_group'}}
  atmoe.lora_expert @x
}

// -----

// Tests that lambda is in [0, 1].
atmoe.layer @l {
  // expected-error @+1 {{expects lambda (1.5) of shared expert @g to be in [0, 1]}}
  atmoe.shared_expert @g lambda = 1.5
}

// -----

// Tests that an adapter's rank is positive.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects the rank of adapter @icd to be positive, got 0}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 0, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that an adapter's alpha is finite.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects the alpha of adapter @icd to be finite}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 0x7FF0000000000000>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that an adapter's scale alpha / rank fits in f32 (an inf scale would
// make NaN of every zero product).
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects the scale alpha / rank of adapter @icd (1.000000e+300 / 8) to be a finite f32}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 1.0e300>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that grouped_softmax needs group logits.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind grouped_softmax expects group_weight}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [2, 1] expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that softmax takes no group logits.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind softmax does not take group_weight}}
  %w = atmoe.route softmax %h layer(@l) group_weight(%wg : tensor<2x64xf32>) expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that softmax needs expert logits.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind softmax expects expert_weight}}
  %w = atmoe.route softmax %h layer(@l) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that cosine takes no expert logits.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind cosine does not take expert_weight}}
  %w = atmoe.route cosine %h layer(@l) expert_weight(%we : tensor<3x64xf32>) proj_weight(%p : tensor<16x64xf32>) expert_embedding(%c : tensor<3x16xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that cosine needs a projection.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind cosine expects proj_weight}}
  %w = atmoe.route cosine %h layer(@l) expert_embedding(%c : tensor<3x16xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that sigmoid takes no projection.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind sigmoid does not take proj_weight}}
  %w = atmoe.route sigmoid %h layer(@l) expert_weight(%we : tensor<3x64xf32>) proj_weight(%p : tensor<16x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that cosine needs expert embeddings.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind cosine expects expert_embedding}}
  %w = atmoe.route cosine %h layer(@l) proj_weight(%p : tensor<16x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that sigmoid takes no expert embeddings.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind sigmoid does not take expert_embedding}}
  %w = atmoe.route sigmoid %h layer(@l) expert_weight(%we : tensor<3x64xf32>) expert_embedding(%c : tensor<3x16xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that a group bias needs a group weight.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind softmax does not take group_bias}}
  %w = atmoe.route softmax %h layer(@l) group_bias(%bg : tensor<2xf32>) expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that an expert bias needs an expert weight.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind cosine does not take expert_bias}}
  %w = atmoe.route cosine %h layer(@l) expert_bias(%be : tensor<3xf32>) proj_weight(%p : tensor<16x64xf32>) expert_embedding(%c : tensor<3x16xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that result rows match input rows.
func.func @f(%h: tensor<4x64xf32>, %we: tensor<3x64xf32>) -> tensor<5x3xf32> {
  // expected-error @+1 {{expects result rows (5) to equal input rows (4)}}
  %w = atmoe.route softmax %h layer(@l) expert_weight(%we : tensor<3x64xf32>) : tensor<4x64xf32> -> tensor<5x3xf32>
  return %w : tensor<5x3xf32>
}

// -----

// Tests that grouped_softmax needs group sizes.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind grouped_softmax expects group sizes}}
  %w = atmoe.route grouped_softmax %h layer(@l) group_weight(%wg : tensor<2x64xf32>) expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that only grouped_softmax takes group sizes.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind softmax does not take group sizes}}
  %w = atmoe.route softmax %h layer(@l) groups [2, 1] expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that no group is empty.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects group #1 to hold at least one expert, got 0}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [3, 0] group_weight(%wg : tensor<2x64xf32>) expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that group sizes sum to the experts.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects group sizes to sum to the number of experts (3), got 4}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [2, 2] group_weight(%wg : tensor<2x64xf32>) expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that group weight rows match G.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects group_weight rows (2) to equal the number of groups (3)}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [1, 1, 1] group_weight(%wg : tensor<2x64xf32>) expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that group weight columns match d_h.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x32xf32>, %we: tensor<3x64xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects group_weight columns (32) to equal router input features (64)}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [2, 1] group_weight(%wg : tensor<2x32xf32>) expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that group bias size matches G.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<3xf32>, %we: tensor<3x64xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects group_bias size (3) to equal the number of groups (2)}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [2, 1] group_weight(%wg : tensor<2x64xf32>) group_bias(%bg : tensor<3xf32>) expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that expert weight rows match E.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x4xf32> {
  // expected-error @+1 {{expects expert_weight rows (3) to equal the number of experts (4)}}
  %w = atmoe.route softmax %h layer(@l) expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x4xf32>
  return %w : tensor<?x4xf32>
}

// -----

// Tests that expert bias size matches E.
func.func @f(%h: tensor<?x64xf32>, %we: tensor<3x64xf32>, %be: tensor<2xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects expert_bias size (2) to equal the number of experts (3)}}
  %w = atmoe.route sigmoid %h layer(@l) expert_weight(%we : tensor<3x64xf32>) expert_bias(%be : tensor<2xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that the cosine projection reads d_h.
func.func @f(%h: tensor<?x64xf32>, %p: tensor<16x32xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects proj_weight columns (32) to equal router input features (64)}}
  %w = atmoe.route cosine %h layer(@l) proj_weight(%p : tensor<16x32xf32>) expert_embedding(%c : tensor<3x16xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that expert embeddings match the projection.
func.func @f(%h: tensor<?x64xf32>, %p: tensor<16x64xf32>, %c: tensor<3x8xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects expert_embedding columns (8) to equal proj_weight rows (16)}}
  %w = atmoe.route cosine %h layer(@l) proj_weight(%p : tensor<16x64xf32>) expert_embedding(%c : tensor<3x8xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that temperature is positive.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects temperature (0) to be > 0}}
  %w = atmoe.route softmax %h layer(@l) expert_weight(%we : tensor<3x64xf32>) {temperature = 0.0} : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that group temperature is positive.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects group_temperature (-1) to be > 0}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [2, 1] group_weight(%wg : tensor<2x64xf32>) expert_weight(%we : tensor<3x64xf32>) {group_temperature = -1.0} : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that expert temperature is positive.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects expert_temperature (0) to be > 0}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [2, 1] group_weight(%wg : tensor<2x64xf32>) expert_weight(%we : tensor<3x64xf32>) {expert_temperature = 0.0} : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that only grouped_softmax has group and expert temperatures.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind softmax does not take group_temperature or expert_temperature}}
  %w = atmoe.route softmax %h layer(@l) expert_weight(%we : tensor<3x64xf32>) {expert_temperature = 2.0} : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that grouped_softmax uses top_k_groups, not top_k.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind grouped_softmax does not take top_k; use top_k_groups}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [2, 1] group_weight(%wg : tensor<2x64xf32>) expert_weight(%we : tensor<3x64xf32>) {top_k = 1 : i64} : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that top_k is at least 1.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects top_k (0) to be >= 1}}
  %w = atmoe.route softmax %h layer(@l) expert_weight(%we : tensor<3x64xf32>) {top_k = 0 : i64} : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that top_k is at most E.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects top_k (4) to be <= number of experts (3)}}
  %w = atmoe.route sigmoid %h layer(@l) expert_weight(%we : tensor<3x64xf32>) {top_k = 4 : i64} : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that only grouped_softmax takes top_k_groups.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{with kind softmax does not take top_k_groups}}
  %w = atmoe.route softmax %h layer(@l) expert_weight(%we : tensor<3x64xf32>) {top_k_groups = 1 : i64} : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that top_k_groups is at least 1.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects top_k_groups (0) to be >= 1}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [2, 1] group_weight(%wg : tensor<2x64xf32>) expert_weight(%we : tensor<3x64xf32>) {top_k_groups = 0 : i64} : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that top_k_groups is at most G.
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects top_k_groups (3) to be <= number of groups (2)}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [2, 1] group_weight(%wg : tensor<2x64xf32>) expert_weight(%we : tensor<3x64xf32>) {top_k_groups = 3 : i64} : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that route references a layer.
func.func @g() {
  return
}
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects @g to reference an atmoe.layer}}
  %w = atmoe.route softmax %h layer(@g) expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that route has one column per routed expert of its layer.
// expected-note @+1 {{layer declared here}}
atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
  atmoe.expert_group @b {
    atmoe.lora_expert @sum
  }
  atmoe.shared_expert @gen lambda = 0.5
}
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<4x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x4xf32> {
  // expected-error @+1 {{expects 4 routing columns to equal the routed experts of @l (3)}}
  %w = atmoe.route softmax %h layer(@l) expert_weight(%we : tensor<4x64xf32>) : tensor<?x64xf32> -> tensor<?x4xf32>
  return %w : tensor<?x4xf32>
}

// -----

// Tests that route group sizes match its layer.
// expected-note @+1 {{layer declared here}}
atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
  atmoe.expert_group @b {
    atmoe.lora_expert @sum
  }
  atmoe.shared_expert @gen lambda = 0.5
}
func.func @f(%h: tensor<?x64xf32>, %wg: tensor<2x64xf32>, %bg: tensor<2xf32>, %we: tensor<3x64xf32>, %be: tensor<3xf32>, %p: tensor<16x64xf32>, %c: tensor<3x16xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects group sizes [1, 2] to match the groups of @l [2, 1]}}
  %w = atmoe.route grouped_softmax %h layer(@l) groups [1, 2] group_weight(%wg : tensor<2x64xf32>) expert_weight(%we : tensor<3x64xf32>) : tensor<?x64xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that linear weight columns match input features.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x48xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects weight columns (48) to equal input features (64)}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters []   : tensor<?x64xf32>, tensor<32x48xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that bias size matches output features.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>, %bb: tensor<16xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects bias size (16) to equal weight rows (32)}}
  %y = atmoe.lora_linear %x, %w bias(%bb : tensor<16xf32>) layer(@l) adapters []   : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that result rows match input rows.
func.func @f(%x: tensor<4x64xf32>, %w: tensor<32x64xf32>) -> tensor<5x32xf32> {
  // expected-error @+1 {{expects result rows (5) to equal input rows (4)}}
  %y = atmoe.linear %x, %w : tensor<4x64xf32>, tensor<32x64xf32> -> tensor<5x32xf32>
  return %y : tensor<5x32xf32>
}

// -----

// Tests that result columns match output features.
func.func @f(%x: tensor<4x64xf32>, %w: tensor<32x64xf32>) -> tensor<4x16xf32> {
  // expected-error @+1 {{expects result columns (16) to equal weight rows (32)}}
  %y = atmoe.linear %x, %w : tensor<4x64xf32>, tensor<32x64xf32> -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

// Tests that there is one lora_a and one lora_b per adapter.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects one lora_a and one lora_b per adapter (2), got 1 and 1}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>, #atmoe.lora<@qa, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that an expert has one adapter per projection.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects expert @icd once, but adapters #0 and #1 both name it}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>, #atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a, %a : tensor<8x64xf32>, tensor<8x64xf32>) lora_b(%b, %b : tensor<32x8xf32>, tensor<32x8xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that lora_a rows equal the rank.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects lora_a #0 rows (8) to equal the rank (4) of adapter @icd}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 4, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that lora_a columns equal input features.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x32xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects lora_a #0 columns (32) to equal input features (64)}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x32xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that lora_b rows equal output features.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<16x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects lora_b #0 rows (16) to equal output features (32)}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<16x8xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that lora_b columns equal the rank.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x4xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects lora_b #0 columns (4) to equal the rank (8) of adapter @icd}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x4xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that token granularity takes no segments.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>, %s: tensor<?xi64>) -> tensor<?x32xf32> {
  // expected-error @+1 {{with token granularity does not take segments}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x2xf32>) segments(%s : tensor<?xi64>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that segments come with routing weights.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>, %s: tensor<?xi64>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects routing weights when segments are given}}
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence) adapters []  segments(%s : tensor<?xi64>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that token routing has a row per token.
func.func @f(%x: tensor<4x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<3x2xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{expects routing rows (3) to equal input rows (4) with token granularity}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<3x2xf32>) : tensor<4x64xf32>, tensor<32x64xf32> -> tensor<4x32xf32>
  return %y : tensor<4x32xf32>
}

// -----

// Tests that sequence routing has a row per sequence.
func.func @f(%x: tensor<4x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<3x2xf32>, %s: tensor<2xi64>) -> tensor<4x32xf32> {
  // expected-error @+1 {{expects routing rows (3) to equal the number of sequences (2)}}
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<3x2xf32>) segments(%s : tensor<2xi64>) : tensor<4x64xf32>, tensor<32x64xf32> -> tensor<4x32xf32>
  return %y : tensor<4x32xf32>
}

// -----

// Tests that segment lengths are not negative.
func.func @f(%x: tensor<4x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<2x2xf32>) -> tensor<4x32xf32> {
  %s = arith.constant dense<[5, -1]> : tensor<2xi64>
  // expected-error @+1 {{expects segment #1 length (-1) to be >= 0}}
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<2x2xf32>) segments(%s : tensor<2xi64>) : tensor<4x64xf32>, tensor<32x64xf32> -> tensor<4x32xf32>
  return %y : tensor<4x32xf32>
}

// -----

// Tests that segment lengths sum to T.
func.func @f(%x: tensor<4x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<2x2xf32>) -> tensor<4x32xf32> {
  %s = arith.constant dense<[1, 2]> : tensor<2xi64>
  // expected-error @+1 {{expects segment lengths to sum to the input rows (4), got 3}}
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<2x2xf32>) segments(%s : tensor<2xi64>) : tensor<4x64xf32>, tensor<32x64xf32> -> tensor<4x32xf32>
  return %y : tensor<4x32xf32>
}

// -----

// Tests that lora_linear references a layer.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects @l to reference an atmoe.layer}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that adapters name experts of the layer.
// expected-note @+1 {{layer declared here}}
atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
  atmoe.expert_group @b {
    atmoe.lora_expert @sum
  }
  atmoe.shared_expert @gen lambda = 0.5
}
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects adapter #0 to name an expert of @l, but @nope is not one}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@nope, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that routed adapters need routing weights.
atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
  atmoe.expert_group @b {
    atmoe.lora_expert @sum
  }
  atmoe.shared_expert @gen lambda = 0.5
}
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects routing weights for the routed expert @icd}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>)  : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that routing has one column per routed expert.
// expected-note @+1 {{layer declared here}}
atmoe.layer @l {
  atmoe.expert_group @a {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
  atmoe.expert_group @b {
    atmoe.lora_expert @sum
  }
  atmoe.shared_expert @gen lambda = 0.5
}
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x2xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects routing columns (2) to equal the routed experts of @l (3)}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that expanded routing keeps the experts.
func.func @f(%r: tensor<2x3xf32>, %s: tensor<2xi64>, %t: index) -> tensor<?x4xf32> {
  // expected-error @+1 {{expects result columns (4) to equal routing columns (3)}}
  %e = atmoe.expand_segments %r segments(%s : tensor<2xi64>) tokens %t : tensor<2x3xf32> -> tensor<?x4xf32>
  return %e : tensor<?x4xf32>
}

// -----

// Tests that expand_segments takes one routing row per sequence.
func.func @f(%r: tensor<2x3xf32>, %t: index) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects routing rows (2) to equal the number of sequences (1)}}
  %e = atmoe.expand_segments %r tokens %t : tensor<2x3xf32> -> tensor<?x3xf32>
  return %e : tensor<?x3xf32>
}

// -----

// Tests that normalized weights keep the scores' shape.
func.func @f(%v: tensor<?x3xf32>) -> tensor<?x4xf32> {
  // expected-error @+1 {{expects the result shape to equal the expert scores shape}}
  %w = atmoe.normalize_routing softmax %v : tensor<?x3xf32> -> tensor<?x4xf32>
  return %w : tensor<?x4xf32>
}

// -----

// Tests that group scores come exactly with grouped_softmax.
func.func @f(%v: tensor<?x3xf32>, %u: tensor<?x2xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects group scores exactly with kind grouped_softmax}}
  %w = atmoe.normalize_routing softmax %v group_scores(%u : tensor<?x2xf32>) : tensor<?x3xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that normalize_routing shares route's semantic checks.
func.func @f(%v: tensor<?x3xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects top_k (4) to be <= number of experts (3)}}
  %w = atmoe.normalize_routing sigmoid %v {top_k = 4 : i64} : tensor<?x3xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that group scores have one column per group.
func.func @f(%v: tensor<?x3xf32>, %u: tensor<?x3xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects group score columns (3) to equal the number of groups (2)}}
  %w = atmoe.normalize_routing grouped_softmax %v groups [2, 1] group_scores(%u : tensor<?x3xf32>) : tensor<?x3xf32> -> tensor<?x3xf32>
  return %w : tensor<?x3xf32>
}

// -----

// Tests that cosine similarity compares vectors of one width.
func.func @f(%z: tensor<?x16xf32>, %c: tensor<3x8xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{expects lhs columns (16) to equal rhs columns (8)}}
  %s = atmoe.cosine_similarity %z, %c : tensor<?x16xf32>, tensor<3x8xf32> -> tensor<?x3xf32>
  return %s : tensor<?x3xf32>
}

// -----

// Tests that cosine similarity is lhs rows x rhs rows.
func.func @f(%z: tensor<?x16xf32>, %c: tensor<3x16xf32>) -> tensor<?x4xf32> {
  // expected-error @+1 {{expects a result of lhs rows x rhs rows}}
  %s = atmoe.cosine_similarity %z, %c : tensor<?x16xf32>, tensor<3x16xf32> -> tensor<?x4xf32>
  return %s : tensor<?x4xf32>
}

// -----

// Tests that lora_scales has one rank, column and factor per adapter.
func.func @f(%r: tensor<?x3xf32>, %t: index) -> tensor<?x12xf32> {
  // expected-error @+1 {{expects one rank, column and factor per adapter, got 2, 1 and 2}}
  %s = atmoe.lora_scales routing(%r : tensor<?x3xf32>) tokens %t ranks [8, 4] columns [0] factors [1.0, 1.0] : tensor<?x12xf32>
  return %s : tensor<?x12xf32>
}

// -----

// Tests that lora_scales ranks are positive.
func.func @f(%r: tensor<?x3xf32>, %t: index) -> tensor<?x8xf32> {
  // expected-error @+1 {{expects rank #1 (0) to be positive}}
  %s = atmoe.lora_scales routing(%r : tensor<?x3xf32>) tokens %t ranks [8, 0] columns [0, 1] factors [1.0, 1.0] : tensor<?x8xf32>
  return %s : tensor<?x8xf32>
}

// -----

// Tests that lora_scales columns index the routing weights.
func.func @f(%r: tensor<?x3xf32>, %t: index) -> tensor<?x8xf32> {
  // expected-error @+1 {{expects column #0 (3) to be -1 or a column of the routing weights}}
  %s = atmoe.lora_scales routing(%r : tensor<?x3xf32>) tokens %t ranks [8] columns [3] factors [1.0] : tensor<?x8xf32>
  return %s : tensor<?x8xf32>
}

// -----

// Tests that lora_scales has one column per rank slot.
func.func @f(%r: tensor<?x3xf32>, %t: index) -> tensor<?x9xf32> {
  // expected-error @+1 {{expects result columns (9) to equal the sum of the ranks (8)}}
  %s = atmoe.lora_scales routing(%r : tensor<?x3xf32>) tokens %t ranks [8] columns [0] factors [1.0] : tensor<?x9xf32>
  return %s : tensor<?x9xf32>
}

// -----

// Tests that lora_scales has one row per routing row.
func.func @f(%r: tensor<4x3xf32>, %t: index) -> tensor<5x8xf32> {
  // expected-error @+1 {{expects result rows (5) to equal routing rows (4)}}
  %s = atmoe.lora_scales routing(%r : tensor<4x3xf32>) tokens %t ranks [8] columns [0] factors [1.0] : tensor<5x8xf32>
  return %s : tensor<5x8xf32>
}

// -----

// Tests that the stacked down-projection reads the input features.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %d: tensor<12x32xf32>, %u: tensor<32x12xf32>, %s: tensor<?x12xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects down columns (32) to equal input features (64)}}
  %y = atmoe.stacked_lora_linear %x, %w down(%d : tensor<12x32xf32>) up(%u : tensor<32x12xf32>) scales(%s : tensor<?x12xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that the stacked up-projection writes the output features.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %d: tensor<12x64xf32>, %u: tensor<16x12xf32>, %s: tensor<?x12xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects up rows (16) to equal output features (32)}}
  %y = atmoe.stacked_lora_linear %x, %w down(%d : tensor<12x64xf32>) up(%u : tensor<16x12xf32>) scales(%s : tensor<?x12xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that up and scales span the stacked rank.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %d: tensor<12x64xf32>, %u: tensor<32x8xf32>, %s: tensor<?x12xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects up columns (8) and scales columns (12) to equal down rows (12)}}
  %y = atmoe.stacked_lora_linear %x, %w down(%d : tensor<12x64xf32>) up(%u : tensor<32x8xf32>) scales(%s : tensor<?x12xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that scales have one row per token.
func.func @f(%x: tensor<4x64xf32>, %w: tensor<32x64xf32>, %d: tensor<12x64xf32>, %u: tensor<32x12xf32>, %s: tensor<5x12xf32>) -> tensor<4x32xf32> {
  // expected-error @+1 {{expects scales rows (5) to equal input rows (4)}}
  %y = atmoe.stacked_lora_linear %x, %w down(%d : tensor<12x64xf32>) up(%u : tensor<32x12xf32>) scales(%s : tensor<5x12xf32>) : tensor<4x64xf32>, tensor<32x64xf32> -> tensor<4x32xf32>
  return %y : tensor<4x32xf32>
}

// -----

// Tests that the merged down-projection reads the weight's columns.
func.func @f(%w: tensor<32x64xf32>, %d: tensor<12x32xf32>, %u: tensor<32x12xf32>, %s: tensor<1x12xf32>) -> tensor<32x64xf32> {
  // expected-error @+1 {{expects down columns (32) to equal weight columns (64)}}
  %m = atmoe.merge_lora %w down(%d : tensor<12x32xf32>) up(%u : tensor<32x12xf32>) scales(%s : tensor<1x12xf32>) : tensor<32x64xf32>
  return %m : tensor<32x64xf32>
}

// -----

// Tests that the merged up-projection writes the weight's rows.
func.func @f(%w: tensor<32x64xf32>, %d: tensor<12x64xf32>, %u: tensor<16x12xf32>, %s: tensor<1x12xf32>) -> tensor<32x64xf32> {
  // expected-error @+1 {{expects up rows (16) to equal weight rows (32)}}
  %m = atmoe.merge_lora %w down(%d : tensor<12x64xf32>) up(%u : tensor<16x12xf32>) scales(%s : tensor<1x12xf32>) : tensor<32x64xf32>
  return %m : tensor<32x64xf32>
}

// -----

// Tests that up and scales of a merge span the stacked rank.
func.func @f(%w: tensor<32x64xf32>, %d: tensor<12x64xf32>, %u: tensor<32x12xf32>, %s: tensor<1x8xf32>) -> tensor<32x64xf32> {
  // expected-error @+1 {{expects up columns (12) and scales columns (8) to equal down rows (12)}}
  %m = atmoe.merge_lora %w down(%d : tensor<12x64xf32>) up(%u : tensor<32x12xf32>) scales(%s : tensor<1x8xf32>) : tensor<32x64xf32>
  return %m : tensor<32x64xf32>
}

// -----

// Tests that a merge takes one routing row's scales.
func.func @f(%w: tensor<32x64xf32>, %d: tensor<12x64xf32>, %u: tensor<32x12xf32>, %s: tensor<2x12xf32>) -> tensor<32x64xf32> {
  // expected-error @+1 {{expects one row of scales, got 2}}
  %m = atmoe.merge_lora %w down(%d : tensor<12x64xf32>) up(%u : tensor<32x12xf32>) scales(%s : tensor<2x12xf32>) : tensor<32x64xf32>
  return %m : tensor<32x64xf32>
}

// -----

// Tests that a weight must be stored as f32, f16 or bf16.
func.func @f(%x: tensor<?x8xf32>, %w: tensor<4x8xi8>) -> tensor<?x4xf32> {
  // expected-error @+1 {{operand #1 must be 2D tensor of 32-bit float or 16-bit float or bfloat16 type values}}
  %y = atmoe.linear %x, %w : tensor<?x8xf32>, tensor<4x8xi8> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Tests that activations stay f32 even when weights are bf16.
func.func @f(%x: tensor<?x8xbf16>, %w: tensor<4x8xbf16>) -> tensor<?x4xf32> {
  // expected-error @+1 {{operand #0 must be 2D tensor of 32-bit float values}}
  %y = atmoe.linear %x, %w : tensor<?x8xbf16>, tensor<4x8xbf16> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

// Tests that only 4- and 8-bit values are accepted.
func.func @f(%q: tensor<12x64xi32>, %s: tensor<2x64xf16>) -> tensor<64x64xf32> {
  // expected-error @+1 {{expects 4 or 8 bits per value, got 3}}
  %w = atmoe.dequantize #atmoe.gptq<bits = 3, group_size = 32, zero_offset = 1> %q scales(%s : tensor<2x64xf16>)
         : tensor<12x64xi32> -> tensor<64x64xf32>
  return %w : tensor<64x64xf32>
}

// -----

// Tests that the group size must divide in_features, naming both.
func.func @f(%q: tensor<8x64xi32>, %s: tensor<2x64xf16>) -> tensor<64x64xf32> {
  // expected-error @+1 {{expects the group size (48) to divide in_features (64)}}
  %w = atmoe.dequantize #atmoe.gptq<bits = 4, group_size = 48, zero_offset = 1> %q scales(%s : tensor<2x64xf16>)
         : tensor<8x64xi32> -> tensor<64x64xf32>
  return %w : tensor<64x64xf32>
}

// -----

// Tests that the packed weight's shape follows from bits and sizes.
func.func @f(%q: tensor<16x64xi32>, %s: tensor<2x64xf16>) -> tensor<64x64xf32> {
  // expected-error @+1 {{expects qweight to be 8x64 (in_features * bits / 32 x out_features), got 16x64}}
  %w = atmoe.dequantize #atmoe.gptq<bits = 4, group_size = 32, zero_offset = 1> %q scales(%s : tensor<2x64xf16>)
         : tensor<16x64xi32> -> tensor<64x64xf32>
  return %w : tensor<64x64xf32>
}

// -----

// Tests that scales need one row per group.
func.func @f(%q: tensor<8x64xi32>, %s: tensor<1x64xf16>) -> tensor<64x64xf32> {
  // expected-error @+1 {{expects scales to be 2x64 (in_features / group_size x out_features), got 1x64}}
  %w = atmoe.dequantize #atmoe.gptq<bits = 4, group_size = 32, zero_offset = 1> %q scales(%s : tensor<1x64xf16>)
         : tensor<8x64xi32> -> tensor<64x64xf32>
  return %w : tensor<64x64xf32>
}

// -----

// Tests that zero points are packed along out_features.
func.func @f(%q: tensor<8x64xi32>, %s: tensor<2x64xf16>, %z: tensor<2x64xi32>) -> tensor<64x64xf32> {
  // expected-error @+1 {{expects zeros to be 2x8 (in_features / group_size x out_features * bits / 32), got 2x64}}
  %w = atmoe.dequantize #atmoe.gptq<bits = 4, group_size = 32, zero_offset = 1> %q scales(%s : tensor<2x64xf16>) zeros(%z : tensor<2x64xi32>)
         : tensor<8x64xi32> -> tensor<64x64xf32>
  return %w : tensor<64x64xf32>
}

// -----

// Tests that packed zero points need out_features to fill whole words.
func.func @f(%q: tensor<8x12xi32>, %s: tensor<2x12xf16>, %z: tensor<2x1xi32>) -> tensor<12x64xf32> {
  // expected-error @+1 {{expects out_features (12) to be a multiple of 8 to pack zero points (4-bit values)}}
  %w = atmoe.dequantize #atmoe.gptq<bits = 4, group_size = 32, zero_offset = 1> %q scales(%s : tensor<2x12xf16>) zeros(%z : tensor<2x1xi32>)
         : tensor<8x12xi32> -> tensor<12x64xf32>
  return %w : tensor<12x64xf32>
}

// -----

// Tests the zero offset: 1 for "gptq" checkpoints, 0 for "gptq_v2".
func.func @f(%q: tensor<8x64xi32>, %s: tensor<2x64xf16>) -> tensor<64x64xf32> {
  // expected-error @+1 {{expects a zero offset of 0 (gptq_v2) or 1 (gptq), got 2}}
  %w = atmoe.dequantize #atmoe.gptq<bits = 4, group_size = 32, zero_offset = 2> %q scales(%s : tensor<2x64xf16>)
         : tensor<8x64xi32> -> tensor<64x64xf32>
  return %w : tensor<64x64xf32>
}

// -----

// Tests that in_features must fill whole words.
func.func @f(%q: tensor<1x64xi32>, %s: tensor<1x64xf16>) -> tensor<64x12xf32> {
  // expected-error @+1 {{expects in_features (12) to be a multiple of 8 (4-bit values per i32 word)}}
  %w = atmoe.dequantize #atmoe.gptq<bits = 4, group_size = 12, zero_offset = 1> %q scales(%s : tensor<1x64xf16>)
         : tensor<1x64xi32> -> tensor<64x12xf32>
  return %w : tensor<64x12xf32>
}

// -----

// Tests that an adapter is at most one of PEFT's variants.
atmoe.layer @l { atmoe.expert_group @g { atmoe.lora_expert @icd } }
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x1xf32>, %v: tensor<32xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects adapter @icd to be at most one of bias and dora}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0, bias, dora>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) lora_bias(%v : tensor<32xf32>) dora_scale(%v : tensor<32xf32>) routing(%r : tensor<?x1xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that a variant is one of bias and dora, each once.
atmoe.layer @l { atmoe.expert_group @g { atmoe.lora_expert @icd } }
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x1xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expected 'bias' or 'dora' once each}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0, magnitude>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x1xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that a bias adapter comes with its lora_bias.
atmoe.layer @l { atmoe.expert_group @g { atmoe.lora_expert @icd } }
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x1xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects one lora_bias per bias adapter (1) and one dora_scale per dora adapter (0), got 0 and 0}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0, bias>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) routing(%r : tensor<?x1xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests that a DoRA scale has one entry per output feature.
atmoe.layer @l { atmoe.expert_group @g { atmoe.lora_expert @icd } }
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %r: tensor<?x1xf32>, %c: tensor<16xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects lora_bias and dora_scale of 32 output features, got 'tensor<16xf32>'}}
  %y = atmoe.lora_linear %x, %w layer(@l) adapters [#atmoe.lora<@icd, rank = 8, alpha = 16.0, dora>] lora_a(%a : tensor<8x64xf32>) lora_b(%b : tensor<32x8xf32>) dora_scale(%c : tensor<16xf32>) routing(%r : tensor<?x1xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests dora_scale's shapes: lora_b must have the weight's rows.
func.func @f(%w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<16x8xf32>, %m: tensor<32xf32>) -> tensor<32xf32> {
  // expected-error @+1 {{expects lora_a rank x 64 and lora_b 32 x rank for a weight of 'tensor<32x64xf32>', got 'tensor<8x64xf32>' and 'tensor<16x8xf32>'}}
  %c = atmoe.dora_scale %w, %a, %b, %m scale = 2.0 : tensor<32x64xf32>, tensor<8x64xf32>, tensor<16x8xf32>, tensor<32xf32> -> tensor<32xf32>
  return %c : tensor<32xf32>
}

// -----

// Tests dora_scale's shapes: one magnitude per output feature.
func.func @f(%w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %m: tensor<64xf32>) -> tensor<32xf32> {
  // expected-error @+1 {{expects magnitude and result of 32 output features, got 'tensor<64xf32>'}}
  %c = atmoe.dora_scale %w, %a, %b, %m scale = 2.0 : tensor<32x64xf32>, tensor<8x64xf32>, tensor<32x8xf32>, tensor<64xf32> -> tensor<32xf32>
  return %c : tensor<32xf32>
}

// -----

// Tests dora_scale's scale: finite.
func.func @f(%w: tensor<32x64xf32>, %a: tensor<8x64xf32>, %b: tensor<32x8xf32>, %m: tensor<32xf32>) -> tensor<32xf32> {
  // expected-error @+1 {{expects a finite scale}}
  %c = atmoe.dora_scale %w, %a, %b, %m scale = 0x7FF0000000000000 : tensor<32x64xf32>, tensor<8x64xf32>, tensor<32x8xf32>, tensor<32xf32> -> tensor<32xf32>
  return %c : tensor<32xf32>
}

// -----

// Tests the stacked op's variant terms: T x d_out.
func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>, %down: tensor<12x64xf32>, %up: tensor<32x12xf32>, %s: tensor<?x12xf32>, %t: tensor<?x16xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{expects base_scale to be input rows x output features (?x32), got 'tensor<?x16xf32>'}}
  %y = atmoe.stacked_lora_linear %x, %w down(%down : tensor<12x64xf32>) up(%up : tensor<32x12xf32>) scales(%s : tensor<?x12xf32>) base_scale(%t : tensor<?x16xf32>) : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Tests scale_rows: one scale per row.
func.func @f(%b: tensor<32x8xf32>, %c: tensor<16xf32>) -> tensor<32x8xf32> {
  // expected-error @+1 {{expects one scale per row (32), got 'tensor<16xf32>'}}
  %0 = atmoe.scale_rows %b, %c : tensor<32x8xf32>, tensor<16xf32>
  return %0 : tensor<32x8xf32>
}
