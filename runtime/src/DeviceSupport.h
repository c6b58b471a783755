//===- DeviceSupport.h - Loading a device support library -------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RUNTIME_SRC_DEVICESUPPORT_H
#define ATMOE_RUNTIME_SRC_DEVICESUPPORT_H

#include "DevicePlugin.h"

#include "atmoe_rt/support/Result.h"

#include <string>

namespace atmoe_rt {

/// A device support library (DevicePlugin.h), loaded once per process.
struct DeviceSupport {
  void *library = nullptr;
  decltype(&atmoe_device_initialize) initialize = nullptr;
  decltype(&atmoe_device_name) name = nullptr;
  decltype(&atmoe_device_alloc) alloc = nullptr;
  decltype(&atmoe_device_free) free = nullptr;
  decltype(&atmoe_device_copy_to_device) copyToDevice = nullptr;
  decltype(&atmoe_device_copy_to_host) copyToHost = nullptr;
  decltype(&atmoe_device_take_error) takeErrorFn = nullptr;

  /// The pending error of the device library, or "".
  std::string takeError() const;
};

/// Loads and initialises the CUDA support library (ATMOE_RT_CUDA_LIBRARY,
/// else libatmoe_rt_cuda.so beside this runtime, else the library search
/// path) once per process; once failed, always failed, with the same
/// message.
Result<const DeviceSupport *> loadCudaSupport();

} // namespace atmoe_rt

#endif // ATMOE_RUNTIME_SRC_DEVICESUPPORT_H
