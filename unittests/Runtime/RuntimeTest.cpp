//===- RuntimeTest.cpp - Tests for the atmoe runtime C API ------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Runs the C API against runtime/test/fake_model.c, a hand-written stand-in
// for a compiled model, with packages written here (so that every binding
// error can be produced precisely) and a float64 reference of the fake's
// layers written independently of the C code.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/atmoe_rt.h"

#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/APInt.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/ADT/bit.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <atomic>
#include <climits>
#include <cmath>
#include <cstring>
#include <dlfcn.h>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace llvm;

namespace {

//===----------------------------------------------------------------------===//
// The fake model's layers (see runtime/test/fake_model.c)
//===----------------------------------------------------------------------===//

struct ProjectionSpec {
  const char *name;
  int64_t dIn, dOut;
  bool bias, lora;
};

struct LayerSpec {
  int64_t index;
  std::vector<ProjectionSpec> projections;
  std::vector<std::string> experts;
  int64_t rank;
  double scale;
  int64_t dH;
  bool routerBias;
  bool perSequence;
  const char *file;
};

const std::vector<LayerSpec> &fakeLayers() {
  static const std::vector<LayerSpec> layers = {
      {0,
       {{"q_proj", 4, 3, true, true}, {"v_proj", 4, 2, false, false}},
       {"a", "b"},
       2,
       2.0,
       4,
       true,
       false,
       "weights.safetensors"},
      {3,
       {{"o_proj", 3, 4, false, true}},
       {"x", "y", "z"},
       1,
       0.5,
       5,
       false,
       true,
       "extra.safetensors"},
      {5,
       {{"down_proj", 4, 2, true, false}},
       {},
       0,
       0.0,
       0,
       false,
       false,
       "weights.safetensors"}};
  return layers;
}

/// Layer 3's base weight is stored under another name (manifest "source").
constexpr StringLiteral kRenamedTensor = "layers.3.o_proj.weight";
constexpr StringLiteral kRenamedSource = "base.layers.3.o_proj";

//===----------------------------------------------------------------------===//
// Writing packages
//===----------------------------------------------------------------------===//

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  /// The values as the runtime must see them after conversion.
  std::vector<float> values;
  /// "F32", "F16", "BF16" or anything else (stored as 4 zero bytes per
  /// element, for dtype errors).
  std::string dtype = "F32";
};

/// Rounds `value` to `semantics` the way a converter would, returning the
/// stored bits and the value read back.
std::pair<uint16_t, float> toHalfBits(float value,
                                      const fltSemantics &semantics) {
  APFloat number(value);
  bool losesInfo;
  number.convert(semantics, APFloat::rmNearestTiesToEven, &losesInfo);
  uint16_t bits = number.bitcastToAPInt().getZExtValue();
  number.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven,
                 &losesInfo);
  return {bits, number.convertToFloat()};
}

/// Writes `tensors` as a safetensors file whose data section starts
/// `misalignment` bytes past an 8-byte boundary. F16 and BF16 values are
/// rounded in place to what the file stores.
void writeSafeTensors(StringRef path, std::vector<Tensor> &tensors,
                      size_t misalignment = 0) {
  json::Object header;
  std::string data;
  for (Tensor &tensor : tensors) {
    size_t begin = data.size();
    for (float &value : tensor.values) {
      char bytes[4] = {};
      if (tensor.dtype == "F32") {
        support::endian::write32le(bytes, llvm::bit_cast<uint32_t>(value));
        data.append(bytes, 4);
      } else if (tensor.dtype == "F16" || tensor.dtype == "BF16") {
        auto [bits, stored] =
            toHalfBits(value, tensor.dtype == "F16" ? APFloat::IEEEhalf()
                                                    : APFloat::BFloat());
        support::endian::write16le(bytes, bits);
        data.append(bytes, 2);
        value = stored;
      } else {
        data.append(bytes, 4);
      }
    }
    header[tensor.name] = json::Object{
        {"dtype", tensor.dtype},
        {"shape", json::Array(tensor.shape)},
        {"data_offsets", json::Array{int64_t(begin), int64_t(data.size())}}};
  }
  std::string text;
  raw_string_ostream(text) << json::Value(std::move(header));
  while ((8 + text.size()) % 8 != misalignment)
    text += ' ';
  std::error_code ec;
  raw_fd_ostream os(path, ec);
  ASSERT_FALSE(ec) << path.str() << ": " << ec.message();
  char length[8];
  support::endian::write64le(length, text.size());
  os.write(length, 8);
  os << text << data;
}

/// Deterministic weights, multiples of 1/16 in [-2, 2).
class ValueSource {
public:
  explicit ValueSource(uint32_t seed) : state(seed) {}

  std::vector<float> next(size_t count) {
    std::vector<float> values(count);
    for (float &value : values) {
      state = state * 1664525u + 1013904223u;
      value = float(int((state >> 16) % 64) - 32) / 16.0f;
    }
    return values;
  }

private:
  uint32_t state;
};

/// A fake-model package in a fresh directory, its tensors by canonical name
/// (with the values the runtime must produce after conversion).
class Package {
public:
  enum class Damage {
    None,
    MissingTensor,
    WrongShape,
    WrongDType,
    MissingFile
  };

  explicit Package(Damage damage = Damage::None, uint32_t seed = 7) {
    std::error_code ec = sys::fs::createUniqueDirectory("atmoe-rt-test", dir);
    EXPECT_FALSE(ec) << ec.message();
    ValueSource source(seed);
    std::vector<Tensor> main, extra;
    for (const LayerSpec &layer : fakeLayers()) {
      bool isExtra = StringRef(layer.file) == "extra.safetensors";
      std::vector<Tensor> &list = isExtra ? extra : main;
      auto add = [&](std::string name, std::vector<int64_t> shape,
                     std::string dtype) {
        int64_t count = 1;
        for (int64_t dim : shape)
          count *= dim;
        list.push_back({std::move(name), std::move(shape), source.next(count),
                        std::move(dtype)});
      };
      std::string prefix = "layers." + std::to_string(layer.index) + ".";
      for (const ProjectionSpec &p : layer.projections) {
        std::string base = prefix + p.name;
        add(base + ".weight", {p.dOut, p.dIn}, isExtra ? "F16" : "F32");
        if (p.bias)
          add(base + ".bias", {p.dOut}, "F32");
        if (p.lora) {
          for (const std::string &e : layer.experts) {
            add(base + ".lora_A." + e + ".weight", {layer.rank, p.dIn},
                isExtra ? "BF16" : "F32");
            add(base + ".lora_B." + e + ".weight", {p.dOut, layer.rank},
                isExtra ? "BF16" : "F32");
          }
        }
      }
      if (!layer.experts.empty()) {
        add(prefix + "router.expert.weight",
            {int64_t(layer.experts.size()), layer.dH}, "F32");
        if (layer.routerBias)
          add(prefix + "router.expert.bias", {int64_t(layer.experts.size())},
              "F32");
      }
    }

    for (Tensor &tensor : extra)
      if (tensor.name == kRenamedTensor)
        tensor.name = kRenamedSource.str();
    // The F32 router weight first: at data offset 0 of a section that starts
    // 2 bytes past an 8-byte boundary, so it must be converted.
    std::vector<Tensor> ordered;
    for (bool f32 : {true, false})
      for (Tensor &tensor : extra)
        if ((tensor.dtype == "F32") == f32)
          ordered.push_back(tensor);
    extra = std::move(ordered);

    StringRef damaged = "layers.0.v_proj.weight";
    if (damage == Damage::MissingTensor)
      llvm::erase_if(main, [&](const Tensor &t) { return t.name == damaged; });
    for (Tensor &tensor : main) {
      if (tensor.name != damaged)
        continue;
      if (damage == Damage::WrongShape)
        tensor = {tensor.name, {3, 4}, std::vector<float>(12, 0.0f)};
      if (damage == Damage::WrongDType)
        tensor.dtype = "I32";
    }

    writeSafeTensors(path("weights.safetensors"), main);
    if (damage != Damage::MissingFile)
      writeSafeTensors(path("extra.safetensors"), extra, /*misalignment=*/2);
    for (Tensor &tensor : main)
      tensors[tensor.name] = tensor.values;
    for (Tensor &tensor : extra)
      tensors[tensor.name == kRenamedSource ? kRenamedTensor.str()
                                            : tensor.name] = tensor.values;
  }

  ~Package() { sys::fs::remove_directories(dir); }
  Package(const Package &) = delete;
  Package &operator=(const Package &) = delete;

  std::string path(StringRef file) const {
    SmallString<128> result(dir);
    sys::path::append(result, file);
    return result.str().str();
  }

  SmallString<128> dir;
  StringMap<std::vector<float>> tensors;
};

//===----------------------------------------------------------------------===//
// The float64 reference
//===----------------------------------------------------------------------===//

struct LayerResult {
  std::vector<std::vector<double>> y;
  std::vector<double> routing;
};

/// Layer `spec` on inputs x[p] (T x d_in), h (T or S rows) and segment
/// lengths (empty: one sequence).
LayerResult reference(const LayerSpec &spec,
                      const StringMap<std::vector<float>> &w, int64_t numTokens,
                      const std::vector<std::vector<float>> &x,
                      const std::vector<float> &h,
                      const std::vector<int64_t> &segments) {
  LayerResult result;
  std::string prefix = "layers." + std::to_string(spec.index) + ".";
  size_t numExperts = spec.experts.size();
  // routingOfToken[t]: the routing row that token t uses.
  std::vector<size_t> routingOfToken(numTokens);
  if (numExperts) {
    const std::vector<float> &we = w.lookup(prefix + "router.expert.weight");
    std::vector<float> be = w.lookup(prefix + "router.expert.bias");
    size_t rows = h.size() / spec.dH;
    result.routing.resize(rows * numExperts);
    for (size_t r = 0; r < rows; ++r) {
      std::vector<double> logits(numExperts);
      double max = -INFINITY, sum = 0;
      for (size_t e = 0; e < numExperts; ++e) {
        double acc = be.empty() ? 0.0 : be[e];
        for (int64_t i = 0; i < spec.dH; ++i)
          acc += double(h[r * spec.dH + i]) * we[e * spec.dH + i];
        logits[e] = acc;
        max = std::max(max, acc);
      }
      for (double &l : logits)
        sum += (l = std::exp(l - max));
      for (size_t e = 0; e < numExperts; ++e)
        result.routing[r * numExperts + e] = logits[e] / sum;
    }
    if (spec.perSequence) {
      std::vector<int64_t> lengths =
          segments.empty() ? std::vector<int64_t>{numTokens} : segments;
      size_t t = 0;
      for (size_t s = 0; s < lengths.size(); ++s)
        for (int64_t i = 0; i < lengths[s]; ++i)
          routingOfToken[t++] = s;
    } else {
      for (int64_t t = 0; t < numTokens; ++t)
        routingOfToken[t] = t;
    }
  }

  for (auto [p, proj] : enumerate(spec.projections)) {
    std::string base = prefix + proj.name;
    const std::vector<float> &weight = w.lookup(base + ".weight");
    std::vector<float> bias = w.lookup(base + ".bias");
    std::vector<double> &y = result.y.emplace_back(numTokens * proj.dOut);
    for (int64_t t = 0; t < numTokens; ++t) {
      const float *row = &x[p][t * proj.dIn];
      for (int64_t o = 0; o < proj.dOut; ++o) {
        double acc = bias.empty() ? 0.0 : bias[o];
        for (int64_t i = 0; i < proj.dIn; ++i)
          acc += double(row[i]) * weight[o * proj.dIn + i];
        y[t * proj.dOut + o] = acc;
      }
      if (!proj.lora)
        continue;
      for (auto [e, expert] : enumerate(spec.experts)) {
        const std::vector<float> &a =
            w.lookup(base + ".lora_A." + expert + ".weight");
        const std::vector<float> &b =
            w.lookup(base + ".lora_B." + expert + ".weight");
        double gate =
            spec.scale * result.routing[routingOfToken[t] * numExperts + e];
        for (int64_t k = 0; k < spec.rank; ++k) {
          double u = 0;
          for (int64_t i = 0; i < proj.dIn; ++i)
            u += double(row[i]) * a[k * proj.dIn + i];
          for (int64_t o = 0; o < proj.dOut; ++o)
            y[t * proj.dOut + o] += gate * u * b[o * spec.rank + k];
        }
      }
    }
  }
  return result;
}

/// SPEC's numerical contract, tightened: these layers are tiny.
void expectClose(const std::vector<float> &got,
                 const std::vector<double> &expected, const Twine &what) {
  ASSERT_EQ(got.size(), expected.size()) << what.str();
  double max = 0, error = 0;
  for (auto [g, e] : zip(got, expected)) {
    max = std::max(max, std::abs(e));
    error = std::max(error, std::abs(double(g) - e));
  }
  EXPECT_LE(error, 1e-5 * (1 + max)) << what.str();
}

//===----------------------------------------------------------------------===//
// Fixtures
//===----------------------------------------------------------------------===//

struct ModelDeleter {
  void operator()(atmoe_rt_model_t *model) const {
    atmoe_rt_model_close(model);
  }
};
using ModelPtr = std::unique_ptr<atmoe_rt_model_t, ModelDeleter>;

ModelPtr openModel(const char *path) {
  atmoe_rt_model_t *model = nullptr;
  atmoe_rt_status_t status = atmoe_rt_model_open(path, &model);
  EXPECT_EQ(status, ATMOE_RT_OK) << atmoe_rt_last_error();
  return ModelPtr(model);
}

/// Inputs and output buffers of one forward call of a layer.
struct Call {
  const LayerSpec *spec;
  size_t layer;
  int64_t numTokens;
  std::vector<std::vector<float>> x;
  std::vector<float> h;
  std::vector<int64_t> segments;
  std::vector<std::vector<float>> y;
  std::vector<float> routing;

  /// Random inputs; `segments` for sequence granularity.
  Call(const LayerSpec &spec, size_t layer, int64_t numTokens, uint32_t seed,
       std::vector<int64_t> segments = {})
      : spec(&spec), layer(layer), numTokens(numTokens),
        segments(std::move(segments)) {
    ValueSource source(seed);
    for (const ProjectionSpec &p : spec.projections) {
      x.push_back(source.next(numTokens * p.dIn));
      y.emplace_back(numTokens * p.dOut, NAN);
    }
    size_t rows = spec.perSequence ? std::max<size_t>(this->segments.size(), 1)
                                   : numTokens;
    h = source.next(rows * spec.dH);
    routing.assign(rows * spec.experts.size(), NAN);
  }

  atmoe_rt_status_t run(const atmoe_rt_model_t *model,
                        bool wantRouting = true) {
    std::vector<const float *> xs;
    std::vector<float *> ys;
    for (auto &buffer : x)
      xs.push_back(buffer.data());
    for (auto &buffer : y)
      ys.push_back(buffer.data());
    return atmoe_rt_layer_forward(
        model, layer, numTokens, xs.size(), xs.data(),
        h.empty() ? nullptr : h.data(), segments.size(),
        segments.empty() ? nullptr : segments.data(), ys.data(),
        wantRouting && !routing.empty() ? routing.data() : nullptr);
  }

  void expectMatchesReference(const Package &package) const {
    LayerResult expected =
        reference(*spec, package.tensors, numTokens, x, h, segments);
    for (auto [p, proj] : enumerate(spec->projections))
      expectClose(y[p], expected.y[p],
                  "layer " + Twine(spec->index) + " " + proj.name);
    if (!spec->experts.empty())
      expectClose(routing, expected.routing,
                  "layer " + Twine(spec->index) + " routing");
  }
};

class RuntimeTest : public ::testing::Test {
protected:
  void SetUp() override {
    model = openModel(ATMOE_FAKE_MODEL_PATH);
    ASSERT_TRUE(model);
    ASSERT_EQ(atmoe_rt_model_bind_weights(model.get(), package.dir.c_str()),
              ATMOE_RT_OK)
        << atmoe_rt_last_error();
  }

  size_t layerPosition(int64_t index) {
    size_t layer = ~size_t(0);
    EXPECT_EQ(atmoe_rt_model_find_layer(model.get(), index, &layer),
              ATMOE_RT_OK);
    return layer;
  }

  Package package;
  ModelPtr model;
};

//===----------------------------------------------------------------------===//
// Opening
//===----------------------------------------------------------------------===//

/// Expects atmoe_rt_model_open(path) to fail with `status` and a message that
/// contains `path` and `substring`.
void expectOpenFails(const std::string &path, atmoe_rt_status_t status,
                     StringRef substring) {
  // Any non-NULL value: open must reset it.
  int sentinel;
  atmoe_rt_model_t *model = reinterpret_cast<atmoe_rt_model_t *>(&sentinel);
  EXPECT_EQ(atmoe_rt_model_open(path.c_str(), &model), status);
  EXPECT_EQ(model, nullptr);
  StringRef message = atmoe_rt_last_error();
  EXPECT_TRUE(message.starts_with(path)) << message.str();
  EXPECT_TRUE(message.contains(substring)) << message.str();
  EXPECT_FALSE(message.contains('\n')) << message.str();
}

/// Opening a model installs the runtime's heap buffers (CallBuffers.h):
/// the model's temporaries are kept from one call to the next.
TEST(RuntimeOpenTest, InstallsCallBuffers) {
  ModelPtr model = openModel(ATMOE_FAKE_MODEL_PATH);
  ASSERT_TRUE(model);
  void *library = dlopen(ATMOE_FAKE_MODEL_PATH, RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(library, nullptr);
  auto *reuses =
      reinterpret_cast<int (*)()>(dlsym(library, "atmoe_fake_reuses_buffers"));
  ASSERT_NE(reuses, nullptr);
  EXPECT_EQ(reuses(), 2);
  dlclose(library);
}

TEST(RuntimeOpenTest, MissingFile) {
  expectOpenFails("/nonexistent/model.so", ATMOE_RT_INPUT_ERROR,
                  "cannot open compiled model: No such file or directory");
}

TEST(RuntimeOpenTest, NotASharedLibrary) {
  Package package;
  expectOpenFails(package.path("weights.safetensors"), ATMOE_RT_INPUT_ERROR,
                  "weights.safetensors: not a compiled model: not an ELF file");
}

TEST(RuntimeOpenTest, Directory) {
  Package package;
  expectOpenFails(package.dir.str().str(), ATMOE_RT_INPUT_ERROR, "not a file");
}

TEST(RuntimeOpenTest, NoManifest) {
  expectOpenFails(ATMOE_RUNTIME_PATH, ATMOE_RT_INPUT_ERROR,
                  "libatmoe_runtime.so: no .atmoe_manifest section: not a "
                  "model compiled by atmoe-compile");
}

TEST(RuntimeOpenTest, NewerManifest) {
  expectOpenFails(ATMOE_FAKE_NEWER_MANIFEST_PATH, ATMOE_RT_INPUT_ERROR,
                  "libatmoe_fake_model_newer_manifest.so: compiled by a newer "
                  "atmoe-compile (manifest atmoe-compiled/99, by atmoe-compile "
                  "9.0.0); this runtime (atmoe " +
                      std::string(atmoe_rt_version()) +
                      ") reads atmoe-compiled/3: use a runtime at least as "
                      "new as the compiler");
  EXPECT_EQ(atmoe_rt_manifest_version(), 3);
}

TEST(RuntimeOpenTest, BadManifest) {
  expectOpenFails(ATMOE_FAKE_BAD_MANIFEST_PATH, ATMOE_RT_INPUT_ERROR,
                  "manifest: layers[0].arguments[3].shape: expected [-1, 3] "
                  "(one column per expert of \"experts\"), found [-1, 2]");
}

TEST(RuntimeOpenTest, MissingEntry) {
  expectOpenFails(ATMOE_FAKE_MISSING_ENTRY_PATH, ATMOE_RT_INPUT_ERROR,
                  "layer 0: entry point 'atmoe_entry_layer0_missing' named by "
                  "the manifest is not exported");
}

/// Copies `from` to `to` through a new file renamed into place (a new
/// inode, as atmoe-compile writes models); `bytes` limits the copy.
void replaceFile(const std::string &from, const std::string &to,
                 std::optional<size_t> bytes = std::nullopt) {
  auto contents = MemoryBuffer::getFile(from, /*IsText=*/false,
                                        /*RequiresNullTerminator=*/false);
  ASSERT_TRUE(bool(contents));
  StringRef data = (*contents)->getBuffer();
  if (bytes)
    data = data.take_front(*bytes);
  std::string temp = to + ".tmp";
  {
    std::error_code error;
    raw_fd_ostream os(temp, error);
    ASSERT_FALSE(error);
    os << data;
  }
  ASSERT_FALSE(sys::fs::rename(temp, to));
}

TEST(RuntimeOpenTest, CutShort) {
  Package package;
  std::string path = package.path("model.so");
  uint64_t size = 0;
  ASSERT_FALSE(sys::fs::file_size(ATMOE_FAKE_MODEL_PATH, size));
  replaceFile(ATMOE_FAKE_MODEL_PATH, path, size_t(size * 3 / 4));
  expectOpenFails(path, ATMOE_RT_INPUT_ERROR,
                  "model.so: not a compiled model: the file is " +
                      std::to_string(size * 3 / 4) + " bytes, but its ");
}

TEST(RuntimeOpenTest, ReplacedWhileOpen) {
  Package package;
  std::string path = package.path("model.so");
  replaceFile(ATMOE_FAKE_MODEL_PATH, path);
  ModelPtr first = openModel(path.c_str());
  ASSERT_TRUE(first);
  // Reopening the same file is fine; a file replaced while a handle holds
  // the old image is refused, since the loader would return the old code.
  ModelPtr again = openModel(path.c_str());
  ASSERT_TRUE(again);
  replaceFile(ATMOE_FAKE_BAD_MANIFEST_PATH, path);
  replaceFile(ATMOE_FAKE_MODEL_PATH, path);
  expectOpenFails(path, ATMOE_RT_INPUT_ERROR,
                  "model.so: the file was replaced since an earlier handle "
                  "still open in this process loaded it");
  first.reset();
  again.reset();
  ModelPtr fresh = openModel(path.c_str());
  EXPECT_TRUE(fresh) << atmoe_rt_last_error();
}

TEST(RuntimeOpenTest, NullArguments) {
  atmoe_rt_model_t *model = nullptr;
  EXPECT_EQ(atmoe_rt_model_open(nullptr, &model), ATMOE_RT_INVALID_ARGUMENT);
  EXPECT_EQ(atmoe_rt_model_open("", &model), ATMOE_RT_INVALID_ARGUMENT);
  EXPECT_EQ(atmoe_rt_model_open(ATMOE_FAKE_MODEL_PATH, nullptr),
            ATMOE_RT_INVALID_ARGUMENT);
  atmoe_rt_model_close(nullptr);
}

TEST(RuntimeOpenTest, StatusStrings) {
  EXPECT_STREQ(atmoe_rt_status_string(ATMOE_RT_OK), "ok");
  EXPECT_STREQ(atmoe_rt_status_string(ATMOE_RT_INVALID_ARGUMENT),
               "invalid argument");
  EXPECT_STREQ(atmoe_rt_status_string(ATMOE_RT_INPUT_ERROR), "input error");
  EXPECT_STREQ(atmoe_rt_status_string(ATMOE_RT_INTERNAL_ERROR),
               "internal error");
  // Values outside the enum are defined too (UBSan checks this build).
  for (int other : {-1, 4, 42, INT_MIN, INT_MAX})
    EXPECT_STREQ(atmoe_rt_status_string(other), "unknown status");
}

//===----------------------------------------------------------------------===//
// Queries
//===----------------------------------------------------------------------===//

TEST(RuntimeQueryTest, Layers) {
  ModelPtr model = openModel(ATMOE_FAKE_MODEL_PATH);
  ASSERT_TRUE(model);
  const char *name, *target;
  ASSERT_EQ(atmoe_rt_model_get_info(model.get(), &name, &target), ATMOE_RT_OK);
  EXPECT_STREQ(name, "fake");
  EXPECT_STREQ(target, "handwritten");

  size_t numLayers;
  ASSERT_EQ(atmoe_rt_model_get_num_layers(model.get(), &numLayers),
            ATMOE_RT_OK);
  ASSERT_EQ(numLayers, fakeLayers().size());
  for (auto [position, spec] : enumerate(fakeLayers())) {
    size_t layer;
    ASSERT_EQ(atmoe_rt_model_find_layer(model.get(), spec.index, &layer),
              ATMOE_RT_OK);
    EXPECT_EQ(layer, position);
    int64_t index;
    ASSERT_EQ(atmoe_rt_layer_get_index(model.get(), layer, &index),
              ATMOE_RT_OK);
    EXPECT_EQ(index, spec.index);

    size_t numProjections;
    ASSERT_EQ(
        atmoe_rt_layer_get_num_projections(model.get(), layer, &numProjections),
        ATMOE_RT_OK);
    ASSERT_EQ(numProjections, spec.projections.size());
    for (auto [p, proj] : enumerate(spec.projections)) {
      const char *projName;
      int64_t dIn, dOut;
      ASSERT_EQ(atmoe_rt_layer_get_projection(model.get(), layer, p, &projName,
                                              &dIn, &dOut),
                ATMOE_RT_OK);
      EXPECT_STREQ(projName, proj.name);
      EXPECT_EQ(dIn, proj.dIn);
      EXPECT_EQ(dOut, proj.dOut);
      size_t found;
      ASSERT_EQ(
          atmoe_rt_layer_find_projection(model.get(), layer, proj.name, &found),
          ATMOE_RT_OK);
      EXPECT_EQ(found, p);
    }

    int64_t dH;
    size_t numExperts;
    atmoe_rt_granularity_t granularity;
    ASSERT_EQ(atmoe_rt_layer_get_router(model.get(), layer, &dH, &numExperts,
                                        &granularity),
              ATMOE_RT_OK);
    EXPECT_EQ(dH, spec.dH);
    ASSERT_EQ(numExperts, spec.experts.size());
    if (numExperts)
      EXPECT_EQ(granularity, spec.perSequence ? ATMOE_RT_GRANULARITY_SEQUENCE
                                              : ATMOE_RT_GRANULARITY_TOKEN);
    for (auto [e, expert] : enumerate(spec.experts)) {
      const char *expertName;
      ASSERT_EQ(
          atmoe_rt_layer_get_expert_name(model.get(), layer, e, &expertName),
          ATMOE_RT_OK);
      EXPECT_EQ(expertName, expert);
    }
  }
}

TEST(RuntimeQueryTest, Errors) {
  ModelPtr model = openModel(ATMOE_FAKE_MODEL_PATH);
  ASSERT_TRUE(model);
  size_t position;
  EXPECT_EQ(atmoe_rt_model_find_layer(model.get(), 4, &position),
            ATMOE_RT_INVALID_ARGUMENT);
  EXPECT_STREQ(atmoe_rt_last_error(),
               (Twine(ATMOE_FAKE_MODEL_PATH) +
                ": no layer with index 4 (the model has layers 0, 3, 5)")
                   .str()
                   .c_str());
  EXPECT_EQ(atmoe_rt_layer_find_projection(model.get(), 0, "k_proj", &position),
            ATMOE_RT_INVALID_ARGUMENT);
  EXPECT_TRUE(StringRef(atmoe_rt_last_error())
                  .ends_with("layer 0 has no projection 'k_proj' (it has "
                             "q_proj, v_proj)"));
  int64_t index;
  EXPECT_EQ(atmoe_rt_layer_get_index(model.get(), 3, &index),
            ATMOE_RT_INVALID_ARGUMENT);
  EXPECT_EQ(atmoe_rt_layer_get_index(nullptr, 0, &index),
            ATMOE_RT_INVALID_ARGUMENT);
  EXPECT_EQ(atmoe_rt_layer_get_projection(model.get(), 0, 2, nullptr, nullptr,
                                          nullptr),
            ATMOE_RT_INVALID_ARGUMENT);
  const char *name;
  EXPECT_EQ(atmoe_rt_layer_get_expert_name(model.get(), 2, 0, &name),
            ATMOE_RT_INVALID_ARGUMENT);
  size_t inPlace;
  EXPECT_EQ(atmoe_rt_model_get_weight_counts(model.get(), &inPlace, nullptr),
            ATMOE_RT_INVALID_ARGUMENT);
  EXPECT_TRUE(
      StringRef(atmoe_rt_last_error()).contains("no weights are bound"));
}

//===----------------------------------------------------------------------===//
// Binding
//===----------------------------------------------------------------------===//

TEST_F(RuntimeTest, WeightsInPlaceAndConverted) {
  size_t inPlace, converted;
  ASSERT_EQ(atmoe_rt_model_get_weight_counts(model.get(), &inPlace, &converted),
            ATMOE_RT_OK);
  // Layers 0 and 5: 9 + 2 aligned F32 tensors. Layer 3: F16, BF16 and an
  // unaligned F32 tensor, 8 in all.
  EXPECT_EQ(inPlace, 11u);
  EXPECT_EQ(converted, 8u);
}

TEST(RuntimeBindTest, ForwardBeforeBind) {
  ModelPtr model = openModel(ATMOE_FAKE_MODEL_PATH);
  ASSERT_TRUE(model);
  Call call(fakeLayers()[2], 2, 3, 1);
  EXPECT_EQ(call.run(model.get()), ATMOE_RT_INVALID_ARGUMENT);
  EXPECT_TRUE(StringRef(atmoe_rt_last_error()).contains("no weights are bound"))
      << atmoe_rt_last_error();
}

/// Expects binding a package damaged by `damage` to fail with a message that
/// starts with the file's path and contains `substring`.
void expectBindFails(Package::Damage damage, StringRef file,
                     StringRef substring) {
  Package package(damage);
  ModelPtr model = openModel(ATMOE_FAKE_MODEL_PATH);
  ASSERT_TRUE(model);
  EXPECT_EQ(atmoe_rt_model_bind_weights(model.get(), package.dir.c_str()),
            ATMOE_RT_INPUT_ERROR);
  StringRef message = atmoe_rt_last_error();
  EXPECT_TRUE(message.starts_with(package.path(file))) << message.str();
  EXPECT_TRUE(message.contains(substring)) << message.str();
}

TEST(RuntimeBindTest, MissingFile) {
  expectBindFails(Package::Damage::MissingFile, "extra.safetensors",
                  "cannot open");
}

TEST(RuntimeBindTest, MissingTensor) {
  expectBindFails(Package::Damage::MissingTensor, "weights.safetensors",
                  ": tensor 'layers.0.v_proj.weight' not found (needed by "
                  "layer 0)");
}

TEST(RuntimeBindTest, WrongShape) {
  expectBindFails(Package::Damage::WrongShape, "weights.safetensors",
                  ": tensor 'layers.0.v_proj.weight': shape [3, 4] differs "
                  "from the compiled model's [2, 4]");
}

TEST(RuntimeBindTest, WrongDType) {
  expectBindFails(Package::Damage::WrongDType, "weights.safetensors",
                  ": tensor 'layers.0.v_proj.weight': dtype I32 differs from "
                  "the compiled model's f32 (compile the model again for "
                  "this package)");
}

TEST(RuntimeBindTest, MissingDirectory) {
  ModelPtr model = openModel(ATMOE_FAKE_MODEL_PATH);
  ASSERT_TRUE(model);
  EXPECT_EQ(atmoe_rt_model_bind_weights(model.get(), "/nonexistent/package"),
            ATMOE_RT_INPUT_ERROR);
  EXPECT_STREQ(atmoe_rt_last_error(),
               "/nonexistent/package: model package directory does not exist "
               "or is not a directory");
  EXPECT_EQ(atmoe_rt_model_bind_weights(model.get(), nullptr),
            ATMOE_RT_INVALID_ARGUMENT);
}

TEST_F(RuntimeTest, FailedRebindKeepsWeights) {
  Call before(fakeLayers()[0], 0, 4, 11);
  ASSERT_EQ(before.run(model.get()), ATMOE_RT_OK);
  Package broken(Package::Damage::WrongShape);
  EXPECT_EQ(atmoe_rt_model_bind_weights(model.get(), broken.dir.c_str()),
            ATMOE_RT_INPUT_ERROR);
  Call after(fakeLayers()[0], 0, 4, 11);
  ASSERT_EQ(after.run(model.get()), ATMOE_RT_OK) << atmoe_rt_last_error();
  EXPECT_EQ(before.y, after.y);
}

TEST_F(RuntimeTest, RebindReplacesWeights) {
  Package other(Package::Damage::None, /*seed=*/99);
  ASSERT_EQ(atmoe_rt_model_bind_weights(model.get(), other.dir.c_str()),
            ATMOE_RT_OK)
      << atmoe_rt_last_error();
  Call call(fakeLayers()[0], 0, 3, 5);
  ASSERT_EQ(call.run(model.get()), ATMOE_RT_OK) << atmoe_rt_last_error();
  call.expectMatchesReference(other);
}

TEST_F(RuntimeTest, CheckWeightsSeesInPlaceChangesOnly) {
  EXPECT_EQ(atmoe_rt_model_check_weights(model.get()), ATMOE_RT_OK)
      << atmoe_rt_last_error();
  // A new file renamed over the bound one: the bound file stays mapped.
  std::string weights = package.path("weights.safetensors");
  replaceFile(weights, weights);
  EXPECT_EQ(atmoe_rt_model_check_weights(model.get()), ATMOE_RT_OK)
      << atmoe_rt_last_error();
  // Rebound, then overwritten in place (one byte appended, as a copy in
  // progress would): refused, naming the file.
  ASSERT_EQ(atmoe_rt_model_bind_weights(model.get(), package.dir.c_str()),
            ATMOE_RT_OK);
  {
    std::error_code error;
    raw_fd_ostream os(weights, error, sys::fs::OF_Append);
    ASSERT_FALSE(error);
    os << ' ';
  }
  EXPECT_EQ(atmoe_rt_model_check_weights(model.get()), ATMOE_RT_INPUT_ERROR);
  EXPECT_TRUE(StringRef(atmoe_rt_last_error())
                  .contains("weights.safetensors: changed in place since it "
                            "was bound"))
      << atmoe_rt_last_error();
  EXPECT_EQ(atmoe_rt_model_check_weights(nullptr), ATMOE_RT_INVALID_ARGUMENT);
}

//===----------------------------------------------------------------------===//
// Forward
//===----------------------------------------------------------------------===//

TEST_F(RuntimeTest, TokenGranularity) {
  for (int64_t numTokens : {1, 2, 7}) {
    Call call(fakeLayers()[0], layerPosition(0), numTokens, numTokens);
    ASSERT_EQ(call.run(model.get()), ATMOE_RT_OK) << atmoe_rt_last_error();
    call.expectMatchesReference(package);
  }
}

TEST_F(RuntimeTest, SequenceGranularity) {
  // Converted F16/BF16/unaligned-F32 weights; with and without lengths, with
  // an empty sequence.
  std::vector<std::vector<int64_t>> cases = {{}, {6}, {2, 4}, {1, 0, 5}};
  for (auto [i, segments] : enumerate(cases)) {
    Call call(fakeLayers()[1], layerPosition(3), 6, 40 + i, segments);
    ASSERT_EQ(call.run(model.get()), ATMOE_RT_OK) << atmoe_rt_last_error();
    call.expectMatchesReference(package);
  }
}

TEST_F(RuntimeTest, NoRouter) {
  Call call(fakeLayers()[2], layerPosition(5), 3, 8);
  ASSERT_TRUE(call.h.empty());
  ASSERT_EQ(call.run(model.get()), ATMOE_RT_OK) << atmoe_rt_last_error();
  call.expectMatchesReference(package);
}

TEST_F(RuntimeTest, RoutingNotRequested) {
  Call with(fakeLayers()[0], 0, 5, 3), without(fakeLayers()[0], 0, 5, 3);
  ASSERT_EQ(with.run(model.get()), ATMOE_RT_OK);
  ASSERT_EQ(without.run(model.get(), /*wantRouting=*/false), ATMOE_RT_OK);
  EXPECT_EQ(with.y, without.y);
  // The caller's routing buffer was not touched.
  EXPECT_TRUE(std::isnan(without.routing[0]));
}

TEST_F(RuntimeTest, RoutingBufferThatCannotBeAllocated) {
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
  GTEST_SKIP() << "ASan aborts on an impossible malloc instead of returning "
                  "null";
#endif
#endif
  // No routing buffer and 2^50 tokens: the runtime's own buffer (8 PiB)
  // cannot exist; that is a status, not an exception through the C API.
  // The inputs are never read, since the allocation comes first.
  Call call(fakeLayers()[0], 0, 5, 3);
  std::vector<const float *> xs;
  for (const std::vector<float> &x : call.x)
    xs.push_back(x.data());
  std::vector<float *> ys;
  for (std::vector<float> &y : call.y)
    ys.push_back(y.data());
  EXPECT_EQ(atmoe_rt_layer_forward(model.get(), 0, int64_t(1) << 50, xs.size(),
                                   xs.data(), call.h.data(), 0, nullptr,
                                   ys.data(), nullptr),
            ATMOE_RT_INTERNAL_ERROR);
  EXPECT_TRUE(StringRef(atmoe_rt_last_error())
                  .contains("cannot allocate 9007199254740992 bytes for the "
                            "routing weights"))
      << atmoe_rt_last_error();
}

TEST_F(RuntimeTest, SegmentsOnTokenGranularityAreOnlyValidated) {
  Call plain(fakeLayers()[0], 0, 4, 9), split(fakeLayers()[0], 0, 4, 9, {1, 3});
  ASSERT_EQ(plain.run(model.get()), ATMOE_RT_OK);
  ASSERT_EQ(split.run(model.get()), ATMOE_RT_OK);
  EXPECT_EQ(plain.y, split.y);
  EXPECT_EQ(plain.routing, split.routing);
}

TEST_F(RuntimeTest, ForwardValidation) {
  const LayerSpec &spec = fakeLayers()[1];
  auto expectInvalid = [&](Call &call, StringRef substring) {
    EXPECT_EQ(call.run(model.get()), ATMOE_RT_INVALID_ARGUMENT);
    StringRef message = atmoe_rt_last_error();
    EXPECT_TRUE(message.starts_with("atmoe_rt_layer_forward: layer 3: "))
        << message.str();
    EXPECT_TRUE(message.contains(substring)) << message.str();
    for (const std::vector<float> &y : call.y)
      EXPECT_TRUE(std::isnan(y[0])) << "output written despite the error";
  };

  Call zeroTokens(spec, 1, 1, 1);
  zeroTokens.numTokens = 0;
  expectInvalid(zeroTokens, "num_tokens must be at least 1, got 0");

  Call negative(spec, 1, 4, 1, {4, -1});
  expectInvalid(negative, "segment 1 has length -1");

  Call shortSum(spec, 1, 4, 1, {1, 2});
  expectInvalid(shortSum, "segment lengths sum to 3, expected num_tokens = 4");

  Call longSum(spec, 1, 4, 1, {3, 2});
  expectInvalid(longSum, "segment 1 has length 2");

  Call noH(spec, 1, 4, 1);
  noH.h.clear();
  expectInvalid(noH, "h is NULL but the layer has a router");

  Call call(spec, 1, 4, 1);
  std::vector<const float *> xs = {call.x[0].data()};
  std::vector<float *> ys = {call.y[0].data()};
  EXPECT_EQ(atmoe_rt_layer_forward(model.get(), 1, 4, 2, xs.data(),
                                   call.h.data(), 0, nullptr, ys.data(),
                                   nullptr),
            ATMOE_RT_INVALID_ARGUMENT);
  EXPECT_TRUE(StringRef(atmoe_rt_last_error())
                  .contains("expected 1 projections, got 2"));
  xs[0] = nullptr;
  EXPECT_EQ(atmoe_rt_layer_forward(model.get(), 1, 4, 1, xs.data(),
                                   call.h.data(), 0, nullptr, ys.data(),
                                   nullptr),
            ATMOE_RT_INVALID_ARGUMENT);
  EXPECT_TRUE(StringRef(atmoe_rt_last_error())
                  .contains("x or y of projection 'o_proj' is NULL"));
  xs[0] = call.x[0].data();
  EXPECT_EQ(atmoe_rt_layer_forward(model.get(), 1, 4, 1, xs.data(),
                                   call.h.data(), 2, nullptr, ys.data(),
                                   nullptr),
            ATMOE_RT_INVALID_ARGUMENT);
  EXPECT_TRUE(StringRef(atmoe_rt_last_error())
                  .contains("segments is NULL but num_segments is 2"));
  EXPECT_EQ(atmoe_rt_layer_forward(model.get(), 3, 4, 1, xs.data(),
                                   call.h.data(), 0, nullptr, ys.data(),
                                   nullptr),
            ATMOE_RT_INVALID_ARGUMENT);
}

TEST_F(RuntimeTest, LastErrorIsPerThread) {
  size_t layer;
  ASSERT_EQ(atmoe_rt_model_find_layer(model.get(), 42, &layer),
            ATMOE_RT_INVALID_ARGUMENT);
  std::string mine = atmoe_rt_last_error();
  std::string theirs;
  std::thread([&] {
    theirs = atmoe_rt_last_error();
    size_t unused;
    atmoe_rt_model_find_layer(model.get(), 43, &unused);
  }).join();
  EXPECT_EQ(theirs, "");
  EXPECT_EQ(atmoe_rt_last_error(), mine);
  // Success leaves the message alone.
  ASSERT_EQ(atmoe_rt_model_find_layer(model.get(), 0, &layer), ATMOE_RT_OK);
  EXPECT_EQ(atmoe_rt_last_error(), mine);
}

/// Threads running layers 0 and 3 on one bound model, each on its own inputs,
/// must reproduce the single-threaded results bit for bit: forward shares no
/// mutable state.
TEST_F(RuntimeTest, ConcurrentForward) {
  constexpr int kThreads = 8, kIterations = 200, kCallsPerThread = 4;
  std::vector<std::vector<Call>> calls(kThreads);
  std::vector<std::vector<Call>> expected(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int c = 0; c < kCallsPerThread; ++c) {
      uint32_t seed = 1000 + t * kCallsPerThread + c;
      bool sequence = (t + c) % 2;
      std::vector<int64_t> segments;
      if (sequence)
        segments = {c + 1, 5 - c};
      for (auto *list : {&calls[t], &expected[t]})
        list->emplace_back(fakeLayers()[sequence ? 1 : 0], sequence ? 1 : 0,
                           sequence ? 6 : 3 + c, seed, segments);
      ASSERT_EQ(expected[t].back().run(model.get()), ATMOE_RT_OK);
    }
  }

  std::atomic<int> failures{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load())
        std::this_thread::yield();
      for (int i = 0; i < kIterations; ++i) {
        for (int c = 0; c < kCallsPerThread; ++c) {
          Call &call = calls[t][c];
          for (auto &y : call.y)
            std::fill(y.begin(), y.end(), NAN);
          std::fill(call.routing.begin(), call.routing.end(), NAN);
          // Half of the calls use the runtime's scratch routing buffer.
          bool wantRouting = (i + c) % 2 == 0;
          if (call.run(model.get(), wantRouting) != ATMOE_RT_OK ||
              call.y != expected[t][c].y ||
              (wantRouting && call.routing != expected[t][c].routing))
            ++failures;
        }
      }
    });
  }
  go = true;
  for (std::thread &thread : threads)
    thread.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t)
    for (const Call &call : expected[t])
      call.expectMatchesReference(package);
}

} // namespace
