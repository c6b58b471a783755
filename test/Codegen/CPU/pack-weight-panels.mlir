// RUN: atmoe-opt %s --split-input-file --pass-pipeline='builtin.module(func.func(atmoe-pack-weight-panels{panel-width=64}))' | FileCheck %s
// RUN: atmoe-opt %s --split-input-file --pass-pipeline='builtin.module(func.func(atmoe-pack-weight-panels{panel-width=64}),atmoe-apply-cpu-schedule,one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map},atmoe-lower-cpu-matmuls{int8-activations=true},canonicalize)' | FileCheck %s --check-prefix=KERNEL
// RUN: atmoe-opt %S/Inputs/any-function.mlir --pass-pipeline='builtin.module(func.func(atmoe-pack-weight-panels{panel-width=0}))' -verify-diagnostics -o /dev/null

#x = affine_map<(t, n, k) -> (t, k)>
#qw = affine_map<(t, n, k) -> (k floordiv 8, n)>
#sc = affine_map<(t, n, k) -> (k floordiv 128, n)>
#y = affine_map<(t, n, k) -> (t, n)>

// A qweight only GPTQ products read, with 128 output features: two panels
// of 64, read through (n floordiv 64, k floordiv 8, n mod 64).
// CHECK: #[[$PANELS:.+]] = affine_map<(d0, d1, d2) -> (d1 floordiv 64, d2 floordiv 8, d1 mod 64)>
// CHECK-LABEL: func.func @packed(
// CHECK-SAME: %{{.+}}: tensor<2x32x64xi32> {atmoe.file = "w.safetensors", atmoe.panel_width = 64 : i64, atmoe.source = "qweight", atmoe.tensor = "qweight"}
// CHECK: linalg.generic {indexing_maps = [#{{[a-z0-9]+}}, #[[$PANELS]],
// CHECK-SAME: ins({{.+}} : tensor<?x256xf32>, tensor<2x32x64xi32>, tensor<2x128xf16>)

// The schedule tiles the product by 64 features, one panel per tile: the
// kernel reads the tile's panel as a 2-D [32, 64] view. x is rounded to
// int8 once, before the parallel loop, in heap buffers freed after it.
// KERNEL-LABEL: func.func @packed(
// KERNEL: %[[BYTES:.+]] = memref.alloc({{.+}}) : memref<?x64xi32>
// KERNEL: math.roundeven
// KERNEL: scf.forall
// KERNEL: memref.subview {{.+}}[0, 0, 0] [1, 32, 64] [1, 1, 1] : memref<1x32x64xi32, strided<[2048, 64, 1], offset: ?>> to memref<32x64xi32, strided<[64, 1], offset: ?>>
// From 64 tokens on, each block of 64 values of k (within one group of
// 128) is dequantised once into an f32 stack buffer that the float panel
// kernel multiplies every token by; fewer tokens take the register tiles.
// KERNEL: arith.cmpi uge, %{{.+}}, %c64 : index
// KERNEL: memref.alloca() {alignment = 64 : i64} : memref<64x64xf32>
// KERNEL: vector.store {{.+}} : memref<64x64xf32>, vector<16xf32>
// KERNEL: vector.load %alloca[{{.+}}] : memref<64x64xf32>, vector<16xf32>
// KERNEL: vector.broadcast {{.+}} : f32 to vector<16xf32>
// KERNEL: vector.fma
// KERNEL: } else {
// KERNEL-NOT: math.roundeven
// KERNEL: memref.load %[[BYTES]]
// KERNEL: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// KERNEL: memref.dealloc %[[BYTES]]
// KERNEL: return
func.func @packed(%x: tensor<?x256xf32> {atmoe.input = "x"},
                  %q: tensor<32x128xi32> {atmoe.tensor = "qweight", atmoe.file = "w.safetensors", atmoe.source = "qweight"},
                  %s: tensor<2x128xf16> {atmoe.tensor = "scales", atmoe.file = "w.safetensors", atmoe.source = "scales"})
    -> (tensor<?x128xf32> {atmoe.output = "x"}) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x256xf32>
  %empty = tensor.empty(%t) : tensor<?x128xf32>
  %init = linalg.fill ins(%zero : f32) outs(%empty : tensor<?x128xf32>) -> tensor<?x128xf32>
  %y = linalg.generic {indexing_maps = [#x, #qw, #sc, #y],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %q, %s : tensor<?x256xf32>, tensor<32x128xi32>, tensor<2x128xf16>)
      outs(%init : tensor<?x128xf32>)
      attrs = {atmoe.matmul_role = "projection",
               atmoe.quantization = #atmoe.gptq<bits = 4, group_size = 128, zero_offset = 1>} {
  ^bb0(%in: f32, %word: i32, %scale: f16, %out: f32):
    %k = linalg.index 2 : index
    %c8 = arith.constant 8 : index
    %c4_i32 = arith.constant 4 : i32
    %c15_i32 = arith.constant 15 : i32
    %zp = arith.constant 8.0 : f32
    %kp = arith.remui %k, %c8 : index
    %kpi = arith.index_cast %kp : index to i32
    %ks = arith.muli %kpi, %c4_i32 : i32
    %qs = arith.shrui %word, %ks : i32
    %qm = arith.andi %qs, %c15_i32 : i32
    %qf = arith.uitofp %qm : i32 to f32
    %sf = arith.extf %scale : f16 to f32
    %d = arith.subf %qf, %zp : f32
    %w = arith.mulf %sf, %d : f32
    %p = arith.mulf %in, %w : f32
    %r = arith.addf %out, %p : f32
    linalg.yield %r : f32
  } -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

#x = affine_map<(t, n, k) -> (t, k)>
#qw = affine_map<(t, n, k) -> (k floordiv 8, n)>
#y = affine_map<(t, n, k) -> (t, n)>

// Left as stored: 96 output features (not whole panels), and a qweight that
// something other than a GPTQ product reads.
// CHECK-LABEL: func.func @stored(
// CHECK-SAME: %{{.+}}: tensor<32x96xi32> {atmoe.file = "w", atmoe.source = "a", atmoe.tensor = "a"}
// CHECK-SAME: %{{.+}}: tensor<32x128xi32> {atmoe.file = "w", atmoe.source = "b", atmoe.tensor = "b"}
// CHECK-NOT: atmoe.panel_width
// CHECK: return
func.func @stored(%x: tensor<4x256xf32>, %a: tensor<32x96xi32> {atmoe.tensor = "a", atmoe.file = "w", atmoe.source = "a"},
                  %b: tensor<32x128xi32> {atmoe.tensor = "b", atmoe.file = "w", atmoe.source = "b"},
                  %y0: tensor<4x96xf32>, %y1: tensor<4x128xf32>)
    -> (tensor<4x96xf32>, tensor<4x128xf32>, tensor<32x128xi32>) {
  %r0 = linalg.generic {indexing_maps = [#x, #qw, #y],
                        iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %a : tensor<4x256xf32>, tensor<32x96xi32>) outs(%y0 : tensor<4x96xf32>)
      attrs = {atmoe.quantization = #atmoe.gptq<bits = 4, group_size = 128, zero_offset = 1>} {
  ^bb0(%in: f32, %word: i32, %out: f32):
    linalg.yield %out : f32
  } -> tensor<4x96xf32>
  %r1 = linalg.generic {indexing_maps = [#x, #qw, #y],
                        iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %b : tensor<4x256xf32>, tensor<32x128xi32>) outs(%y1 : tensor<4x128xf32>)
      attrs = {atmoe.quantization = #atmoe.gptq<bits = 4, group_size = 128, zero_offset = 1>} {
  ^bb0(%in: f32, %word: i32, %out: f32):
    linalg.yield %out : f32
  } -> tensor<4x128xf32>
  return %r0, %r1, %b : tensor<4x96xf32>, tensor<4x128xf32>, tensor<32x128xi32>
}

// -----

// A bf16 weight [128, 256] read only as the W of y = x W^T: two panels of
// 64 output features, each [256, 64] (k-major), read through
// (n floordiv 64, k, n mod 64) by the matmul turned generic, which keeps
// its role and widens the weight in its body.
// CHECK: #[[$ROWS:.+]] = affine_map<(d0, d1, d2) -> (d1 floordiv 64, d2, d1 mod 64)>
// CHECK-LABEL: func.func @float_panels(
// CHECK-SAME: %{{.+}}: tensor<2x256x64xbf16> {atmoe.file = "w.safetensors", atmoe.panel_dim = 0 : i64, atmoe.panel_width = 64 : i64, atmoe.source = "w", atmoe.tensor = "w"}
// CHECK-NOT: linalg.matmul
// CHECK: linalg.generic {indexing_maps = [#{{[a-z0-9]+}}, #[[$ROWS]], #{{[a-z0-9]+}}], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-SAME: ins({{.+}} : tensor<?x256xf32>, tensor<2x256x64xbf16>)
// CHECK-SAME: attrs = {atmoe.matmul_role = "projection"}
// CHECK: ^bb0(%[[IN:.+]]: f32, %[[W:.+]]: bf16, %[[OUT:.+]]: f32):
// CHECK: %[[WIDE:.+]] = arith.extf %[[W]] : bf16 to f32
// CHECK: %[[MUL:.+]] = arith.mulf %[[IN]], %[[WIDE]] : f32
// CHECK: %[[ADD:.+]] = arith.addf %[[OUT]], %[[MUL]] : f32
// CHECK: linalg.yield %[[ADD]]

// Each thread's tile is one panel: the kernel multiplies broadcast tokens
// by rows of the rank-reduced [256, 64] panel, asks for the next block
// ahead in full tiles, and keeps the generic for any other tiling.
// KERNEL-LABEL: func.func @float_panels(
// KERNEL: scf.forall
// KERNEL: scf.if
// KERNEL: memref.subview {{.+}}[0, 0, 0] [1, 256, 64] [1, 1, 1] : memref<1x256x64xbf16, strided<[16384, 64, 1], offset: ?>> to memref<256x64xbf16, strided<[64, 1], offset: ?>>
// KERNEL: memref.prefetch
// KERNEL: vector.load {{.+}} : memref<256x64xbf16, strided<[64, 1], offset: ?>>, vector<16xbf16>
// KERNEL: arith.extf {{.+}} : vector<16xbf16> to vector<16xf32>
// KERNEL: vector.broadcast {{.+}} : f32 to vector<16xf32>
// KERNEL: vector.fma
// KERNEL: } else {
// KERNEL: linalg.generic
// KERNEL: return
func.func @float_panels(%x: tensor<?x256xf32> {atmoe.input = "x"},
                        %w: tensor<128x256xbf16> {atmoe.tensor = "w", atmoe.file = "w.safetensors", atmoe.source = "w"})
    -> (tensor<?x128xf32> {atmoe.output = "x"}) {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %t = tensor.dim %x, %c0 : tensor<?x256xf32>
  %empty = tensor.empty(%t) : tensor<?x128xf32>
  %init = linalg.fill ins(%zero : f32) outs(%empty : tensor<?x128xf32>) -> tensor<?x128xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                      affine_map<(t, n, k) -> (n, k)>,
                                      affine_map<(t, n, k) -> (t, n)>]
      {atmoe.matmul_role = "projection"}
      ins(%x, %w : tensor<?x256xf32>, tensor<128x256xbf16>)
      outs(%init : tensor<?x128xf32>) -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// -----

// Left as stored: 96 output features (not whole panels), a weight also
// read by something other than y = x W^T, a matmul reading W [k, n]
// untransposed, and a stack of adapters assembled at bind time.
// CHECK-LABEL: func.func @float_stored(
// CHECK-SAME: %{{.+}}: tensor<96x256xf32> {atmoe.file = "w", atmoe.source = "a", atmoe.tensor = "a"}
// CHECK-SAME: %{{.+}}: tensor<128x256xf32> {atmoe.file = "w", atmoe.source = "b", atmoe.tensor = "b"}
// CHECK-SAME: %{{.+}}: tensor<256x128xf32> {atmoe.file = "w", atmoe.source = "c", atmoe.tensor = "c"}
// CHECK-SAME: %{{.+}}: tensor<128x256xbf16> {atmoe.concat_dim = 0 : i64, atmoe.parts = [{file = "w", shape = array<i64: 64, 256>, source = "e0", tensor = "e0"}, {file = "w", shape = array<i64: 64, 256>, source = "e1", tensor = "e1"}], atmoe.tensor = "stack(e0, e1)"}
// CHECK-NOT: atmoe.panel_width
// CHECK: return
func.func @float_stored(%x: tensor<4x256xf32>,
                        %a: tensor<96x256xf32> {atmoe.tensor = "a", atmoe.file = "w", atmoe.source = "a"},
                        %b: tensor<128x256xf32> {atmoe.tensor = "b", atmoe.file = "w", atmoe.source = "b"},
                        %c: tensor<256x128xf32> {atmoe.tensor = "c", atmoe.file = "w", atmoe.source = "c"},
                        %s: tensor<128x256xbf16> {atmoe.concat_dim = 0 : i64, atmoe.parts = [{file = "w", shape = array<i64: 64, 256>, source = "e0", tensor = "e0"}, {file = "w", shape = array<i64: 64, 256>, source = "e1", tensor = "e1"}], atmoe.tensor = "stack(e0, e1)"},
                        %y0: tensor<4x96xf32>, %y1: tensor<4x128xf32>)
    -> (tensor<4x96xf32>, tensor<4x128xf32>, tensor<128x256xf32>, tensor<4x128xf32>, tensor<4x128xf32>) {
  %r0 = linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                       affine_map<(t, n, k) -> (n, k)>,
                                       affine_map<(t, n, k) -> (t, n)>]
      ins(%x, %a : tensor<4x256xf32>, tensor<96x256xf32>) outs(%y0 : tensor<4x96xf32>) -> tensor<4x96xf32>
  %r1 = linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                       affine_map<(t, n, k) -> (n, k)>,
                                       affine_map<(t, n, k) -> (t, n)>]
      ins(%x, %b : tensor<4x256xf32>, tensor<128x256xf32>) outs(%y1 : tensor<4x128xf32>) -> tensor<4x128xf32>
  %r2 = linalg.matmul ins(%x, %c : tensor<4x256xf32>, tensor<256x128xf32>) outs(%y1 : tensor<4x128xf32>) -> tensor<4x128xf32>
  %r3 = linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                       affine_map<(t, n, k) -> (n, k)>,
                                       affine_map<(t, n, k) -> (t, n)>]
      ins(%x, %s : tensor<4x256xf32>, tensor<128x256xbf16>) outs(%y1 : tensor<4x128xf32>) -> tensor<4x128xf32>
  return %r0, %r1, %b, %r2, %r3 : tensor<4x96xf32>, tensor<4x128xf32>, tensor<128x256xf32>, tensor<4x128xf32>, tensor<4x128xf32>
}

// -----

// A weight read as the W of y = x W^T and also copied whole (the W' of a
// merged segment, --sequence-merge=merge next to the unmerged path; f32
// through linalg.copy, bf16 widened by a generic): packed, and each copy
// reads the panels back into the stored layout. A weight that is only
// copied has no product to gain and stays stored.
// CHECK-DAG: #[[$FROM:.+]] = affine_map<(d0, d1) -> (d0 floordiv 64, d1, d0 mod 64)>
// CHECK-DAG: #[[$TO:.+]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func.func @copied(
// CHECK-SAME: %{{.+}}: tensor<2x256x64xf32> {atmoe.file = "w", atmoe.panel_dim = 0 : i64, atmoe.panel_width = 64 : i64, atmoe.source = "a", atmoe.tensor = "a"}
// CHECK-SAME: %{{.+}}: tensor<2x256x64xbf16> {atmoe.file = "w", atmoe.panel_dim = 0 : i64, atmoe.panel_width = 64 : i64, atmoe.source = "b", atmoe.tensor = "b"}
// CHECK-SAME: %{{.+}}: tensor<128x256xf32> {atmoe.file = "w", atmoe.source = "c", atmoe.tensor = "c"}
// CHECK-NOT: linalg.copy ins(%{{.+}} : tensor<2x256x64xf32>
// CHECK: linalg.generic {indexing_maps = [#[[$FROM]], #[[$TO]]], iterator_types = ["parallel", "parallel"]} ins(%{{.+}} : tensor<2x256x64xf32>) outs(%{{.+}} : tensor<128x256xf32>)
// CHECK: linalg.generic {indexing_maps = [#[[$FROM]], #[[$TO]]], iterator_types = ["parallel", "parallel"]} ins(%{{.+}} : tensor<2x256x64xbf16>) outs(%{{.+}} : tensor<128x256xf32>)
// CHECK: arith.extf
// CHECK: linalg.copy ins(%{{.+}} : tensor<128x256xf32>)
func.func @copied(%x: tensor<4x256xf32>,
                  %a: tensor<128x256xf32> {atmoe.tensor = "a", atmoe.file = "w", atmoe.source = "a"},
                  %b: tensor<128x256xbf16> {atmoe.tensor = "b", atmoe.file = "w", atmoe.source = "b"},
                  %c: tensor<128x256xf32> {atmoe.tensor = "c", atmoe.file = "w", atmoe.source = "c"},
                  %y: tensor<4x128xf32>)
    -> (tensor<4x128xf32>, tensor<128x256xf32>, tensor<4x128xf32>, tensor<128x256xf32>, tensor<128x256xf32>) {
  %e = tensor.empty() : tensor<128x256xf32>
  %r0 = linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                       affine_map<(t, n, k) -> (n, k)>,
                                       affine_map<(t, n, k) -> (t, n)>]
      ins(%x, %a : tensor<4x256xf32>, tensor<128x256xf32>) outs(%y : tensor<4x128xf32>) -> tensor<4x128xf32>
  %ca = linalg.copy ins(%a : tensor<128x256xf32>) outs(%e : tensor<128x256xf32>) -> tensor<128x256xf32>
  %r1 = linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                       affine_map<(t, n, k) -> (n, k)>,
                                       affine_map<(t, n, k) -> (t, n)>]
      ins(%x, %b : tensor<4x256xf32>, tensor<128x256xbf16>) outs(%y : tensor<4x128xf32>) -> tensor<4x128xf32>
  %cb = linalg.generic {indexing_maps = [affine_map<(n, k) -> (n, k)>, affine_map<(n, k) -> (n, k)>],
                        iterator_types = ["parallel", "parallel"]}
      ins(%b : tensor<128x256xbf16>) outs(%e : tensor<128x256xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %w = arith.extf %in : bf16 to f32
    linalg.yield %w : f32
  } -> tensor<128x256xf32>
  %cc = linalg.copy ins(%c : tensor<128x256xf32>) outs(%e : tensor<128x256xf32>) -> tensor<128x256xf32>
  return %r0, %ca, %r1, %cb, %cc : tensor<4x128xf32>, tensor<128x256xf32>, tensor<4x128xf32>, tensor<128x256xf32>, tensor<128x256xf32>
}
