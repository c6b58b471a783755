//===- CallBuffers.h - Heap buffers kept from one call to the next -*- C++
//-*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A compiled layer allocates its temporaries (T x R intermediates, tiles of
// y, collective buffers of a split model, a merged segment's W') on every
// call and frees them before it returns. From malloc, buffers above glibc's
// mmap threshold are mapped fresh and page-faulted in on every call, and the
// heap is trimmed after the others: measured, that made a sequence-
// granularity layer 2.5x slower and a split one 2x. The runtime installs
// this allocator in every model it loads instead (the model's exported
// atmoe_model_set_allocator): buffers of 64 KiB and more are rounded up to
// a size class and kept after release, so that the next call with the same
// shapes reuses them; smaller ones go to malloc, which recycles them well.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RUNTIME_SRC_CALLBUFFERS_H
#define ATMOE_RUNTIME_SRC_CALLBUFFERS_H

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace atmoe_rt {

class CallBufferCache {
public:
  /// Buffers below this size are not kept.
  static constexpr size_t kSmallBytes = size_t(64) << 10;
  /// Released buffers are kept up to this many bytes in all; beyond it
  /// they are freed (a server whose batch sizes vary keeps a bounded set).
  static constexpr size_t kDefaultIdleLimit = size_t(256) << 20;

  explicit CallBufferCache(size_t idleLimit = kDefaultIdleLimit)
      : idleLimit(idleLimit) {}
  ~CallBufferCache();
  CallBufferCache(const CallBufferCache &) = delete;
  CallBufferCache &operator=(const CallBufferCache &) = delete;

  /// The process's cache, shared by every loaded model (one model image
  /// may serve several handles).
  static CallBufferCache &process();

  void *allocate(size_t bytes);
  void release(void *pointer);

  /// `bytes` rounded up to its class: a quarter of its power of two, so at
  /// most 25% is wasted and nearby sizes share buffers.
  static size_t sizeClass(size_t bytes);

  size_t idleBytes() const;

  /// Installs the process's cache in the model `library` if it exports the
  /// hook (models compiled before it did not).
  static void installIn(void *library);

private:
  mutable std::mutex mutex;
  size_t idleLimit;
  size_t idleTotal = 0;
  std::unordered_map<size_t, std::vector<void *>> idle;
  std::unordered_map<void *, size_t> live;
};

} // namespace atmoe_rt

#endif // ATMOE_RUNTIME_SRC_CALLBUFFERS_H
