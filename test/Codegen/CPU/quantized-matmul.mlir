// RUN: atmoe-opt %s --split-input-file --atmoe-apply-cpu-schedule | FileCheck %s --check-prefix=SCHEDULE
// RUN: atmoe-opt %s --split-input-file --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --atmoe-lower-cpu-matmuls="vector-width=16 quantized-token-tile=2 quantized-feature-vectors=2 quantized-prefetch=4" --canonicalize | FileCheck %s
// RUN: atmoe-opt %s --split-input-file --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --atmoe-lower-cpu-matmuls="vector-width=16 quantized-token-tile=2 quantized-prefetch=0 int8-activations=true" --canonicalize | FileCheck %s --check-prefix=INT8

#x = affine_map<(t, n, k) -> (t, k)>
#qw = affine_map<(t, n, k) -> (k floordiv 8, n)>
#sc = affine_map<(t, n, k) -> (k floordiv 128, n)>
#zp = affine_map<(t, n, k) -> (k floordiv 128, n floordiv 8)>
#y = affine_map<(t, n, k) -> (t, n)>

// Tests that a GPTQ product (the generic --convert-atmoe-to-linalg emits) is
// split into feature blocks across threads like any projection: each block
// reads 64 columns of qweight and scales and 8 words of zero points.
// SCHEDULE-LABEL: func.func @gptq
// SCHEDULE: scf.forall (%{{.+}}) in (2) shared_outs
// SCHEDULE: linalg.generic {{.*}} ins(%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} : tensor<?x256xf32>, tensor<32x64xi32>, tensor<2x64xf16>, tensor<2x8xi32>) outs(%{{.+}} : tensor<?x64xf32>)
// SCHEDULE-SAME: atmoe.quantization = #atmoe.gptq<bits = 4, group_size = 128, zero_offset = 1>

// Tests the kernel. One token over whole vectors (tested at run time): each
// packed row streamed across all features into a stack buffer of products
// with the raw integers, scaled per group. Fewer tokens than a tile: one row
// at a time over blocks of 4 x 16 output features, each group's products
// taken with the raw integers and the activations summed beside them
// (iter_args ending in f32), then scaled once per group. Otherwise: blocks
// of 2 x 16 features, tiles of 2 rows, then single rows. Per group the
// scales (f16, widened) and zero points (2 words spread over 16 lanes, each
// shifted to its value) are loaded once; per packed row, 16 words per vector
// and a prefetch 4 rows ahead; for each of the 8 values a shift, a mask, a
// conversion (and, for several rows, an FMA that scales) before the FMAs
// with broadcast activations; y is updated once per tile. Whole arguments
// start a word of zero points, so the fallback generic folds away.
// CHECK-LABEL: func.func @gptq
// CHECK: %[[FEW:.+]] = arith.cmpi ult, %{{.+}}, %c2
// CHECK: scf.if %[[FEW]] {
// CHECK: %[[ONE:.+]] = arith.cmpi eq, %{{.+}}, %c1
// CHECK: scf.if %[[ONE]] {
// CHECK: %[[PART:.+]] = memref.alloca() : memref<128xf32>
// CHECK: vector.load %{{.+}} : memref<32x128xi32>, vector<16xi32>
// CHECK: memref.prefetch
// CHECK: vector.load %[[PART]]
// CHECK: vector.fma
// CHECK: vector.store %{{.+}}, %[[PART]]
// CHECK: } else {
// CHECK: scf.for {{.+}} step %c64
// CHECK: scf.for {{.+}} iter_args({{.+}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, f32)
// CHECK: } else {
// CHECK: scf.for {{.+}} step %c32
// CHECK: scf.for {{.+}} step %c2
// CHECK: scf.for {{.+}} iter_args({{.+}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK: vector.load %{{.+}} : memref<2x128xf16>, vector<16xf16>
// CHECK: arith.extf {{.+}} : vector<16xf16> to vector<16xf32>
// CHECK: %[[WORDS:.+]] = vector.load %{{.+}} : memref<2x16xi32>, vector<2xi32>
// CHECK: vector.shuffle %[[WORDS]], %[[WORDS]] [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]
// CHECK: arith.shrui %{{.+}}, %cst{{.*}} : vector<16xi32>
// CHECK: arith.uitofp {{.+}} : vector<16xi32> to vector<16xf32>
// CHECK: scf.for
// CHECK-COUNT-2: vector.load %{{.+}} : memref<32x128xi32>, vector<16xi32>
// CHECK: memref.prefetch
// CHECK: arith.andi {{.+}} : vector<16xi32>
// CHECK: arith.uitofp
// CHECK: vector.fma
// CHECK: vector.broadcast
// CHECK: vector.fma
// CHECK: arith.shrui {{.+}} : vector<16xi32>
// CHECK: vector.store {{.+}} : memref<?x128xf32>, vector<16xf32>
// CHECK-NOT: linalg.generic
// CHECK: return
// With int8-activations, fewer tokens than a tile: the rows of x are rounded
// to int8 first (here in the tile: no parallel loop encloses it), each block
// of 128 activations (one group) with scale max|x| / 127, reordered per
// 4-bit word (even k, then odd k) and packed four to an i32. Then per row,
// block and 4 x 16 features, each packed row's low and high nibbles meet
// those bytes in two VNNI dot products into i32 register sums, scaled into
// f32 sums once per block.
// INT8-LABEL: func.func @gptq(
// INT8: %[[ROWS:.+]] = arith.select
// INT8: memref.alloca(%[[ROWS]]) : memref<?x64xi32>
// INT8: scf.for {{.+}} to %[[ROWS]]
// INT8: arith.maximumf {{.+}} : vector<16xf32>
// INT8: vector.reduction <maximumf>
// INT8: math.roundeven {{.+}} : vector<16xf32>
// INT8: vector.shuffle {{.+}} [0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15] : vector<16xi8>
// INT8: vector.bitcast {{.+}} : vector<16xi8> to vector<4xi32>
// INT8: vector.reduction <add>
// INT8: scf.if
// INT8: scf.for {{.+}} iter_args({{.+}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// INT8: scf.for {{.+}} iter_args({{.+}}) -> (vector<16xi32>, vector<16xi32>, vector<16xi32>, vector<16xi32>)
// INT8: vector.bitcast {{.+}} : vector<16xi32> to vector<64xi8>
// INT8: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// INT8: arith.shrui
// INT8: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// INT8: arith.sitofp {{.+}} : vector<16xi32> to vector<16xf32>
// INT8: vector.fma
// INT8: vector.fma
// INT8: } else {
// INT8-NOT: llvm.call_intrinsic
// INT8: return
func.func @gptq(%x: tensor<?x256xf32>, %q: tensor<32x128xi32>, %s: tensor<2x128xf16>,
                %z: tensor<2x16xi32>, %init: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %y = linalg.generic {indexing_maps = [#x, #qw, #sc, #zp, #y],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %q, %s, %z : tensor<?x256xf32>, tensor<32x128xi32>, tensor<2x128xf16>, tensor<2x16xi32>)
      outs(%init : tensor<?x128xf32>)
      attrs = {atmoe.matmul_role = "projection",
               atmoe.quantization = #atmoe.gptq<bits = 4, group_size = 128, zero_offset = 1>} {
  ^bb0(%in: f32, %word: i32, %scale: f16, %zword: i32, %out: f32):
    %n = linalg.index 1 : index
    %k = linalg.index 2 : index
    %c8 = arith.constant 8 : index
    %c4_i32 = arith.constant 4 : i32
    %c15_i32 = arith.constant 15 : i32
    %one = arith.constant 1.0 : f32
    %kp = arith.remui %k, %c8 : index
    %kpi = arith.index_cast %kp : index to i32
    %ks = arith.muli %kpi, %c4_i32 : i32
    %qs = arith.shrui %word, %ks : i32
    %qm = arith.andi %qs, %c15_i32 : i32
    %qf = arith.uitofp %qm : i32 to f32
    %np = arith.remui %n, %c8 : index
    %npi = arith.index_cast %np : index to i32
    %ns = arith.muli %npi, %c4_i32 : i32
    %zs = arith.shrui %zword, %ns : i32
    %zm = arith.andi %zs, %c15_i32 : i32
    %zf = arith.uitofp %zm : i32 to f32
    %zo = arith.addf %zf, %one : f32
    %sf = arith.extf %scale : f16 to f32
    %d = arith.subf %qf, %zo : f32
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
#sc = affine_map<(t, n, k) -> (k floordiv 128, n)>
#y = affine_map<(t, n, k) -> (t, n)>

// Tests a tile (a view at a run-time offset, 40 features): the kernel runs
// only when the tile starts a word of zero points in row 0 of qweight, else
// the generic computes it; features past the last whole block use masked
// vectors.
// CHECK-LABEL: func.func @gptq_tile
// CHECK: memref.extract_strided_metadata %{{.+}} : memref<32x40xi32, strided<[128, 1], offset: ?>>
// CHECK: scf.if
// CHECK: vector.load %{{.+}} : memref<32x40xi32, strided<[128, 1], offset: ?>>, vector<16xi32>
// CHECK: vector.constant_mask [8] : vector<16xi1>
// CHECK: vector.maskedload %{{.+}} : memref<32x40xi32, strided<[128, 1], offset: ?>>
// CHECK: } else {
// CHECK: linalg.generic
// CHECK-NOT: atmoe.quantization
func.func @gptq_tile(%x: memref<?x256xf32>, %q: memref<32x40xi32, strided<[128, 1], offset: ?>>,
                     %s: memref<2x40xbf16, strided<[128, 1], offset: ?>>,
                     %y: memref<?x40xf32, strided<[128, 1], offset: ?>>) {
  linalg.generic {indexing_maps = [#x, #qw, #sc, #y],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %q, %s : memref<?x256xf32>, memref<32x40xi32, strided<[128, 1], offset: ?>>,
                       memref<2x40xbf16, strided<[128, 1], offset: ?>>)
      outs(%y : memref<?x40xf32, strided<[128, 1], offset: ?>>)
      attrs = {atmoe.matmul_role = "projection",
               atmoe.quantization = #atmoe.gptq<bits = 4, group_size = 128, zero_offset = 1>} {
  ^bb0(%in: f32, %word: i32, %scale: bf16, %out: f32):
    %k = linalg.index 2 : index
    %c8 = arith.constant 8 : index
    %c4_i32 = arith.constant 4 : i32
    %c15_i32 = arith.constant 15 : i32
    %zero = arith.constant 8.0 : f32
    %kp = arith.remui %k, %c8 : index
    %kpi = arith.index_cast %kp : index to i32
    %ks = arith.muli %kpi, %c4_i32 : i32
    %qs = arith.shrui %word, %ks : i32
    %qm = arith.andi %qs, %c15_i32 : i32
    %qf = arith.uitofp %qm : i32 to f32
    %sf = arith.extf %scale : bf16 to f32
    %d = arith.subf %qf, %zero : f32
    %w = arith.mulf %sf, %d : f32
    %p = arith.mulf %in, %w : f32
    %r = arith.addf %out, %p : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// A group smaller than a packed word (4 values of 4 bits: two groups per
// word) does not fit the kernel's per-group word loops: the generic stays,
// unmarked, and becomes loops.
#x = affine_map<(t, n, k) -> (t, k)>
#qw = affine_map<(t, n, k) -> (k floordiv 8, n)>
#sc = affine_map<(t, n, k) -> (k floordiv 4, n)>
#y = affine_map<(t, n, k) -> (t, n)>
// CHECK-LABEL: func.func @gptq_group_below_word
// CHECK-NOT: vector.load
// CHECK: linalg.generic
// CHECK-SAME: atmoe.quantization = #atmoe.gptq<bits = 4, group_size = 4, zero_offset = 1>
// CHECK-NOT: scf.if
// CHECK: return
func.func @gptq_group_below_word(%x: memref<?x64xf32>, %q: memref<8x32xi32>,
                                 %s: memref<16x32xf32>, %y: memref<?x32xf32>) {
  linalg.generic {indexing_maps = [#x, #qw, #sc, #y],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %q, %s : memref<?x64xf32>, memref<8x32xi32>, memref<16x32xf32>)
      outs(%y : memref<?x32xf32>)
      attrs = {atmoe.matmul_role = "projection",
               atmoe.quantization = #atmoe.gptq<bits = 4, group_size = 4, zero_offset = 1>} {
  ^bb0(%in: f32, %word: i32, %scale: f32, %out: f32):
    %p = arith.mulf %in, %scale : f32
    %r = arith.addf %out, %p : f32
    linalg.yield %r : f32
  }
  return
}
