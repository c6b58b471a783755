//===- DevicePlugin.h - The interface of device support libraries -*- C -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A GPU model's host code calls the mgpu* functions MLIR's gpu-to-llvm
// lowering emits; a device support library (runtime/cuda for CUDA) defines
// them over the vendor's driver API, together with the few functions below
// that the runtime needs to move buffers. The runtime loads the library with
// dlopen (RTLD_GLOBAL, so that the model's mgpu* references bind to it) only
// when it opens a model for that device: CPU-only programs never load a GPU
// driver.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RUNTIME_SRC_DEVICE_PLUGIN_H
#define ATMOE_RUNTIME_SRC_DEVICE_PLUGIN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Initialises the driver and the device (the first one, or the index in
/// ATMOE_CUDA_DEVICE). 0 on success; otherwise see atmoe_device_take_error.
int atmoe_device_initialize(void);
/// The device's name, for messages.
const char *atmoe_device_name(void);
/// Device memory; NULL on failure (and for 0 bytes).
void *atmoe_device_alloc(size_t bytes);
void atmoe_device_free(void *pointer);
/// Synchronous copies; 0 on success.
int atmoe_device_copy_to_device(void *device, const void *host, size_t bytes);
int atmoe_device_copy_to_host(void *host, const void *device, size_t bytes);
/// Copies the first error any function (mgpu* included) met since the last
/// call into `buffer` and clears it: 1 if there was one, else 0.
int atmoe_device_take_error(char *buffer, size_t size);

#ifdef __cplusplus
}
#endif

#endif // ATMOE_RUNTIME_SRC_DEVICE_PLUGIN_H
