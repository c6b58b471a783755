// RUN: atmoe-opt %atmoe_src_root/examples/demo/demo.mlir --atmoe-lower-to-linalg-pipeline --atmoe-gpu-kernel-pipeline | FileCheck %s --check-prefix=KERNELS
// RUN: atmoe-opt %atmoe_src_root/examples/demo/demo.mlir --atmoe-lower-to-linalg-pipeline --atmoe-gpu-kernel-pipeline=shared-memory-matmuls=false | FileCheck %s --check-prefix=NO-SHARED
// RUN: atmoe-opt %atmoe_src_root/examples/demo/demo.mlir --atmoe-lower-to-linalg-pipeline --atmoe-nvvm-codegen-pipeline="chip=sm_90 format=isa" | FileCheck %s --check-prefix=NVVM
// RUN: atmoe-opt %atmoe_src_root/examples/demo/demo.mlir --atmoe-lower-to-linalg-pipeline --atmoe-nvvm-codegen-pipeline="chip=sm_80 format=isa" | FileCheck %s --check-prefix=SM80
// RUN: atmoe-opt %atmoe_src_root/examples/demo/demo.mlir --atmoe-lower-to-linalg-pipeline --atmoe-rocdl-codegen-pipeline="chip=gfx90a format=isa" | FileCheck %s --check-prefix=ROCDL

// Tests that the GPU pipelines take the bundled example from fused linalg to
// outlined kernels launched on a stream, then to host LLVM code with the
// kernels serialised for an NVIDIA or an AMD GPU. (Serialising to cubin needs
// ptxas: test/atmoe-compile/targets.test.)

// Kernels: every linalg op is a launch on one stream, temporaries are in
// device memory, the function waits for the stream before returning.
// KERNELS-LABEL: func.func @layer0_forward
// KERNELS-SAME: atmoe.host_arguments = array<i64>
// KERNELS: %[[STREAM:.+]] = gpu.wait async
// KERNELS: gpu.alloc async [%[[STREAM]]]
// KERNELS: gpu.launch_func async
// KERNELS-NOT: memref.alloc(
// KERNELS-NOT: linalg.
// KERNELS: gpu.dealloc async
// KERNELS: gpu.wait [
// KERNELS-NEXT: return
// KERNELS: gpu.module @layer0_forward_kernel
// KERNELS: gpu.func @layer0_forward_kernel
// KERNELS-SAME: kernel
// The matmuls stage their tiles in shared memory, with tile sizes as
// constants inside the kernel.
// KERNELS: gpu.func @layer0_forward_kernel({{.*}}) workgroup(%{{.+}} : memref<64x16xf32, #gpu.address_space<workgroup>>, %{{.+}} : memref<16x65xf32, #gpu.address_space<workgroup>>, %{{.+}} : memref<16x64xf32, #gpu.address_space<workgroup>>, %{{.+}} : memref<64x17xf32, #gpu.address_space<workgroup>>) kernel
// KERNELS: gpu.barrier
// KERNELS-LABEL: func.func @layer1_forward
// KERNELS-NOT: {{(= |^ *)atmoe\.}}
// KERNELS-NOT: linalg.

// Without shared-memory matmuls, every kernel is one thread per output.
// NO-SHARED-LABEL: func.func @layer0_forward
// NO-SHARED: gpu.launch_func
// NO-SHARED-NOT: workgroup(
// NO-SHARED-NOT: gpu.barrier

// For NVIDIA: the default PTX version of the chip, PTX text in the binary,
// host code calling the mgpu* runtime functions, no host globals left.
// NVVM-NOT: llvm.mlir.global
// NVVM-LABEL: llvm.func @layer0_forward
// NVVM: llvm.call @mgpuStreamCreate
// NVVM: gpu.launch_func
// NVVM: llvm.call @mgpuStreamSynchronize
// NVVM: gpu.binary @layer0_forward_kernel [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx78">, {{.*}}assembly = "{{.*}}.target sm_90
// NVVM: gpu.binary @layer0_forward_kernel_0 {{.*}}.shared .align 4 .b8 __wg_layer0_forward_kernel_0{{.*}}bar.sync
// NVVM-NOT: {{(= |^ *)atmoe\.}}
// NVVM-NOT: linalg.
// NVVM-NOT: memref.
// NVVM-NOT: func.func

// SM80: gpu.binary @layer0_forward_kernel [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx70">

// ROCDL-LABEL: llvm.func @layer0_forward
// ROCDL: gpu.launch_func
// ROCDL: gpu.binary @layer0_forward_kernel [#gpu.object<#rocdl.target<O = 3, chip = "gfx90a">, {{.*}}assembly = "{{.*}}amdgcn-amd-amdhsa--gfx90a
// ROCDL: gpu.binary @layer0_forward_kernel_0 {{.*}}s_barrier{{.*}}.group_segment_fixed_size: 16704
// ROCDL-NOT: {{(= |^ *)atmoe\.}}
// ROCDL-NOT: linalg.
