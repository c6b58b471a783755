//===- BenchCommon.h - Shared helpers of the benchmark drivers --*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Header-only helpers shared by bench/LayerBench.cpp (compiled layers through
// the runtime), bench/BlasBench.cpp (OpenBLAS) and bench/Probe.cpp: a minimal
// command line, raw f32 files, and the round-robin timing loop that rotates
// the K copies of a layer so that their weights are not cache-resident.
//
// The drivers are built by bench/run_bench.py with clang++ directly; they are
// not part of the CMake build or of check-atmoe.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_BENCH_BENCHCOMMON_H
#define ATMOE_BENCH_BENCHCOMMON_H

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace bench {

[[noreturn]] inline void fail(const std::string &message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  std::exit(1);
}

/// `--key value` pairs; a key given twice keeps every value in order.
class Args {
public:
  Args(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
      std::string key = argv[i];
      if (key.rfind("--", 0) != 0 || i + 1 >= argc)
        fail("expected --option value, found '" + key + "'");
      values[key.substr(2)].push_back(argv[++i]);
    }
  }
  bool has(const std::string &key) const { return values.count(key) != 0; }
  std::string get(const std::string &key) const {
    auto it = values.find(key);
    if (it == values.end())
      fail("missing --" + key);
    return it->second.back();
  }
  std::string get(const std::string &key, const std::string &fallback) const {
    return has(key) ? get(key) : fallback;
  }
  std::vector<std::string> all(const std::string &key) const {
    auto it = values.find(key);
    return it == values.end() ? std::vector<std::string>() : it->second;
  }
  double number(const std::string &key, double fallback) const {
    return has(key) ? std::atof(get(key).c_str()) : fallback;
  }

private:
  std::map<std::string, std::vector<std::string>> values;
};

/// "1,2,3" -> {1, 2, 3}; "" -> {}.
inline std::vector<int64_t> parseList(const std::string &text) {
  std::vector<int64_t> result;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos)
      end = text.size();
    result.push_back(
        std::strtoll(text.substr(begin, end - begin).c_str(), nullptr, 10));
    begin = end + 1;
  }
  return result;
}

/// A named set of layers (copies) timed round-robin: "moe=0,1,2".
struct LayerSet {
  std::string name;
  std::vector<int64_t> layers;
};

inline LayerSet parseSet(const std::string &text) {
  size_t eq = text.find('=');
  if (eq == std::string::npos)
    fail("expected NAME=L0,L1,..., found '" + text + "'");
  return {text.substr(0, eq), parseList(text.substr(eq + 1))};
}

/// Every --set of the command line; at least one.
inline std::vector<LayerSet> parseSets(const Args &args) {
  std::vector<LayerSet> sets;
  for (const std::string &text : args.all("set"))
    sets.push_back(parseSet(text));
  if (sets.empty())
    fail("missing --set NAME=L0,L1,...");
  return sets;
}

/// Reads `count` floats from a raw little-endian f32 file.
inline std::vector<float> readFloats(const std::string &path, size_t count) {
  std::vector<float> data(count);
  FILE *file = std::fopen(path.c_str(), "rb");
  if (!file)
    fail(path + ": cannot open");
  size_t got = std::fread(data.data(), sizeof(float), count, file);
  std::fclose(file);
  if (got != count)
    fail(path + ": expected " + std::to_string(count) + " floats");
  return data;
}

inline void writeFloats(const std::string &path, const float *data,
                        size_t count) {
  FILE *file = std::fopen(path.c_str(), "wb");
  if (!file || std::fwrite(data, sizeof(float), count, file) != count)
    fail(path + ": cannot write");
  std::fclose(file);
}

/// 64-byte aligned, zeroed float buffer.
struct AlignedBuffer {
  explicit AlignedBuffer(size_t count = 0) { resize(count); }
  AlignedBuffer(const AlignedBuffer &) = delete;
  AlignedBuffer &operator=(const AlignedBuffer &) = delete;
  ~AlignedBuffer() { std::free(ptr); }
  void resize(size_t count) {
    std::free(ptr);
    size_t bytes = std::max<size_t>(64, (count * sizeof(float) + 63) / 64 * 64);
    ptr = static_cast<float *>(std::aligned_alloc(64, bytes));
    if (!ptr)
      fail("out of memory");
    std::memset(ptr, 0, bytes);
    size = count;
  }
  float *ptr = nullptr;
  size_t size = 0;
};

inline double nowSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline double median(std::vector<double> values) {
  if (values.empty())
    return 0;
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

/// Times `call(set, copy)` for every set, every copy in turn: one untimed
/// warm-up round (it faults the weights in and starts the threads), then
/// rounds until at least `minRounds` are done and `budget` seconds have
/// passed, or `maxRounds` are done. Each call is timed on its own; one line
/// per set: "NAME median_us=... min_us=... calls=N".
inline void
timeRoundRobin(const std::vector<LayerSet> &sets, const Args &args,
               const std::function<void(size_t set, size_t copy)> &call) {
  int minRounds = static_cast<int>(args.number("min-rounds", 3));
  int maxRounds = static_cast<int>(args.number("max-rounds", 50));
  double budget = args.number("budget", 2.0);
  for (size_t s = 0; s < sets.size(); ++s)
    for (size_t k = 0; k < sets[s].layers.size(); ++k)
      call(s, k);
  std::vector<std::vector<double>> times(sets.size());
  double start = nowSeconds();
  for (int round = 0; round < maxRounds; ++round) {
    if (round >= minRounds && nowSeconds() - start > budget)
      break;
    for (size_t s = 0; s < sets.size(); ++s) {
      for (size_t k = 0; k < sets[s].layers.size(); ++k) {
        double begin = nowSeconds();
        call(s, k);
        times[s].push_back((nowSeconds() - begin) * 1e6);
      }
    }
  }
  for (size_t s = 0; s < sets.size(); ++s)
    std::printf("%s median_us=%.3f min_us=%.3f calls=%zu\n",
                sets[s].name.c_str(), median(times[s]),
                *std::min_element(times[s].begin(), times[s].end()),
                times[s].size());
}

} // namespace bench

#endif // ATMOE_BENCH_BENCHCOMMON_H
