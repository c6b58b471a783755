//===- CallBuffers.cpp - Heap buffers kept from one call to the next ------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "CallBuffers.h"

#include "atmoe_rt/support/Manifest.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>

using namespace atmoe_rt;

CallBufferCache::~CallBufferCache() {
  for (auto &[size, buffers] : idle)
    for (void *buffer : buffers)
      std::free(buffer);
}

CallBufferCache &CallBufferCache::process() {
  // Never destroyed: a model may release a buffer during the process's
  // exit, after static destructors ran.
  static CallBufferCache *cache = new CallBufferCache;
  return *cache;
}

size_t CallBufferCache::sizeClass(size_t bytes) {
  if (bytes < 4)
    return bytes;
  size_t power = size_t(1) << (63 - __builtin_clzll(bytes));
  size_t step = power / 4;
  return (bytes + step - 1) / step * step;
}

void *CallBufferCache::allocate(size_t bytes) {
  if (bytes < kSmallBytes)
    return std::malloc(bytes);
  size_t size = sizeClass(bytes);
  std::lock_guard<std::mutex> lock(mutex);
  void *buffer = nullptr;
  auto found = idle.find(size);
  if (found != idle.end() && !found->second.empty()) {
    buffer = found->second.back();
    found->second.pop_back();
    idleTotal -= size;
  } else {
    buffer = std::malloc(size);
    if (!buffer)
      return nullptr;
  }
  live.emplace(buffer, size);
  return buffer;
}

void CallBufferCache::release(void *pointer) {
  if (!pointer)
    return;
  std::unique_lock<std::mutex> lock(mutex);
  auto found = live.find(pointer);
  if (found == live.end()) {
    // A small buffer, or one allocated before the cache was installed.
    lock.unlock();
    std::free(pointer);
    return;
  }
  size_t size = found->second;
  live.erase(found);
  if (idleTotal + size > idleLimit) {
    lock.unlock();
    std::free(pointer);
    return;
  }
  idle[size].push_back(pointer);
  idleTotal += size;
}

size_t CallBufferCache::idleBytes() const {
  std::lock_guard<std::mutex> lock(mutex);
  return idleTotal;
}

namespace {

void *allocateHook(void *context, uint64_t bytes) {
  return static_cast<CallBufferCache *>(context)->allocate(bytes);
}

void releaseHook(void *context, void *pointer) {
  static_cast<CallBufferCache *>(context)->release(pointer);
}

} // namespace

void CallBufferCache::installIn(void *library) {
  void *symbol = dlsym(library, std::string(kSetAllocatorSymbol).c_str());
  if (!symbol)
    return;
  using SetAllocatorFn = void (*)(void *, AllocateFn, ReleaseFn);
  SetAllocatorFn setAllocator;
  static_assert(sizeof(setAllocator) == sizeof(symbol));
  std::memcpy(&setAllocator, &symbol, sizeof(setAllocator));
  setAllocator(&process(), &allocateHook, &releaseHook);
}
