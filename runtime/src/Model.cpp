//===- Model.cpp - Opening and closing compiled models --------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe_rt_model_open reads the manifest from the file's .atmoe_manifest
// section, loads the device support the manifest names (a GPU model's
// constructors load its kernels through it), then dlopens the model and
// resolves the layers' entry points.
//
//===----------------------------------------------------------------------===//

#include "Model.h"

#include "CallBuffers.h"
#include "Status.h"

#include "atmoe_rt/support/ElfSection.h"
#include "atmoe_rt/support/FileIdentity.h"
#include "atmoe_rt/support/MappedFile.h"

#include <cerrno>
#include <climits>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <mutex>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>

using namespace atmoe_rt;

namespace {
/// Forgets a handle of the registry of loaded images (below).
void unregisterImage(void *library);
} // namespace

atmoe_rt_model::~atmoe_rt_model() {
  // The weights go first: nothing of them points into the library, but this
  // keeps the teardown order the reverse of the setup order.
  weights.reset();
  // MPI is finalised (if the model started it) while its library is loaded.
  processes.reset();
  if (library) {
    unregisterImage(library);
    dlclose(library);
  }
}

std::string atmoe_rt::layerName(const Layer &layer) {
  return "layer " + std::to_string(layer.index);
}

atmoe_rt_status_t atmoe_rt::checkLayer(const atmoe_rt_model_t *model,
                                       size_t layer, const char *function) {
  if (!model)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                std::string(function) + ": model is NULL");
  if (layer >= model->manifest.layers.size())
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                std::string(function) + ": layer position " +
                    std::to_string(layer) + " is out of range (the model has " +
                    std::to_string(model->manifest.layers.size()) + " layers)");
  return ATMOE_RT_OK;
}

namespace {

/// dlopen searches the library path for a name without a slash; a model file
/// named on the command line must be the file in the working directory.
std::string absolutePath(const std::string &path) {
  if (path.front() == '/')
    return path;
  char cwd[PATH_MAX];
  if (!::getcwd(cwd, sizeof(cwd)))
    return path;
  return std::string(cwd) + "/" + path;
}

/// The manifest, read from the model file before it is loaded.
Result<Manifest> readManifestOf(const std::string &path) {
  struct stat status;
  if (::stat(path.c_str(), &status) != 0)
    return fail(path + ": cannot open compiled model: " + std::strerror(errno));
  if (!S_ISREG(status.st_mode))
    return fail(path + ": cannot open compiled model: not a file");
  Result<std::unique_ptr<MappedFile>> file =
      MappedFile::open(path, "a compiled model");
  if (!file)
    return file.takeError();
  // A file cut short (a half-finished copy) would fault inside the dynamic
  // loader when it maps the missing pages.
  if (Status whole = checkElfExtent((*file)->contents()); !whole)
    return fail(path + ": not a compiled model: " + whole.error());
  Result<std::optional<std::string_view>> section =
      findElfSection((*file)->contents(), kManifestSection);
  if (!section)
    return fail(path + ": not a compiled model: " + section.error());
  if (!*section)
    return fail(path + ": no " + std::string(kManifestSection) +
                " section: not a model compiled by atmoe-compile (or one "
                "compiled before manifest version 2, which added the "
                "section)");
  std::string_view text = **section;
  return readManifest(text.substr(0, text.find('\0')), path);
}

/// Loads what the model's kernels run on; null for the CPU.
Result<const DeviceSupport *> loadDevice(const Manifest &manifest,
                                         const std::string &path) {
  switch (manifest.device) {
  case Device::CPU:
    return static_cast<const DeviceSupport *>(nullptr);
  case Device::CUDA: {
    Result<const DeviceSupport *> cuda = loadCudaSupport();
    if (!cuda)
      return fail(path + ": the model runs on a CUDA GPU, but " + cuda.error());
    return *cuda;
  }
  case Device::HIP:
    break;
  }
  return fail(path + ": the model was compiled for an AMD GPU (device "
                     "\"hip\"); this runtime has no HIP support");
}

/// Every image this runtime has loaded and not yet closed, with the file it
/// came from and how many open handles share it.
struct LoadedImages {
  std::mutex mutex;
  std::map<void *, std::pair<FileIdentity, size_t>> images;
};

LoadedImages &loadedImages() {
  static LoadedImages *images = new LoadedImages; // Outlives every handle.
  return *images;
}

/// Registers `library` as loaded from `identity`, or refuses it if the
/// loader handed back an image of an earlier file at the same path.
Status registerImage(atmoe_rt_model &model, const FileIdentity &identity) {
  LoadedImages &loaded = loadedImages();
  std::lock_guard<std::mutex> lock(loaded.mutex);
  auto [it, inserted] =
      loaded.images.try_emplace(model.library, identity, size_t(0));
  if (!inserted && !(it->second.first == identity))
    return fail(model.path +
                ": the file was replaced since an earlier handle still open "
                "in this process loaded it, and the dynamic loader would "
                "return the old code; close every handle of the old model "
                "first (or open the new one under another path)");
  ++it->second.second;
  return Status::success();
}

void unregisterImage(void *library) {
  LoadedImages &loaded = loadedImages();
  std::lock_guard<std::mutex> lock(loaded.mutex);
  auto it = loaded.images.find(library);
  if (it != loaded.images.end() && --it->second.second == 0)
    loaded.images.erase(it);
}

/// dlopens the model; its GPU constructors load their kernels here.
Status loadLibrary(atmoe_rt_model &model, const std::string &absolute) {
  // The dynamic loader returns the image it already holds for a path, even
  // after the file there was replaced: the identity tells them apart.
  std::optional<FileIdentity> identity = FileIdentity::of(absolute);
  if (!identity)
    return fail(model.path +
                ": cannot open compiled model: " + std::strerror(errno));
  dlerror();
  model.library = dlopen(absolute.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!model.library) {
    const char *error = dlerror();
    std::string_view reason = error ? error : "unknown dlopen error";
    // glibc starts the reason with the path it was given; the message names
    // the file already.
    if (reason.substr(0, absolute.size()) == absolute)
      reason.remove_prefix(absolute.size());
    if (reason.substr(0, 2) == ": ")
      reason.remove_prefix(2);
    return fail(model.path +
                ": not a loadable shared library: " + std::string(reason));
  }
  if (Status registered = registerImage(model, *identity); !registered) {
    dlclose(model.library);
    model.library = nullptr;
    return registered;
  }
  if (model.device)
    if (std::string error = model.device->takeError(); !error.empty())
      return fail(model.path + ": on " + model.device->name() + ": " + error);
  return Status::success();
}

Status resolveEntryPoints(atmoe_rt_model &model) {
  for (const Layer &layer : model.manifest.layers) {
    dlerror();
    void *symbol = dlsym(model.library, layer.entry.c_str());
    if (!symbol)
      return fail(model.path + ": " + layerName(layer) + ": entry point '" +
                  layer.entry + "' named by the manifest is not exported");
    // POSIX guarantees that a function address round-trips through the
    // void * that dlsym returns.
    AtmoeEntryFn entry;
    static_assert(sizeof(entry) == sizeof(symbol));
    std::memcpy(&entry, &symbol, sizeof(entry));
    model.entries.push_back(entry);
  }
  return Status::success();
}

} // namespace

atmoe_rt_status_t atmoe_rt_model_open(const char *path,
                                      atmoe_rt_model_t **outModel) {
  if (!outModel)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_open: out_model is NULL");
  *outModel = nullptr;
  if (!path || !*path)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_open: path is NULL or empty");

  auto model = std::make_unique<atmoe_rt_model>();
  model->path = path;
  Result<Manifest> manifest = readManifestOf(path);
  if (!manifest)
    return fail(ATMOE_RT_INPUT_ERROR, manifest.takeError());
  model->manifest = std::move(*manifest);
  Result<const DeviceSupport *> device = loadDevice(model->manifest, path);
  if (!device)
    return fail(ATMOE_RT_INPUT_ERROR, device.takeError());
  model->device = *device;
  if (Status status = loadLibrary(*model, absolutePath(path)); !status)
    return fail(ATMOE_RT_INPUT_ERROR, status.takeError());
  if (Status status = resolveEntryPoints(*model); !status)
    return fail(ATMOE_RT_INPUT_ERROR, status.takeError());
  CallBufferCache::installIn(model->library);
  if (model->manifest.ranks > 1) {
    Result<std::unique_ptr<ProcessGroup>> group =
        ProcessGroup::join(model->library, model->manifest.ranks,
                           model->manifest.parallelKind, model->path);
    if (!group)
      return fail(ATMOE_RT_INPUT_ERROR, group.takeError());
    model->processes = std::move(*group);
  }
  *outModel = model.release();
  return ATMOE_RT_OK;
}

void atmoe_rt_model_close(atmoe_rt_model_t *model) { delete model; }
