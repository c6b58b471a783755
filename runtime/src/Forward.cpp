//===- Forward.cpp - Running a layer --------------------------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe_rt_layer_forward validates the call, lays the caller's buffers and
// the bound weights out in ABI order with their concrete shapes, builds one
// memref descriptor per argument and calls the layer's entry point; on a GPU
// model inputs and outputs go through device buffers of the call. Forward is
// the hot path: its lists live in per-thread scratch that keeps its capacity,
// so a steady stream of calls allocates nothing.
//
//===----------------------------------------------------------------------===//

#include "Model.h"
#include "Status.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

using namespace atmoe_rt;

namespace {

/// The memref descriptors of one call. A descriptor of rank R is {allocated,
/// aligned, offset, sizes[R], strides[R]}: 3 + 2R eight-byte words with no
/// padding on LP64, so all of them can live in one word array that belongs
/// to the call (nothing shared between threads).
class DescriptorList {
public:
  static_assert(sizeof(void *) == sizeof(int64_t),
                "memref descriptors are laid out for 64-bit pointers");

  void clear() {
    words.clear();
    offsets.clear();
  }

  /// One descriptor for `data` of `shape`, kDynamic standing for `rows`;
  /// with `splitDim`, the slice of one of `ranks` processes along it.
  void add(const void *data, const std::vector<int64_t> &shape, int64_t rows,
           int64_t splitDim = -1, int64_t ranks = 1, int64_t panel = 0,
           int64_t panelDim = 1) {
    // A weight in panels: the panels of dimension panelDim, each with the
    // other dimension as rows.
    if (panel > 0)
      return add(data, {shape[panelDim] / panel, shape[1 - panelDim], panel},
                 rows);
    offsets.push_back(words.size());
    int64_t pointer;
    std::memcpy(&pointer, &data, sizeof(pointer));
    words.push_back(pointer); // allocated
    words.push_back(pointer); // aligned
    words.push_back(0);       // offset
    size_t sizesBegin = words.size();
    for (int64_t dim : shape)
      words.push_back(dim == kDynamic ? rows : dim);
    if (splitDim >= 0)
      words[sizesBegin + splitDim] /= ranks;
    words.resize(sizesBegin + 2 * shape.size());
    int64_t stride = 1;
    for (size_t i = shape.size(); i-- > 0;) {
      words[sizesBegin + shape.size() + i] = stride;
      stride *= words[sizesBegin + i];
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
  std::vector<int64_t> words;
  std::vector<size_t> offsets;
  std::vector<void *> args;
};

/// One argument's buffer; `rows` is what kDynamic stands for in its shape.
struct Buffer {
  const Argument *arg;
  const void *data;
  int64_t rows;

  size_t bytes() const {
    size_t total = elementSize(arg->elementType);
    for (int64_t dim : arg->shape)
      total *= dim == kDynamic ? rows : dim;
    return total;
  }
};

/// A routing buffer the runtime supplies when the caller passes none; a
/// failed allocation is a status (HeapBuffer), not a terminated host.
class ScratchFloats {
public:
  /// At least `count` floats, or null if they cannot be allocated.
  float *reserve(size_t count) {
    if (count > capacity) {
      HeapBuffer grown(
          static_cast<std::byte *>(std::malloc(count * sizeof(float))));
      if (!grown)
        return nullptr;
      data = std::move(grown);
      capacity = count;
    }
    return reinterpret_cast<float *>(data.get());
  }

private:
  HeapBuffer data;
  size_t capacity = 0;
};

/// What one thread reuses from call to call.
struct CallScratch {
  DescriptorList descriptors;
  std::vector<Buffer> buffers;
  ScratchFloats routing;
};
thread_local CallScratch scratch;

/// The caller's view of one forward call.
struct Call {
  const atmoe_rt_model_t *model;
  const Layer &layer;
  int64_t numTokens;
  size_t numProjections;
  const float *const *x;
  const float *h;
  size_t numSegments;
  const int64_t *segments;
  float *const *y;
  float *routing;

  /// Built only on failure: forward is the hot path.
  std::string where() const {
    return "atmoe_rt_layer_forward: " + layerName(layer);
  }
  int64_t routerRows() const {
    return layer.granularity == Granularity::Sequence ? int64_t(numSegments)
                                                      : numTokens;
  }
};

atmoe_rt_status_t checkBuffers(const Call &call) {
  const Layer &l = call.layer;
  if (!call.model->weights)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                call.where() + ": no weights are bound (call "
                               "atmoe_rt_model_bind_weights first)");
  if (call.numTokens < 1)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                call.where() + ": num_tokens must be at least 1, got " +
                    std::to_string(call.numTokens));
  if (call.numProjections != l.projections.size())
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                call.where() + ": expected " +
                    std::to_string(l.projections.size()) +
                    " projections, got " + std::to_string(call.numProjections));
  if (!call.x || !call.y)
    return fail(ATMOE_RT_INVALID_ARGUMENT, call.where() + ": x or y is NULL");
  for (size_t p = 0; p < call.numProjections; ++p)
    if (!call.x[p] || !call.y[p])
      return fail(ATMOE_RT_INVALID_ARGUMENT,
                  call.where() + ": x or y of projection '" +
                      l.projections[p].name + "' is NULL");
  if (l.hasRouter() && !call.h)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                call.where() + ": h is NULL but the layer has a router");
  return ATMOE_RT_OK;
}

atmoe_rt_status_t checkSegments(const Call &call) {
  if (call.numSegments && !call.segments)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                call.where() + ": segments is NULL but num_segments is " +
                    std::to_string(call.numSegments));
  int64_t total = 0;
  for (size_t s = 0; s < call.numSegments; ++s) {
    // Checking each length against what is left of T keeps the sum from
    // overflowing.
    int64_t length = call.segments[s];
    if (length < 0 || length > call.numTokens - total)
      return fail(ATMOE_RT_INVALID_ARGUMENT,
                  call.where() + ": segment " + std::to_string(s) +
                      " has length " + std::to_string(length) +
                      "; lengths must be >= 0 and sum to num_tokens = " +
                      std::to_string(call.numTokens));
    total += length;
  }
  if (call.numSegments && total != call.numTokens)
    return fail(
        ATMOE_RT_INVALID_ARGUMENT,
        call.where() + ": segment lengths sum to " + std::to_string(total) +
            ", expected num_tokens = " + std::to_string(call.numTokens));
  return ATMOE_RT_OK;
}

/// Each argument's host buffer, in ABI order.
void layOut(const Call &call, size_t layerPosition,
            std::vector<Buffer> &buffers) {
  const std::vector<const void *> &weightData =
      call.model->weights->data[layerPosition];
  buffers.clear();
  size_t p = 0, w = 0, out = 0;
  for (const Argument &arg : call.layer.arguments) {
    if (arg.role == ArgumentRole::Weight)
      buffers.push_back({&arg, weightData[w++], 0});
    else if (arg.role == ArgumentRole::Input && arg.name == "h")
      buffers.push_back({&arg, call.h, call.routerRows()});
    else if (arg.role == ArgumentRole::Input && arg.name == "segments")
      buffers.push_back({&arg, call.segments, int64_t(call.numSegments)});
    else if (arg.role == ArgumentRole::Input)
      buffers.push_back({&arg, call.x[p++], call.numTokens});
    else if (out < call.numProjections)
      buffers.push_back({&arg, call.y[out++], call.numTokens});
    else
      buffers.push_back({&arg, call.routing, call.routerRows()});
  }
}

/// Device buffers of one call, freed when it returns.
struct DeviceBuffers {
  const DeviceSupport &device;
  std::vector<void *> pointers;
  ~DeviceBuffers() {
    for (void *pointer : pointers)
      device.free(pointer);
  }
};

/// Runs the entry point on a GPU: inputs and outputs go through device
/// buffers of this call; weights are on the device already, host-memory
/// arguments stay where they are.
atmoe_rt_status_t runOnDevice(const Call &call, AtmoeEntryFn entry,
                              const std::vector<Buffer> &buffers) {
  const DeviceSupport &device = *call.model->device;
  auto deviceError = [&](const std::string &what) {
    return fail(ATMOE_RT_INTERNAL_ERROR, call.where() + ": " + what + " on " +
                                             device.name() + ": " +
                                             device.takeError());
  };
  DeviceBuffers callBuffers{device, {}};
  std::vector<void *> outputs(buffers.size(), nullptr);
  DescriptorList &descriptors = scratch.descriptors;
  descriptors.clear();
  for (size_t i = 0; i < buffers.size(); ++i) {
    const Argument &arg = *buffers[i].arg;
    if (arg.role == ArgumentRole::Weight || arg.inHostMemory) {
      descriptors.add(buffers[i].data, arg.shape, buffers[i].rows);
      continue;
    }
    size_t bytes = buffers[i].bytes();
    void *pointer = device.alloc(bytes);
    if (!pointer && bytes)
      return deviceError("allocating '" + arg.name + "'");
    callBuffers.pointers.push_back(pointer);
    if (arg.role == ArgumentRole::Input &&
        device.copyToDevice(pointer, buffers[i].data, bytes) != 0)
      return deviceError("copying '" + arg.name + "'");
    if (arg.role == ArgumentRole::Output)
      outputs[i] = pointer;
    descriptors.add(pointer, arg.shape, buffers[i].rows);
  }
  entry(descriptors.finish());
  if (std::string error = device.takeError(); !error.empty())
    return fail(ATMOE_RT_INTERNAL_ERROR,
                call.where() + ": on " + device.name() + ": " + error);
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (!outputs[i])
      continue;
    if (device.copyToHost(const_cast<void *>(buffers[i].data), outputs[i],
                          buffers[i].bytes()) != 0)
      return deviceError("copying '" + buffers[i].arg->name + "' back");
  }
  return ATMOE_RT_OK;
}

} // namespace

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
  Call call{model,       model->manifest.layers[layer],
            numTokens,   numProjections,
            x,           h,
            numSegments, segments,
            y,           routing};
  if (atmoe_rt_status_t status = checkBuffers(call))
    return status;
  if (atmoe_rt_status_t status = checkSegments(call))
    return status;
  // With no lengths given the whole batch is one sequence.
  int64_t wholeBatch = numTokens;
  if (!call.numSegments) {
    call.numSegments = 1;
    call.segments = &wholeBatch;
  }
  size_t numExperts = call.layer.experts.size();
  if (call.layer.hasRouter() && !routing) {
    // Only an absurd T could overflow here, but the entry point would then
    // write past a short buffer.
    if (size_t(call.routerRows()) > SIZE_MAX / sizeof(float) / numExperts)
      return fail(ATMOE_RT_INVALID_ARGUMENT,
                  call.where() + ": num_tokens = " + std::to_string(numTokens) +
                      " is too large for a routing buffer");
    size_t count = size_t(call.routerRows()) * numExperts;
    call.routing = scratch.routing.reserve(count);
    if (!call.routing)
      return fail(ATMOE_RT_INTERNAL_ERROR,
                  call.where() + ": cannot allocate " +
                      std::to_string(count * sizeof(float)) +
                      " bytes for the routing weights (num_tokens = " +
                      std::to_string(numTokens) +
                      "); pass a routing buffer or fewer tokens");
  }
  std::vector<Buffer> &buffers = scratch.buffers;
  layOut(call, layer, buffers);
  if (model->device)
    return runOnDevice(call, model->entries[layer], buffers);
  DescriptorList &descriptors = scratch.descriptors;
  descriptors.clear();
  // A process of a model split over processes binds its slice of split
  // weights.
  for (const Buffer &buffer : buffers)
    descriptors.add(buffer.data, buffer.arg->shape, buffer.rows,
                    buffer.arg->shardDim, model->manifest.ranks,
                    buffer.arg->panelWidth, buffer.arg->panelDim);
  model->entries[layer](descriptors.finish());
  return ATMOE_RT_OK;
}
