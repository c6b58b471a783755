// RUN: atmoe-opt --canonicalize %atmoe_src_root/examples/demo/demo.mlir | FileCheck %s

// Tests that the bundled example model stays valid and canonicalises as the
// README says: layer 1's singleton groups make a flat softmax, lambda = 1
// drops the shared adapter and the expert-less v_proj is a plain linear.
// CHECK-LABEL: func.func @layer0_forward
// CHECK: atmoe.route grouped_softmax
// CHECK: atmoe.lora_linear
// CHECK-SAME: #atmoe.lora<@general, rank = 8
// CHECK-LABEL: func.func @layer1_forward
// CHECK: atmoe.route softmax
// CHECK: atmoe.lora_linear
// CHECK-NOT: @general,
// CHECK-SAME: routing
// CHECK: atmoe.linear
