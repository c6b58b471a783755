//===- runtime.cpp - The atmoe runtime C API --------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Implements atmoe_rt.h: loading a compiled model with dlopen, binding model
// package weights through the mmap'd safetensors reader, and calling layer
// entry points with memref descriptors built per call.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/atmoe_rt.h"

#include "device_plugin.h"
#include "manifest.h"

#include "atmoe/Support/SafeTensors.h"
#include "atmoe/Support/Shape.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Object/ObjectFile.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <dlfcn.h>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using namespace llvm;
using namespace atmoe;
using namespace atmoe::rt;

namespace {

/// The signature of every `atmoe_entry_<function>`.
using EntryFn = void (*)(void **);

/// A device support library (device_plugin.h), loaded once per process.
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
  std::string takeError() const {
    char buffer[1024];
    return takeErrorFn(buffer, sizeof(buffer)) ? std::string(buffer) : "";
  }
};

/// The weights of one model package, as the entry points receive them.
struct BoundWeights {
  /// Keeps the mappings that in-place weights point into.
  std::vector<std::unique_ptr<SafeTensorsFile>> files;
  /// Owns the f32 copies of converted weights; unique_ptr keeps each buffer
  /// at a fixed address while more are added.
  std::vector<std::unique_ptr<std::vector<float>>> converted;
  /// data[l][w]: weight w of layer l (manifest order).
  std::vector<std::vector<const float *>> data;
  size_t numInPlace = 0;
  /// On a GPU model, the device copies `data` points to (uploaded once).
  const DeviceSupport *device = nullptr;
  std::vector<void *> deviceBuffers;

  ~BoundWeights() {
    for (void *buffer : deviceBuffers)
      device->free(buffer);
  }
};

} // namespace

struct atmoe_rt_model {
  std::string path;
  void *library = nullptr;
  Manifest manifest;
  /// entries[l]: the entry point of layer l.
  std::vector<EntryFn> entries;
  std::unique_ptr<BoundWeights> weights;
  /// The device support the model's kernels run on; null for a CPU model.
  const DeviceSupport *device = nullptr;

  ~atmoe_rt_model() {
    // The weights go first: nothing of them points into the library, but
    // this keeps the teardown order the reverse of the setup order.
    weights.reset();
    if (library)
      dlclose(library);
  }
};

namespace {

thread_local std::string lastError;

atmoe_rt_status_t fail(atmoe_rt_status_t status, const Twine &message) {
  lastError = message.str();
  // The contract promises a single line; some dlerror() texts and JSON
  // parser messages could carry a newline.
  std::replace(lastError.begin(), lastError.end(), '\n', ' ');
  return status;
}

atmoe_rt_status_t failWith(atmoe_rt_status_t status, Error error) {
  return fail(status, toString(std::move(error)));
}

std::string layerName(const Layer &layer) {
  return ("layer " + Twine(layer.index)).str();
}

/// Checks the handle and layer position shared by the layer queries.
atmoe_rt_status_t checkLayer(const atmoe_rt_model_t *model, size_t layer,
                             const char *function) {
  if (!model)
    return fail(ATMOE_RT_INVALID_ARGUMENT, Twine(function) + ": model is NULL");
  if (layer >= model->manifest.layers.size())
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                Twine(function) + ": layer position " + Twine(layer) +
                    " is out of range (the model has " +
                    Twine(model->manifest.layers.size()) + " layers)");
  return ATMOE_RT_OK;
}

/// The CUDA support library: ATMOE_RT_CUDA_LIBRARY, else
/// libatmoe_rt_cuda.so beside this runtime, else the library search path.
std::string cudaSupportPath() {
  if (const char *path = std::getenv("ATMOE_RT_CUDA_LIBRARY"))
    return path;
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&atmoe_rt_model_open), &info) &&
      info.dli_fname) {
    SmallString<256> path(sys::path::parent_path(info.dli_fname));
    sys::path::append(path, "libatmoe_rt_cuda.so");
    if (sys::fs::exists(path))
      return std::string(path);
  }
  return "libatmoe_rt_cuda.so";
}

/// Loads and initialises the CUDA support once per process; the error
/// message (once failed, always failed) otherwise.
Expected<const DeviceSupport *> loadCudaSupport() {
  static std::once_flag once;
  static DeviceSupport support;
  static std::string failure;
  std::call_once(once, [] {
    std::string path = cudaSupportPath();
    dlerror();
    // RTLD_GLOBAL: the model's mgpu* references bind to this library.
    support.library = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!support.library) {
      const char *reason = dlerror();
      failure = "cannot load the CUDA support library (" +
                std::string(reason ? reason : path) +
                "); it needs the NVIDIA driver's libcuda.so.1, and is built "
                "only where the CUDA toolkit was found";
      return;
    }
    auto bind = [&](auto &field, const char *name) {
      field = reinterpret_cast<std::remove_reference_t<decltype(field)>>(
          dlsym(support.library, name));
      if (!field && failure.empty())
        failure = path + " lacks " + name;
    };
    bind(support.initialize, "atmoe_device_initialize");
    bind(support.name, "atmoe_device_name");
    bind(support.alloc, "atmoe_device_alloc");
    bind(support.free, "atmoe_device_free");
    bind(support.copyToDevice, "atmoe_device_copy_to_device");
    bind(support.copyToHost, "atmoe_device_copy_to_host");
    bind(support.takeErrorFn, "atmoe_device_take_error");
    if (failure.empty() && support.initialize() != 0)
      failure = "no usable CUDA device: " + support.takeError();
  });
  if (!failure.empty())
    return createStringError(inconvertibleErrorCode(), failure);
  return &support;
}

/// The device a compiled model was built for, read from the manifest in the
/// file before dlopen: a GPU model's constructors load its kernels through
/// the device support library, which must be loaded first. Anything
/// unreadable here is left to dlopen and the manifest parser to report.
Device peekDevice(StringRef path) {
  Expected<object::OwningBinary<object::ObjectFile>> binary =
      object::ObjectFile::createObjectFile(path);
  if (!binary) {
    consumeError(binary.takeError());
    return Device::CPU;
  }
  auto *elf = dyn_cast<object::ELFObjectFileBase>(binary->getBinary());
  if (!elf)
    return Device::CPU;
  for (const object::ELFSymbolRef &symbol : elf->getDynamicSymbolIterators()) {
    Expected<StringRef> name = symbol.getName();
    if (!name || *name != "atmoe_manifest") {
      if (!name)
        consumeError(name.takeError());
      continue;
    }
    Expected<uint64_t> address = symbol.getAddress();
    Expected<object::section_iterator> section = symbol.getSection();
    if (!address || !section || *section == elf->section_end()) {
      if (!address)
        consumeError(address.takeError());
      if (!section)
        consumeError(section.takeError());
      return Device::CPU;
    }
    Expected<StringRef> contents = (*section)->getContents();
    if (!contents) {
      consumeError(contents.takeError());
      return Device::CPU;
    }
    uint64_t offset = *address - (*section)->getAddress();
    if (offset >= contents->size())
      return Device::CPU;
    StringRef text = contents->drop_front(offset);
    text = text.take_until([](char c) { return c == '\0'; });
    Expected<Manifest> manifest = parseManifest(text, path);
    if (!manifest) {
      consumeError(manifest.takeError());
      return Device::CPU;
    }
    return manifest->device;
  }
  return Device::CPU;
}

/// Builds the memref descriptors of one call. A descriptor of rank R is
/// {allocated, aligned, offset, sizes[R], strides[R]}: 3 + 2R eight-byte
/// words with no padding on LP64, so all of them can live in one word array
/// that belongs to the call (nothing shared between threads).
class DescriptorList {
public:
  static_assert(sizeof(void *) == sizeof(int64_t),
                "memref descriptors are laid out for 64-bit pointers");

  void add(const void *data, ArrayRef<int64_t> sizes) {
    offsets.push_back(words.size());
    int64_t pointer;
    std::memcpy(&pointer, &data, sizeof(pointer));
    words.push_back(pointer); // allocated
    words.push_back(pointer); // aligned
    words.push_back(0);       // offset
    words.append(sizes.begin(), sizes.end());
    size_t stridesBegin = words.size();
    words.resize(stridesBegin + sizes.size());
    int64_t stride = 1;
    for (size_t i = sizes.size(); i-- > 0;) {
      words[stridesBegin + i] = stride;
      stride *= sizes[i];
    }
  }

  /// The `void **args` array; valid until the next add().
  void **finish() {
    args.clear();
    for (size_t offset : offsets)
      args.push_back(&words[offset]);
    return args.data();
  }

private:
  SmallVector<int64_t, 128> words;
  SmallVector<size_t, 24> offsets;
  SmallVector<void *, 24> args;
};

/// Extent of a manifest dimension: kDynamic is T for projection data and
/// T or S (`rows`) for router data.
SmallVector<int64_t, 2> concreteShape(ArrayRef<int64_t> shape, int64_t rows) {
  SmallVector<int64_t, 2> result(shape.begin(), shape.end());
  for (int64_t &dim : result)
    if (dim == kDynamic)
      dim = rows;
  return result;
}

} // namespace

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

const char *atmoe_rt_last_error(void) { return lastError.c_str(); }

const char *atmoe_rt_status_string(atmoe_rt_status_t status) {
  switch (status) {
  case ATMOE_RT_OK:
    return "ok";
  case ATMOE_RT_INVALID_ARGUMENT:
    return "invalid argument";
  case ATMOE_RT_INPUT_ERROR:
    return "input error";
  case ATMOE_RT_INTERNAL_ERROR:
    return "internal error";
  }
  return "unknown status";
}

//===----------------------------------------------------------------------===//
// Opening, binding, closing
//===----------------------------------------------------------------------===//

atmoe_rt_status_t atmoe_rt_model_open(const char *path,
                                      atmoe_rt_model_t **outModel) {
  if (!outModel)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_open: out_model is NULL");
  *outModel = nullptr;
  if (!path || !*path)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_open: path is NULL or empty");

  // dlopen searches the library path for a name without a slash; a model
  // file named on the command line must be the file in the working
  // directory, so always hand it an absolute path.
  SmallString<256> absolute(path);
  if (std::error_code ec = sys::fs::make_absolute(absolute))
    return fail(ATMOE_RT_INPUT_ERROR,
                Twine(path) + ": cannot resolve the path: " + ec.message());
  sys::fs::file_status status;
  if (std::error_code ec = sys::fs::status(absolute, status))
    return fail(ATMOE_RT_INPUT_ERROR,
                Twine(path) + ": cannot open compiled model: " + ec.message());
  if (!sys::fs::is_regular_file(status))
    return fail(ATMOE_RT_INPUT_ERROR,
                Twine(path) + ": cannot open compiled model: not a file");

  auto model = std::make_unique<atmoe_rt_model>();
  model->path = path;
  // A GPU model's host code calls the mgpu* functions of its device support
  // library, and its constructors load the kernels: set that up first.
  switch (peekDevice(absolute)) {
  case Device::CPU:
    break;
  case Device::CUDA: {
    Expected<const DeviceSupport *> cuda = loadCudaSupport();
    if (!cuda)
      return fail(ATMOE_RT_INPUT_ERROR,
                  Twine(path) + ": the model runs on a CUDA GPU, but " +
                      toString(cuda.takeError()));
    model->device = *cuda;
    break;
  }
  case Device::HIP:
    return fail(ATMOE_RT_INPUT_ERROR,
                Twine(path) + ": the model was compiled for an AMD GPU "
                              "(device \"hip\"); this runtime has no HIP "
                              "support");
  }
  dlerror();
  model->library = dlopen(absolute.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!model->library) {
    StringRef reason = dlerror();
    if (reason.empty())
      reason = "unknown dlopen error";
    // glibc starts the reason with the path it was given; the message names
    // the file already.
    reason.consume_front(absolute.str());
    reason.consume_front(": ");
    return fail(ATMOE_RT_INPUT_ERROR,
                Twine(path) + ": not a loadable shared library: " + reason);
  }

  // dlsym of a data symbol yields its address: the first character of the
  // NUL-terminated manifest text.
  dlerror();
  const char *text =
      static_cast<const char *>(dlsym(model->library, "atmoe_manifest"));
  if (!text)
    return fail(ATMOE_RT_INPUT_ERROR,
                Twine(path) + ": no atmoe_manifest symbol: not a model "
                              "compiled by atmoe-compile");
  Expected<Manifest> manifest = parseManifest(text, path);
  if (!manifest)
    return failWith(ATMOE_RT_INPUT_ERROR, manifest.takeError());
  model->manifest = std::move(*manifest);
  // The device was read from the same file before dlopen (peekDevice).
  if (model->manifest.device != Device::CPU && !model->device)
    return fail(ATMOE_RT_INPUT_ERROR,
                Twine(path) + ": the manifest names a GPU device but could not "
                              "be read before loading the library");
  // A GPU model's constructors loaded its kernels.
  if (model->device)
    if (std::string error = model->device->takeError(); !error.empty())
      return fail(ATMOE_RT_INPUT_ERROR,
                  Twine(path) + ": on " + model->device->name() + ": " + error);

  for (const Layer &layer : model->manifest.layers) {
    dlerror();
    void *symbol = dlsym(model->library, layer.entry.c_str());
    if (!symbol)
      return fail(ATMOE_RT_INPUT_ERROR,
                  Twine(path) + ": " + layerName(layer) + ": entry point '" +
                      layer.entry + "' named by the manifest is not exported");
    // POSIX guarantees that a function address round-trips through the
    // void * that dlsym returns.
    EntryFn entry;
    static_assert(sizeof(entry) == sizeof(symbol));
    std::memcpy(&entry, &symbol, sizeof(entry));
    model->entries.push_back(entry);
  }
  *outModel = model.release();
  return ATMOE_RT_OK;
}

void atmoe_rt_model_close(atmoe_rt_model_t *model) { delete model; }

atmoe_rt_status_t atmoe_rt_model_bind_weights(atmoe_rt_model_t *model,
                                              const char *packageDir) {
  if (!model)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_bind_weights: model is NULL");
  if (!packageDir || !*packageDir)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_bind_weights: package_dir is NULL or empty");
  if (!sys::fs::is_directory(packageDir))
    return fail(ATMOE_RT_INPUT_ERROR,
                Twine(packageDir) +
                    ": model package directory does not exist or is not a "
                    "directory");

  // Build the new binding completely before replacing the old one, so that
  // a failed bind leaves the model as it was.
  auto weights = std::make_unique<BoundWeights>();
  StringMap<SafeTensorsFile *> filesByName;
  // One entry per distinct (file, tensor): a tensor named by several
  // arguments is checked and converted only once.
  StringMap<const float *> tensorData;

  // Resolves one stored tensor to f32 data: in place when it is aligned F32,
  // else converted once. Null (with the error set) on failure.
  auto resolve = [&](const Layer &layer, const Argument &arg) -> const float * {
    SmallString<256> filePath(packageDir);
    sys::path::append(filePath, arg.file);

    SafeTensorsFile *&file = filesByName[arg.file];
    if (!file) {
      Expected<std::unique_ptr<SafeTensorsFile>> opened =
          SafeTensorsFile::open(filePath);
      if (!opened) {
        failWith(ATMOE_RT_INPUT_ERROR, opened.takeError());
        return nullptr;
      }
      file = opened->get();
      weights->files.push_back(std::move(*opened));
    }

    std::string key = arg.file + '\0' + arg.source;
    if (const float *data = tensorData.lookup(key))
      return data;

    // Messages name the tensor as stored and, where the manifest has a
    // different canonical name, that one too.
    std::string what = "tensor '" + arg.source + "'";
    if (arg.name != arg.source)
      what += " (" + arg.name + ")";
    const TensorInfo *info = file->lookup(arg.source);
    if (!info) {
      fail(ATMOE_RT_INPUT_ERROR, Twine(filePath) + ": " + what +
                                     " not found (needed by " +
                                     layerName(layer) + ")");
      return nullptr;
    }
    if (info->dtype != DType::F32 && info->dtype != DType::F16 &&
        info->dtype != DType::BF16) {
      fail(ATMOE_RT_INPUT_ERROR,
           Twine(filePath) + ": " + what + ": dtype " + dtypeName(info->dtype) +
               " is not supported (expected F32, F16 or BF16)");
      return nullptr;
    }
    if (ArrayRef<int64_t>(info->shape) != ArrayRef<int64_t>(arg.shape)) {
      fail(ATMOE_RT_INPUT_ERROR, Twine(filePath) + ": " + what + ": shape " +
                                     formatShape(info->shape) +
                                     " differs from the compiled model's " +
                                     formatShape(arg.shape));
      return nullptr;
    }

    const float *data;
    if (file->isDirectlyUsableF32(*info)) {
      data = reinterpret_cast<const float *>(info->data);
      ++weights->numInPlace;
    } else {
      Expected<std::vector<float>> copy = file->readAsF32(*info);
      if (!copy) {
        failWith(ATMOE_RT_INPUT_ERROR, copy.takeError());
        return nullptr;
      }
      weights->converted.push_back(
          std::make_unique<std::vector<float>>(std::move(*copy)));
      data = weights->converted.back()->data();
    }
    tensorData[key] = data;
    return data;
  };

  for (const Layer &layer : model->manifest.layers) {
    std::vector<const float *> &layerData = weights->data.emplace_back();
    for (size_t w = 0; w < layer.numWeights; ++w) {
      const Argument &arg = layer.arguments[layer.firstWeight + w];
      if (arg.parts.empty()) {
        const float *data = resolve(layer, arg);
        if (!data)
          return ATMOE_RT_INPUT_ERROR;
        layerData.push_back(data);
        continue;
      }
      // Stacked weight: copy each part into its slab of one buffer, once.
      // Rows of the stacked tensor are `outer` runs of `inner` elements,
      // each part filling `partInner` of them at `offset`.
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < static_cast<int64_t>(arg.shape.size()); ++d)
        (d < arg.concatDim ? outer : inner) *= arg.shape[d];
      auto stacked = std::make_unique<std::vector<float>>(outer * inner);
      int64_t offset = 0;
      for (const Argument &part : arg.parts) {
        const float *data = resolve(layer, part);
        if (!data)
          return ATMOE_RT_INPUT_ERROR;
        int64_t partInner =
            inner / arg.shape[arg.concatDim] * part.shape[arg.concatDim];
        for (int64_t o = 0; o < outer; ++o)
          std::copy_n(data + o * partInner, partInner,
                      stacked->data() + o * inner + offset);
        offset += partInner;
      }
      weights->converted.push_back(std::move(stacked));
      layerData.push_back(weights->converted.back()->data());
    }
  }
  if (const DeviceSupport *device = model->device) {
    // Upload each distinct buffer once; the layers then see device pointers.
    weights->device = device;
    DenseMap<const float *, const float *> uploaded;
    for (auto [l, layer] : enumerate(model->manifest.layers)) {
      for (size_t w = 0; w < layer.numWeights; ++w) {
        const float *&data = weights->data[l][w];
        if (const float *copy = uploaded.lookup(data)) {
          data = copy;
          continue;
        }
        const Argument &arg = layer.arguments[layer.firstWeight + w];
        size_t bytes = sizeof(float);
        for (int64_t extent : arg.shape)
          bytes *= extent;
        void *buffer = device->alloc(bytes);
        if (!buffer && bytes)
          return fail(ATMOE_RT_INPUT_ERROR,
                      Twine(packageDir) + ": uploading '" + arg.name + "' to " +
                          device->name() + ": " + device->takeError());
        weights->deviceBuffers.push_back(buffer);
        if (device->copyToDevice(buffer, data, bytes) != 0)
          return fail(ATMOE_RT_INPUT_ERROR,
                      Twine(packageDir) + ": uploading '" + arg.name + "' to " +
                          device->name() + ": " + device->takeError());
        uploaded[data] = static_cast<const float *>(buffer);
        data = static_cast<const float *>(buffer);
      }
    }
  }
  model->weights = std::move(weights);
  return ATMOE_RT_OK;
}

atmoe_rt_status_t
atmoe_rt_model_get_weight_counts(const atmoe_rt_model_t *model,
                                 size_t *numInPlace, size_t *numConverted) {
  if (!model)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_get_weight_counts: model is NULL");
  if (!model->weights)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                Twine(model->path) + ": no weights are bound");
  if (numInPlace)
    *numInPlace = model->weights->numInPlace;
  if (numConverted)
    *numConverted = model->weights->converted.size();
  return ATMOE_RT_OK;
}

//===----------------------------------------------------------------------===//
// Queries
//===----------------------------------------------------------------------===//

atmoe_rt_status_t atmoe_rt_model_get_info(const atmoe_rt_model_t *model,
                                          const char **name,
                                          const char **target) {
  if (!model)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_get_info: model is NULL");
  if (name)
    *name = model->manifest.model.c_str();
  if (target)
    *target = model->manifest.target.c_str();
  return ATMOE_RT_OK;
}

atmoe_rt_status_t atmoe_rt_model_get_num_layers(const atmoe_rt_model_t *model,
                                                size_t *numLayers) {
  if (!model || !numLayers)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_get_num_layers: model or num_layers is NULL");
  *numLayers = model->manifest.layers.size();
  return ATMOE_RT_OK;
}

atmoe_rt_status_t atmoe_rt_model_find_layer(const atmoe_rt_model_t *model,
                                            int64_t index, size_t *layer) {
  if (!model || !layer)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_find_layer: model or layer is NULL");
  const std::vector<Layer> &layers = model->manifest.layers;
  for (auto [position, candidate] : enumerate(layers)) {
    if (candidate.index == index) {
      *layer = position;
      return ATMOE_RT_OK;
    }
  }
  std::string known;
  raw_string_ostream os(known);
  interleaveComma(layers, os, [&](const Layer &l) { os << l.index; });
  return fail(ATMOE_RT_INVALID_ARGUMENT,
              Twine(model->path) + ": no layer with index " + Twine(index) +
                  " (the model has layers " + known + ")");
}

atmoe_rt_status_t atmoe_rt_layer_get_index(const atmoe_rt_model_t *model,
                                           size_t layer, int64_t *index) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_get_index"))
    return status;
  if (!index)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_layer_get_index: index is NULL");
  *index = model->manifest.layers[layer].index;
  return ATMOE_RT_OK;
}

atmoe_rt_status_t
atmoe_rt_layer_get_num_projections(const atmoe_rt_model_t *model, size_t layer,
                                   size_t *numProjections) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_get_num_projections"))
    return status;
  if (!numProjections)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_layer_get_num_projections: num_projections is NULL");
  *numProjections = model->manifest.layers[layer].projections.size();
  return ATMOE_RT_OK;
}

atmoe_rt_status_t atmoe_rt_layer_get_projection(const atmoe_rt_model_t *model,
                                                size_t layer, size_t projection,
                                                const char **name, int64_t *dIn,
                                                int64_t *dOut) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_get_projection"))
    return status;
  const Layer &l = model->manifest.layers[layer];
  if (projection >= l.projections.size())
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_layer_get_projection: projection position " +
                    Twine(projection) + " is out of range (" + layerName(l) +
                    " has " + Twine(l.projections.size()) + " projections)");
  const Projection &p = l.projections[projection];
  if (name)
    *name = p.name.c_str();
  if (dIn)
    *dIn = p.dIn;
  if (dOut)
    *dOut = p.dOut;
  return ATMOE_RT_OK;
}

atmoe_rt_status_t atmoe_rt_layer_find_projection(const atmoe_rt_model_t *model,
                                                 size_t layer, const char *name,
                                                 size_t *projection) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_find_projection"))
    return status;
  if (!name || !projection)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_layer_find_projection: name or projection is NULL");
  const Layer &l = model->manifest.layers[layer];
  for (auto [position, p] : enumerate(l.projections)) {
    if (p.name == name) {
      *projection = position;
      return ATMOE_RT_OK;
    }
  }
  std::string known;
  raw_string_ostream os(known);
  interleaveComma(l.projections, os,
                  [&](const Projection &p) { os << p.name; });
  return fail(ATMOE_RT_INVALID_ARGUMENT,
              Twine(model->path) + ": " + layerName(l) +
                  " has no projection '" + name + "' (it has " + known + ")");
}

atmoe_rt_status_t atmoe_rt_layer_get_router(const atmoe_rt_model_t *model,
                                            size_t layer, int64_t *dH,
                                            size_t *numExperts,
                                            atmoe_rt_granularity_t *gran) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_get_router"))
    return status;
  const Layer &l = model->manifest.layers[layer];
  if (dH)
    *dH = l.routerWidth;
  if (numExperts)
    *numExperts = l.experts.size();
  if (gran)
    *gran = l.granularity == Granularity::Sequence
                ? ATMOE_RT_GRANULARITY_SEQUENCE
                : ATMOE_RT_GRANULARITY_TOKEN;
  return ATMOE_RT_OK;
}

atmoe_rt_status_t atmoe_rt_layer_get_expert_name(const atmoe_rt_model_t *model,
                                                 size_t layer, size_t expert,
                                                 const char **name) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_get_expert_name"))
    return status;
  const Layer &l = model->manifest.layers[layer];
  if (!name || expert >= l.experts.size())
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_layer_get_expert_name: name is NULL or expert " +
                    Twine(expert) + " is out of range (" + layerName(l) +
                    " has " + Twine(l.experts.size()) + " experts)");
  *name = l.experts[expert].c_str();
  return ATMOE_RT_OK;
}

//===----------------------------------------------------------------------===//
// Running a layer
//===----------------------------------------------------------------------===//

atmoe_rt_status_t atmoe_rt_layer_forward(const atmoe_rt_model_t *model,
                                         size_t layer, int64_t numTokens,
                                         size_t numProjections,
                                         const float *const *x, const float *h,
                                         size_t numSegments,
                                         const int64_t *segments,
                                         float *const *y, float *routing) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_forward"))
    return status;
  const Layer &l = model->manifest.layers[layer];
  // Built only on failure: forward is the hot path.
  auto where = [&] { return "atmoe_rt_layer_forward: " + layerName(l); };
  if (!model->weights)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                where() + ": no weights are bound (call "
                          "atmoe_rt_model_bind_weights first)");
  if (numTokens < 1)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                where() + ": num_tokens must be at least 1, got " +
                    Twine(numTokens));
  if (numProjections != l.projections.size())
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                where() + ": expected " + Twine(l.projections.size()) +
                    " projections, got " + Twine(numProjections));
  if (!x || !y)
    return fail(ATMOE_RT_INVALID_ARGUMENT, where() + ": x or y is NULL");
  for (size_t p = 0; p < numProjections; ++p)
    if (!x[p] || !y[p])
      return fail(ATMOE_RT_INVALID_ARGUMENT,
                  where() + ": x or y of projection '" + l.projections[p].name +
                      "' is NULL");
  if (l.hasRouter() && !h)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                where() + ": h is NULL but the layer has a router");
  if (numSegments && !segments)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                where() + ": segments is NULL but num_segments is " +
                    Twine(numSegments));
  int64_t total = 0;
  for (size_t s = 0; s < numSegments; ++s) {
    // Checking each length against what is left of T keeps the sum from
    // overflowing.
    if (segments[s] < 0 || segments[s] > numTokens - total)
      return fail(ATMOE_RT_INVALID_ARGUMENT,
                  where() + ": segment " + Twine(s) + " has length " +
                      Twine(segments[s]) +
                      "; lengths must be >= 0 and sum to "
                      "num_tokens = " +
                      Twine(numTokens));
    total += segments[s];
  }
  if (numSegments && total != numTokens)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                where() + ": segment lengths sum to " + Twine(total) +
                    ", expected num_tokens = " + Twine(numTokens));

  // With no lengths given the whole batch is one sequence.
  int64_t wholeBatch = numTokens;
  if (!numSegments) {
    numSegments = 1;
    segments = &wholeBatch;
  }
  int64_t numSequences = numSegments;
  int64_t routerRows =
      l.granularity == Granularity::Sequence ? numSequences : numTokens;

  std::vector<float> scratchRouting;
  if (l.hasRouter() && !routing) {
    // Only an absurd T could overflow here, but the entry point would then
    // write past a short buffer.
    if (size_t(routerRows) > SIZE_MAX / sizeof(float) / l.experts.size())
      return fail(ATMOE_RT_INVALID_ARGUMENT,
                  where() + ": num_tokens = " + Twine(numTokens) +
                      " is too large for a routing buffer");
    scratchRouting.resize(size_t(routerRows) * l.experts.size());
    routing = scratchRouting.data();
  }

  // Each argument's host buffer and concrete shape, in ABI order.
  struct Buffer {
    const Argument *arg;
    const void *data;
    SmallVector<int64_t, 2> shape;
  };
  const std::vector<const float *> &weightData = model->weights->data[layer];
  SmallVector<Buffer> buffers;
  size_t p = 0, w = 0, out = 0;
  for (const Argument &arg : l.arguments) {
    switch (arg.role) {
    case ArgumentRole::Input:
      if (arg.name == "h")
        buffers.push_back({&arg, h, concreteShape(arg.shape, routerRows)});
      else if (arg.name == "segments")
        buffers.push_back(
            {&arg, segments, concreteShape(arg.shape, numSequences)});
      else
        buffers.push_back({&arg, x[p++], concreteShape(arg.shape, numTokens)});
      break;
    case ArgumentRole::Weight:
      buffers.push_back({&arg, weightData[w++], arg.shape});
      break;
    case ArgumentRole::Output:
      if (out < numProjections)
        buffers.push_back(
            {&arg, y[out++], concreteShape(arg.shape, numTokens)});
      else
        buffers.push_back(
            {&arg, routing, concreteShape(arg.shape, routerRows)});
      break;
    }
  }

  DescriptorList descriptors;
  const DeviceSupport *device = model->device;
  if (!device) {
    for (const Buffer &buffer : buffers)
      descriptors.add(buffer.data, buffer.shape);
    model->entries[layer](descriptors.finish());
    return ATMOE_RT_OK;
  }

  // GPU: inputs and outputs go through device buffers of this call; weights
  // are on the device already, host-memory arguments stay where they are.
  struct DeviceBuffers {
    const DeviceSupport *device;
    SmallVector<void *> pointers;
    ~DeviceBuffers() {
      for (void *pointer : pointers)
        device->free(pointer);
    }
  } callBuffers{device, {}};
  auto deviceError = [&](const Twine &what) {
    return fail(ATMOE_RT_INTERNAL_ERROR, where() + ": " + what + " on " +
                                             device->name() + ": " +
                                             device->takeError());
  };
  SmallVector<std::pair<void *, size_t>> outputs;
  for (const Buffer &buffer : buffers) {
    const Argument &arg = *buffer.arg;
    if (arg.role == ArgumentRole::Weight || arg.inHostMemory) {
      descriptors.add(buffer.data, buffer.shape);
      continue;
    }
    size_t bytes =
        arg.elementType == ElementType::I64 ? sizeof(int64_t) : sizeof(float);
    for (int64_t extent : buffer.shape)
      bytes *= extent;
    void *pointer = device->alloc(bytes);
    if (!pointer && bytes)
      return deviceError("allocating '" + arg.name + "'");
    callBuffers.pointers.push_back(pointer);
    if (arg.role == ArgumentRole::Input &&
        device->copyToDevice(pointer, buffer.data, bytes) != 0)
      return deviceError("copying '" + arg.name + "'");
    if (arg.role == ArgumentRole::Output)
      outputs.push_back({pointer, bytes});
    descriptors.add(pointer, buffer.shape);
  }
  model->entries[layer](descriptors.finish());
  if (std::string error = device->takeError(); !error.empty())
    return fail(ATMOE_RT_INTERNAL_ERROR,
                where() + ": on " + device->name() + ": " + error);
  size_t next = 0;
  for (const Buffer &buffer : buffers) {
    if (buffer.arg->role != ArgumentRole::Output || buffer.arg->inHostMemory)
      continue;
    auto [pointer, bytes] = outputs[next++];
    if (device->copyToHost(const_cast<void *>(buffer.data), pointer, bytes) !=
        0)
      return deviceError("copying '" + buffer.arg->name + "' back");
  }
  return ATMOE_RT_OK;
}
