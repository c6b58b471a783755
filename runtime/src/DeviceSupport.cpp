//===- DeviceSupport.cpp - Loading a device support library ---------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "DeviceSupport.h"

#include "atmoe_rt/atmoe_rt.h"

#include <cstdlib>
#include <dlfcn.h>
#include <mutex>
#include <type_traits>
#include <unistd.h>

using namespace atmoe_rt;

std::string DeviceSupport::takeError() const {
  char buffer[1024];
  return takeErrorFn(buffer, sizeof(buffer)) ? std::string(buffer) : "";
}

namespace {

std::string cudaSupportPath() {
  if (const char *path = std::getenv("ATMOE_RT_CUDA_LIBRARY"))
    return path;
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&atmoe_rt_model_open), &info) &&
      info.dli_fname) {
    std::string self = info.dli_fname;
    size_t slash = self.rfind('/');
    std::string beside =
        (slash == std::string::npos ? std::string()
                                    : self.substr(0, slash + 1)) +
        "libatmoe_rt_cuda.so";
    if (::access(beside.c_str(), F_OK) == 0)
      return beside;
  }
  return "libatmoe_rt_cuda.so";
}

/// Resolves every function of the plugin interface; "" or the first missing.
std::string bindFunctions(DeviceSupport &support, const std::string &path) {
  std::string missing;
  auto bind = [&](auto &field, const char *name) {
    field = reinterpret_cast<std::remove_reference_t<decltype(field)>>(
        dlsym(support.library, name));
    if (!field && missing.empty())
      missing = path + " lacks " + name;
  };
  bind(support.initialize, "atmoe_device_initialize");
  bind(support.name, "atmoe_device_name");
  bind(support.alloc, "atmoe_device_alloc");
  bind(support.free, "atmoe_device_free");
  bind(support.copyToDevice, "atmoe_device_copy_to_device");
  bind(support.copyToHost, "atmoe_device_copy_to_host");
  bind(support.takeErrorFn, "atmoe_device_take_error");
  return missing;
}

/// Loads the library; the reason it cannot be used, or "".
std::string loadInto(DeviceSupport &support) {
  std::string path = cudaSupportPath();
  dlerror();
  // RTLD_GLOBAL: the model's mgpu* references bind to this library.
  support.library = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!support.library) {
    const char *reason = dlerror();
    return "cannot load the CUDA support library (" +
           std::string(reason ? reason : path) +
           "); it needs the NVIDIA driver's libcuda.so.1, and is built only "
           "where the CUDA toolkit was found";
  }
  if (std::string missing = bindFunctions(support, path); !missing.empty())
    return missing;
  if (support.initialize() != 0)
    return "no usable CUDA device: " + support.takeError();
  return "";
}

} // namespace

Result<const DeviceSupport *> atmoe_rt::loadCudaSupport() {
  static std::once_flag once;
  static DeviceSupport support;
  static std::string failure;
  std::call_once(once, [] { failure = loadInto(support); });
  if (!failure.empty())
    return fail(failure);
  return &support;
}
