// RUN: atmoe-opt %s --split-input-file --atmoe-gpu-tile-matmuls="tile=8,8,4 thread-tile=2,2 skinny-rows=2 skinny-tile=2,8,8 skinny-thread-tile=1,1" --canonicalize --cse | FileCheck %s
// RUN: atmoe-opt %s --split-input-file --atmoe-gpu-tile-matmuls="tile=8,8,4 thread-tile=2,2 skinny-rows=0" --canonicalize --cse | FileCheck %s --check-prefix=ONE
// RUN: atmoe-opt %s --split-input-file --atmoe-gpu-tile-matmuls="cpu-emulation=true tile=8,8,4 thread-tile=2,2 skinny-rows=0" --canonicalize --cse | FileCheck %s --check-prefix=EMU

// Tests that y += x w^T becomes one launch whose grid and block sizes the
// host picks by the row count (skinny variant up to 2 rows), with the x and
// w tiles of both variants in workgroup memory: x copied as is, w copied
// k-major into a tile padded to 9 columns; a barrier after the copies and
// after the products, which accumulate in registers (one per output of a
// 1x1 skinny thread tile, four for 2x2), then guarded updates of y.
// CHECK-LABEL: func.func @transposed
// CHECK-SAME: (%[[X:.+]]: memref<?x64xf32>, %[[W:.+]]: memref<32x64xf32>, %[[Y:.+]]: memref<?x32xf32>)
// CHECK-NOT: linalg.matmul
// CHECK: %[[ROWS:.+]] = memref.dim %[[Y]], %c0
// CHECK: %[[FEW:.+]] = arith.cmpi ule, %[[ROWS]], %c2
// CHECK: %[[LARGE_BLOCKS:.+]] = arith.ceildivui %[[ROWS]], %c8
// CHECK: %[[SKINNY_BLOCKS:.+]] = arith.ceildivui %[[ROWS]], %c2
// CHECK: %[[BLOCKS:.+]] = arith.select %[[FEW]], %[[SKINNY_BLOCKS]], %[[LARGE_BLOCKS]]
// CHECK: %[[GRID_Y:.+]] = arith.maxui %[[BLOCKS]], %c1
// CHECK: gpu.launch blocks(%[[BX:.+]], %[[BY:.+]], %{{.+}}) in (%{{.+}} = %c4, %{{.+}} = %[[GRID_Y]], %{{.+}} = %c1) threads(%[[TID:[^,]+]], %{{.+}}) in (%{{.+}} = %c16, %{{.+}} = %c1, %{{.+}} = %c1)
// CHECK-SAME: workgroup(%[[XT:.+]] : memref<8x4xf32, #gpu.address_space<workgroup>>, %[[WT:.+]] : memref<4x9xf32, #gpu.address_space<workgroup>>, %[[SXT:.+]] : memref<2x8xf32, #gpu.address_space<workgroup>>, %[[SWT:.+]] : memref<8x9xf32, #gpu.address_space<workgroup>>)
// CHECK: scf.if %[[FEW]] {
// CHECK: scf.for %[[K0:.+]] = %c0 to %c64 step %c8 iter_args(%{{.+}} = %cst) -> (f32) {
// CHECK: %[[R:.+]] = arith.divui %[[TID]], %c8
// CHECK: %[[C:.+]] = arith.remui %[[TID]], %c8
// CHECK: memref.load %[[X]]
// CHECK: memref.store %{{.+}}, %[[SXT]][%[[R]], %[[C]]]
// CHECK: memref.load %[[W]]
// CHECK: memref.store %{{.+}}, %[[SWT]][%[[C]], %[[R]]]
// CHECK: gpu.barrier
// CHECK: scf.for %[[KK:.+]] = %c0 to %c8 step %c1 iter_args
// CHECK: memref.load %[[SXT]][%{{.+}}, %[[KK]]]
// CHECK: memref.load %[[SWT]][%[[KK]], %{{.+}}]
// CHECK: arith.mulf {{.+}} fastmath<contract>
// CHECK: arith.addf {{.+}} fastmath<contract>
// CHECK: gpu.barrier
// CHECK: scf.if
// CHECK: memref.load %[[Y]]
// CHECK: memref.store %{{.+}}, %[[Y]]
// CHECK: } else {
// CHECK: scf.for %{{.+}} = %c0 to %c64 step %c4 iter_args({{.+}}) -> (f32, f32, f32, f32) {
// CHECK-COUNT-2: memref.store %{{.+}}, %[[XT]]
// CHECK-COUNT-2: memref.store %{{.+}}, %[[WT]]
// CHECK: gpu.barrier
// CHECK-COUNT-4: arith.mulf
// CHECK: gpu.barrier
// CHECK-COUNT-4: memref.store %{{.+}}, %[[Y]]
// CHECK: gpu.terminator

// Without a skinny variant: no test on the rows, two tiles.
// ONE-LABEL: func.func @transposed
// ONE-NOT: arith.select
// ONE: gpu.launch
// ONE-SAME: workgroup(%{{.+}} : memref<8x4xf32, #gpu.address_space<workgroup>>, %{{.+}} : memref<4x9xf32, #gpu.address_space<workgroup>>) {
// ONE-NOT: scf.if %{{.+}} {
// ONE: scf.for

// The CPU emulation: the same phases as loops over blocks, then threads.
// EMU-LABEL: func.func @transposed
// EMU-NOT: gpu.
// EMU-DAG: %[[XT:.+]] = memref.alloca() : memref<8x4xf32>
// EMU-DAG: %[[WT:.+]] = memref.alloca() : memref<4x9xf32>
// EMU-DAG: %[[ACC:.+]] = memref.alloca() : memref<16x4xf32>
// EMU: scf.for %{{.+}} = %c0 to %{{.+}} step %c1 {
// EMU: scf.for %{{.+}} = %c0 to %c4 step %c1 {
// EMU: scf.for %{{.+}} = %c0 to %c16 step %c1 {
// EMU: memref.store %cst, %[[ACC]]
// EMU: scf.for %{{.+}} = %c0 to %c64 step %c4 {
// EMU: scf.for %{{.+}} = %c0 to %c16 step %c1 {
// EMU: memref.store %{{.+}}, %[[XT]]
// EMU: scf.for %{{.+}} = %c0 to %c16 step %c1 {
// EMU: memref.load %[[ACC]]
// EMU: arith.mulf
// EMU: memref.store %{{.+}}, %[[ACC]]
// EMU-NOT: gpu.
func.func @transposed(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %y: memref<?x32xf32>) {
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (n, k)>, affine_map<(t, n, k) -> (t, n)>]
    ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%y : memref<?x32xf32>)
  return
}

// -----

// Tests that y += x w (the scale expansion) copies w as is: consecutive
// threads take consecutive columns of w.
// CHECK-LABEL: func.func @plain
// CHECK-SAME: (%[[X:.+]]: memref<?x4xf32>, %[[W:.+]]: memref<4x52xf32>, %[[Y:.+]]: memref<?x52xf32>)
// CHECK: gpu.launch blocks({{.+}}) in (%{{.+}} = %c7,
// CHECK: scf.if
// CHECK: %[[R:.+]] = arith.divui %{{.+}}, %c8
// CHECK: %[[C:.+]] = arith.remui %{{.+}}, %c8
// CHECK: %[[COL:.+]] = arith.addi %{{.+}}, %[[C]]
// CHECK: memref.load %[[W]][%[[R]], %[[COL]]]
// CHECK: memref.store %{{.+}}, %{{.+}}[%[[R]], %[[C]]] : memref<8x9xf32, #gpu.address_space<workgroup>>
// ONE-LABEL: func.func @plain
// ONE: gpu.launch
// EMU-LABEL: func.func @plain
// EMU-NOT: gpu.
func.func @plain(%x: memref<?x4xf32>, %w: memref<4x52xf32>, %y: memref<?x52xf32>) {
  linalg.matmul ins(%x, %w : memref<?x4xf32>, memref<4x52xf32>) outs(%y : memref<?x52xf32>)
  return
}

// -----

// Tests that matmuls the kernels do not cover are left alone: other element
// types, tensors, transposed x.
// CHECK-LABEL: func.func @unsupported
// CHECK-NOT: gpu.launch
// CHECK-COUNT-3: linalg.matmul
// CHECK-NOT: gpu.launch
// ONE-LABEL: func.func @unsupported
// ONE-NOT: gpu.launch
// EMU-LABEL: func.func @unsupported
// EMU-COUNT-3: linalg.matmul
func.func @unsupported(%a: memref<?x8xf16>, %b: memref<8x8xf16>, %c: memref<?x8xf16>,
                       %t: tensor<4x8xf32>, %u: tensor<8x8xf32>, %v: tensor<4x8xf32>,
                       %xt: memref<8x?xf32>, %w: memref<8x8xf32>, %y: memref<?x8xf32>) -> tensor<4x8xf32> {
  linalg.matmul ins(%a, %b : memref<?x8xf16>, memref<8x8xf16>) outs(%c : memref<?x8xf16>)
  %r = linalg.matmul ins(%t, %u : tensor<4x8xf32>, tensor<8x8xf32>) outs(%v : tensor<4x8xf32>) -> tensor<4x8xf32>
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (k, t)>, affine_map<(t, n, k) -> (k, n)>, affine_map<(t, n, k) -> (t, n)>]
    ins(%xt, %w : memref<8x?xf32>, memref<8x8xf32>) outs(%y : memref<?x8xf32>)
  return %r : tensor<4x8xf32>
}

// -----

// Tests that a fill or a bias broadcast of y right before the matmul is
// folded into the kernel, which then writes y = initial + x w^T without
// reading y; one that is not right before it stays.
// CHECK-LABEL: func.func @initialized
// CHECK-SAME: (%[[X:.+]]: memref<?x64xf32>, %[[W:.+]]: memref<32x64xf32>, %[[BIAS:.+]]: memref<32xf32>, %[[Y0:.+]]: memref<?x32xf32>, %[[Y1:.+]]: memref<?x32xf32>, %[[Y2:.+]]: memref<?x32xf32>)
// CHECK-NOT: linalg.
// CHECK: gpu.launch
// CHECK-NOT: memref.load %[[Y0]][
// CHECK: %[[SUM:.+]] = arith.addf %{{.+}}, %cst_{{[0-9]+}} : f32
// CHECK-NEXT: memref.store %[[SUM]], %[[Y0]]
// CHECK: gpu.terminator
// CHECK: gpu.launch
// CHECK-NOT: memref.load %[[Y1]][
// CHECK: %[[B:.+]] = memref.load %[[BIAS]][
// CHECK-NEXT: %[[SUM:.+]] = arith.addf %[[B]], %{{.+}} : f32
// CHECK-NEXT: memref.store %[[SUM]], %[[Y1]]
// CHECK: gpu.terminator
// CHECK: linalg.fill ins(%{{.+}} : f32) outs(%[[Y2]]
// CHECK-NEXT: memref.copy
// CHECK: gpu.launch
// CHECK: memref.load %[[Y2]][
// CHECK: gpu.terminator
// ONE-LABEL: func.func @initialized
// EMU-LABEL: func.func @initialized
func.func @initialized(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %bias: memref<32xf32>,
                       %y0: memref<?x32xf32>, %y1: memref<?x32xf32>, %y2: memref<?x32xf32>) {
  %s = arith.constant 2.5 : f32
  linalg.fill ins(%s : f32) outs(%y0 : memref<?x32xf32>)
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (n, k)>, affine_map<(t, n, k) -> (t, n)>]
    ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%y0 : memref<?x32xf32>)
  linalg.broadcast ins(%bias : memref<32xf32>) outs(%y1 : memref<?x32xf32>) dimensions = [0]
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (n, k)>, affine_map<(t, n, k) -> (t, n)>]
    ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%y1 : memref<?x32xf32>)
  linalg.fill ins(%s : f32) outs(%y2 : memref<?x32xf32>)
  memref.copy %y0, %y1 : memref<?x32xf32> to memref<?x32xf32>
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (n, k)>, affine_map<(t, n, k) -> (t, n)>]
    ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%y2 : memref<?x32xf32>)
  return
}

// -----

// Tests that a weight stored in bf16 is tiled too: each element is widened
// to f32 as it is staged in workgroup memory, so the products stay f32.
// ONE-LABEL: func.func @bf16_weight
// ONE-NOT: linalg.matmul
// ONE: gpu.launch
// ONE-SAME: workgroup(%{{.+}} : memref<8x4xf32, #gpu.address_space<workgroup>>, %{{.+}} : memref<4x9xf32, #gpu.address_space<workgroup>>)
// ONE: %[[V:.+]] = memref.load %{{.+}} : memref<32x64xbf16>
// ONE: arith.extf %[[V]] : bf16 to f32
func.func @bf16_weight(%x: memref<?x64xf32>, %w: memref<32x64xbf16>,
                       %y: memref<?x32xf32>) {
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>,
                                 affine_map<(t, n, k) -> (n, k)>,
                                 affine_map<(t, n, k) -> (t, n)>]
    ins(%x, %w : memref<?x64xf32>, memref<32x64xbf16>)
    outs(%y : memref<?x32xf32>)
  return
}
