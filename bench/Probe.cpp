//===- Probe.cpp - Measured machine limits for the roofline -----*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe-probe [--threads N] [--mib M] [--passes P] [--fma-seconds S]
//             [--sweeps N] [--vector-bytes 64|32]
//
// The two limits bench/run_bench.py relates its timings to, measured with N
// threads:
//
//  - read bandwidth: a streaming read (a sum with 8 independent 64-byte
//    vector accumulators) of an M MiB buffer (default 512, many times the
//    last-level cache), split into N contiguous slices; P passes, each timed
//    from the threads' start to their join (with --sweeps N each thread
//    reads its slice N times per pass, so that a cache-resident M is not
//    timed mostly starting threads). Prints the median and the best pass in
//    GB/s (1e9 bytes/s).
//  - peak FLOP/s: each thread runs 12 independent chains of 16-lane f32
//    FMAs that never touch memory (enough chains to cover the FMA latency
//    on every x86-64 core with two FMA pipes); 2 * 16 * 12 FLOP per
//    iteration. Prints the median of 5 runs in GFLOP/s (0 with
//    --fma-seconds 0: bandwidth only). Built with -march=native; the
//    chains are 64-byte vectors, or 32-byte ones with --vector-bytes 32:
//    the peak of a model compiled for AVX2 (--target=x86-64-v3).
//
// Output: one line, "read_GBps=... read_best_GBps=... peak_gflops=...".
//
//===----------------------------------------------------------------------===//

#include "BenchCommon.h"

#include <thread>

using namespace bench;

namespace {

typedef float Vec16 __attribute__((vector_size(64)));
typedef float Vec8 __attribute__((vector_size(32)));

float sumSlice(const float *data, size_t count) {
  Vec16 acc[8] = {};
  const Vec16 *v = reinterpret_cast<const Vec16 *>(data);
  size_t vectors = count / 16;
  for (size_t i = 0; i + 8 <= vectors; i += 8)
    for (int j = 0; j < 8; ++j)
      acc[j] += v[i + j];
  float sum = 0;
  for (int j = 0; j < 8; ++j)
    for (int l = 0; l < 16; ++l)
      sum += acc[j][l];
  return sum;
}

template <typename Vec>
float fmaChains(long iterations) {
  Vec acc[12];
  for (int j = 0; j < 12; ++j)
    acc[j] = Vec{} + (0.5f + static_cast<float>(j));
  Vec m = Vec{} + 0.999999f, c = Vec{} + 1e-7f;
  for (long i = 0; i < iterations; ++i)
    for (int j = 0; j < 12; ++j)
      acc[j] = acc[j] * m + c;
  float sum = 0;
  for (int j = 0; j < 12; ++j)
    sum += acc[j][0];
  return sum;
}

template <typename F>
double runThreads(int threads, F &&body) {
  std::vector<std::thread> pool;
  double start = nowSeconds();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back(body, t);
  for (std::thread &thread : pool)
    thread.join();
  return nowSeconds() - start;
}

} // namespace

int main(int argc, char **argv) {
  Args args(argc, argv);
  int threads = static_cast<int>(args.number("threads", 1));
  size_t count = static_cast<size_t>(args.number("mib", 512)) << 18;
  int passes = static_cast<int>(args.number("passes", 10));
  int sweeps = static_cast<int>(args.number("sweeps", 1));
  double fmaSeconds = args.number("fma-seconds", 0.2);

  // Slices of whole 8-vector blocks; every page written before timing.
  size_t slice = count / threads / 128 * 128;
  AlignedBuffer buffer(slice * threads);
  for (size_t i = 0; i < buffer.size; ++i)
    buffer.ptr[i] = static_cast<float>(i & 1023) * 1e-3f;
  std::vector<float> sums(threads);
  std::vector<double> rates;
  for (int pass = 0; pass <= passes; ++pass) {
    double seconds = runThreads(threads, [&](int t) {
      for (int sweep = 0; sweep < sweeps; ++sweep)
        sums[t] += sumSlice(buffer.ptr + t * slice, slice);
    });
    if (pass > 0) // The first pass warms the TLB and the threads up.
      rates.push_back(double(sweeps) * slice * threads * sizeof(float) /
                      seconds * 1e-9);
  }

  // Calibrate the FMA loop to about fmaSeconds, then time 5 runs.
  long iterations = 1 << 16;
  int vectorBytes = static_cast<int>(args.number("vector-bytes", 64));
  if (vectorBytes != 64 && vectorBytes != 32)
    fail("--vector-bytes must be 64 or 32");
  int lanes = vectorBytes / 4;
  auto fmaRun = [&](int t) {
    sums[t] += lanes == 16 ? fmaChains<Vec16>(iterations)
                           : fmaChains<Vec8>(iterations);
  };
  while (fmaSeconds > 0 && runThreads(1, fmaRun) < fmaSeconds / 4)
    iterations *= 2;
  iterations = static_cast<long>(iterations * 4);
  std::vector<double> gflops;
  for (int run = 0; fmaSeconds > 0 && run < 5; ++run) {
    double seconds = runThreads(threads, fmaRun);
    gflops.push_back(2.0 * lanes * 12 * iterations * threads / seconds * 1e-9);
  }

  float check = 0;
  for (float s : sums)
    check += s;
  std::printf("read_GBps=%.2f read_best_GBps=%.2f peak_gflops=%.1f "
              "threads=%d mib=%zu checksum=%g\n",
              median(rates), *std::max_element(rates.begin(), rates.end()),
              gflops.empty() ? 0.0 : median(gflops), threads,
              (slice * threads) >> 18, static_cast<double>(check));
  return 0;
}
