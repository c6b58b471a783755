// RUN: atmoe-opt %s --atmoe-allow-fp-reassociation | FileCheck %s

// Tests that reassoc and contract are added, existing flags are kept, and
// ops without fast-math flags are untouched.
// CHECK-LABEL: func.func @flags
// CHECK: arith.mulf %{{.+}}, %{{.+}} fastmath<reassoc,contract> : f32
// CHECK: arith.addf %{{.+}}, %{{.+}} fastmath<reassoc,nnan,contract> : f32
// CHECK: arith.addi %{{.+}}, %{{.+}} : i32
func.func @flags(%a: f32, %b: f32, %i: i32) -> (f32, i32) {
  %m = arith.mulf %a, %b : f32
  %s = arith.addf %m, %b fastmath<nnan> : f32
  %j = arith.addi %i, %i : i32
  return %s, %j : f32, i32
}
