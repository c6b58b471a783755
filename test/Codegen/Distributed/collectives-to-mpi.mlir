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

// The gather with N = 3 (the module's atmoe.ranks), not a power of two: the
// local part copied into its block, then N - 1 ring steps, even ranks
// sending first.

// CHECK-LABEL: module attributes {atmoe.ranks = 3 : i64, dlti.map
// CHECK-LABEL: func.func private @atmoe_all_gather_f32
// CHECK-SAME: (%[[SEND:.*]]: memref<?xf32>, %[[PARTS:.*]]: memref<?xf32>)
// CHECK-DAG: %[[WORLD:.*]] = mpi.comm_world : !mpi.comm
// CHECK-DAG: %[[RANK32:.*]] = mpi.comm_rank(%[[WORLD]]) : i32
// CHECK: %[[OWN:.*]] = memref.subview %[[PARTS]]
// CHECK: linalg.copy ins(%[[SEND]] : memref<?xf32>) outs(%[[OWN]]
// CHECK: arith.constant 2 : index
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step
// CHECK: %[[OUT:.*]] = memref.subview %[[PARTS]]
// CHECK: %[[IN:.*]] = memref.subview %[[PARTS]]
// CHECK: scf.if
// CHECK-NEXT: mpi.send(%[[OUT]], %{{.*}}, %{{.*}}, %[[WORLD]])
// CHECK-NEXT: mpi.recv(%[[IN]], %{{.*}}, %{{.*}}, %[[WORLD]])
// CHECK: } else {
// CHECK-NEXT: mpi.recv(%[[IN]]
// CHECK-NEXT: mpi.send(%[[OUT]]
module attributes {atmoe.ranks = 3 : i64} {
  shard.grid @atmoe_ranks(shape = 3)
  func.func private @atmoe_all_gather_f32(memref<?xf32>, memref<?xf32>)
}

// -----

// With N = 4, recursive doubling: two steps, each swapping the blocks held
// so far with the partner at distance 1, then 2 (the lower rank sends
// first).

// CHECK-LABEL: func.func private @atmoe_all_gather_f32
// CHECK: linalg.copy
// CHECK-NOT: scf.for
// CHECK: %[[PARTNER1:.*]] = arith.xori %[[RANK:.*]], %c1
// CHECK: %[[LOWER1:.*]] = arith.cmpi ult, %[[RANK]], %[[PARTNER1]]
// CHECK: scf.if %[[LOWER1]]
// CHECK: mpi.send
// CHECK: %[[PARTNER2:.*]] = arith.xori %[[RANK]], %c2
// CHECK: arith.andi %[[RANK]], %c-2
// CHECK: arith.andi %[[PARTNER2]], %c-2
// CHECK: %[[LOWER2:.*]] = arith.cmpi ult, %[[RANK]], %[[PARTNER2]]
// CHECK: scf.if %[[LOWER2]]
// CHECK-NOT: arith.xori
// CHECK: return
module attributes {atmoe.ranks = 4 : i64} {
  shard.grid @atmoe_ranks(shape = 4)
  func.func private @atmoe_all_gather_f32(memref<?xf32>, memref<?xf32>)
}

// -----

// The gather needs the number of processes.

shard.grid @atmoe_ranks(shape = 2)
// expected-error @below {{needs the module's atmoe.ranks (the number of processes)}}
func.func private @atmoe_all_gather_f32(memref<?xf32>, memref<?xf32>)

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
