//===- Weights.h - A model package's weights, bound -------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RUNTIME_SRC_WEIGHTS_H
#define ATMOE_RUNTIME_SRC_WEIGHTS_H

#include "DeviceSupport.h"

#include "atmoe_rt/support/FileIdentity.h"
#include "atmoe_rt/support/SafeTensors.h"

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <vector>

namespace atmoe_rt {

/// The weights of one model package, as the entry points receive them.
/// Memory from malloc: the runtime is built without exceptions, so a
/// std::vector that cannot grow would terminate the host program, while a
/// failed malloc can be reported as a status.
struct FreeDeleter {
  void operator()(void *memory) const { std::free(memory); }
};
using HeapBuffer = std::unique_ptr<std::byte[], FreeDeleter>;

/// `bytes` of uninitialised memory, or an error saying what they were for.
Result<HeapBuffer> allocateBuffer(size_t bytes, const std::string &what);

struct BoundWeights {
  /// Keeps the mappings that in-place weights point into.
  std::vector<std::unique_ptr<SafeTensorsFile>> files;
  /// files[i] as it was when it was mapped (atmoe_rt_model_check_weights).
  std::vector<FileIdentity> identities;
  /// Owns the copies of widened, realigned and stacked weights.
  std::vector<HeapBuffer> converted;
  /// data[l][w]: weight w of layer l (manifest order), in the element type
  /// the manifest gives it.
  std::vector<std::vector<const void *>> data;
  size_t numInPlace = 0;
  /// On a GPU model, the device copies `data` points to (uploaded once).
  const DeviceSupport *device = nullptr;
  std::vector<void *> deviceBuffers;

  BoundWeights() = default;
  BoundWeights(const BoundWeights &) = delete;
  BoundWeights &operator=(const BoundWeights &) = delete;
  ~BoundWeights();
};

} // namespace atmoe_rt

#endif // ATMOE_RUNTIME_SRC_WEIGHTS_H
