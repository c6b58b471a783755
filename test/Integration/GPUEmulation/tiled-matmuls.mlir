// RUN: atmoe-opt %s --atmoe-gpu-tile-matmuls="cpu-emulation=true" \
// RUN:   --convert-linalg-to-loops --convert-vector-to-scf --lower-affine \
// RUN:   --convert-scf-to-cf --convert-to-llvm --reconcile-unrealized-casts \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_c_runner_utils | FileCheck %s
//
// Odd tiles: partial blocks in every dimension, copies whose last round
// leaves threads idle, several outputs per thread in both directions.
// RUN: atmoe-opt %s --atmoe-gpu-tile-matmuls="cpu-emulation=true tile=8,12,5 thread-tile=2,3 skinny-rows=4 skinny-tile=4,6,7 skinny-thread-tile=1,2" \
// RUN:   --convert-linalg-to-loops --convert-vector-to-scf --lower-affine \
// RUN:   --convert-scf-to-cf --convert-to-llvm --reconcile-unrealized-casts \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_c_runner_utils | FileCheck %s
//
// Tests, on the CPU, the arithmetic of the shared-memory tiled GPU matmul
// kernels: --atmoe-gpu-tile-matmuls with cpu-emulation runs the kernels'
// exact copy, product and update code as sequential loops over blocks and
// threads. Both weight layouts (y += x w^T for the projections, y += x w for
// the scale expansion) and y initialised by a fill or a bias broadcast (which
// the kernel folds) are compared with a linalg.generic reference (which the
// pass leaves alone) for batches of 0 to 130 rows, i.e. both kernel variants,
// a 45-column y and a reduction of 70. Every value is a multiple
// of 1/32 small enough for f32 sums to be exact in any order, so the
// results must match exactly.

#x = affine_map<(t, n, k) -> (t, k)>
#w_nk = affine_map<(t, n, k) -> (n, k)>
#w_kn = affine_map<(t, n, k) -> (k, n)>
#y = affine_map<(t, n, k) -> (t, n)>

func.func @tiled_nk(%x: memref<?x?xf32>, %w: memref<?x?xf32>, %y: memref<?x?xf32>) {
  linalg.matmul indexing_maps = [#x, #w_nk, #y]
    ins(%x, %w : memref<?x?xf32>, memref<?x?xf32>) outs(%y : memref<?x?xf32>)
  return
}

func.func @tiled_kn(%x: memref<?x?xf32>, %w: memref<?x?xf32>, %y: memref<?x?xf32>) {
  linalg.matmul ins(%x, %w : memref<?x?xf32>, memref<?x?xf32>) outs(%y : memref<?x?xf32>)
  return
}

// y = s + x w^T and y = bias + x w^T: the kernel writes y without reading it
// and the fill or broadcast before it goes.
func.func @tiled_fill(%x: memref<?x?xf32>, %w: memref<?x?xf32>, %y: memref<?x?xf32>, %s: f32) {
  linalg.fill ins(%s : f32) outs(%y : memref<?x?xf32>)
  linalg.matmul indexing_maps = [#x, #w_nk, #y]
    ins(%x, %w : memref<?x?xf32>, memref<?x?xf32>) outs(%y : memref<?x?xf32>)
  return
}

func.func @tiled_bias(%x: memref<?x?xf32>, %w: memref<?x?xf32>, %y: memref<?x?xf32>, %bias: memref<?xf32>) {
  linalg.broadcast ins(%bias : memref<?xf32>) outs(%y : memref<?x?xf32>) dimensions = [0]
  linalg.matmul indexing_maps = [#x, #w_nk, #y]
    ins(%x, %w : memref<?x?xf32>, memref<?x?xf32>) outs(%y : memref<?x?xf32>)
  return
}

func.func @reference(%x: memref<?x?xf32>, %w: memref<?x?xf32>, %y: memref<?x?xf32>) {
  linalg.generic {indexing_maps = [#x, #w_nk, #y],
                  iterator_types = ["parallel", "parallel", "reduction"]}
    ins(%x, %w : memref<?x?xf32>, memref<?x?xf32>) outs(%y : memref<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// m[i, j] = ((i * a + j * b) mod p - p / 2) * scale
func.func @fill(%m: memref<?x?xf32>, %a: index, %b: index, %p: index, %scale: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %rows = memref.dim %m, %c0 : memref<?x?xf32>
  %cols = memref.dim %m, %c1 : memref<?x?xf32>
  %half = arith.divui %p, %c2 : index
  scf.for %i = %c0 to %rows step %c1 {
    scf.for %j = %c0 to %cols step %c1 {
      %ia = arith.muli %i, %a : index
      %jb = arith.muli %j, %b : index
      %s = arith.addi %ia, %jb : index
      %r = arith.remui %s, %p : index
      %v = arith.subi %r, %half : index
      %vi = arith.index_cast %v : index to i64
      %vf = arith.sitofp %vi : i64 to f32
      %e = arith.mulf %vf, %scale : f32
      memref.store %e, %m[%i, %j] : memref<?x?xf32>
    }
  }
  return
}

// v[j] = ((j * b) mod p - p / 2) * scale
func.func @fill_vector(%v: memref<?xf32>, %b: index, %p: index, %scale: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %n = memref.dim %v, %c0 : memref<?xf32>
  %half = arith.divui %p, %c2 : index
  scf.for %j = %c0 to %n step %c1 {
    %jb = arith.muli %j, %b : index
    %r = arith.remui %jb, %p : index
    %e = arith.subi %r, %half : index
    %ei = arith.index_cast %e : index to i64
    %ef = arith.sitofp %ei : i64 to f32
    %s = arith.mulf %ef, %scale : f32
    memref.store %s, %v[%j] : memref<?xf32>
  }
  return
}

func.func @transpose(%src: memref<?x?xf32>, %dst: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %rows = memref.dim %src, %c0 : memref<?x?xf32>
  %cols = memref.dim %src, %c1 : memref<?x?xf32>
  scf.for %i = %c0 to %rows step %c1 {
    scf.for %j = %c0 to %cols step %c1 {
      %v = memref.load %src[%i, %j] : memref<?x?xf32>
      memref.store %v, %dst[%j, %i] : memref<?x?xf32>
    }
  }
  return
}

func.func @max_error(%a: memref<?x?xf32>, %b: memref<?x?xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  %rows = memref.dim %a, %c0 : memref<?x?xf32>
  %cols = memref.dim %a, %c1 : memref<?x?xf32>
  %max = scf.for %i = %c0 to %rows step %c1 iter_args(%m0 = %zero) -> f32 {
    %mi = scf.for %j = %c0 to %cols step %c1 iter_args(%m1 = %m0) -> f32 {
      %va = memref.load %a[%i, %j] : memref<?x?xf32>
      %vb = memref.load %b[%i, %j] : memref<?x?xf32>
      %d = arith.subf %va, %vb : f32
      %ad = math.absf %d : f32
      %m2 = arith.maximumf %m1, %ad : f32
      scf.yield %m2 : f32
    }
    scf.yield %mi : f32
  }
  return %max : f32
}

// The reference's initial values, written without linalg.
func.func @set_rows(%y: memref<?x?xf32>, %bias: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %rows = memref.dim %y, %c0 : memref<?x?xf32>
  %cols = memref.dim %y, %c1 : memref<?x?xf32>
  scf.for %i = %c0 to %rows step %c1 {
    scf.for %j = %c0 to %cols step %c1 {
      %v = memref.load %bias[%j] : memref<?xf32>
      memref.store %v, %y[%i, %j] : memref<?x?xf32>
    }
  }
  return
}

func.func @check(%rows: index) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c5 = arith.constant 5 : index
  %c7 = arith.constant 7 : index
  %c11 = arith.constant 11 : index
  %c13 = arith.constant 13 : index
  %cols = arith.constant 45 : index
  %depth = arith.constant 70 : index
  %eighth = arith.constant 0.125 : f32
  %quarter = arith.constant 0.25 : f32
  %half = arith.constant 0.5 : f32
  %x = memref.alloc(%rows, %depth) : memref<?x?xf32>
  %w_nk = memref.alloc(%cols, %depth) : memref<?x?xf32>
  %w_kn = memref.alloc(%depth, %cols) : memref<?x?xf32>
  %expected = memref.alloc(%rows, %cols) : memref<?x?xf32>
  %y_nk = memref.alloc(%rows, %cols) : memref<?x?xf32>
  %y_kn = memref.alloc(%rows, %cols) : memref<?x?xf32>
  call @fill(%x, %c7, %c3, %c11, %eighth) : (memref<?x?xf32>, index, index, index, f32) -> ()
  call @fill(%w_nk, %c5, %c2, %c13, %quarter) : (memref<?x?xf32>, index, index, index, f32) -> ()
  call @transpose(%w_nk, %w_kn) : (memref<?x?xf32>, memref<?x?xf32>) -> ()
  // The kernels add into y: start from non-zero values.
  call @fill(%expected, %c3, %c1, %c7, %half) : (memref<?x?xf32>, index, index, index, f32) -> ()
  call @fill(%y_nk, %c3, %c1, %c7, %half) : (memref<?x?xf32>, index, index, index, f32) -> ()
  call @fill(%y_kn, %c3, %c1, %c7, %half) : (memref<?x?xf32>, index, index, index, f32) -> ()
  call @reference(%x, %w_nk, %expected) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
  call @tiled_nk(%x, %w_nk, %y_nk) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
  call @tiled_kn(%x, %w_kn, %y_kn) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
  %e_nk = call @max_error(%y_nk, %expected) : (memref<?x?xf32>, memref<?x?xf32>) -> f32
  %e_kn = call @max_error(%y_kn, %expected) : (memref<?x?xf32>, memref<?x?xf32>) -> f32

  // Initialised by a fill (1.5 everywhere) and by a bias broadcast.
  %c0 = arith.constant 0 : index
  %bias = memref.alloc(%cols) : memref<?xf32>
  call @fill_vector(%bias, %c5, %c11, %quarter) : (memref<?xf32>, index, index, f32) -> ()
  %s = arith.constant 1.5 : f32
  %y_fill = memref.alloc(%rows, %cols) : memref<?x?xf32>
  %y_bias = memref.alloc(%rows, %cols) : memref<?x?xf32>
  call @fill(%y_fill, %c3, %c1, %c7, %half) : (memref<?x?xf32>, index, index, index, f32) -> ()
  call @fill(%y_bias, %c3, %c1, %c7, %half) : (memref<?x?xf32>, index, index, index, f32) -> ()
  call @tiled_fill(%x, %w_nk, %y_fill, %s) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, f32) -> ()
  call @tiled_bias(%x, %w_nk, %y_bias, %bias) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?xf32>) -> ()
  %expected_fill = memref.alloc(%rows, %cols) : memref<?x?xf32>
  %expected_bias = memref.alloc(%rows, %cols) : memref<?x?xf32>
  // ((0 mod 7) - 3) * -0.5 = 1.5 everywhere.
  %minus_half = arith.constant -0.5 : f32
  call @fill(%expected_fill, %c0, %c0, %c7, %minus_half) : (memref<?x?xf32>, index, index, index, f32) -> ()
  call @reference(%x, %w_nk, %expected_fill) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
  call @set_rows(%expected_bias, %bias) : (memref<?x?xf32>, memref<?xf32>) -> ()
  call @reference(%x, %w_nk, %expected_bias) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()
  %e_fill = call @max_error(%y_fill, %expected_fill) : (memref<?x?xf32>, memref<?x?xf32>) -> f32
  %e_bias = call @max_error(%y_bias, %expected_bias) : (memref<?x?xf32>, memref<?x?xf32>) -> f32
  %r = arith.index_cast %rows : index to i64
  vector.print str "rows "
  vector.print %r : i64
  vector.print str "x w^T max error "
  vector.print %e_nk : f32
  vector.print str "x w max error "
  vector.print %e_kn : f32
  vector.print str "s + x w^T max error "
  vector.print %e_fill : f32
  vector.print str "bias + x w^T max error "
  vector.print %e_bias : f32
  memref.dealloc %bias : memref<?xf32>
  memref.dealloc %y_fill : memref<?x?xf32>
  memref.dealloc %y_bias : memref<?x?xf32>
  memref.dealloc %expected_fill : memref<?x?xf32>
  memref.dealloc %expected_bias : memref<?x?xf32>
  memref.dealloc %x : memref<?x?xf32>
  memref.dealloc %w_nk : memref<?x?xf32>
  memref.dealloc %w_kn : memref<?x?xf32>
  memref.dealloc %expected : memref<?x?xf32>
  memref.dealloc %y_nk : memref<?x?xf32>
  memref.dealloc %y_kn : memref<?x?xf32>
  return
}

func.func @main() {
  %sizes = arith.constant dense<[0, 1, 4, 5, 16, 17, 37, 130]> : vector<8xindex>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  scf.for %i = %c0 to %c8 step %c1 {
    %rows = vector.extract %sizes[%i] : index from vector<8xindex>
    func.call @check(%rows) : (index) -> ()
  }
  return
}

// CHECK:      rows 0{{$}}
// CHECK-NEXT: x w^T max error 0{{$}}
// CHECK-NEXT: x w max error 0{{$}}
// CHECK-NEXT: s + x w^T max error 0{{$}}
// CHECK-NEXT: bias + x w^T max error 0{{$}}
// CHECK-NEXT: rows 1{{$}}
// CHECK-NEXT: x w^T max error 0{{$}}
// CHECK-NEXT: x w max error 0{{$}}
// CHECK-NEXT: s + x w^T max error 0{{$}}
// CHECK-NEXT: bias + x w^T max error 0{{$}}
// CHECK-NEXT: rows 4{{$}}
// CHECK-NEXT: x w^T max error 0{{$}}
// CHECK-NEXT: x w max error 0{{$}}
// CHECK-NEXT: s + x w^T max error 0{{$}}
// CHECK-NEXT: bias + x w^T max error 0{{$}}
// CHECK-NEXT: rows 5{{$}}
// CHECK-NEXT: x w^T max error 0{{$}}
// CHECK-NEXT: x w max error 0{{$}}
// CHECK-NEXT: s + x w^T max error 0{{$}}
// CHECK-NEXT: bias + x w^T max error 0{{$}}
// CHECK-NEXT: rows 16{{$}}
// CHECK-NEXT: x w^T max error 0{{$}}
// CHECK-NEXT: x w max error 0{{$}}
// CHECK-NEXT: s + x w^T max error 0{{$}}
// CHECK-NEXT: bias + x w^T max error 0{{$}}
// CHECK-NEXT: rows 17{{$}}
// CHECK-NEXT: x w^T max error 0{{$}}
// CHECK-NEXT: x w max error 0{{$}}
// CHECK-NEXT: s + x w^T max error 0{{$}}
// CHECK-NEXT: bias + x w^T max error 0{{$}}
// CHECK-NEXT: rows 37{{$}}
// CHECK-NEXT: x w^T max error 0{{$}}
// CHECK-NEXT: x w max error 0{{$}}
// CHECK-NEXT: s + x w^T max error 0{{$}}
// CHECK-NEXT: bias + x w^T max error 0{{$}}
// CHECK-NEXT: rows 130{{$}}
// CHECK-NEXT: x w^T max error 0{{$}}
// CHECK-NEXT: x w max error 0{{$}}
// CHECK-NEXT: s + x w^T max error 0{{$}}
// CHECK-NEXT: bias + x w^T max error 0{{$}}
