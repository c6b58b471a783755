//===- manifest.h - Parsed and validated atmoe_manifest ---------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The manifest a compiled model exports (docs/RuntimeABI.md), parsed into
// plain structs. Validation is complete here, so that the C API never has to
// second-guess the layout of a layer's argument list: once parseManifest
// succeeds, arguments are exactly
//
//   x[0..P), [h], [segments], weights..., y[0..P), [routing]
//
// with consistent names, dtypes and shapes.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RUNTIME_SRC_MANIFEST_H
#define ATMOE_RUNTIME_SRC_MANIFEST_H

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace atmoe::rt {

/// The dynamic extent (T or S) in a manifest shape.
constexpr int64_t kDynamic = -1;

enum class ArgumentRole { Input, Weight, Output };
enum class ElementType { F32, I64 };
enum class Granularity { Token, Sequence };
/// What runs the model's kernels (the manifest's "device").
enum class Device { CPU, CUDA, HIP };

/// One argument of a layer's entry point.
struct Argument {
  ArgumentRole role;
  /// Inputs and outputs: the projection name, "h", "segments" or "routing".
  /// Weights: the canonical tensor name (`tensor`, or `source` if absent).
  std::string name;
  ElementType elementType;
  /// kDynamic marks the T or S extent.
  llvm::SmallVector<int64_t, 2> shape;
  /// Weights only: the safetensors file (relative to the package) and the
  /// tensor's name inside it.
  std::string file, source;
  /// A weight stacked at bind time: its parts (each a weight with file and
  /// source), concatenated along `concatDim`; `file`/`source` are empty.
  std::vector<Argument> parts;
  int64_t concatDim = -1;
  /// On a GPU model: whether the host code reads the buffer, so it is passed
  /// in host memory ("memory": "host"); every other buffer is on the device.
  bool inHostMemory = false;
};

struct Projection {
  std::string name;
  int64_t dIn, dOut;
};

struct Layer {
  int64_t index;
  /// `function`, or "" when the manifest omits it.
  std::string function;
  std::string entry;
  Granularity granularity;
  /// Routed experts, the columns of routing; empty when there is no router.
  std::vector<std::string> experts;
  std::vector<Projection> projections;
  /// The router input width d_h; 0 when the layer has no router.
  int64_t routerWidth = 0;
  /// Whether the entry takes a segments argument.
  bool takesSegments = false;
  /// All arguments in ABI order.
  std::vector<Argument> arguments;
  /// Position of the first weight in `arguments`; weights are contiguous.
  size_t firstWeight = 0, numWeights = 0;

  bool hasRouter() const { return routerWidth > 0; }
};

struct Manifest {
  std::string model, target;
  Device device = Device::CPU;
  std::vector<Layer> layers;
};

/// Parses and validates manifest `text`. Errors are one line that starts with
/// `origin` (the compiled model's path), then "manifest", then the JSON path of
/// the offending value, e.g. "m.so: manifest: layers[0].arguments[2].shape:
/// expected [-1, 64] (h of a router of width 64), found [64]".
llvm::Expected<Manifest> parseManifest(llvm::StringRef text,
                                       llvm::StringRef origin);

} // namespace atmoe::rt

#endif // ATMOE_RUNTIME_SRC_MANIFEST_H
