// RUN: atmoe-opt %s --split-input-file --verify-diagnostics --atmoe-gpu-host-arguments | FileCheck %s

// Tests that an argument only the host dereferences (the segment lengths
// driving a host loop) is recorded, while arguments passed to kernels, only
// measured (memref.dim), or only viewed are not.
// CHECK-LABEL: func.func @layer
// CHECK-SAME: atmoe.host_arguments = array<i64: 1>
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @k(%x: memref<?x4xf32>) kernel {
      gpu.return
    }
  }
  func.func @layer(%x: memref<?x4xf32>, %segments: memref<?xi64>, %y: memref<?x4xf32>) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %first = memref.load %segments[%c0] : memref<?xi64>
    %n = memref.dim %y, %c0 : memref<?x4xf32>
    %view = memref.subview %x[0, 0] [%n, 4] [1, 1] : memref<?x4xf32> to memref<?x4xf32, strided<[4, 1]>>
    %cast = memref.cast %view : memref<?x4xf32, strided<[4, 1]>> to memref<?x4xf32, strided<[4, 1]>>
    gpu.launch_func @kernels::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%x : memref<?x4xf32>)
    return
  }
}

// -----

// Tests that a function whose arguments all live on the device gets an
// empty list, and that private functions are skipped.
// CHECK-LABEL: func.func @all_device
// CHECK-SAME: atmoe.host_arguments = array<i64>
// CHECK-LABEL: func.func private @helper
// CHECK-NOT: atmoe.host_arguments
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @k(%x: memref<4xf32>) kernel {
      gpu.return
    }
  }
  func.func @all_device(%x: memref<4xf32>) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @kernels::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%x : memref<4xf32>)
    return
  }
  func.func private @helper(%x: memref<4xf32>)
}

// -----

// Tests that an argument read on the host and passed to a kernel is an
// error naming both uses.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @k(%x: memref<4xf32>) kernel {
      gpu.return
    }
  }
  // expected-error @below {{argument #0 is dereferenced both by the host and by a GPU kernel}}
  func.func @both(%x: memref<4xf32>) -> f32 {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    // expected-note @below {{host use}}
    %v = memref.load %x[%c0] : memref<4xf32>
    // expected-note @below {{kernel use}}
    gpu.launch_func @kernels::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%x : memref<4xf32>)
    return %v : f32
  }
}
