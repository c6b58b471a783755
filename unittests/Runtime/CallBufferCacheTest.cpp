//===- CallBufferCacheTest.cpp - Heap buffers kept between calls ----------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "CallBuffers.h"

#include "gtest/gtest.h"

#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

using atmoe_rt::CallBufferCache;

namespace {

constexpr size_t kLarge = size_t(1) << 20;

TEST(CallBufferCacheTest, SizeClassesWasteAtMostAQuarter) {
  EXPECT_EQ(CallBufferCache::sizeClass(kLarge), kLarge);
  EXPECT_EQ(CallBufferCache::sizeClass(kLarge + 1), kLarge + kLarge / 4);
  EXPECT_EQ(CallBufferCache::sizeClass(3 * kLarge / 2 + 1), 7 * kLarge / 4);
  for (size_t bytes = 4; bytes < (size_t(1) << 30); bytes = bytes * 3 / 2 + 7) {
    size_t size = CallBufferCache::sizeClass(bytes);
    EXPECT_GE(size, bytes);
    EXPECT_LE(size - bytes, bytes / 4) << bytes;
  }
}

TEST(CallBufferCacheTest, ReusesReleasedBuffersOfTheSameClass) {
  CallBufferCache cache;
  void *first = cache.allocate(kLarge + 100);
  ASSERT_NE(first, nullptr);
  std::memset(first, 1, kLarge + 100);
  cache.release(first);
  EXPECT_EQ(cache.idleBytes(), CallBufferCache::sizeClass(kLarge + 100));
  // A call with the same shapes gets the same buffer back, and so does one
  // whose size rounds to the same class.
  EXPECT_EQ(cache.allocate(kLarge + 200), first);
  EXPECT_EQ(cache.idleBytes(), 0u);
  void *second = cache.allocate(kLarge + 200);
  EXPECT_NE(second, first);
  cache.release(first);
  cache.release(second);
  EXPECT_EQ(cache.idleBytes(), 2 * CallBufferCache::sizeClass(kLarge + 100));
}

TEST(CallBufferCacheTest, SmallAndForeignBuffersGoToFree) {
  CallBufferCache cache;
  void *small = cache.allocate(100);
  ASSERT_NE(small, nullptr);
  cache.release(small);
  // Allocated with malloc before the model had the cache: freed, not kept.
  cache.release(std::malloc(kLarge));
  cache.release(nullptr);
  EXPECT_EQ(cache.idleBytes(), 0u);
}

TEST(CallBufferCacheTest, KeepsAtMostItsLimit) {
  CallBufferCache cache(/*idleLimit=*/3 * kLarge);
  std::vector<void *> buffers;
  for (int i = 0; i < 5; ++i)
    buffers.push_back(cache.allocate(kLarge));
  for (void *buffer : buffers)
    cache.release(buffer);
  EXPECT_EQ(cache.idleBytes(), 3 * kLarge);
}

TEST(CallBufferCacheTest, ThreadsShareOneCache) {
  CallBufferCache cache;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 200; ++i) {
        size_t bytes = kLarge / 4 * (1 + (i + t) % 3);
        auto *buffer = static_cast<unsigned char *>(cache.allocate(bytes));
        ASSERT_NE(buffer, nullptr);
        buffer[0] = buffer[bytes - 1] = static_cast<unsigned char>(t);
        cache.release(buffer);
      }
    });
  for (std::thread &thread : threads)
    thread.join();
  // Each class holds at most one buffer per thread that used it at once.
  EXPECT_LE(cache.idleBytes(), 4 * (kLarge / 4 + kLarge / 2 + 3 * kLarge / 4));
}

} // namespace
