//===- BlasBench.cpp - OpenBLAS base linear and LoRA-MoE layer --*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe-blas-bench --package DIR --tokens T --x X.bin [--h H.bin]
//                  --d D [--granularity token|sequence] [--segments T1,T2]
//                  --set NAME=L0,L1,... [--set ...] [--threads N]
//                  [--rank R] [--groups G] [--scale S] [--dump DIR]
//                  [--budget S] [--min-rounds N] [--max-rounds N]
//
// The library baselines of SPEC §6 on the same weights as the compiled model:
// reads layer L's tensors from DIR/weights.safetensors (bench/workload.py's
// package: one projection "proj", optional experts e0..e{E-1} in G
// consecutive groups, grouped-softmax router with biases) into memory the
// program owns, and times, round-robin over the copies as LayerBench does:
//
//  - a layer without experts: the base linear y = x W^T, one cblas_sgemv at
//    T = 1, one cblas_sgemm otherwise;
//  - a layer with experts: the concatenated-LoRA layer. At bind time the
//    adapters are stacked (A_cat = [A_0; ..; A_{E-1}], E r x d; B_cat =
//    [B_0 .. B_{E-1}], d x E r) and so are the router weights
//    ([W_group; W_expert]). Per call: y = x W^T (sgemm), logits = h R^T + b
//    (sgemm), grouped softmax, z = x A_cat^T (sgemm), z[:, e r .. e r + r] *=
//    scale * w_e, y += z B_cat^T (sgemm, beta = 1). At T = 1 every product
//    is a cblas_sgemv (OpenBLAS's sgemm with one row is several times
//    slower).
//
// `--threads N` calls openblas_set_num_threads(N). Output lines as in
// BenchCommon.h; --dump writes DIR/NAME.bin (y of the set's first layer).
//
//===----------------------------------------------------------------------===//

#include "BenchCommon.h"

#include <cblas.h>
#include <cmath>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace bench;

namespace {

/// A read-only view of a safetensors file: just enough JSON to find a
/// tensor's dtype, shape and data offsets in the header.
class SafeTensors {
public:
  explicit SafeTensors(const std::string &path) : path(path) {
    int fd = open(path.c_str(), O_RDONLY);
    struct stat info;
    if (fd < 0 || fstat(fd, &info) != 0)
      fail(path + ": cannot open");
    size = info.st_size;
    void *map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED || size < 8)
      fail(path + ": cannot map");
    base = static_cast<const char *>(map);
    uint64_t length;
    std::memcpy(&length, base, 8);
    if (8 + length > size)
      fail(path + ": bad header");
    header.assign(base + 8, length);
    data = base + 8 + length;
  }
  ~SafeTensors() { munmap(const_cast<char *>(base), size); }

  bool contains(const std::string &name) const {
    return header.find("\"" + name + "\"") != std::string::npos;
  }

  /// Copies the F32 tensor `name` (of `count` elements) to `out`.
  void read(const std::string &name, size_t count, float *out) const {
    size_t at = header.find("\"" + name + "\"");
    if (at == std::string::npos)
      fail(path + ": no tensor '" + name + "'");
    size_t end = header.find('}', at);
    std::string entry = header.substr(at, end - at);
    if (entry.find("\"F32\"") == std::string::npos)
      fail(path + ": tensor '" + name + "' is not F32");
    size_t offsets = entry.find("\"data_offsets\"");
    if (offsets == std::string::npos)
      fail(path + ": tensor '" + name + "' has no data_offsets");
    const char *cursor = entry.c_str() + entry.find('[', offsets) + 1;
    char *next;
    uint64_t begin = std::strtoull(cursor, &next, 10);
    uint64_t stop = std::strtoull(next + 1, nullptr, 10);
    if (stop - begin != count * sizeof(float) || data + stop > base + size)
      fail(path + ": tensor '" + name + "' has an unexpected size");
    std::memcpy(out, data + begin, count * sizeof(float));
  }

private:
  std::string path;
  const char *base = nullptr;
  const char *data = nullptr;
  size_t size = 0;
  std::string header;
};

struct Layer {
  bool lora = false;
  AlignedBuffer w, aCat, bCat, router, bias;
};

} // namespace

int main(int argc, char **argv) {
  Args args(argc, argv);
  openblas_set_num_threads(static_cast<int>(args.number("threads", 1)));
  SafeTensors file(args.get("package") + "/weights.safetensors");
  int64_t tokens = std::atoll(args.get("tokens").c_str());
  int64_t d = static_cast<int64_t>(args.number("d", 0));
  int64_t rank = static_cast<int64_t>(args.number("rank", 16));
  int64_t groups = static_cast<int64_t>(args.number("groups", 4));
  float scale = static_cast<float>(args.number("scale", 2.0));
  if (d <= 0)
    fail("missing --d");
  std::vector<int64_t> segments = parseList(args.get("segments", ""));

  std::vector<LayerSet> sets = parseSets(args);

  // Load and stack the weights of every layer (copy).
  int64_t experts = 0;
  std::vector<std::vector<Layer>> layers(sets.size());
  for (size_t s = 0; s < sets.size(); ++s) {
    layers[s] = std::vector<Layer>(sets[s].layers.size());
    for (size_t k = 0; k < layers[s].size(); ++k) {
      Layer &layer = layers[s][k];
      std::string prefix = "layers." + std::to_string(sets[s].layers[k]) + ".";
      layer.w.resize(d * d);
      file.read(prefix + "proj.weight", d * d, layer.w.ptr);
      int64_t count = 0;
      while (file.contains(prefix + "proj.lora_A.e" + std::to_string(count) +
                           ".weight"))
        ++count;
      if (!count)
        continue;
      if (experts && count != experts)
        fail("every LoRA layer must have the same experts");
      experts = count;
      layer.lora = true;
      int64_t stacked = experts * rank;
      layer.aCat.resize(stacked * d);
      layer.bCat.resize(d * stacked);
      std::vector<float> b(d * rank);
      for (int64_t e = 0; e < experts; ++e) {
        std::string suffix = ".e" + std::to_string(e) + ".weight";
        file.read(prefix + "proj.lora_A" + suffix, rank * d,
                  layer.aCat.ptr + e * rank * d);
        file.read(prefix + "proj.lora_B" + suffix, d * rank, b.data());
        for (int64_t o = 0; o < d; ++o)
          std::memcpy(layer.bCat.ptr + o * stacked + e * rank,
                      b.data() + o * rank, rank * sizeof(float));
      }
      layer.router.resize((groups + experts) * d);
      layer.bias.resize(groups + experts);
      file.read(prefix + "router.group.weight", groups * d, layer.router.ptr);
      file.read(prefix + "router.expert.weight", experts * d,
                layer.router.ptr + groups * d);
      file.read(prefix + "router.group.bias", groups, layer.bias.ptr);
      file.read(prefix + "router.expert.bias", experts,
                layer.bias.ptr + groups);
    }
  }

  bool sequence = args.get("granularity", "token") == "sequence";
  if (sequence && segments.empty())
    segments.push_back(tokens);
  int64_t hRows = sequence ? static_cast<int64_t>(segments.size()) : tokens;
  std::vector<float> x = readFloats(args.get("x"), tokens * d);
  std::vector<float> hData;
  if (args.has("h"))
    hData = readFloats(args.get("h"), hRows * d);
  else if (sequence)
    fail("--h is needed with sequence granularity");
  const float *h = args.has("h") ? hData.data() : x.data();

  int64_t stacked = experts * rank, logitsWidth = groups + experts;
  AlignedBuffer y(tokens * d), z(tokens * std::max<int64_t>(stacked, 1)),
      logits(hRows * std::max<int64_t>(logitsWidth, 1)),
      weights(hRows * std::max<int64_t>(experts, 1));
  int64_t perGroup = experts ? experts / groups : 0;

  auto route = [&](const Layer &layer) {
    // logits = h R^T + b, then grouped softmax into `weights`.
    if (hRows == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, logitsWidth, d, 1.0f,
                  layer.router.ptr, d, h, 1, 0.0f, logits.ptr, 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, hRows, logitsWidth,
                  d, 1.0f, h, d, layer.router.ptr, d, 0.0f, logits.ptr,
                  logitsWidth);
    for (int64_t row = 0; row < hRows; ++row) {
      float *l = logits.ptr + row * logitsWidth;
      for (int64_t j = 0; j < logitsWidth; ++j)
        l[j] += layer.bias.ptr[j];
      float top = l[0], sum = 0;
      for (int64_t g = 1; g < groups; ++g)
        top = std::max(top, l[g]);
      float p[64];
      for (int64_t g = 0; g < groups; ++g)
        sum += p[g] = std::exp(l[g] - top);
      float *w = weights.ptr + row * experts;
      for (int64_t g = 0; g < groups; ++g) {
        float *v = l + groups + g * perGroup;
        float vTop = v[0], vSum = 0;
        for (int64_t j = 1; j < perGroup; ++j)
          vTop = std::max(vTop, v[j]);
        for (int64_t j = 0; j < perGroup; ++j)
          vSum += w[g * perGroup + j] = std::exp(v[j] - vTop);
        for (int64_t j = 0; j < perGroup; ++j)
          w[g * perGroup + j] *= p[g] / sum / vSum;
      }
    }
  };

  auto call = [&](size_t s, size_t k) {
    const Layer &layer = layers[s][k];
    if (tokens == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, d, d, 1.0f, layer.w.ptr, d,
                  x.data(), 1, 0.0f, y.ptr, 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tokens, d, d, 1.0f,
                  x.data(), d, layer.w.ptr, d, 0.0f, y.ptr, d);
    if (!layer.lora)
      return;
    route(layer);
    if (tokens == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, stacked, d, 1.0f, layer.aCat.ptr,
                  d, x.data(), 1, 0.0f, z.ptr, 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tokens, stacked, d,
                  1.0f, x.data(), d, layer.aCat.ptr, d, 0.0f, z.ptr, stacked);
    // Per-token scales: token t of sequence j uses routing row j.
    int64_t t = 0;
    for (int64_t row = 0; row < hRows; ++row) {
      int64_t count = sequence ? segments[row] : 1;
      const float *w = weights.ptr + row * experts;
      for (int64_t end = t + count; t < end; ++t) {
        float *zt = z.ptr + t * stacked;
        for (int64_t e = 0; e < experts; ++e)
          for (int64_t j = 0; j < rank; ++j)
            zt[e * rank + j] *= scale * w[e];
      }
    }
    if (tokens == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, d, stacked, 1.0f, layer.bCat.ptr,
                  stacked, z.ptr, 1, 1.0f, y.ptr, 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tokens, d, stacked,
                  1.0f, z.ptr, stacked, layer.bCat.ptr, stacked, 1.0f, y.ptr,
                  d);
  };
  timeRoundRobin(sets, args, call);

  if (args.has("dump")) {
    for (size_t s = 0; s < sets.size(); ++s) {
      call(s, 0);
      writeFloats(args.get("dump") + "/" + sets[s].name + ".bin", y.ptr,
                  tokens * d);
    }
  }
  return 0;
}
