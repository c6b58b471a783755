//===- LayerBench.cpp - Time compiled layers round-robin --------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe-layer-bench --model MODEL.so --package DIR --tokens T --x X.bin
//                   [--h H.bin] [--segments T1,T2] --set NAME=L0,L1,...
//                   [--set ...] [--dump DIR] [--budget S] [--min-rounds N]
//                   [--max-rounds N]
//
// Opens a model compiled by atmoe-compile through the runtime (atmoe_rt.h),
// binds the package's weights once and times atmoe_rt_layer_forward on the
// layers of each set in turn (layer package indices; the copies of one
// shape), as a multi-layer model runs them, so that a layer's weights have
// left the caches when it runs again. X.bin is T x d_in raw f32 (the input of
// every projection); H.bin the router input (T x d_h, or S x d_h with
// sequence granularity; default: X). Prints one line per set (BenchCommon.h);
// with --dump, writes DIR/NAME.bin, the first projection's output of the
// set's first layer, for bench/run_bench.py's cross-check. A model split over
// processes runs under mpiexec; rank 0 prints and dumps.
//
//===----------------------------------------------------------------------===//

#include "BenchCommon.h"

#include "atmoe_rt/atmoe_rt.h"

using namespace bench;

namespace {

void check(atmoe_rt_status_t status, const char *what) {
  if (status != ATMOE_RT_OK)
    fail(std::string(what) + ": " + atmoe_rt_status_string(status) + ": " +
         atmoe_rt_last_error());
}

struct Layer {
  size_t position;
  size_t numProjections;
  int64_t dIn, dOut, dH;
  size_t numExperts;
  atmoe_rt_granularity_t granularity;
};

/// Every layer of every set, and the extents the shared buffers need. All
/// projections read the same x, so they must share d_in.
struct Shapes {
  std::vector<std::vector<Layer>> layers;
  int64_t dIn = -1, dH = 0, dOutMax = 0;
  size_t numExpertsMax = 1, numProjectionsMax = 1;
  bool sequence = false;
};

Layer describeLayer(atmoe_rt_model_t *model, int64_t index, int64_t &dOutMax) {
  Layer layer;
  check(atmoe_rt_model_find_layer(model, index, &layer.position), "find layer");
  check(atmoe_rt_layer_get_num_projections(model, layer.position,
                                           &layer.numProjections),
        "projections");
  check(atmoe_rt_layer_get_projection(model, layer.position, 0, nullptr,
                                      &layer.dIn, &layer.dOut),
        "projection");
  for (size_t p = 1; p < layer.numProjections; ++p) {
    int64_t in, out;
    check(atmoe_rt_layer_get_projection(model, layer.position, p, nullptr, &in,
                                        &out),
          "projection");
    if (in != layer.dIn)
      fail("projections of one layer must share d_in");
    dOutMax = std::max(dOutMax, out);
  }
  check(atmoe_rt_layer_get_router(model, layer.position, &layer.dH,
                                  &layer.numExperts, &layer.granularity),
        "router");
  return layer;
}

Shapes describeSets(atmoe_rt_model_t *model,
                    const std::vector<LayerSet> &sets) {
  Shapes shapes;
  shapes.layers.resize(sets.size());
  for (size_t s = 0; s < sets.size(); ++s) {
    for (int64_t index : sets[s].layers) {
      Layer layer = describeLayer(model, index, shapes.dOutMax);
      if (shapes.dIn >= 0 && layer.dIn != shapes.dIn)
        fail("every layer must have the same d_in");
      shapes.dIn = layer.dIn;
      shapes.dH = std::max(shapes.dH, layer.dH);
      shapes.dOutMax = std::max(shapes.dOutMax, layer.dOut);
      shapes.numExpertsMax = std::max(shapes.numExpertsMax, layer.numExperts);
      shapes.numProjectionsMax =
          std::max(shapes.numProjectionsMax, layer.numProjections);
      shapes.sequence |= layer.numExperts &&
                         layer.granularity == ATMOE_RT_GRANULARITY_SEQUENCE;
      shapes.layers[s].push_back(layer);
    }
  }
  return shapes;
}

/// Opens and binds the model; returns this process's rank. A model split
/// over processes (mpiexec) has every rank make the same calls (use
/// --min-rounds = --max-rounds); rank 0 alone prints and dumps.
int openModel(const Args &args, atmoe_rt_model_t *&model) {
  check(atmoe_rt_model_open(args.get("model").c_str(), &model), "open");
  check(atmoe_rt_model_bind_weights(model, args.get("package").c_str()),
        "bind");
  int rank = 0;
  check(atmoe_rt_model_get_process(model, &rank, nullptr), "process");
  if (rank != 0 && !std::freopen("/dev/null", "w", stdout))
    fail("cannot silence rank " + std::to_string(rank));
  return rank;
}

} // namespace

int main(int argc, char **argv) {
  Args args(argc, argv);
  atmoe_rt_model_t *model = nullptr;
  int rank = openModel(args, model);
  int64_t tokens = std::atoll(args.get("tokens").c_str());
  std::vector<int64_t> segments = parseList(args.get("segments", ""));
  std::vector<LayerSet> sets = parseSets(args);
  Shapes shapes = describeSets(model, sets);
  const std::vector<std::vector<Layer>> &layers = shapes.layers;
  int64_t dIn = shapes.dIn, dH = shapes.dH, dOutMax = shapes.dOutMax;
  size_t numExpertsMax = shapes.numExpertsMax,
         numProjectionsMax = shapes.numProjectionsMax;

  std::vector<float> x = readFloats(args.get("x"), tokens * dIn);
  size_t hRows = !shapes.sequence   ? size_t(tokens)
                 : segments.empty() ? 1
                                    : segments.size();
  std::vector<float> h;
  if (args.has("h"))
    h = readFloats(args.get("h"), hRows * dH);
  else if (dH && dH != dIn)
    fail("--h is needed: d_h differs from d_in");
  const float *hPtr = args.has("h") ? h.data() : x.data();

  std::vector<const float *> xs(numProjectionsMax, x.data());
  std::vector<AlignedBuffer> outputs(numProjectionsMax);
  std::vector<float *> ys;
  for (AlignedBuffer &buffer : outputs) {
    buffer.resize(tokens * dOutMax);
    ys.push_back(buffer.ptr);
  }
  AlignedBuffer routing(std::max<size_t>(tokens, hRows) * numExpertsMax);

  auto call = [&](size_t s, size_t k) {
    const Layer &layer = layers[s][k];
    check(atmoe_rt_layer_forward(
              model, layer.position, tokens, layer.numProjections, xs.data(),
              layer.numExperts ? hPtr : nullptr, segments.size(),
              segments.empty() ? nullptr : segments.data(), ys.data(),
              routing.ptr),
          "forward");
  };
  timeRoundRobin(sets, args, call);

  if (args.has("dump")) {
    for (size_t s = 0; s < sets.size(); ++s) {
      call(s, 0);
      if (rank == 0)
        writeFloats(args.get("dump") + "/" + sets[s].name + ".bin", ys[0],
                    tokens * layers[s][0].dOut);
    }
  }
  atmoe_rt_model_close(model);
  return 0;
}
