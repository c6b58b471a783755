// RUN: atmoe-opt %s --split-input-file --atmoe-lower-cpu-matmuls="token-tile=2 feature-tile=3 skinny-token-tile=2 skinny-k-block=32 skinny-prefetch=0 k-block=32 token-block=5" --canonicalize | FileCheck %s
// RUN: atmoe-opt %s --split-input-file --atmoe-lower-cpu-matmuls="token-tile=2 feature-tile=2 skinny-token-tile=2" --canonicalize | FileCheck %s --check-prefix=SHUF
// RUN: atmoe-opt %s --split-input-file --atmoe-lower-cpu-matmuls | FileCheck %s --check-prefix=DEFAULT

// Tests that y = x w^T becomes, for few tokens (tested at run time), weight
// rows outermost, k blocks, then 2x3 register tiles of vector accumulators
// along k, with 1-row remainder tiles, a masked k tail, and one horizontal
// sum per accumulator added into y; for more tokens, k and token blocks
// around the same tiles.
// CHECK-LABEL: func.func @transposed
// CHECK-SAME: (%[[X:.+]]: memref<?x37xf32>, %[[W:.+]]: memref<13x37xf32>, %[[Y:.+]]: memref<?x13xf32>)
// CHECK-NOT: linalg.matmul
// CHECK: %[[T:.+]] = memref.dim %[[X]], %c0
// CHECK: %[[SKINNY:.+]] = arith.cmpi sle, %[[T]], %c32
// CHECK: scf.if %[[SKINNY]] {
// CHECK: scf.for {{.+}} step %c3
// CHECK: scf.for {{.+}} step %c32
// CHECK: scf.for {{.+}} step %c2
// CHECK: scf.for {{.+}} step %c16 iter_args({{.+}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK-COUNT-3: vector.load %[[W]]
// CHECK: vector.load %[[X]]
// CHECK-COUNT-3: vector.fma
// CHECK: vector.load %[[X]]
// CHECK-COUNT-3: vector.fma
// CHECK: scf.yield
// CHECK: vector.create_mask
// CHECK: vector.maskedload %[[W]]
// CHECK: vector.reduction <add>, %{{.+}} fastmath<reassoc,contract>
// CHECK: memref.load %[[Y]]
// CHECK: memref.store {{.+}}, %[[Y]]
// The remaining tokens, one at a time, over the whole reduction.
// CHECK: scf.for {{.+}} step %c1
// CHECK: scf.for {{.+}} step %c16 iter_args({{.+}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK: } else {
// CHECK: scf.for {{.+}} step %c32
// CHECK: scf.for {{.+}} step %c5
// CHECK: scf.for {{.+}} step %c3
// CHECK: scf.for {{.+}} step %c2
// CHECK: vector.fma
// CHECK-NOT: linalg.matmul
// CHECK: return

// Tests that with power-of-two feature tiles the accumulators are summed
// together with shuffles and y is updated by row vectors.
// SHUF-LABEL: func.func @transposed
// SHUF: scf.for {{.+}} step %c16 iter_args({{.+}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// SHUF: vector.shuffle %{{.+}}, %{{.+}} [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23] : vector<16xf32>, vector<16xf32>
// SHUF: vector.shuffle %{{.+}}, %{{.+}} [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
// SHUF: vector.extract_strided_slice %{{.+}} {offsets = [2], sizes = [2], strides = [1]} : vector<4xf32> to vector<2xf32>
// SHUF: vector.load %{{.+}} : memref<?x13xf32>, vector<2xf32>
// SHUF: vector.store %{{.+}} : memref<?x13xf32>, vector<2xf32>
// SHUF-NOT: vector.reduction

// Tests the default tiles (6x4 for many tokens, 4x4 for few) and that the
// weight rows are prefetched for few tokens.
// DEFAULT-LABEL: func.func @transposed
// DEFAULT: scf.if
// DEFAULT: memref.prefetch %{{.+}}, read, locality<1>, data : memref<13x37xf32>
// DEFAULT: } else {
// DEFAULT: -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
func.func @transposed(%x: memref<?x37xf32>, %w: memref<13x37xf32>,
                      %y: memref<?x13xf32>) {
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                 affine_map<(t, n, k) -> (n, k)>,
                                 affine_map<(t, n, k) -> (t, n)>]
    ins(%x, %w : memref<?x37xf32>, memref<13x37xf32>)
    outs(%y : memref<?x13xf32>)
  return
}

// -----

// Tests that a thread's tile (a strided subview with unit inner stride) is
// lowered too.
// CHECK-LABEL: func.func @subview
// CHECK-NOT: linalg.matmul
// CHECK: vector.fma
func.func @subview(%x: memref<?x64xf32>,
                   %w: memref<16x64xf32, strided<[64, 1], offset: ?>>,
                   %y: memref<?x16xf32, strided<[128, 1], offset: ?>>) {
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                 affine_map<(t, n, k) -> (n, k)>,
                                 affine_map<(t, n, k) -> (t, n)>]
    ins(%x, %w : memref<?x64xf32>, memref<16x64xf32, strided<[64, 1], offset: ?>>)
    outs(%y : memref<?x16xf32, strided<[128, 1], offset: ?>>)
  return
}

// -----

// Tests that y = x w with w not transposed (a merged segment's B A, tiled
// by output columns) gets the panel kernel's outer products: broadcast x
// times rows of w (strided: a column tile of a wider matrix), accumulated
// in y's tile, no horizontal sums and no prefetch (w is cache-resident).
// CHECK-LABEL: func.func @outer_product
// CHECK-NOT: linalg.matmul
// CHECK-NOT: memref.prefetch
// CHECK: memref.load %{{.+}} : memref<?x8xf32>
// CHECK: vector.broadcast %{{.+}} : f32 to vector<16xf32>
// CHECK: vector.fma
// CHECK: vector.store %{{.+}} : memref<?x64xf32, strided<[256, 1], offset: ?>>, vector<16xf32>
// CHECK-NOT: vector.reduction
// DEFAULT-LABEL: func.func @outer_product
// DEFAULT-NOT: linalg.matmul
// DEFAULT: vector.load %{{.+}} : memref<8x64xbf16, strided<[256, 1], offset: ?>>, vector<16xbf16>
// DEFAULT: arith.extf %{{.+}} : vector<16xbf16> to vector<16xf32>
func.func @outer_product(%b: memref<?x8xf32>,
                         %a: memref<8x64xf32, strided<[256, 1], offset: ?>>,
                         %w: memref<?x64xf32, strided<[256, 1], offset: ?>>,
                         %h: memref<8x64xbf16, strided<[256, 1], offset: ?>>) {
  linalg.matmul ins(%b, %a : memref<?x8xf32>, memref<8x64xf32, strided<[256, 1], offset: ?>>)
    outs(%w : memref<?x64xf32, strided<[256, 1], offset: ?>>)
  linalg.matmul ins(%b, %h : memref<?x8xf32>, memref<8x64xbf16, strided<[256, 1], offset: ?>>)
    outs(%w : memref<?x64xf32, strided<[256, 1], offset: ?>>)
  return
}

// -----

// Tests that other layouts, element types, non-unit inner strides and
// tensors are left alone; y = x w needs a static width of w.
// CHECK-LABEL: func.func @untouched
// CHECK-COUNT-4: linalg.matmul
// CHECK-NOT: vector.
func.func @untouched(%a: memref<?x8xf32>, %b: memref<8x?xf32>,
                     %c: memref<?x?xf32>, %h: memref<4x8xf16>,
                     %hw: memref<2x8xf16>, %hy: memref<4x2xf16>,
                     %s: memref<2x8xf32, strided<[1, 2]>>,
                     %sy: memref<?x2xf32>, %t: tensor<4x8xf32>,
                     %tw: tensor<2x8xf32>, %ty: tensor<4x2xf32>)
    -> tensor<4x2xf32> {
  linalg.matmul ins(%a, %b : memref<?x8xf32>, memref<8x?xf32>)
    outs(%c : memref<?x?xf32>)
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                 affine_map<(t, n, k) -> (n, k)>,
                                 affine_map<(t, n, k) -> (t, n)>]
    ins(%h, %hw : memref<4x8xf16>, memref<2x8xf16>)
    outs(%hy : memref<4x2xf16>)
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                 affine_map<(t, n, k) -> (n, k)>,
                                 affine_map<(t, n, k) -> (t, n)>]
    ins(%a, %s : memref<?x8xf32>, memref<2x8xf32, strided<[1, 2]>>)
    outs(%sy : memref<?x2xf32>)
  %r = linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                      affine_map<(t, n, k) -> (n, k)>,
                                      affine_map<(t, n, k) -> (t, n)>]
    ins(%t, %tw : tensor<4x8xf32>, tensor<2x8xf32>)
    outs(%ty : tensor<4x2xf32>) -> tensor<4x2xf32>
  return %r : tensor<4x2xf32>
}

// -----

// Tests that weights stored in bf16 or f16 are loaded in their storage type
// (half the bytes of f32) and widened in registers before the FMAs.
// CHECK-LABEL: func.func @storage_types
// CHECK-NOT: linalg.matmul
// CHECK: vector.load %{{.+}} : memref<13x37xbf16>, vector<16xbf16>
// CHECK: arith.extf %{{.+}} : vector<16xbf16> to vector<16xf32>
// CHECK: vector.fma
// CHECK: vector.maskedload %{{.+}} : memref<13x37xbf16>, vector<16xi1>, vector<16xbf16> into vector<16xbf16>
// CHECK: vector.load %{{.+}} : memref<5x37xf16>, vector<16xf16>
// CHECK: arith.extf %{{.+}} : vector<16xf16> to vector<16xf32>
func.func @storage_types(%x: memref<?x37xf32>, %w: memref<13x37xbf16>,
                         %y: memref<?x13xf32>, %h: memref<5x37xf16>,
                         %hy: memref<?x5xf32>) {
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                 affine_map<(t, n, k) -> (n, k)>,
                                 affine_map<(t, n, k) -> (t, n)>]
    ins(%x, %w : memref<?x37xf32>, memref<13x37xbf16>)
    outs(%y : memref<?x13xf32>)
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                 affine_map<(t, n, k) -> (n, k)>,
                                 affine_map<(t, n, k) -> (t, n)>]
    ins(%x, %h : memref<?x37xf32>, memref<5x37xf16>)
    outs(%hy : memref<?x5xf32>)
  return
}
