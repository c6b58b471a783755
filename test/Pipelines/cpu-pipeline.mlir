// RUN: atmoe-opt %atmoe_src_root/examples/demo/demo.mlir --atmoe-lower-to-linalg-pipeline | FileCheck %s --check-prefix=LINALG
// RUN: atmoe-opt %atmoe_src_root/examples/demo/demo.mlir --atmoe-lower-to-linalg-pipeline --atmoe-cpu-codegen-pipeline | FileCheck %s --check-prefix=LLVM

// Tests that the pipelines take the bundled example from the atmoe dialect to
// linalg on tensors, then to the LLVM dialect with out-parameters.

// LINALG-LABEL: func.func @layer0_forward
// LINALG-SAME: -> (tensor<?x64xf32>, tensor<?x4xf32>)
// LINALG: tensor.concat
// LINALG: linalg.matmul
// LINALG-NOT: {{(= |^ *)atmoe\.}}
// LINALG-LABEL: func.func @layer1_forward
// LINALG-NOT: {{(= |^ *)atmoe\.}}

// LLVM-LABEL: llvm.func @layer0_forward
// LLVM-NOT: linalg.
// LLVM-NOT: memref.
// LLVM-NOT: atmoe.
// LLVM-LABEL: llvm.func @layer1_forward
