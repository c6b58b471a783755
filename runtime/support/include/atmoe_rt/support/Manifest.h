//===- Manifest.h - The compiled-model manifest -----------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The one definition of the contract between atmoe-compile and the runtime
// (docs/RuntimeABI.md): the manifest a compiled model carries, as structs the
// compiler fills and writes and the runtime reads back, and where the model
// keeps it. Reading validates completely, so that the C API never has to
// second-guess a layer's argument list: once readManifest succeeds, the
// arguments of every layer are exactly
//
//   x[0..P), [h], [segments], weights..., y[0..P), [routing]
//
// with consistent names, dtypes and shapes.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_MANIFEST_H
#define ATMOE_RT_SUPPORT_MANIFEST_H

#include "atmoe_rt/support/Json.h"
#include "atmoe_rt/support/Result.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace atmoe_rt {

/// The manifest's format id is "atmoe-compiled/<version>". The version
/// changes whenever an older runtime could misread a newer manifest; the
/// runtime reads exactly its own version and says which side is out of date.
constexpr std::string_view kManifestFormat = "atmoe-compiled";
constexpr int kManifestVersion = 3;
/// "atmoe-compiled/3".
std::string manifestFormatId(int version = kManifestVersion);

/// A compiled model keeps the manifest (NUL-terminated JSON) in an ELF
/// section of this name, which the runtime reads before loading the model,
/// and exports it under this symbol, for tools such as nm.
constexpr std::string_view kManifestSection = ".atmoe_manifest";
constexpr std::string_view kManifestSymbol = "atmoe_manifest";

/// `void atmoe_model_set_allocator(void *context, AllocateFn, ReleaseFn)`,
/// exported by a compiled model: its heap buffers come from `allocate` and
/// go back to `release` from then on (malloc and free before).
constexpr std::string_view kSetAllocatorSymbol = "atmoe_model_set_allocator";
using AllocateFn = void *(*)(void *context, uint64_t bytes);
using ReleaseFn = void (*)(void *context, void *pointer);
/// Layer entry points are "atmoe_entry_<function>": `void (void **args)`.
constexpr std::string_view kEntryPointPrefix = "atmoe_entry_";

/// The version of this build of atmoe (compiler, runtime and tools).
const char *atmoeVersion();

/// The dynamic extent (T or S) in a manifest shape.
constexpr int64_t kDynamic = -1;

enum class ArgumentRole { Input, Weight, Output };
/// Inputs and outputs are f32 (i64 segment lengths); weights are in the type
/// they are stored in: f32, f16, bf16, or i32 words of packed integers.
enum class ElementType { F32, F16, BF16, I32, I64 };
enum class Granularity { Token, Sequence };
/// What runs the model's kernels (the manifest's "device").
enum class Device { CPU, CUDA, HIP };

/// "cpu", "cuda", "hip".
std::string_view stringifyDevice(Device device);

/// "f32", "f16", "bf16", "i32", "i64".
std::string_view stringifyElementType(ElementType type);
/// The element type spelled `name`, if it is one.
std::optional<ElementType> parseElementType(std::string_view name);
/// Bytes per element.
size_t elementSize(ElementType type);

struct Argument;
/// The shape of `arg` one process binds: the whole shape, or its slice when
/// the weight is split over `ranks` processes.
std::vector<int64_t> localShape(const Argument &arg, int64_t ranks);

/// The rank of the buffer the compiled code reads for `arg`: 3 for a
/// weight in panels, else the stored rank.
size_t compiledRank(const Argument &arg);

/// One argument of a layer's entry point.
struct Argument {
  ArgumentRole role = ArgumentRole::Input;
  /// Inputs and outputs: the projection name, "h", "segments" or "routing".
  /// Weights: the canonical tensor name (`tensor`, or `source` if absent).
  std::string name;
  ElementType elementType = ElementType::F32;
  /// kDynamic marks the T or S extent.
  std::vector<int64_t> shape;
  /// Weights only: the safetensors file (relative to the package) and the
  /// tensor's name inside it.
  std::string file, source;
  /// A weight stacked at bind time: its parts (each a weight with file and
  /// source), concatenated along `concatDim`; `file`/`source` are empty.
  std::vector<Argument> parts;
  int64_t concatDim = -1;
  /// A weight computed at bind time instead (atmoe-hoist-dora-scale): DoRA's
  /// m / ||W + s B A|| per row, from the parts W, A, B and m, with s this
  /// scale; `concatDim` is unused.
  std::optional<double> doraScale;
  /// A weight split over the processes of a parallel model: each
  /// binds only its slice, `shape[shardDim] / ranks` entries at
  /// `rank * shape[shardDim] / ranks` ("shard_dim"); `shape` is the whole
  /// stored tensor's.
  int64_t shardDim = -1;
  /// A weight the compiled code reads in panels of this many output
  /// features ("panel"); 0: as stored. The stored dimension `panelDim`
  /// ("panel_dim": 1 for a GPTQ qweight [words, n], 0 for a float weight
  /// [n, k]) is split into panels and the other one becomes each panel's
  /// rows: bound as [shape[panelDim] / panelWidth, shape[1 - panelDim],
  /// panelWidth].
  int64_t panelWidth = 0;
  int64_t panelDim = 1;
  /// On a GPU model: whether the host code reads the buffer, so it is passed
  /// in host memory ("memory": "host"); every other buffer is on the device.
  bool inHostMemory = false;
};

struct Projection {
  std::string name;
  int64_t dIn = 0, dOut = 0;
};

struct Layer {
  int64_t index = 0;
  /// The layer function's name; the entry point is kEntryPointPrefix + it.
  std::string function;
  std::string entry;
  Granularity granularity = Granularity::Token;
  /// Routed experts, the columns of routing; empty when there is no router.
  std::vector<std::string> experts;
  /// All arguments in ABI order.
  std::vector<Argument> arguments;

  // Derived from `arguments` by validation.
  std::vector<Projection> projections;
  /// The router input width d_h; 0 when the layer has no router.
  int64_t routerWidth = 0;
  /// Whether the entry takes a segments argument.
  bool takesSegments = false;
  /// Position of the first weight in `arguments`; weights are contiguous.
  size_t firstWeight = 0, numWeights = 0;

  bool hasRouter() const { return routerWidth > 0; }
};

/// A JSON file of the package a model was compiled from (model.json, an
/// adapter_config.json) as the compiler read it: its hyper-parameters are
/// baked into the code, so the runtime refuses a package whose file differs.
struct SourceFile {
  /// Relative to the package directory.
  std::string path;
  Json content;
};

struct Manifest {
  std::string model;
  /// Processes each layer is split over ("parallel": {"kind": K, "ranks":
  /// N}); 1: one process.
  int64_t ranks = 1;
  /// How: "tensor" or "expert" (atmoe-compile --parallel=K:N).
  std::string parallelKind = "tensor";
  /// Empty for a model compiled from IR rather than from a package.
  std::vector<SourceFile> sources;
  /// The target triple of the host code and the `--target` spelling.
  std::string target, compiledFor;
  /// "atmoe-compile <version>".
  std::string producer;
  Device device = Device::CPU;
  std::vector<Layer> layers;
};

/// The manifest as JSON text, with the current format id.
std::string writeManifest(const Manifest &manifest);

/// Parses and validates manifest `text`. Errors are one line that starts with
/// `origin` (the compiled model's path), then "manifest", then the JSON path of
/// the offending value, e.g. "m.so: manifest: layers[0].arguments[2].shape:
/// expected [-1, 64] (h of a router of width 64), found [64]"; a manifest of
/// another version says whether the model or the runtime is the older one.
Result<Manifest> readManifest(std::string_view text, const std::string &origin);

/// Checks the argument lists of a manifest built in memory (as readManifest
/// does) and fills in the derived fields.
Status validateManifest(Manifest &manifest, const std::string &origin);

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_MANIFEST_H
