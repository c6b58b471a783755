//===- atmoe-stress-forward.cpp - Concurrent forward on a real model ------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
//   atmoe-stress-forward MODEL.so PACKAGE_DIR [--threads N] [--rounds N]
//                        [--inputs K]
//
// A test helper (test/Integration/CPU/concurrent-forward.test): opens a model
// compiled by atmoe-compile, binds the package's weights once, and for every
// layer prepares K different calls (token counts, segmentations, inputs).
// Each call is first run alone; then N threads run all calls of all layers
// in different orders, N rounds each, on the one bound model, and every
// output (y of each projection and the routing weights) must equal the
// single-threaded result bit for bit. Half of the concurrent calls pass no
// routing buffer (the runtime then uses its own per-call scratch).
//
// Prints one summary line; exit code 0 when everything matched, 1 on a
// mismatch or a failed call, 2 on a bad command line.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/atmoe_rt.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

/// A deterministic generator (xorshift64*), so that a failure reproduces.
class Random {
public:
  explicit Random(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
  }
  /// Uniform in [-1, 1).
  float value() { return float(next() >> 40) / float(1 << 23) - 1.0f; }
  int64_t below(int64_t bound) { return int64_t(next() % uint64_t(bound)); }

private:
  uint64_t state;
};

struct Projection {
  int64_t dIn, dOut;
};

/// One forward call with its inputs and the single-threaded outputs.
struct Call {
  size_t layer;
  int64_t tokens;
  std::vector<int64_t> segments;
  std::vector<std::vector<float>> x;
  std::vector<float> h;
  std::vector<std::vector<float>> expectedY;
  std::vector<float> expectedRouting;
};

struct Layer {
  std::vector<Projection> projections;
  int64_t dH = 0;
  size_t experts = 0;
  bool perSequence = false;
};

/// Runs `call` into `y` and `routing` (nullptr: not requested).
atmoe_rt_status_t run(const atmoe_rt_model_t *model, const Layer &layer,
                      const Call &call, std::vector<std::vector<float>> &y,
                      float *routing) {
  std::vector<const float *> xs;
  std::vector<float *> ys;
  for (size_t p = 0; p < layer.projections.size(); ++p) {
    xs.push_back(call.x[p].data());
    ys.push_back(y[p].data());
  }
  return atmoe_rt_layer_forward(
      model, call.layer, call.tokens, xs.size(), xs.data(),
      layer.experts ? call.h.data() : nullptr, call.segments.size(),
      call.segments.empty() ? nullptr : call.segments.data(), ys.data(),
      routing);
}

bool sameBits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() &&
         (a.empty() ||
          std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

int usage(const char *message) {
  std::fprintf(stderr,
               "atmoe-stress-forward: error: %s\nusage: atmoe-stress-forward "
               "MODEL.so PACKAGE_DIR [--threads N] [--rounds N] "
               "[--inputs K]\n",
               message);
  return 2;
}

int fail(const char *what) {
  std::fprintf(stderr, "atmoe-stress-forward: error: %s: %s\n", what,
               atmoe_rt_last_error());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 3)
    return usage("expected MODEL.so and PACKAGE_DIR");
  int threads = 8, rounds = 20, inputs = 6;
  for (int i = 3; i + 1 < argc; i += 2) {
    int value = std::atoi(argv[i + 1]);
    if (value < 1)
      return usage("option values must be positive integers");
    if (!std::strcmp(argv[i], "--threads"))
      threads = value;
    else if (!std::strcmp(argv[i], "--rounds"))
      rounds = value;
    else if (!std::strcmp(argv[i], "--inputs"))
      inputs = value;
    else
      return usage("unknown option");
  }
  if (argc % 2 == 0)
    return usage("an option lacks its value");

  atmoe_rt_model_t *raw = nullptr;
  if (atmoe_rt_model_open(argv[1], &raw) != ATMOE_RT_OK)
    return fail("open");
  std::unique_ptr<atmoe_rt_model_t, void (*)(atmoe_rt_model_t *)> model(
      raw, atmoe_rt_model_close);
  if (atmoe_rt_model_bind_weights(model.get(), argv[2]) != ATMOE_RT_OK)
    return fail("bind");

  size_t numLayers = 0;
  if (atmoe_rt_model_get_num_layers(model.get(), &numLayers) != ATMOE_RT_OK)
    return fail("layers");
  std::vector<Layer> layers(numLayers);
  for (size_t l = 0; l < numLayers; ++l) {
    Layer &layer = layers[l];
    size_t numProjections = 0;
    atmoe_rt_granularity_t granularity;
    if (atmoe_rt_layer_get_num_projections(model.get(), l, &numProjections) ||
        atmoe_rt_layer_get_router(model.get(), l, &layer.dH, &layer.experts,
                                  &granularity))
      return fail("layer query");
    layer.perSequence = granularity == ATMOE_RT_GRANULARITY_SEQUENCE;
    for (size_t p = 0; p < numProjections; ++p) {
      Projection projection;
      if (atmoe_rt_layer_get_projection(model.get(), l, p, nullptr,
                                        &projection.dIn, &projection.dOut))
        return fail("projection query");
      layer.projections.push_back(projection);
    }
  }

  // Calls of different shapes: 1 to 23 tokens in up to 3 sequences (empty
  // ones included), every layer; each run once alone for the reference.
  std::vector<Call> calls;
  Random random(42);
  for (size_t l = 0; l < numLayers; ++l) {
    const Layer &layer = layers[l];
    for (int k = 0; k < inputs; ++k) {
      Call call;
      call.layer = l;
      call.tokens = 1 + (k * 7 + int64_t(l) * 5) % 23;
      int64_t numSegments = 1 + k % 3, left = call.tokens;
      for (int64_t s = 0; s + 1 < numSegments; ++s) {
        int64_t length = random.below(left + 1);
        call.segments.push_back(length);
        left -= length;
      }
      if (numSegments > 1)
        call.segments.push_back(left);
      for (const Projection &projection : layer.projections) {
        std::vector<float> x(size_t(call.tokens * projection.dIn));
        for (float &v : x)
          v = random.value();
        call.x.push_back(std::move(x));
        call.expectedY.emplace_back(size_t(call.tokens * projection.dOut));
      }
      int64_t routerRows = layer.perSequence ? numSegments : call.tokens;
      call.h.resize(size_t(routerRows * layer.dH));
      for (float &v : call.h)
        v = random.value();
      call.expectedRouting.resize(size_t(routerRows) * layer.experts);
      if (run(model.get(), layer, call, call.expectedY,
              call.expectedRouting.data()) != ATMOE_RT_OK)
        return fail("single-threaded forward");
      calls.push_back(std::move(call));
    }
  }

  std::atomic<bool> go{false};
  std::atomic<long> mismatches{0}, failures{0}, completed{0};
  std::mutex reportMutex;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::vector<std::vector<float>> y;
      std::vector<float> routing;
      while (!go.load())
        std::this_thread::yield();
      for (int round = 0; round < rounds; ++round) {
        for (size_t i = 0; i < calls.size(); ++i) {
          // Each thread walks the calls from its own starting point, so that
          // different layers and shapes overlap in time.
          size_t index = (i + size_t(t) * 3 + size_t(round)) % calls.size();
          const Call &call = calls[index];
          const Layer &layer = layers[call.layer];
          y.assign(call.expectedY.size(), {});
          for (size_t p = 0; p < y.size(); ++p)
            y[p].assign(call.expectedY[p].size(), NAN);
          routing.assign(call.expectedRouting.size(), NAN);
          bool wantRouting = (round + t + int(i)) % 2 == 0;
          if (run(model.get(), layer, call, y,
                  wantRouting ? routing.data() : nullptr) != ATMOE_RT_OK) {
            ++failures;
            std::lock_guard<std::mutex> lock(reportMutex);
            std::fprintf(stderr, "thread %d: call %zu failed: %s\n", t, index,
                         atmoe_rt_last_error());
            continue;
          }
          bool same = true;
          for (size_t p = 0; p < y.size(); ++p)
            same &= sameBits(y[p], call.expectedY[p]);
          if (wantRouting)
            same &= sameBits(routing, call.expectedRouting);
          if (!same) {
            ++mismatches;
            std::lock_guard<std::mutex> lock(reportMutex);
            std::fprintf(stderr,
                         "thread %d: call %zu (layer %zu, T = %lld) differs "
                         "from its single-threaded result\n",
                         t, index, call.layer, (long long)call.tokens);
          }
          ++completed;
        }
      }
    });
  }
  go = true;
  for (std::thread &worker : workers)
    worker.join();

  std::printf("atmoe-stress-forward: %d threads, %ld calls on %zu layers (%zu "
              "distinct): %ld mismatches, %ld failures\n",
              threads, completed.load() + failures.load(), numLayers,
              calls.size(), mismatches.load(), failures.load());
  return mismatches || failures ? 1 : 0;
}
