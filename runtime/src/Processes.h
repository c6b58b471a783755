//===- Processes.h - The MPI job of a model split over processes-*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A model compiled with --parallel=tensor:N calls MPI itself (its collectives
// are MPI_Allreduce on MPI_COMM_WORLD) and links the MPI it was compiled
// for. The runtime does not link MPI: it reaches that same MPI through the
// model's handle, to join the job, learn this process's rank (which slice of
// each split weight it binds) and leave the job if it started it.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RUNTIME_SRC_PROCESSES_H
#define ATMOE_RUNTIME_SRC_PROCESSES_H

#include "atmoe_rt/support/Result.h"

#include <cstdint>
#include <memory>
#include <string>

namespace atmoe_rt {

class ProcessGroup {
public:
  /// Joins the MPI job through `library` (initialising MPI unless the host
  /// program has), which must hold exactly `ranks` processes; `kind` (tensor
  /// or expert) names the split in messages.
  static Result<std::unique_ptr<ProcessGroup>>
  join(void *library, int64_t ranks, const std::string &kind,
       const std::string &modelPath);

  /// Finalises MPI if join initialised it.
  ~ProcessGroup();

  int rank() const { return rankInJob; }
  /// MPI_Abort on MPI_COMM_WORLD: every process of the job ends.
  [[noreturn]] void abort(int exitCode) const;
  int size() const { return processes; }

private:
  ProcessGroup() = default;

  int (*finalized)(int *) = nullptr;
  int (*finalize)() = nullptr;
  int (*abortJob)(int, int) = nullptr;
  bool initialisedHere = false;
  int rankInJob = 0, processes = 1;
};

} // namespace atmoe_rt

#endif // ATMOE_RUNTIME_SRC_PROCESSES_H
