// RUN: atmoe-opt %s --split-input-file --verify-diagnostics \
// RUN:   --atmoe-collectives-to-mpi | FileCheck %s

// The declared collective gets its body on MPI_COMM_WORLD; the module names
// MPICH for the lowering of the mpi dialect; the grid goes.

// CHECK-LABEL: module attributes {dlti.map = #dlti.map<"MPI:Implementation" = "MPICH">}
// CHECK-NOT: shard.grid
// CHECK-LABEL: func.func private @atmoe_all_reduce_sum_f32
// CHECK-SAME: (%[[SEND:.*]]: memref<?xf32>, %[[RECV:.*]]: memref<?xf32>)
// CHECK: %[[WORLD:.*]] = mpi.comm_world : !mpi.comm
// CHECK: mpi.allreduce(%[[SEND]], %[[RECV]], MPI_SUM, %[[WORLD]])
// CHECK-NEXT: return
shard.grid @atmoe_ranks(shape = 2)
func.func private @atmoe_all_reduce_sum_f32(memref<?xf32>, memref<?xf32>)

// -----

// A one-process module is left alone.

// CHECK-LABEL: module {
// CHECK-LABEL: func.func @plain
func.func @plain() {
  return
}

// -----

// Anything of the grid but the grid itself is a bug upstream of this pass.

shard.grid @atmoe_ranks(shape = 2)
func.func @left(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @below {{was left by the lowering of the process grid}}
  %y = shard.all_reduce %x on @atmoe_ranks grid_axes = [0] : tensor<4xf32> -> tensor<4xf32>
  return %y : tensor<4xf32>
}
