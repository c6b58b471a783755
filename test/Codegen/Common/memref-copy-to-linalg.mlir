// RUN: atmoe-opt %s --atmoe-memref-copy-to-linalg | FileCheck %s

// Tests that a strided copy becomes a linalg.copy.
// CHECK-LABEL: func.func @copy
// CHECK-SAME: (%[[A:.+]]: memref<4x2xf32>, %[[B:.+]]: memref<4x2xf32, strided<[5, 1]>>)
// CHECK-NOT: memref.copy
// CHECK: linalg.copy ins(%[[A]] : memref<4x2xf32>) outs(%[[B]] : memref<4x2xf32, strided<[5, 1]>>)
func.func @copy(%a: memref<4x2xf32>, %b: memref<4x2xf32, strided<[5, 1]>>) {
  memref.copy %a, %b : memref<4x2xf32> to memref<4x2xf32, strided<[5, 1]>>
  return
}
