//===- Model.h - An opened compiled model -----------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// What atmoe_rt_model_t is: the loaded library, its validated manifest, the
// layers' entry points, the bound weights and the device the kernels run on.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RUNTIME_SRC_MODEL_H
#define ATMOE_RUNTIME_SRC_MODEL_H

#include "atmoe_rt/atmoe_rt.h"

#include "DeviceSupport.h"
#include "Processes.h"
#include "Weights.h"

#include "atmoe_rt/support/Manifest.h"

#include <memory>
#include <string>
#include <vector>

/// The signature of every `atmoe_entry_<function>`.
using AtmoeEntryFn = void (*)(void **);

struct atmoe_rt_model {
  std::string path;
  void *library = nullptr;
  atmoe_rt::Manifest manifest;
  /// entries[l]: the entry point of layer l.
  std::vector<AtmoeEntryFn> entries;
  std::unique_ptr<atmoe_rt::BoundWeights> weights;
  /// The device support the model's kernels run on; null for a CPU model.
  const atmoe_rt::DeviceSupport *device = nullptr;
  /// The MPI job of a model split over processes; null for one process.
  std::unique_ptr<atmoe_rt::ProcessGroup> processes;

  ~atmoe_rt_model();
};

namespace atmoe_rt {

/// "layer 3", for messages.
std::string layerName(const Layer &layer);

/// Checks the handle and layer position shared by the layer queries;
/// ATMOE_RT_OK or the failure (with the last error set).
atmoe_rt_status_t checkLayer(const atmoe_rt_model_t *model, size_t layer,
                             const char *function);

} // namespace atmoe_rt

#endif // ATMOE_RUNTIME_SRC_MODEL_H
