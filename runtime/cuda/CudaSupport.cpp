//===- CudaSupport.cpp - The CUDA device support library ------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// libatmoe_rt_cuda.so: the mgpu* functions that MLIR's gpu-to-llvm lowering
// makes host code call (module loading, kernel launches, streams, events,
// device memory), over the CUDA driver API, plus the buffer functions of
// DevicePlugin.h. Debian ships no MLIR CUDA runtime wrappers, hence this
// library. Errors never abort the process: the first one is kept until the
// runtime takes it and reports it from the call that caused it.
//
//===----------------------------------------------------------------------===//

#include "DevicePlugin.h"

#include <cuda.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#define ATMOE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

std::mutex errorMutex;
std::string firstError;

void recordError(const std::string &message) {
  std::lock_guard<std::mutex> lock(errorMutex);
  if (firstError.empty())
    firstError = message;
}

/// Checks a driver call; records "what: CUDA_ERROR_X (description)".
bool check(CUresult result, const char *what) {
  if (result == CUDA_SUCCESS)
    return true;
  const char *name = nullptr, *description = nullptr;
  cuGetErrorName(result, &name);
  cuGetErrorString(result, &description);
  recordError(std::string(what) + ": " + (name ? name : "unknown error") +
              (description ? std::string(" (") + description + ")" : ""));
  return false;
}

CUdevice device = 0;
CUcontext context = nullptr;
char deviceName[256] = "unknown CUDA device";
std::once_flag initialized;
bool initializedOk = false;

void initializeOnce() {
  if (!check(cuInit(0), "cuInit"))
    return;
  int count = 0;
  if (!check(cuDeviceGetCount(&count), "cuDeviceGetCount"))
    return;
  int ordinal = 0;
  if (const char *env = std::getenv("ATMOE_CUDA_DEVICE"))
    ordinal = std::atoi(env);
  if (count == 0) {
    recordError("no CUDA device is present");
    return;
  }
  if (ordinal < 0 || ordinal >= count) {
    recordError("ATMOE_CUDA_DEVICE=" + std::to_string(ordinal) +
                " but there are " + std::to_string(count) + " CUDA devices");
    return;
  }
  if (!check(cuDeviceGet(&device, ordinal), "cuDeviceGet") ||
      !check(cuDevicePrimaryCtxRetain(&context, device),
             "cuDevicePrimaryCtxRetain"))
    return;
  cuDeviceGetName(deviceName, sizeof(deviceName), device);
  initializedOk = true;
}

/// Makes the primary context current on the calling thread (once per
/// thread): the layer functions may be called from any thread.
bool ensureContext() {
  std::call_once(initialized, initializeOnce);
  if (!initializedOk)
    return false;
  thread_local bool current = false;
  if (!current)
    current = check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
  return current;
}

} // namespace

//===----------------------------------------------------------------------===//
// DevicePlugin.h
//===----------------------------------------------------------------------===//

ATMOE_EXPORT int atmoe_device_initialize(void) {
  return ensureContext() ? 0 : 1;
}

ATMOE_EXPORT const char *atmoe_device_name(void) { return deviceName; }

ATMOE_EXPORT void *atmoe_device_alloc(size_t bytes) {
  if (!bytes || !ensureContext())
    return nullptr;
  CUdeviceptr pointer = 0;
  if (!check(cuMemAlloc(&pointer, bytes), "cuMemAlloc"))
    return nullptr;
  return reinterpret_cast<void *>(pointer);
}

ATMOE_EXPORT void atmoe_device_free(void *pointer) {
  if (pointer && ensureContext())
    check(cuMemFree(reinterpret_cast<CUdeviceptr>(pointer)), "cuMemFree");
}

ATMOE_EXPORT int atmoe_device_copy_to_device(void *target, const void *source,
                                             size_t bytes) {
  if (!bytes)
    return 0;
  if (!ensureContext())
    return 1;
  return check(
             cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(target), source, bytes),
             "cuMemcpyHtoD")
             ? 0
             : 1;
}

ATMOE_EXPORT int atmoe_device_copy_to_host(void *target, const void *source,
                                           size_t bytes) {
  if (!bytes)
    return 0;
  if (!ensureContext())
    return 1;
  return check(
             cuMemcpyDtoH(target, reinterpret_cast<CUdeviceptr>(source), bytes),
             "cuMemcpyDtoH")
             ? 0
             : 1;
}

ATMOE_EXPORT int atmoe_device_take_error(char *buffer, size_t size) {
  std::lock_guard<std::mutex> lock(errorMutex);
  if (firstError.empty())
    return 0;
  if (buffer && size) {
    std::strncpy(buffer, firstError.c_str(), size - 1);
    buffer[size - 1] = '\0';
  }
  firstError.clear();
  return 1;
}

//===----------------------------------------------------------------------===//
// The mgpu* functions of MLIR's gpu-to-llvm lowering (LLVM 22 signatures)
//===----------------------------------------------------------------------===//

ATMOE_EXPORT CUmodule mgpuModuleLoad(void *data, size_t /*size*/) {
  CUmodule module = nullptr;
  if (ensureContext())
    check(cuModuleLoadData(&module, data),
          "loading the model's GPU kernels (cuModuleLoadData)");
  return module;
}

ATMOE_EXPORT CUmodule mgpuModuleLoadJIT(void *data, int optLevel) {
  CUmodule module = nullptr;
  if (!ensureContext())
    return nullptr;
  CUjit_option options[] = {CU_JIT_OPTIMIZATION_LEVEL};
  void *values[] = {reinterpret_cast<void *>(static_cast<intptr_t>(optLevel))};
  check(cuModuleLoadDataEx(&module, data, 1, options, values),
        "compiling the model's PTX (cuModuleLoadDataEx)");
  return module;
}

ATMOE_EXPORT void mgpuModuleUnload(CUmodule module) {
  // At process exit the driver may already be gone; nothing to report then.
  if (module && initializedOk)
    cuModuleUnload(module);
}

ATMOE_EXPORT CUfunction mgpuModuleGetFunction(CUmodule module,
                                              const char *name) {
  CUfunction function = nullptr;
  if (!module) {
    recordError(std::string("kernel '") + name +
                "' is in a GPU module that failed to load");
    return nullptr;
  }
  if (ensureContext())
    check(cuModuleGetFunction(&function, module, name), "cuModuleGetFunction");
  return function;
}

ATMOE_EXPORT void mgpuLaunchKernel(CUfunction function, intptr_t gridX,
                                   intptr_t gridY, intptr_t gridZ,
                                   intptr_t blockX, intptr_t blockY,
                                   intptr_t blockZ, int32_t sharedMemoryBytes,
                                   CUstream stream, void **params,
                                   void ** /*extra*/, size_t /*paramsCount*/) {
  if (!function || !ensureContext())
    return;
  // Empty grids happen for T = 0 slices (an empty segment): nothing to run.
  if (gridX == 0 || gridY == 0 || gridZ == 0)
    return;
  if (sharedMemoryBytes > 48 * 1024)
    check(cuFuncSetAttribute(function,
                             CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                             sharedMemoryBytes),
          "cuFuncSetAttribute");
  check(cuLaunchKernel(function, gridX, gridY, gridZ, blockX, blockY, blockZ,
                       sharedMemoryBytes, stream, params, nullptr),
        "cuLaunchKernel");
}

ATMOE_EXPORT CUstream mgpuStreamCreate() {
  CUstream stream = nullptr;
  if (ensureContext())
    check(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  return stream;
}

ATMOE_EXPORT void mgpuStreamDestroy(CUstream stream) {
  if (stream)
    check(cuStreamDestroy(stream), "cuStreamDestroy");
}

ATMOE_EXPORT void mgpuStreamSynchronize(CUstream stream) {
  if (stream)
    check(cuStreamSynchronize(stream), "running the model's GPU kernels");
}

ATMOE_EXPORT void mgpuStreamWaitEvent(CUstream stream, CUevent event) {
  if (stream && event)
    check(cuStreamWaitEvent(stream, event, 0), "cuStreamWaitEvent");
}

ATMOE_EXPORT CUevent mgpuEventCreate() {
  CUevent event = nullptr;
  if (ensureContext())
    check(cuEventCreate(&event, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
  return event;
}

ATMOE_EXPORT void mgpuEventDestroy(CUevent event) {
  if (event)
    check(cuEventDestroy(event), "cuEventDestroy");
}

ATMOE_EXPORT void mgpuEventSynchronize(CUevent event) {
  if (event)
    check(cuEventSynchronize(event), "cuEventSynchronize");
}

ATMOE_EXPORT void mgpuEventRecord(CUevent event, CUstream stream) {
  if (event)
    check(cuEventRecord(event, stream), "cuEventRecord");
}

ATMOE_EXPORT void *mgpuMemAlloc(uint64_t bytes, CUstream stream,
                                bool /*isHostShared*/) {
  if (!bytes || !ensureContext())
    return nullptr;
  CUdeviceptr pointer = 0;
  // Stream-ordered: the pool makes the per-call temporaries cheap.
  if (!check(cuMemAllocAsync(&pointer, bytes, stream), "cuMemAllocAsync"))
    return nullptr;
  return reinterpret_cast<void *>(pointer);
}

ATMOE_EXPORT void mgpuMemFree(void *pointer, CUstream stream) {
  if (pointer && ensureContext())
    check(cuMemFreeAsync(reinterpret_cast<CUdeviceptr>(pointer), stream),
          "cuMemFreeAsync");
}

ATMOE_EXPORT void mgpuMemcpy(void *target, void *source, size_t bytes,
                             CUstream stream) {
  if (bytes && ensureContext())
    check(cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(target),
                        reinterpret_cast<CUdeviceptr>(source), bytes, stream),
          "cuMemcpyAsync");
}

ATMOE_EXPORT void mgpuMemset32(void *target, unsigned value, size_t count,
                               CUstream stream) {
  if (count && ensureContext())
    check(cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(target), value, count,
                           stream),
          "cuMemsetD32Async");
}

ATMOE_EXPORT void mgpuMemset16(void *target, unsigned short value, size_t count,
                               CUstream stream) {
  if (count && ensureContext())
    check(cuMemsetD16Async(reinterpret_cast<CUdeviceptr>(target), value, count,
                           stream),
          "cuMemsetD16Async");
}

ATMOE_EXPORT void mgpuSetDefaultDevice(int32_t) {
  // The device is chosen once, by ATMOE_CUDA_DEVICE.
}
