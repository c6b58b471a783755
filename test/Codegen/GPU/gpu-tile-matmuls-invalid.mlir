// RUN: not atmoe-opt %s --atmoe-gpu-tile-matmuls="tile=64,64" 2>&1 | FileCheck %s --check-prefix=COUNT
// RUN: not atmoe-opt %s --atmoe-gpu-tile-matmuls="thread-tile=0,4" 2>&1 | FileCheck %s --check-prefix=POSITIVE
// RUN: not atmoe-opt %s --atmoe-gpu-tile-matmuls="skinny-tile=16,16,64 skinny-thread-tile=3,1" 2>&1 | FileCheck %s --check-prefix=DIVIDE
// RUN: not atmoe-opt %s --atmoe-gpu-tile-matmuls="tile=64,64,8 thread-tile=1,2" 2>&1 | FileCheck %s --check-prefix=THREADS
// RUN: not atmoe-opt %s --atmoe-gpu-tile-matmuls="tile=128,128,64 thread-tile=8,8" 2>&1 | FileCheck %s --check-prefix=SHARED
// RUN: not atmoe-opt %s --atmoe-gpu-tile-matmuls="tile=64,64,80 thread-tile=4,4" 2>&1 | FileCheck %s --check-prefix=BOTH
// RUN: atmoe-opt %s --atmoe-gpu-tile-matmuls="tile=64,64,80 thread-tile=4,4 skinny-rows=0" | FileCheck %s --check-prefix=LARGE-ONLY
// RUN: not atmoe-opt %s --atmoe-gpu-tile-matmuls="skinny-rows=-1" 2>&1 | FileCheck %s --check-prefix=NEGATIVE

// Tests that kernel shapes no GPU can run are rejected, with the options
// named, at the function the pass runs on, and nothing is rewritten.

// COUNT: gpu-tile-matmuls-invalid.mlir:[[@LINE+8]]:1: error: invalid tile 64, 64 / thread-tile 4, 4: expected 3 and 2 sizes
// POSITIVE: error: invalid tile 64, 64, 16 / thread-tile 0, 4: sizes must be positive
// DIVIDE: error: invalid skinny-tile 16, 16, 64 / skinny-thread-tile 3, 1: the thread tile must divide the block tile
// THREADS: error: invalid tile 64, 64, 8 / thread-tile 1, 2: 2048 threads per block, more than 1024
// SHARED: error: invalid tile 128, 128, 64 / thread-tile 8, 8: 65792 bytes of shared memory, more than 49152
// BOTH: error: the tiles of both variants take 49728 bytes of shared memory, more than 49152
// LARGE-ONLY: gpu.launch
// NEGATIVE: error: skinny-rows must not be negative
func.func @f(%x: memref<?x64xf32>, %w: memref<32x64xf32>, %y: memref<?x32xf32>) {
  linalg.matmul indexing_maps = [affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (n, k)>, affine_map<(t, n, k) -> (t, n)>]
    ins(%x, %w : memref<?x64xf32>, memref<32x64xf32>) outs(%y : memref<?x32xf32>)
  return
}
