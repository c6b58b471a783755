//===- Processes.cpp - The MPI job of a model split over processes -------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "Processes.h"

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
// The C API only: MPICH's C++ bindings are deprecated and warn.
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

using namespace atmoe_rt;

namespace {

/// `name` from the model's MPI, as a function of type `Fn`.
template <typename Fn>
Result<Fn> lookup(void *library, const char *name, const std::string &path) {
  void *symbol = dlsym(library, name);
  if (!symbol)
    return fail(path + ": no " + std::string(name));
  Fn function;
  static_assert(sizeof(function) == sizeof(symbol));
  std::memcpy(&function, &symbol, sizeof(function));
  return function;
}

} // namespace

Result<std::unique_ptr<ProcessGroup>>
ProcessGroup::join(void *library, int64_t ranks, const std::string &kind,
                   const std::string &path) {
  std::unique_ptr<ProcessGroup> group(new ProcessGroup);
  auto initialized = lookup<int (*)(int *)>(library, "MPI_Initialized", path);
  auto init = lookup<int (*)(int *, char ***)>(library, "MPI_Init", path);
  auto finalized = lookup<int (*)(int *)>(library, "MPI_Finalized", path);
  auto finalize = lookup<int (*)()>(library, "MPI_Finalize", path);
  auto commRank =
      lookup<int (*)(MPI_Comm, int *)>(library, "MPI_Comm_rank", path);
  auto commSize =
      lookup<int (*)(MPI_Comm, int *)>(library, "MPI_Comm_size", path);
  auto abortJob = lookup<int (*)(MPI_Comm, int)>(library, "MPI_Abort", path);
  if (!initialized || !init || !finalized || !finalize || !commRank ||
      !commSize || !abortJob)
    return fail(path + ": the model runs split over processes, but its MPI "
                       "library lacks MPI_Init, MPI_Comm_rank or the like");
  int flag = 0;
  if ((*initialized)(&flag) != MPI_SUCCESS)
    return fail(path + ": MPI_Initialized failed");
  if (!flag) {
    if ((*init)(nullptr, nullptr) != MPI_SUCCESS)
      return fail(path + ": MPI_Init failed");
    group->initialisedHere = true;
  }
  group->finalized = *finalized;
  group->finalize = *finalize;
  group->abortJob = *abortJob;
  if ((*commRank)(MPI_COMM_WORLD, &group->rankInJob) != MPI_SUCCESS ||
      (*commSize)(MPI_COMM_WORLD, &group->processes) != MPI_SUCCESS)
    return fail(path + ": cannot query MPI_COMM_WORLD");
  if (group->processes != ranks)
    return fail(path + ": the model was compiled for " + std::to_string(ranks) +
                " processes (--parallel=" + kind + ":" + std::to_string(ranks) +
                "), but this job has " + std::to_string(group->processes) +
                " (run it with mpiexec -n " + std::to_string(ranks) + ")");
  return group;
}

void ProcessGroup::abort(int exitCode) const {
  abortJob(MPI_COMM_WORLD, exitCode);
  std::_Exit(exitCode); // MPI_Abort does not return; in case it does.
}

ProcessGroup::~ProcessGroup() {
  int done = 1;
  if (initialisedHere && finalized(&done) == MPI_SUCCESS && !done)
    finalize();
}
