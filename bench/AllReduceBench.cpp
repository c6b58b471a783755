//===- AllReduceBench.cpp - MPI_Allreduce latency and bandwidth -*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// mpiexec -n N atmoe-allreduce-bench --bytes 4,64,...[--budget S]
//
// Times MPI_Allreduce(MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), the call a split
// layer makes (atmoe-collectives-to-mpi), for each message size. Every rank
// runs the same number of calls (rank 0 decides it from a timed probe and
// broadcasts it), so the job never waits on a rank that stopped early. Rank
// 0 prints one line per size:
//   allreduce bytes=B median_us=... min_us=... calls=N
//
// Built by bench/distributed_bench.py against MPICH; not part of the CMake
// build.
//
//===----------------------------------------------------------------------===//

#include "BenchCommon.h"

#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

using namespace bench;

namespace {

/// Calls so that one size takes about `budget` seconds (at least 20).
int callsFor(std::vector<float> &send, std::vector<float> &recv,
             double budget) {
  int probe = 5;
  double start = MPI_Wtime();
  for (int i = 0; i < probe; ++i)
    MPI_Allreduce(send.data(), recv.data(), static_cast<int>(send.size()),
                  MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  double each = (MPI_Wtime() - start) / probe;
  int calls = static_cast<int>(budget / std::max(each, 1e-7));
  calls = std::max(20, std::min(calls, 100000));
  MPI_Bcast(&calls, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return calls;
}

} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  Args args(argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  double budget = args.number("budget", 0.5);
  for (int64_t bytes : parseList(args.get("bytes"))) {
    size_t count = std::max<int64_t>(1, bytes / 4);
    std::vector<float> send(count, 1.0f), recv(count, 0.0f);
    int calls = callsFor(send, recv, budget);
    std::vector<double> times;
    for (int i = 0; i < calls; ++i) {
      double begin = MPI_Wtime();
      MPI_Allreduce(send.data(), recv.data(), static_cast<int>(count),
                    MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      times.push_back((MPI_Wtime() - begin) * 1e6);
    }
    if (rank == 0)
      std::printf("allreduce bytes=%zu median_us=%.3f min_us=%.3f calls=%d\n",
                  count * 4, median(times),
                  *std::min_element(times.begin(), times.end()), calls);
  }
  MPI_Finalize();
  return 0;
}
