//===- Weights.cpp - Binding a model package's weights --------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe_rt_model_bind_weights maps the package's safetensors files, checks
// every tensor the manifest names, uses it in place when it is stored in the
// compiled element type (widening f16/bf16 to a compiled f32 once),
// stacks the parts of stacked weights and, for a GPU model, uploads each
// distinct buffer once. The new binding replaces the old one only when all
// of that succeeded.
//
//===----------------------------------------------------------------------===//

#include "Model.h"
#include "Status.h"

#include "atmoe_rt/support/Json.h"
#include "atmoe_rt/support/MappedFile.h"
#include "atmoe_rt/support/Text.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <tuple>
#include <unordered_map>

using namespace atmoe_rt;

Result<HeapBuffer> atmoe_rt::allocateBuffer(size_t bytes,
                                            const std::string &what) {
  // Cache-line aligned: the kernels' vector loads then never straddle two
  // lines (malloc aligns to 16 bytes only).
  constexpr size_t kLine = 64;
  size_t rounded = (std::max<size_t>(bytes, 1) + kLine - 1) / kLine * kLine;
  HeapBuffer buffer(
      static_cast<std::byte *>(std::aligned_alloc(kLine, rounded)));
  if (!buffer)
    return fail("cannot allocate " + std::to_string(bytes) + " bytes for " +
                what + ": out of memory");
  return buffer;
}

BoundWeights::~BoundWeights() {
  for (void *buffer : deviceBuffers)
    device->free(buffer);
}

namespace {

/// Builds a BoundWeights for one package directory.
class WeightBinder {
public:
  WeightBinder(const atmoe_rt_model &model, std::string packageDir)
      : model(model), packageDir(std::move(packageDir)),
        weights(std::make_unique<BoundWeights>()) {}

  /// The weights, or the error (a file or tensor of the package).
  Result<std::unique_ptr<BoundWeights>> run();

private:
  Result<SafeTensorsFile *> openFile(const std::string &relative);
  Status checkTensor(const TensorInfo &info, const Argument &arg,
                     ElementType type, const std::string &filePath) const;
  Result<const TensorInfo *> find(const Layer &layer, const Argument &arg,
                                  ElementType type);
  Result<const void *> resolve(const Layer &layer, const Argument &arg,
                               ElementType type);
  Result<const void *> stack(const Layer &layer, const Argument &arg);
  Result<const void *> stackSlice(const Layer &layer, const Argument &arg);
  /// A stacked weight's part: its stored tensor and its bytes in the
  /// stack's element type.
  struct Part {
    const TensorInfo *info;
    const std::byte *bytes;
  };
  Result<Part> readPart(const Layer &layer, const Argument &part,
                        const Argument &arg, HeapBuffer &widened);
  void releaseIfOnlyStacked(const Argument &part, const TensorInfo &info);
  Status forEachPart(
      const Layer &layer, const Argument &arg,
      const std::function<void(const Argument &, const std::byte *, int64_t)>
          &copy);
  Result<const void *> doraScale(const Layer &layer, const Argument &arg);
  Result<const float *> doraFactors(const Layer &layer, const Argument &arg);
  Result<const float *> widenedF32(const TensorInfo &tensor,
                                   const Argument &part, HeapBuffer &widened);
  Result<const float *> readF32(const Layer &layer, const Argument &part,
                                HeapBuffer &widened);
  Result<std::byte *> allocate(size_t bytes, const Argument &arg);
  Result<const void *> slice(const void *data, const Argument &arg);
  Result<const void *> panels(const Layer &layer, const Argument &arg);
  Status upload(const DeviceSupport &device);

  const atmoe_rt_model &model;
  std::string packageDir;
  std::unique_ptr<BoundWeights> weights;
  std::map<std::string, SafeTensorsFile *> filesByName;
  /// One entry per distinct (file, tensor, element type): a tensor named by
  /// several arguments is checked and converted only once.
  std::map<std::tuple<std::string, std::string, ElementType>, const void *>
      tensorData;
  /// The (file, tensor) pairs some layer uses unstacked: the pages of
  /// other stacked parts are released once copied.
  std::set<std::pair<std::string, std::string>> usedUnstacked;
  /// The (file, tensor) pairs some layer reads as stored: the pages of the
  /// others are released once repacked in panels.
  std::set<std::pair<std::string, std::string>> usedAsStored;
  /// One repacked copy per (file, tensor, panel width, panel dimension).
  std::map<std::tuple<std::string, std::string, int64_t, int64_t>, const void *>
      panelData;
  /// DoRA's c per (parts, scale): the scale argument and the scaled lora_B
  /// of one adapter need it once.
  std::map<std::string, const float *> doraFactorsByParts;
};

Result<std::unique_ptr<BoundWeights>> WeightBinder::run() {
  for (const Layer &layer : model.manifest.layers)
    for (size_t w = 0; w < layer.numWeights; ++w) {
      const Argument &arg = layer.arguments[layer.firstWeight + w];
      if (arg.parts.empty())
        usedUnstacked.insert({arg.file, arg.source});
      if (arg.parts.empty() && arg.panelWidth == 0)
        usedAsStored.insert({arg.file, arg.source});
      // A DoRA scale reads its parts, which the layer also uses.
      if (arg.doraScale)
        for (const Argument &part : arg.parts)
          usedUnstacked.insert({part.file, part.source});
    }
  for (const Layer &layer : model.manifest.layers) {
    std::vector<const void *> &layerData = weights->data.emplace_back();
    for (size_t w = 0; w < layer.numWeights; ++w) {
      const Argument &arg = layer.arguments[layer.firstWeight + w];
      // A split stack is built as this process's slice only.
      bool slicedStack = arg.shardDim >= 0 && !arg.parts.empty() &&
                         !arg.doraScale && arg.shape.size() == 2;
      Result<const void *> data = arg.panelWidth > 0 ? panels(layer, arg)
                                  : arg.parts.empty()
                                      ? resolve(layer, arg, arg.elementType)
                                  : arg.doraScale ? doraScale(layer, arg)
                                  : slicedStack   ? stackSlice(layer, arg)
                                                  : stack(layer, arg);
      if (!data)
        return data.takeError();
      if (arg.shardDim >= 0 && !slicedStack)
        data = slice(*data, arg);
      if (!data)
        return data.takeError();
      layerData.push_back(*data);
    }
  }
  if (const DeviceSupport *device = model.device)
    if (Status status = upload(*device); !status)
      return status.takeError();
  return std::move(weights);
}

Result<SafeTensorsFile *> WeightBinder::openFile(const std::string &relative) {
  SafeTensorsFile *&file = filesByName[relative];
  if (file)
    return file;
  std::string path =
      packageDir + (packageDir.back() == '/' ? "" : "/") + relative;
  std::optional<FileIdentity> identity = FileIdentity::of(path);
  Result<std::unique_ptr<SafeTensorsFile>> opened = SafeTensorsFile::open(path);
  if (!opened)
    return opened.takeError();
  file = opened->get();
  weights->files.push_back(std::move(*opened));
  weights->identities.push_back(identity.value_or(FileIdentity{}));
  return file;
}

/// The manifest's element type of a stored dtype, if the runtime has one.
std::optional<ElementType> elementTypeOf(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return ElementType::F32;
  case DType::F16:
    return ElementType::F16;
  case DType::BF16:
    return ElementType::BF16;
  case DType::I32:
    return ElementType::I32;
  default:
    return std::nullopt;
  }
}

/// Messages name the tensor as stored and, where the manifest has a
/// different canonical name, that one too. A stored dtype must be the
/// compiled one, or f16/bf16 where f32 is compiled (widening is exact);
/// anything else would change the model's numbers.
Status WeightBinder::checkTensor(const TensorInfo &info, const Argument &arg,
                                 ElementType type,
                                 const std::string &filePath) const {
  std::string what = "tensor '" + arg.source + "'";
  if (arg.name != arg.source)
    what += " (" + arg.name + ")";
  std::optional<ElementType> stored = elementTypeOf(info.dtype);
  bool widens = type == ElementType::F32 &&
                (stored == ElementType::F16 || stored == ElementType::BF16);
  if (stored != type && !widens)
    return fail(filePath + ": " + what + ": dtype " +
                std::string(dtypeName(info.dtype)) +
                " differs from the compiled model's " +
                std::string(stringifyElementType(type)) +
                " (compile the model again for this package)");
  if (info.shape != arg.shape)
    return fail(filePath + ": " + what + ": shape " + formatShape(info.shape) +
                " differs from the compiled model's " + formatShape(arg.shape));
  return Status::success();
}

/// A buffer kept with the binding, for a converted copy of `arg`.
Result<std::byte *> WeightBinder::allocate(size_t bytes, const Argument &arg) {
  Result<HeapBuffer> buffer =
      allocateBuffer(bytes, "a converted copy of '" + arg.name + "'");
  if (!buffer)
    return fail(packageDir + ": " + buffer.error());
  weights->converted.push_back(std::move(*buffer));
  return weights->converted.back().get();
}

/// The tensor `arg` names, checked against the manifest and `type`.
Result<const TensorInfo *>
WeightBinder::find(const Layer &layer, const Argument &arg, ElementType type) {
  Result<SafeTensorsFile *> file = openFile(arg.file);
  if (!file)
    return file.takeError();
  const std::string &filePath = (*file)->path();
  const TensorInfo *info = (*file)->lookup(arg.source);
  if (!info) {
    std::string what = "tensor '" + arg.source + "'";
    if (arg.name != arg.source)
      what += " (" + arg.name + ")";
    return fail(filePath + ": " + what + " not found (needed by " +
                layerName(layer) + ")");
  }
  if (Status status = checkTensor(*info, arg, type, filePath); !status)
    return status.takeError();
  return info;
}

/// One stored tensor as data of element type `type`: in place when it is
/// stored so and aligned, else widened or realigned once.
Result<const void *> WeightBinder::resolve(const Layer &layer,
                                           const Argument &arg,
                                           ElementType type) {
  const void *&cached = tensorData[{arg.file, arg.source, type}];
  if (cached)
    return cached;
  Result<const TensorInfo *> info = find(layer, arg, type);
  if (!info)
    return info.takeError();
  const TensorInfo &tensor = **info;
  if (elementTypeOf(tensor.dtype) == type &&
      reinterpret_cast<uintptr_t>(tensor.data) % elementSize(type) == 0) {
    ++weights->numInPlace;
    return cached = tensor.data;
  }
  Result<std::byte *> copy =
      allocate(tensor.numElements() * elementSize(type), arg);
  if (!copy)
    return copy.takeError();
  if (elementTypeOf(tensor.dtype) == type) {
    std::memcpy(*copy, tensor.data, tensor.numBytes());
  } else if (Status status = filesByName[arg.file]->readAsF32(
                 tensor, reinterpret_cast<float *>(*copy));
             !status) {
    return status.takeError();
  }
  return cached = *copy;
}

/// Stacked weight `arg`'s part `part`, in `arg`'s element type: in place,
/// or widened into `widened` when stored in another type.
Result<WeightBinder::Part> WeightBinder::readPart(const Layer &layer,
                                                  const Argument &part,
                                                  const Argument &arg,
                                                  HeapBuffer &widened) {
  Result<const TensorInfo *> info = find(layer, part, arg.elementType);
  if (!info)
    return info.takeError();
  if (elementTypeOf((*info)->dtype) == arg.elementType)
    return Part{*info, reinterpret_cast<const std::byte *>((*info)->data)};
  Result<const float *> values = widenedF32(**info, part, widened);
  if (!values)
    return values.takeError();
  return Part{*info, reinterpret_cast<const std::byte *>(*values)};
}

/// A part no layer uses unstacked has its pages released once copied.
void WeightBinder::releaseIfOnlyStacked(const Argument &part,
                                        const TensorInfo &info) {
  if (!usedUnstacked.count({part.file, part.source}))
    filesByName[part.file]->release(info);
}

/// Calls `copy(part, bytes, offset)` for each part of stacked weight `arg`
/// in order, with its bytes in `arg`'s element type and its first index
/// along the stacking dimension.
Status WeightBinder::forEachPart(
    const Layer &layer, const Argument &arg,
    const std::function<void(const Argument &, const std::byte *, int64_t)>
        &copy) {
  int64_t offset = 0;
  for (const Argument &part : arg.parts) {
    HeapBuffer widened;
    Result<Part> source = readPart(layer, part, arg, widened);
    if (!source)
      return source.takeError();
    copy(part, source->bytes, offset);
    offset += part.shape[arg.concatDim];
    releaseIfOnlyStacked(part, *source->info);
  }
  return Status::success();
}

/// A stacked weight: each part copied into its slab of one buffer. Rows of
/// the stacked tensor are `outer` runs of `inner` elements, each part
/// filling `partInner` of them.
Result<const void *> WeightBinder::stack(const Layer &layer,
                                         const Argument &arg) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < int64_t(arg.shape.size()); ++d)
    (d < arg.concatDim ? outer : inner) *= arg.shape[d];
  int64_t slab = inner / arg.shape[arg.concatDim];
  size_t size = elementSize(arg.elementType);
  Result<std::byte *> stacked = allocate(outer * inner * size, arg);
  if (!stacked)
    return stacked.takeError();
  Status status = forEachPart(
      layer, arg,
      [&](const Argument &part, const std::byte *bytes, int64_t offset) {
        int64_t partInner = slab * part.shape[arg.concatDim];
        for (int64_t o = 0; o < outer; ++o)
          std::memcpy(*stacked + (o * inner + offset * slab) * size,
                      bytes + o * partInner * size, partInner * size);
      });
  if (!status)
    return status.takeError();
  return *stacked;
}

/// This process's slice of a two-dimensional stacked weight split over the
/// processes, copied straight from the parts: neither the whole stack nor
/// the other processes' rows or columns are built. Each part covers a
/// rectangle of the stack, cut to the slice's window along the split
/// dimension.
Result<const void *> WeightBinder::stackSlice(const Layer &layer,
                                              const Argument &arg) {
  int64_t ranks = model.manifest.ranks, rank = model.processes->rank();
  int64_t width = arg.shape[arg.shardDim] / ranks;
  int64_t begin = rank * width, end = begin + width;
  bool splitRows = arg.shardDim == 0;
  int64_t localCols = splitRows ? arg.shape[1] : width;
  int64_t rowOrigin = splitRows ? begin : 0, colOrigin = splitRows ? 0 : begin;
  size_t size = elementSize(arg.elementType);
  Result<std::byte *> buffer =
      allocate((splitRows ? width : arg.shape[0]) * localCols * size, arg);
  if (!buffer)
    return buffer.takeError();
  Status status = forEachPart(
      layer, arg,
      [&](const Argument &part, const std::byte *bytes, int64_t offset) {
        int64_t rowBegin = arg.concatDim == 0 ? offset : 0;
        int64_t colBegin = arg.concatDim == 1 ? offset : 0;
        int64_t firstRow = rowBegin, lastRow = rowBegin + part.shape[0];
        int64_t firstCol = colBegin, lastCol = colBegin + part.shape[1];
        int64_t &first = splitRows ? firstRow : firstCol;
        int64_t &last = splitRows ? lastRow : lastCol;
        first = std::max(first, begin);
        last = std::min(last, end);
        for (int64_t r = firstRow; r < lastRow && firstCol < lastCol; ++r) {
          int64_t to = (r - rowOrigin) * localCols + (firstCol - colOrigin);
          int64_t from = (r - rowBegin) * part.shape[1] + (firstCol - colBegin);
          std::memcpy(*buffer + to * size, bytes + from * size,
                      (lastCol - firstCol) * size);
        }
      });
  if (!status)
    return status.takeError();
  return *buffer;
}

/// `tensor` (of weight `part`) widened to f32 into `widened`, a temporary
/// the caller frees once used.
Result<const float *> WeightBinder::widenedF32(const TensorInfo &tensor,
                                               const Argument &part,
                                               HeapBuffer &widened) {
  Result<HeapBuffer> buffer = allocateBuffer(
      tensor.numElements() * sizeof(float), "widening '" + part.name + "'");
  if (!buffer)
    return fail(packageDir + ": " + buffer.error());
  widened = std::move(*buffer);
  auto *values = reinterpret_cast<float *>(widened.get());
  if (Status status = filesByName[part.file]->readAsF32(tensor, values);
      !status)
    return status.takeError();
  return values;
}

/// A part as f32: in place when stored so and aligned, else widened into
/// `widened`.
Result<const float *> WeightBinder::readF32(const Layer &layer,
                                            const Argument &part,
                                            HeapBuffer &widened) {
  Result<const TensorInfo *> info = find(layer, part, ElementType::F32);
  if (!info)
    return info.takeError();
  const TensorInfo &tensor = **info;
  if (tensor.dtype == DType::F32 &&
      reinterpret_cast<uintptr_t>(tensor.data) % alignof(float) == 0)
    return reinterpret_cast<const float *>(tensor.data);
  return widenedF32(tensor, part, widened);
}

/// DoRA's c = m / ||W + s B A|| per output row (atmoe.dora_scale) from the
/// parts W, A, B, m of `arg`, accumulated in double, once per binding for
/// each adapter. The row of B A is formed first so that A is read row by
/// row.
Result<const float *> WeightBinder::doraFactors(const Layer &layer,
                                                const Argument &arg) {
  std::string key = std::to_string(*arg.doraScale);
  for (const Argument &part : arg.parts)
    key += '\n' + part.file + '\n' + part.source;
  const float *&cached = doraFactorsByParts[key];
  if (cached)
    return cached;
  HeapBuffer widened[4];
  const float *part[4];
  for (int i = 0; i < 4; ++i) {
    Result<const float *> values = readF32(layer, arg.parts[i], widened[i]);
    if (!values)
      return values.takeError();
    part[i] = *values;
  }
  const float *w = part[0], *a = part[1], *b = part[2], *m = part[3];
  int64_t out = arg.parts[0].shape[0], in = arg.parts[0].shape[1];
  int64_t rank = arg.parts[1].shape[0];
  double scale = *arg.doraScale;
  Result<std::byte *> buffer = allocate(out * sizeof(float), arg);
  Result<HeapBuffer> rowBuffer =
      allocateBuffer(in * sizeof(double), "a row of '" + arg.name + "'");
  if (!buffer)
    return buffer.takeError();
  if (!rowBuffer)
    return fail(packageDir + ": " + rowBuffer.error());
  auto *c = reinterpret_cast<float *>(*buffer);
  auto *row = reinterpret_cast<double *>(rowBuffer->get());
  for (int64_t o = 0; o < out; ++o) {
    std::fill(row, row + in, 0.0);
    for (int64_t j = 0; j < rank; ++j) {
      double coefficient = scale * b[o * rank + j];
      for (int64_t k = 0; k < in; ++k)
        row[k] += coefficient * a[j * in + k];
    }
    double sum = 0.0;
    for (int64_t k = 0; k < in; ++k) {
      double value = w[o * in + k] + row[k];
      sum += value * value;
    }
    c[o] = static_cast<float>(m[o] / std::sqrt(sum));
  }
  return cached = c;
}

/// A weight computed at bind time (atmoe-hoist-dora-scale): DoRA's c itself,
/// or, for an argument of lora_B's shape, B's rows scaled by it
/// (atmoe.scale_rows).
Result<const void *> WeightBinder::doraScale(const Layer &layer,
                                             const Argument &arg) {
  Result<const float *> c = doraFactors(layer, arg);
  if (!c || arg.shape.size() == 1)
    return c ? Result<const void *>(*c) : c.takeError();
  HeapBuffer widened;
  Result<const float *> b = readF32(layer, arg.parts[2], widened);
  if (!b)
    return b.takeError();
  int64_t out = arg.shape[0], rank = arg.shape[1];
  Result<std::byte *> buffer = allocate(out * rank * sizeof(float), arg);
  if (!buffer)
    return buffer.takeError();
  auto *scaled = reinterpret_cast<float *>(*buffer);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t j = 0; j < rank; ++j)
      scaled[o * rank + j] = (*c)[o] * (*b)[o * rank + j];
  return *buffer;
}

/// This process's slice of a weight split over the processes: in place when
/// the slice is contiguous (a split along the first dimension, whose other
/// slices' pages are then never touched), else copied.
Result<const void *> WeightBinder::slice(const void *data,
                                         const Argument &arg) {
  int64_t ranks = model.manifest.ranks, rank = model.processes->rank();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < int64_t(arg.shape.size()); ++d)
    if (d < arg.shardDim)
      outer *= arg.shape[d];
    else if (d > arg.shardDim)
      inner *= arg.shape[d];
  size_t size = elementSize(arg.elementType);
  int64_t extent = arg.shape[arg.shardDim], part = extent / ranks;
  const auto *whole = static_cast<const std::byte *>(data);
  size_t partBytes = part * inner * size;
  if (outer == 1)
    return whole + rank * partBytes;
  Result<std::byte *> copy = allocate(outer * partBytes, arg);
  if (!copy)
    return copy.takeError();
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(*copy + o * partBytes,
                whole + (o * extent + rank * part) * inner * size, partBytes);
  return *copy;
}

/// to[k * stride] = from[k] for k < count, in elements of type T.
template <typename T>
void scatterColumn(const std::byte *from, std::byte *to, int64_t count,
                   int64_t stride) {
  for (int64_t k = 0; k < count; ++k) {
    T value;
    std::memcpy(&value, from + k * sizeof(T), sizeof(T));
    std::memcpy(to + k * stride * sizeof(T), &value, sizeof(T));
  }
}

/// `arg` repacked in panels of `arg.panelWidth` output features,
/// [n / width, rows, width] (a GPTQ qweight is stored [words, n], a float
/// weight [n, k]), so that the tile computing a panel reads it as one
/// stream. When nothing reads the tensor as stored, its pages are released
/// as they are copied, so that the peak resident memory is one copy, not
/// two.
Result<const void *> WeightBinder::panels(const Layer &layer,
                                          const Argument &arg) {
  const void *&cached =
      panelData[{arg.file, arg.source, arg.panelWidth, arg.panelDim}];
  if (cached)
    return cached;
  Result<const TensorInfo *> info = find(layer, arg, arg.elementType);
  if (!info)
    return info.takeError();
  const TensorInfo &tensor = **info;
  Result<std::byte *> copy = allocate(tensor.numBytes(), arg);
  if (!copy)
    return copy.takeError();
  const auto *stored = reinterpret_cast<const std::byte *>(tensor.data);
  const SafeTensorsFile *file = filesByName[arg.file];
  bool release = !usedAsStored.count({arg.file, arg.source});
  int64_t width = arg.panelWidth, columns = arg.shape[1];
  size_t size = elementSize(arg.elementType), rowBytes = columns * size;
  // Copies stored rows [first, last) to their places in the panels.
  auto copyRows = [&](int64_t first, int64_t last) {
    for (int64_t row = first; row < last; ++row) {
      const std::byte *from = stored + row * rowBytes;
      if (arg.panelDim == 1) {
        for (int64_t panel = 0; panel < columns / width; ++panel)
          std::memcpy(*copy + ((panel * arg.shape[0] + row) * width) * size,
                      from + panel * width * size, width * size);
        continue;
      }
      // Row `row` is output feature `row`: lane row % width of every row of
      // its panel.
      std::byte *to =
          *copy + ((row / width) * columns * width + row % width) * size;
      if (size == 4)
        scatterColumn<uint32_t>(from, to, columns, width);
      else if (size == 2)
        scatterColumn<uint16_t>(from, to, columns, width);
      else
        for (int64_t k = 0; k < columns; ++k)
          std::memcpy(to + k * width * size, from + k * size, size);
    }
  };
  // Whole panels at a time when the panels are rows of the stored tensor.
  int64_t chunk =
      arg.panelDim == 0
          ? width
          : std::max<int64_t>(1, int64_t((size_t(1) << 20) / rowBytes));
  for (int64_t first = 0; first < arg.shape[0]; first += chunk) {
    int64_t last = std::min(arg.shape[0], first + chunk);
    copyRows(first, last);
    if (release)
      file->release(stored + first * rowBytes, (last - first) * rowBytes);
  }
  if (release)
    file->release(tensor);
  return cached = *copy;
}

/// Uploads each distinct buffer once; the layers then see device pointers.
Status WeightBinder::upload(const DeviceSupport &device) {
  weights->device = &device;
  std::unordered_map<const void *, const void *> uploaded;
  for (size_t l = 0; l < model.manifest.layers.size(); ++l) {
    const Layer &layer = model.manifest.layers[l];
    for (size_t w = 0; w < layer.numWeights; ++w) {
      const void *&data = weights->data[l][w];
      if (const void *copy = uploaded[data]) {
        data = copy;
        continue;
      }
      const Argument &arg = layer.arguments[layer.firstWeight + w];
      size_t bytes = elementSize(arg.elementType);
      for (int64_t extent : arg.shape)
        bytes *= extent;
      void *buffer = device.alloc(bytes);
      if (buffer)
        weights->deviceBuffers.push_back(buffer);
      if ((!buffer && bytes) || device.copyToDevice(buffer, data, bytes) != 0)
        return fail(packageDir + ": uploading '" + arg.name + "' to " +
                    device.name() + ": " + device.takeError());
      data = uploaded[data] = buffer;
    }
  }
  return Status::success();
}

} // namespace

namespace {

/// The package's JSON files must say what they said when the model was
/// compiled: their hyper-parameters (alpha, temperatures, structure) are
/// constants of the compiled code. Weights may change; these may not.
Status checkSources(const Manifest &manifest, const std::string &modelPath,
                    const std::string &packageDir) {
  for (const SourceFile &source : manifest.sources) {
    std::string path = packageDir + "/" + source.path;
    Result<std::unique_ptr<MappedFile>> file =
        MappedFile::open(path, "a JSON file");
    if (!file)
      return fail(file.error() + " (" + modelPath +
                  " was compiled from a package with this file)");
    Result<Json> current = parseJson((*file)->contents());
    if (!current)
      return fail(path + ": invalid JSON: " + current.error());
    std::string difference = jsonDifference(source.content, *current);
    if (!difference.empty())
      return fail(path + ": not the file " + modelPath +
                  " was compiled from: " + difference +
                  "; compile the model again for this package");
  }
  return Status::success();
}

} // namespace

atmoe_rt_status_t atmoe_rt_model_bind_weights(atmoe_rt_model_t *model,
                                              const char *packageDir) {
  if (!model)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_bind_weights: model is NULL");
  if (!packageDir || !*packageDir)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_bind_weights: package_dir is NULL or empty");
  struct stat status;
  if (::stat(packageDir, &status) != 0 || !S_ISDIR(status.st_mode))
    return fail(ATMOE_RT_INPUT_ERROR,
                std::string(packageDir) +
                    ": model package directory does not exist or is not a "
                    "directory");
  if (Status sources = checkSources(model->manifest, model->path, packageDir);
      !sources)
    return fail(ATMOE_RT_INPUT_ERROR, sources.takeError());
  Result<std::unique_ptr<BoundWeights>> weights =
      WeightBinder(*model, packageDir).run();
  if (!weights)
    return fail(ATMOE_RT_INPUT_ERROR, weights.takeError());
  model->weights = std::move(*weights);
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
                model->path + ": no weights are bound");
  if (numInPlace)
    *numInPlace = model->weights->numInPlace;
  if (numConverted)
    *numConverted = model->weights->converted.size();
  return ATMOE_RT_OK;
}

atmoe_rt_status_t atmoe_rt_model_check_weights(const atmoe_rt_model_t *model) {
  if (!model)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_check_weights: model is NULL");
  if (!model->weights)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                model->path + ": no weights are bound");
  const BoundWeights &weights = *model->weights;
  for (size_t i = 0; i < weights.files.size(); ++i) {
    // A file replaced by rename (another inode at the path) or removed
    // leaves the mapping of the bound one intact; only the bound file
    // itself changing in place alters the numbers.
    const std::string &path = weights.files[i]->path();
    std::optional<FileIdentity> now = FileIdentity::of(path);
    const FileIdentity &bound = weights.identities[i];
    if (now && now->isSameFile(bound) && !(*now == bound))
      return fail(ATMOE_RT_INPUT_ERROR,
                  path + ": changed in place since it was bound (size " +
                      std::to_string(bound.size) + " -> " +
                      std::to_string(now->size) +
                      " bytes, or a new modification time): results computed "
                      "since may mix old and new weights; replace weight "
                      "files by renaming a new file over them");
  }
  return ATMOE_RT_OK;
}
