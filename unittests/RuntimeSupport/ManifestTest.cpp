//===- ManifestTest.cpp - The manifest's reader and writer -----*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Every validation rule of runtime/support/Manifest.cpp, one manifest per rule:
// compiled models with broken manifests would need one shared library each.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/Manifest.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include "gtest/gtest.h"

#include <string>

using namespace llvm;
using namespace atmoe_rt;

namespace {

/// A valid layer whose parts can be replaced one at a time.
struct LayerText {
  std::string head = R"("index": 0, "entry": "atmoe_entry_layer0_forward",
                        "granularity": "token", "experts": ["a", "b"])";
  std::string inputs = R"(
    {"role": "input", "name": "q_proj", "dtype": "f32", "shape": [-1, 8]},
    {"role": "input", "name": "h", "dtype": "f32", "shape": [-1, 6]})";
  std::string weights = R"(
    {"role": "weight", "tensor": "layers.0.q_proj.weight",
     "file": "weights.safetensors", "source": "w", "dtype": "f32",
     "shape": [4, 8]})";
  std::string outputs = R"(
    {"role": "output", "name": "q_proj", "dtype": "f32", "shape": [-1, 4]},
    {"role": "output", "name": "routing", "dtype": "f32", "shape": [-1, 2]})";

  std::string str() const {
    std::string args = inputs;
    for (const std::string *part : {&weights, &outputs})
      if (!part->empty())
        args += (args.empty() ? "" : ",") + *part;
    return "{" + head + R"(, "arguments": [)" + args + "]}";
  }
};

std::string manifestOf(const std::string &layers) {
  return R"({"format": "atmoe-compiled/3", "model": "m", "layers": [)" +
         layers + "]}";
}

/// The error of parsing `text`, or "" if it parses.
std::string errorOf(const std::string &text) {
  Result<Manifest> manifest = readManifest(text, "m.so");
  if (manifest)
    return "";
  return manifest.error();
}

TEST(ManifestTest, Valid) {
  LayerText layer;
  Result<Manifest> manifest = readManifest(manifestOf(layer.str()), "m.so");
  ASSERT_TRUE(bool(manifest)) << manifest.error();
  ASSERT_EQ(manifest->layers.size(), 1u);
  const Layer &l = manifest->layers[0];
  EXPECT_EQ(manifest->model, "m");
  EXPECT_EQ(manifest->target, "");
  EXPECT_EQ(l.entry, "atmoe_entry_layer0_forward");
  ASSERT_EQ(l.projections.size(), 1u);
  EXPECT_EQ(l.projections[0].name, "q_proj");
  EXPECT_EQ(l.projections[0].dIn, 8);
  EXPECT_EQ(l.projections[0].dOut, 4);
  EXPECT_EQ(l.routerWidth, 6);
  EXPECT_FALSE(l.takesSegments);
  EXPECT_EQ(l.firstWeight, 2u);
  EXPECT_EQ(l.numWeights, 1u);
  EXPECT_EQ(l.arguments[2].name, "layers.0.q_proj.weight");
  EXPECT_EQ(l.arguments[2].source, "w");
  EXPECT_EQ(l.arguments[2].file, "weights.safetensors");
}

TEST(ManifestTest, SequenceAndNoRouter) {
  LayerText sequence;
  sequence.head = R"("index": 2, "entry": "e2", "granularity": "sequence",
                     "experts": ["a", "b"])";
  sequence.inputs += R"(,
    {"role": "input", "name": "segments", "dtype": "i64", "shape": [-1]})";
  LayerText plain;
  plain.head = R"("index": 4, "entry": "e4")";
  plain.inputs =
      R"({"role": "input", "name": "q_proj", "dtype": "f32", "shape": [-1, 8]})";
  plain.outputs =
      R"({"role": "output", "name": "q_proj", "dtype": "f32", "shape": [-1, 4]})";
  Result<Manifest> manifest =
      readManifest(manifestOf(sequence.str() + "," + plain.str()), "m.so");
  ASSERT_TRUE(bool(manifest)) << manifest.error();
  EXPECT_TRUE(manifest->layers[0].takesSegments);
  EXPECT_EQ(manifest->layers[0].granularity, Granularity::Sequence);
  EXPECT_FALSE(manifest->layers[1].hasRouter());
  EXPECT_EQ(manifest->layers[1].granularity, Granularity::Token);
}

TEST(ManifestTest, TopLevelErrors) {
  // The rest of the message is nlohmann::json's.
  EXPECT_TRUE(StringRef(errorOf("{"))
                  .starts_with("m.so: manifest: invalid JSON: byte 2: parse "
                               "error at line 1, column 2"));
  EXPECT_EQ(errorOf("[]"),
            "m.so: manifest: (root): expected an object, found []");
  EXPECT_EQ(errorOf(R"({"format": "atmoe-model/1", "layers": []})"),
            "m.so: manifest: format: expected \"atmoe-compiled/3\", found "
            "\"atmoe-model/1\"");
  EXPECT_EQ(errorOf(R"({"format": "atmoe-compiled/3"})"),
            "m.so: manifest: (root): missing key 'layers'");
  EXPECT_EQ(errorOf(manifestOf("")),
            "m.so: manifest: layers: expected at least one layer");
  LayerText layer;
  EXPECT_EQ(errorOf(manifestOf(layer.str() + "," + layer.str())),
            "m.so: manifest: layers[1].index: duplicate layer index 0");
  EXPECT_EQ(errorOf(R"({"format": "atmoe-compiled/3", "format": "x"})"),
            "m.so: manifest: invalid JSON: duplicate key 'format' in the "
            "top-level object (a key may appear once per object)");
}

TEST(ManifestTest, Versions) {
  std::string runtime = "this runtime (atmoe " + std::string(atmoeVersion()) +
                        ") reads atmoe-compiled/3";
  EXPECT_EQ(errorOf(R"({"format": "atmoe-compiled/4",
                       "producer": "atmoe-compile 9.1.0", "layers": []})"),
            "m.so: compiled by a newer atmoe-compile (manifest "
            "atmoe-compiled/4, by atmoe-compile 9.1.0); " +
                runtime + ": use a runtime at least as new as the compiler");
  EXPECT_EQ(errorOf(R"({"format": "atmoe-compiled/1", "layers": []})"),
            "m.so: compiled by an older atmoe-compile (manifest "
            "atmoe-compiled/1); " +
                runtime + ": compile the model again");
  // Not a version: not ours at all.
  EXPECT_EQ(errorOf(R"({"format": "atmoe-compiled/3b", "layers": []})"),
            "m.so: manifest: format: expected \"atmoe-compiled/3\", found "
            "\"atmoe-compiled/3b\"");
}

/// What the compiler writes reads back the same.
TEST(ManifestTest, WriteThenRead) {
  LayerText text;
  Result<Manifest> original = readManifest(manifestOf(text.str()), "m.so");
  ASSERT_TRUE(bool(original)) << original.error();
  original->producer = "atmoe-compile test";
  original->device = Device::CUDA;
  original->layers[0].arguments[1].inHostMemory = true;
  std::string written = writeManifest(*original);
  EXPECT_NE(written.find(R"("memory":"device")"), std::string::npos);
  Result<Manifest> again = readManifest(written, "m.so");
  ASSERT_TRUE(bool(again)) << again.error();
  EXPECT_EQ(again->producer, "atmoe-compile test");
  EXPECT_EQ(again->device, Device::CUDA);
  EXPECT_EQ(writeManifest(*again), written);
  EXPECT_TRUE(again->layers[0].arguments[1].inHostMemory);
  EXPECT_FALSE(again->layers[0].arguments[0].inHostMemory);
}

/// The error for one layer whose text `edit` changed.
template <typename Edit>
std::string layerError(Edit edit) {
  LayerText layer;
  edit(layer);
  return errorOf(manifestOf(layer.str()));
}

TEST(ManifestTest, LayerErrors) {
  EXPECT_EQ(
      layerError([](LayerText &l) { l.head = R"("index": -1, "entry": "e")"; }),
      "m.so: manifest: layers[0].index: expected a non-negative "
      "integer, found -1");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.head = R"("index": 0, "entry": "", "granularity": "token",
                          "experts": ["a", "b"])";
            }),
            "m.so: manifest: layers[0].entry: expected a non-empty string");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.head = R"("index": 0, "entry": "e", "granularity": "batch",
                          "experts": ["a", "b"])";
            }),
            "m.so: manifest: layers[0].granularity: expected \"token\" or "
            "\"sequence\", found \"batch\"");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.head = R"("index": 0, "entry": "e", "granularity": "token",
                          "experts": ["a", "a"])";
            }),
            "m.so: manifest: layers[0].experts[1]: duplicate expert 'a'");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.head = R"("index": 0, "entry": "e", "experts": ["a", "b"])";
            }),
            "m.so: manifest: layers[0]: missing key 'granularity' (the layer "
            "has a router)");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.head = R"("index": 0, "entry": "e", "granularity": "sequence",
                          "experts": ["a", "b"])";
            }),
            "m.so: manifest: layers[0].arguments[2]: expected the input "
            "'segments' after 'h' (the layer has sequence granularity)");
}

TEST(ManifestTest, ArgumentErrors) {
  EXPECT_EQ(layerError([](LayerText &l) {
              l.weights = R"({"role": "state", "dtype": "f32", "shape": []})";
            }),
            "m.so: manifest: layers[0].arguments[2].role: expected "
            "\"input\", \"weight\" or \"output\", found \"state\"");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.weights = R"({"role": "weight", "file": "/etc/w.safetensors",
                              "source": "w", "dtype": "f32", "shape": [4, 8]})";
            }),
            "m.so: manifest: layers[0].arguments[2].file: expected a path "
            "relative to the model package, found \"/etc/w.safetensors\"");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.weights = R"({"role": "weight", "file": "w.safetensors",
                              "source": "w", "dtype": "f32",
                              "shape": [-1, 8]})";
            }),
            "m.so: manifest: layers[0].arguments[2].shape[0]: weight 'w' "
            "must have a static shape");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.weights = R"({"role": "weight", "file": "w.safetensors",
                              "source": "w", "dtype": "i64", "shape": [4]})";
            }),
            "m.so: manifest: layers[0].arguments[2].dtype: expected \"f32\", "
            "\"f16\" or \"bf16\" (or \"i32\") for weight 'w', found \"i64\"");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.weights = R"({"role": "weight", "file": "w.safetensors",
                              "source": "w", "dtype": "f32", "shape": [4.5]})";
            }),
            "m.so: manifest: layers[0].arguments[2].shape[0]: expected a "
            "non-negative integer or -1, found 4.5");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.inputs = R"(
    {"role": "input", "name": "q_proj", "dtype": "f32", "shape": [8]},
    {"role": "input", "name": "h", "dtype": "f32", "shape": [-1, 6]})";
            }),
            "m.so: manifest: layers[0].arguments[0].shape: expected [-1, d_in] "
            "with d_in >= 1 for the input of projection 'q_proj', found [8]");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.inputs = R"(
    {"role": "input", "name": "routing", "dtype": "f32", "shape": [-1, 8]})";
            }),
            "m.so: manifest: layers[0].arguments[0].name: 'routing' is "
            "reserved for the routing output and cannot name a projection");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.inputs = R"(
    {"role": "input", "name": "h", "dtype": "f32", "shape": [-1, 6]})";
            }),
            "m.so: manifest: layers[0].arguments: expected at least one "
            "projection input first");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.inputs += R"(,
    {"role": "input", "name": "segments", "dtype": "i64", "shape": [-1]})";
            }),
            "m.so: manifest: layers[0].arguments[2]: a 'segments' input needs "
            "\"granularity\": \"sequence\"");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.inputs += R"(,
    {"role": "input", "name": "k_proj", "dtype": "f32", "shape": [-1, 8]})";
            }),
            "m.so: manifest: layers[0].arguments[2]: unexpected input "
            "'k_proj': inputs are the projections, then 'h', then "
            "'segments'");
}

TEST(ManifestTest, OutputErrors) {
  EXPECT_EQ(layerError([](LayerText &l) {
              l.outputs = R"(
    {"role": "output", "name": "v_proj", "dtype": "f32", "shape": [-1, 4]},
    {"role": "output", "name": "routing", "dtype": "f32", "shape": [-1, 2]})";
            }),
            "m.so: manifest: layers[0].arguments[3].name: expected the output "
            "of projection 'q_proj' (outputs follow the order of the inputs), "
            "found 'v_proj'");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.outputs = R"(
    {"role": "output", "name": "q_proj", "dtype": "f32", "shape": [-1, 4]})";
            }),
            "m.so: manifest: layers[0].arguments: expected the output "
            "'routing' last (the layer has a router input 'h')");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.outputs += R"(,
    {"role": "weight", "file": "w.safetensors", "source": "w",
     "dtype": "f32", "shape": [4]})";
            }),
            "m.so: manifest: layers[0].arguments[5]: weights must come "
            "between the inputs and the outputs");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.outputs = R"(
    {"role": "output", "name": "q_proj", "dtype": "i64", "shape": [-1, 4]},
    {"role": "output", "name": "routing", "dtype": "f32", "shape": [-1, 2]})";
            }),
            "m.so: manifest: layers[0].arguments[3].dtype: expected \"f32\" "
            "for 'q_proj'");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.head = R"("index": 0, "entry": "e", "experts": ["a"])";
              l.inputs = R"(
    {"role": "input", "name": "q_proj", "dtype": "f32", "shape": [-1, 8]})";
              l.outputs = R"(
    {"role": "output", "name": "q_proj", "dtype": "f32", "shape": [-1, 4]})";
            }),
            "m.so: manifest: layers[0].experts: the layer lists experts but "
            "has no router input 'h'");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.head = R"("index": 0, "entry": "e", "granularity": "token",
                          "experts": [])";
              l.outputs = R"(
    {"role": "output", "name": "q_proj", "dtype": "f32", "shape": [-1, 4]},
    {"role": "output", "name": "routing", "dtype": "f32", "shape": [-1, 0]})";
            }),
            "m.so: manifest: layers[0].experts: expected at least one expert "
            "(the layer has a router)");
}

} // namespace

namespace {

LayerText stackedLayer(const std::string &parts, int64_t dim = 1,
                       const std::string &shape = "[4, 8]") {
  LayerText layer;
  layer.weights = R"json({"role": "weight", "tensor": "stack(b0, b1)",
                      "dtype": "f32", "shape": )json" +
                  shape + R"(, "concat_dim": )" + std::to_string(dim) +
                  R"(, "parts": )" + parts + "}";
  return layer;
}

const char *kTwoParts = R"([
  {"tensor": "b0", "file": "w.safetensors", "source": "b0", "shape": [4, 5]},
  {"tensor": "b1", "file": "w.safetensors", "source": "b1", "shape": [4, 3]}])";

} // namespace

TEST(ManifestTest, StackedWeight) {
  Result<Manifest> manifest =
      readManifest(manifestOf(stackedLayer(kTwoParts).str()), "m.so");
  ASSERT_TRUE(static_cast<bool>(manifest)) << manifest.error();
  const Argument &weight = manifest->layers[0].arguments[2];
  EXPECT_EQ(weight.name, "stack(b0, b1)");
  EXPECT_EQ(weight.concatDim, 1);
  ASSERT_EQ(weight.parts.size(), 2u);
  EXPECT_EQ(weight.parts[1].source, "b1");
  EXPECT_EQ(weight.parts[1].shape[1], 3);
}

TEST(ManifestTest, StackedWeightErrors) {
  EXPECT_NE(errorOf(manifestOf(stackedLayer(kTwoParts, 2).str()))
                .find("layers[0].arguments[2].concat_dim: expected a "
                      "dimension of the stacked shape [4, 8]"),
            std::string::npos);
  EXPECT_NE(errorOf(manifestOf(stackedLayer(kTwoParts, 1, "[4, 9]").str()))
                .find("layers[0].arguments[2].parts: parts cover 8 of "
                      "dimension 1, the stacked shape [4, 9] has 9"),
            std::string::npos);
  EXPECT_NE(errorOf(manifestOf(stackedLayer(kTwoParts, 0, "[8, 8]").str()))
                .find("layers[0].arguments[2].parts[0].shape: expected "
                      "[8, 8] outside dimension 0, found [4, 5]"),
            std::string::npos);
  EXPECT_NE(errorOf(manifestOf(stackedLayer("[]").str()))
                .find("layers[0].arguments[2].parts: expected a non-empty "
                      "array of weights"),
            std::string::npos);
}

/// A DoRA scale of d_out = 4 computed at bind time from `parts`.
LayerText doraLayer(const std::string &parts,
                    const std::string &scale = "2.0") {
  LayerText layer;
  layer.weights = R"json({"role": "weight", "tensor": "dora_scale(m)",
                      "dtype": "f32", "shape": [4], "dora_scale": )json" +
                  scale + R"(, "parts": )" + parts + "}";
  return layer;
}

const char *kDoraParts = R"([
  {"tensor": "w", "file": "w.safetensors", "source": "w", "shape": [4, 8]},
  {"tensor": "a", "file": "a.safetensors", "source": "a", "shape": [2, 8]},
  {"tensor": "b", "file": "a.safetensors", "source": "b", "shape": [4, 2]},
  {"tensor": "m", "file": "a.safetensors", "source": "m", "shape": [4]}])";

TEST(ManifestTest, DoraScaleWeight) {
  Result<Manifest> manifest =
      readManifest(manifestOf(doraLayer(kDoraParts).str()), "m.so");
  ASSERT_TRUE(static_cast<bool>(manifest)) << manifest.error();
  const Argument &weight = manifest->layers[0].arguments[2];
  EXPECT_EQ(weight.name, "dora_scale(m)");
  ASSERT_TRUE(weight.doraScale.has_value());
  EXPECT_EQ(*weight.doraScale, 2.0);
  ASSERT_EQ(weight.parts.size(), 4u);
  EXPECT_EQ(weight.parts[3].source, "m");
  // Written back, it reads the same.
  Result<Manifest> again = readManifest(writeManifest(*manifest), "again.so");
  ASSERT_TRUE(static_cast<bool>(again)) << again.error();
  EXPECT_EQ(again->layers[0].arguments[2].doraScale, weight.doraScale);
}

TEST(ManifestTest, DoraScaledRowsWeight) {
  // lora_B's rows scaled by c: B's shape.
  LayerText layer = doraLayer(kDoraParts);
  layer.weights.replace(layer.weights.find("[4]"), 3, "[4, 2]");
  Result<Manifest> manifest = readManifest(manifestOf(layer.str()), "m.so");
  ASSERT_TRUE(static_cast<bool>(manifest)) << manifest.error();
  EXPECT_EQ(manifest->layers[0].arguments[2].shape.size(), 2u);
  layer.weights.replace(layer.weights.find("[4, 2]"), 6, "[4, 3]");
  EXPECT_NE(errorOf(manifestOf(layer.str()))
                .find("of a DoRA scale (of shape [4] or [4, r])"),
            std::string::npos);
}

TEST(ManifestTest, DoraScaleWeightErrors) {
  EXPECT_NE(errorOf(manifestOf(doraLayer(kDoraParts, "\"x\"").str()))
                .find("layers[0].arguments[2].dora_scale: expected a finite "
                      "number"),
            std::string::npos);
  std::string threeParts = kDoraParts;
  threeParts = threeParts.substr(0, threeParts.rfind(",\n")) + "]";
  EXPECT_NE(errorOf(manifestOf(doraLayer(threeParts).str()))
                .find("layers[0].arguments[2].parts: expected the weight [4, "
                      "d_in], lora_A [r, d_in], lora_B [4, r] and magnitude "
                      "[4] of a DoRA scale"),
            std::string::npos);
}

TEST(ManifestTest, DeviceAndMemory) {
  // A GPU model: the device, and the argument the host code reads.
  LayerText layer;
  layer.inputs = R"(
    {"role": "input", "name": "q_proj", "dtype": "f32", "shape": [-1, 8],
     "memory": "device"},
    {"role": "input", "name": "h", "dtype": "f32", "shape": [-1, 6],
     "memory": "host"})";
  std::string text = R"({"format": "atmoe-compiled/3", "device": "cuda",
                         "compiled_for": "nvptx:sm_90", "layers": [)" +
                     layer.str() + "]}";
  Result<Manifest> manifest = readManifest(text, "m.so");
  ASSERT_TRUE(static_cast<bool>(manifest)) << manifest.error();
  EXPECT_EQ(manifest->device, Device::CUDA);
  EXPECT_FALSE(manifest->layers[0].arguments[0].inHostMemory);
  EXPECT_TRUE(manifest->layers[0].arguments[1].inHostMemory);

  // Absent means a CPU model with everything in host memory.
  Result<Manifest> cpu = readManifest(manifestOf(LayerText().str()), "m.so");
  ASSERT_TRUE(static_cast<bool>(cpu)) << cpu.error();
  EXPECT_EQ(cpu->device, Device::CPU);

  EXPECT_EQ(errorOf(R"({"format": "atmoe-compiled/3", "device": "tpu",
                        "layers": []})"),
            "m.so: manifest: device: expected \"cpu\", \"cuda\" or \"hip\", "
            "found \"tpu\"");
  EXPECT_EQ(layerError([](LayerText &l) {
              l.outputs = R"(
    {"role": "output", "name": "q_proj", "dtype": "f32", "shape": [-1, 4],
     "memory": "shared"},
    {"role": "output", "name": "routing", "dtype": "f32", "shape": [-1, 2]})";
            }),
            "m.so: manifest: layers[0].arguments[3].memory: expected \"host\" "
            "or \"device\", found \"shared\"");
}

/// A layer whose weight [2, 8] of `dtype` is read in panels of `width`
/// along `panelDim` (none: the manifest's default, 1).
LayerText panelLayer(const std::string &width, const std::string &dtype = "i32",
                     const std::string &panelDim = "") {
  LayerText layer;
  layer.weights = R"({"role": "weight", "tensor": "qweight",
                      "file": "weights.safetensors", "source": "qweight",
                      "dtype": ")" +
                  dtype + R"(", "shape": [2, 8], "panel": )" + width +
                  (panelDim.empty() ? "" : ", \"panel_dim\": " + panelDim) +
                  "}";
  return layer;
}

TEST(ManifestTest, PanelWeight) {
  Result<Manifest> manifest =
      readManifest(manifestOf(panelLayer("4").str()), "m.so");
  ASSERT_TRUE(static_cast<bool>(manifest)) << manifest.error();
  const Argument &weight = manifest->layers[0].arguments[2];
  EXPECT_EQ(weight.panelWidth, 4);
  EXPECT_EQ(weight.panelDim, 1);
  EXPECT_EQ(compiledRank(weight), 3u);
  EXPECT_EQ(weight.shape, (std::vector<int64_t>{2, 8}));
  Result<Manifest> again = readManifest(writeManifest(*manifest), "again.so");
  ASSERT_TRUE(static_cast<bool>(again)) << again.error();
  EXPECT_EQ(again->layers[0].arguments[2].panelWidth, 4);
  EXPECT_EQ(again->layers[0].arguments[2].panelDim, 1);
}

TEST(ManifestTest, FloatPanelWeightAlongRows) {
  Result<Manifest> manifest =
      readManifest(manifestOf(panelLayer("2", "bf16", "0").str()), "m.so");
  ASSERT_TRUE(static_cast<bool>(manifest)) << manifest.error();
  const Argument &weight = manifest->layers[0].arguments[2];
  EXPECT_EQ(weight.panelWidth, 2);
  EXPECT_EQ(weight.panelDim, 0);
  EXPECT_EQ(compiledRank(weight), 3u);
  Result<Manifest> again = readManifest(writeManifest(*manifest), "again.so");
  ASSERT_TRUE(static_cast<bool>(again)) << again.error();
  EXPECT_EQ(again->layers[0].arguments[2].panelDim, 0);
  EXPECT_EQ(again->layers[0].arguments[2].panelWidth, 2);
}

TEST(ManifestTest, PanelWeightErrors) {
  for (const char *width : {"3", "0", "-4"})
    EXPECT_NE(errorOf(manifestOf(panelLayer(width).str()))
                  .find("layers[0].arguments[2].panel: expected a width that "
                        "divides dimension 1 of an unsplit 2-D weight, "
                        "found " +
                        std::string(width) +
                        " for weight 'qweight' of shape [2, 8]"),
              std::string::npos)
        << width;
  EXPECT_NE(errorOf(manifestOf(panelLayer("4", "f32", "0").str()))
                .find("layers[0].arguments[2].panel: expected a width that "
                      "divides dimension 0 of an unsplit 2-D weight, found 4 "
                      "for weight 'qweight' of shape [2, 8]"),
            std::string::npos);
  EXPECT_NE(errorOf(manifestOf(panelLayer("2", "f32", "2").str()))
                .find("layers[0].arguments[2].panel_dim: expected 0 or 1, "
                      "found 2"),
            std::string::npos);
}
