// RUN: atmoe-opt %s --split-input-file --verify-diagnostics --atmoe-gpu-device-allocations | FileCheck %s

// Tests that the host function's temporaries move to device memory, with
// their dynamic sizes, while a kernel's own allocations stay.
// CHECK-LABEL: func.func @temporaries
// CHECK-SAME: (%[[N:.+]]: index)
// CHECK: %[[BUF:.+]] = gpu.alloc (%[[N]]) : memref<?x4xf32>
// CHECK: gpu.launch
// CHECK: memref.alloca() : memref<4xf32>
// CHECK: gpu.dealloc %[[BUF]] : memref<?x4xf32>
// CHECK-NOT: memref.alloc(
// CHECK-NOT: memref.dealloc
func.func @temporaries(%n: index) {
  %c1 = arith.constant 1 : index
  %c0 = arith.constant 0 : index
  %cst = arith.constant 0.0 : f32
  %buffer = memref.alloc(%n) {alignment = 64 : i64} : memref<?x4xf32>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    %scratch = memref.alloca() : memref<4xf32>
    memref.store %cst, %scratch[%c0] : memref<4xf32>
    memref.store %cst, %buffer[%bx, %c0] : memref<?x4xf32>
    gpu.terminator
  }
  memref.dealloc %buffer : memref<?x4xf32>
  return
}

// -----

// Tests that a host stack buffer a kernel would read is an error.
func.func @stack_buffer_in_kernel(%n: index) {
  %c1 = arith.constant 1 : index
  %c0 = arith.constant 0 : index
  %cst = arith.constant 0.0 : f32
  // expected-error @below {{is host stack memory but a GPU kernel uses it}}
  %stack = memref.alloca() : memref<4xf32>
  %view = memref.subview %stack[0] [2] [1] : memref<4xf32> to memref<2xf32, strided<[1]>>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    memref.store %cst, %view[%c0] : memref<2xf32, strided<[1]>>
    gpu.terminator
  }
  return
}

// -----

// Tests that a host stack buffer no kernel touches is left alone.
// CHECK-LABEL: func.func @host_only_stack
// CHECK: memref.alloca() : memref<2xi64>
func.func @host_only_stack() -> i64 {
  %c0 = arith.constant 0 : index
  %v = arith.constant 7 : i64
  %stack = memref.alloca() : memref<2xi64>
  memref.store %v, %stack[%c0] : memref<2xi64>
  %r = memref.load %stack[%c0] : memref<2xi64>
  return %r : i64
}

// -----

// Tests that a constant a kernel reads is fetched inside the kernel (so that
// outlining copies its global into the GPU module) and the host fetch goes.
// CHECK-LABEL: func.func @constant_in_kernel
// CHECK-NOT: memref.get_global
// CHECK: gpu.launch
// CHECK-NEXT: %[[G:.+]] = memref.get_global @mask : memref<4xf32>
// CHECK: memref.load %[[G]]
memref.global "private" constant @mask : memref<4xf32> = dense<1.0>
func.func @constant_in_kernel(%n: index, %out: memref<?xf32>) {
  %c1 = arith.constant 1 : index
  %c0 = arith.constant 0 : index
  %mask = memref.get_global @mask : memref<4xf32>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    %v = memref.load %mask[%c0] : memref<4xf32>
    memref.store %v, %out[%bx] : memref<?xf32>
    gpu.terminator
  }
  return
}

// -----

// Tests that a constant reaching a kernel through a host view is an error.
memref.global "private" constant @table : memref<4xf32> = dense<1.0>
func.func @constant_through_view(%n: index) {
  %c1 = arith.constant 1 : index
  %c0 = arith.constant 0 : index
  %cst = arith.constant 0.0 : f32
  // expected-error @below {{is host memory but a GPU kernel uses it through a view}}
  %table = memref.get_global @table : memref<4xf32>
  %view = memref.subview %table[1] [2] [1] : memref<4xf32> to memref<2xf32, strided<[1], offset: 1>>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    %v = memref.load %view[%c0] : memref<2xf32, strided<[1], offset: 1>>
    gpu.terminator
  }
  return
}

// -----

// Tests that a temporary the host code reads cannot move to the device.
func.func @host_reads_temporary(%n: index) -> f32 {
  %c0 = arith.constant 0 : index
  // expected-error @below {{would move to device memory but the host code reads or writes it}}
  %buffer = memref.alloc(%n) : memref<?xf32>
  %view = memref.subview %buffer[0] [1] [1] : memref<?xf32> to memref<1xf32, strided<[1]>>
  // expected-note @below {{host access}}
  %v = memref.load %view[%c0] : memref<1xf32, strided<[1]>>
  memref.dealloc %buffer : memref<?xf32>
  return %v : f32
}
