//===- ImporterInternals.h - The importer's shared state --------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The importer turns a model package into atmoe IR in steps, one file each,
// around one ImportContext (the model as parsed so far, and how to report an
// error at a JSON value):
//
//   ModelSchema.cpp   model.json: every value checked where it is read
//   Peft.cpp          PEFT adapters: adapter_config.json and tensor names
//   Resolve.cpp       per layer and projection: experts, router, rank/alpha
//   Tensors.cpp       tensors in the package's safetensors files
//   Emit.cpp          the module of docs/ModelABI.md
//   ModelImporter.cpp the entry points
//
// Every error is an MLIR diagnostic at the JSON value it is about
// (`NameLoc(json path, FileLineColLoc(file))`, the locations the emitted ops
// carry too), whose message starts with that JSON path.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_LIB_IMPORTER_IMPORTERINTERNALS_H
#define ATMOE_LIB_IMPORTER_IMPORTERINTERNALS_H

#include "JsonDocument.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"
#include "atmoe/Importer/ModelImporter.h"
#include "atmoe/Support/PythonRegex.h"

#include "atmoe_rt/support/SafeTensors.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "llvm/ADT/StringMap.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlir::atmoe::importer {

//===----------------------------------------------------------------------===//
// The model as parsed
//===----------------------------------------------------------------------===//

/// A safetensors file of the package, with its path relative to the package
/// (what `atmoe.file` records) and as displayed in errors.
struct WeightFile {
  std::string relative;
  std::string display;
  std::unique_ptr<atmoe_rt::SafeTensorsFile> file;
};

/// A rank_pattern or alpha_pattern entry: PEFT's key and its regex
/// `(.*\.)?(key)$`.
template <typename T>
struct PeftPattern {
  std::string key;
  PythonRegex regex;
  T value;
};

/// The rank and alpha PEFT gives one module it adapts.
struct PeftRankAlpha {
  int64_t rank;
  double alpha;
};

/// An expert given as a PEFT adapter directory.
struct PeftAdapter {
  std::string dirRelative;
  std::unique_ptr<JsonDocument> config;
  int64_t rank = 0;
  double alpha = 0.0;
  bool rslora = false;
  /// lora_bias: lora_B has a bias. use_dora: DoRA adapters.
  bool loraBias = false, dora = false;
  enum class Targets { List, Regex, AllLinear } targetKind = Targets::List;
  std::vector<std::string> targetList;
  std::optional<PythonRegex> targetRegex;
  /// exclude_modules: a list of names or suffixes, or a regex.
  std::vector<std::string> excludeList;
  std::optional<PythonRegex> excludeRegex;
  /// layers_to_transform (non-empty) and the regexes that find a module's
  /// layer index (from layers_pattern, or PEFT's default).
  std::optional<std::vector<int64_t>> layers;
  std::vector<PythonRegex> layerIndexPatterns;
  /// modules_to_save: modules PEFT replaces by trained copies.
  std::vector<PythonRegex> modulesToSave;
  std::vector<PeftPattern<int64_t>> rankPattern;
  std::vector<PeftPattern<double>> alphaPattern;
  WeightFile weights;
  /// The module prefixes of the lora_A tensors in the adapter file, by
  /// (layer index, projection name).
  std::map<std::pair<int64_t, std::string>, std::vector<std::string>> modules;
  /// PEFT's decision per (layer index, projection name): nullopt where it
  /// does not adapt the module (selectPeftModule fills it).
  std::map<std::pair<int64_t, std::string>, std::optional<PeftRankAlpha>>
      selection;
};

struct ExpertDef {
  std::string name;
  std::string path;
  std::optional<int64_t> rank;
  std::optional<double> alpha;
  std::unique_ptr<PeftAdapter> peft;
  /// Index of the top-level group holding it, if any.
  std::optional<size_t> group;
};

struct GroupDef {
  std::string name;
  std::string path;
  std::vector<size_t> experts;
  std::vector<std::string> expertPaths;
};

/// A router configuration, with the JSON path that set each field so that
/// errors found per layer (top_k larger than the layer's experts) point at
/// the value to change.
struct RouterConfig {
  RouterKind kind = RouterKind::grouped_softmax;
  Granularity granularity = Granularity::token;
  double temperature = 1.0;
  std::optional<double> groupTemperature, expertTemperature;
  std::optional<int64_t> topK, topKGroups;
  std::string path;
  std::string groupTemperaturePath, expertTemperaturePath, topKPath,
      topKGroupsPath;
};

struct SharedDef {
  std::string name;
  double lambda = 1.0;
  std::string path;
  std::string namePath;
};

/// A per-layer or per-projection entry of an `experts` map.
struct Override {
  bool removed = false;
  std::optional<int64_t> rank;
  std::optional<double> alpha;
  std::string path;
};

/// A GPTQ "quantization" object after inheritance (top level, layer,
/// projection), with the JSON paths of the values errors point at.
struct QuantConfig {
  int64_t bits = 0;
  /// -1: one group for the whole row.
  int64_t groupSize = 128;
  bool sym = true;
  /// Added to stored zero points: 1 for checkpoint format "gptq", 0 for
  /// "gptq_v2".
  int64_t zeroOffset = 1;
  std::string path, bitsPath, groupSizePath;
  /// The file the paths are in (model.json when null; a Hugging Face
  /// base's config.json for its quantization_config).
  const JsonDocument *doc = nullptr;
};

struct ProjectionDef {
  std::string name;
  std::string path;
  int64_t inFeatures = 0, outFeatures = 0;
  bool bias = false;
  /// With a Hugging Face base and no "bias" key: a bias if the checkpoint
  /// has one.
  bool biasIfPresent = false;
  llvm::StringMap<Override> overrides;
  /// Set when the base weight is GPTQ-quantised.
  std::optional<QuantConfig> quant;
};

/// A group of a layer after the layer's removals.
struct LayerGroup {
  size_t group;
  std::vector<size_t> experts;
};

struct LayerDef {
  int64_t index = 0;
  std::string path;
  std::optional<int64_t> hiddenSize;
  RouterConfig router;
  /// Set when the layer has a `shared_expert` key; null there clears it.
  bool hasSharedKey = false;
  std::optional<SharedDef> sharedOverride;
  llvm::StringMap<Override> overrides;
  std::optional<QuantConfig> quant;
  std::vector<ProjectionDef> projections;

  // Resolved structure (Resolve.cpp).
  std::vector<LayerGroup> groups;
  std::vector<size_t> routed;
  std::optional<SharedDef> shared;
};

/// The base model as a Hugging Face checkpoint directory (model.json's
/// "base": {"huggingface": DIR}): config.json, and model.safetensors or the
/// shards model.safetensors.index.json names, used where they are.
struct HuggingFaceBase {
  std::string dir;  // relative to the package
  std::string path; // JSON path of "base" in model.json
  std::unique_ptr<JsonDocument> config;
  /// Projection name -> module name, "{i}" standing for the layer index.
  llvm::StringMap<std::string> modules;
  /// config.json's sizes (0 where absent).
  int64_t hidden = 0, intermediate = 0, numLayers = 0, heads = 0, kvHeads = 0,
          headDim = 0;
  /// The index's weight_map (empty for a single model.safetensors).
  llvm::StringMap<std::string> shardOf;
};

/// A tensor argument of a layer function.
struct TensorArg {
  std::string tensor; // canonical SPEC name
  std::string file;   // relative to the package
  std::string source; // name inside `file`
  SmallVector<int64_t, 2> shape;
  /// The stored dtype: weights are computed in the type they are stored in.
  atmoe_rt::DType dtype = atmoe_rt::DType::F32;
};

//===----------------------------------------------------------------------===//
// The context
//===----------------------------------------------------------------------===//

/// The state of one import and the helpers every step uses.
class ImportContext {
public:
  ImportContext(MLIRContext &context, StringRef modelJsonPath);

  //===--- locations and errors -------------------------------------------===//

  /// `NameLoc(path, FileLineColLoc(file, line, col))` of a JSON value.
  Location locOf(const JsonDocument &doc, StringRef path);
  Location locOf(const JsonNode &node) { return locOf(*node.doc, node.path); }
  Location modelLoc(StringRef path) { return locOf(*model, path); }

  /// An error at a JSON value; the message starts with its path.
  LogicalResult failAt(const JsonDocument &doc, StringRef path,
                       const Twine &message);
  LogicalResult failAt(const JsonNode &node, const Twine &message) {
    return failAt(*node.doc, node.path, message);
  }
  LogicalResult failAtModel(StringRef path, const Twine &message) {
    return failAt(*model, path, message);
  }
  /// An error at `loc` whose message names its subject itself (a file, a
  /// tensor).
  LogicalResult fail(Location loc, const Twine &message) {
    emitError(loc) << message;
    return failure();
  }

  //===--- typed JSON access ----------------------------------------------===//

  FailureOr<const llvm::json::Object *> asObject(const JsonNode &node);
  FailureOr<const llvm::json::Array *> asArray(const JsonNode &node);
  FailureOr<std::string> asString(const JsonNode &node);
  /// A non-empty string.
  FailureOr<std::string> asName(const JsonNode &node);
  /// A plain name (atmoe_rt::plainNameProblem): what names projections,
  /// experts and groups, since projection names become file names.
  FailureOr<std::string> asPlainName(const JsonNode &node, StringRef what);
  /// Fails at `node` unless `name` is plain.
  LogicalResult checkPlainName(const JsonNode &node, StringRef what,
                               StringRef name);
  FailureOr<bool> asBool(const JsonNode &node);
  FailureOr<int64_t> asInteger(const JsonNode &node, int64_t minimum,
                               StringRef expected);
  FailureOr<int64_t> asPositiveInteger(const JsonNode &node) {
    return asInteger(node, 1, "a positive integer");
  }
  FailureOr<double> asFinite(const JsonNode &node);
  FailureOr<double> asTemperature(const JsonNode &node);
  FailureOr<double> asLambda(const JsonNode &node);
  /// A package-relative path (`..` allowed: shared base weights beside
  /// several packages).
  FailureOr<std::string> asRelativePath(const JsonNode &node,
                                        StringRef expected);

  /// The member `key` of an object node, if present.
  std::optional<JsonNode> member(const JsonNode &object, StringRef key);
  FailureOr<JsonNode> required(const JsonNode &object, StringRef key,
                               StringRef why = "");
  /// The member `key`, which must be a non-empty array; `element` names
  /// what it holds for the message ("expected at least one layer, found []").
  FailureOr<JsonNode> requiredArray(const JsonNode &object, StringRef key,
                                    StringRef element);
  /// Rejects keys outside `allowed`: a misspelt key (`"temprature"`) would
  /// otherwise silently fall back to a default.
  LogicalResult checkKeys(const JsonNode &object, ArrayRef<StringRef> allowed);
  /// The members of an object node in source order, with their keys.
  std::vector<std::pair<std::string, JsonNode>> members(const JsonNode &object);

  /// Opens a safetensors file named at `node`; errors are located there.
  LogicalResult openWeightFile(const JsonNode &node, std::string relative,
                               WeightFile &file);

  //===--- the parsed model -----------------------------------------------===//

  MLIRContext &context;
  std::string modelJsonPath;
  std::string packageDir;
  std::unique_ptr<JsonDocument> model;
  std::string modelName;
  /// The package's JSON files read so far: path relative to the package,
  /// and the parsed document printed canonically (keys sorted).
  std::map<std::string, std::string> sources;

  /// Records `doc` (at `relativePath` in the package) as a source.
  void recordSource(StringRef relativePath, const JsonDocument &doc);
  std::vector<WeightFile> weightFiles;
  std::vector<ExpertDef> experts;
  llvm::StringMap<size_t> expertIndex;
  std::vector<GroupDef> groups;
  std::optional<SharedDef> topShared;
  RouterConfig topRouter;
  std::optional<QuantConfig> topQuant;
  std::vector<LayerDef> layers;
  std::optional<HuggingFaceBase> base;
};

/// `dir/relative`.
std::string joinPath(StringRef dir, StringRef relative);

/// `'text'`.
std::string quoted(StringRef text);

//===----------------------------------------------------------------------===//
// The steps
//===----------------------------------------------------------------------===//

/// ModelSchema.cpp: reads model.json (and what it names) into `ctx`,
/// resolving each layer as it is read.
LogicalResult parseModel(ImportContext &ctx);

/// Peft.cpp: reads the adapter directory named at `node` into `expert.peft`.
LogicalResult parsePeft(ImportContext &ctx, const JsonNode &node,
                        ExpertDef &expert);
/// The module name PEFT gives `projection` of layer `layer`.
std::string peftModuleName(const ImportContext &ctx, const PeftAdapter &peft,
                           int64_t layer, StringRef projection);
/// PEFT's decision for `projection` of layer `layer`: adapted or not
/// (target_modules, exclude_modules, layers_to_transform), with which rank
/// and alpha (rank_pattern, alpha_pattern, rsLoRA); cached in
/// `peft.selection`. Fails where a pattern cannot be matched or the module
/// is one PEFT would replace (modules_to_save).
FailureOr<std::optional<PeftRankAlpha>> selectPeftModule(ImportContext &ctx,
                                                         PeftAdapter &peft,
                                                         int64_t layer,
                                                         StringRef projection);
/// Fails (or warns, if `options` allow) listing the tensors of PEFT
/// adapters that no projection of the model uses.
LogicalResult checkUnusedPeftTensors(ImportContext &ctx,
                                     const ImportOptions &options);
/// The tensors of a PEFT expert for one projection: lora_A, lora_B, and
/// with lora_bias / use_dora the bias of lora_B / the magnitude vector.
struct PeftTensors {
  TensorArg loraA, loraB;
  std::optional<TensorArg> bias, magnitude;
};
LogicalResult findPeftTensors(ImportContext &ctx, const ExpertDef &expert,
                              const LayerDef &layer,
                              const ProjectionDef &projection, int64_t rank,
                              PeftTensors &tensors);

/// Resolve.cpp: the layer's groups, routed and shared experts, and the
/// router settings that depend on them.
LogicalResult resolveLayer(ImportContext &ctx, LayerDef &layer);
/// The rank and alpha of `expert` in `projection`, or nullopt when the
/// projection has no adapter for it.
std::optional<std::pair<int64_t, double>>
adapterRankAlpha(const ExpertDef &expert, const LayerDef &layer,
                 const ProjectionDef &projection);

/// The dtypes a float weight may be stored in.
inline constexpr atmoe_rt::DType kFloatDTypes[] = {
    atmoe_rt::DType::F32, atmoe_rt::DType::F16, atmoe_rt::DType::BF16};

/// Tensors.cpp: looks `name` up in the package's weight files and checks it
/// against `shape` (`shapeWhat` says what the shape is, for messages).
/// Errors are located at `userPath`, the JSON value that needs the tensor.
/// With `optional`, a missing tensor leaves `found` false instead.
LogicalResult findTensor(ImportContext &ctx, StringRef name, StringRef userPath,
                         ArrayRef<int64_t> shape, StringRef shapeWhat,
                         TensorArg &arg, bool optional = false,
                         bool *found = nullptr,
                         ArrayRef<atmoe_rt::DType> dtypes = kFloatDTypes);
/// Checks a tensor found in `file` against the shape the model implies and
/// the dtypes it may have (default: a float type).
LogicalResult checkTensor(ImportContext &ctx, Location loc,
                          const WeightFile &file,
                          const atmoe_rt::TensorInfo &info,
                          ArrayRef<int64_t> shape, StringRef shapeWhat,
                          ArrayRef<atmoe_rt::DType> dtypes = kFloatDTypes);

/// HuggingFace.cpp: reads "base" (its config.json, index and shards, which
/// join the package's weight files) into `ctx.base`.
LogicalResult parseHuggingFaceBase(ImportContext &ctx, const JsonNode &node);
/// config.json's in_features and out_features of a Llama-style projection
/// (q/k/v/o_proj, gate/up/down_proj), if `name` is one and config.json
/// gives what they need.
std::optional<std::pair<int64_t, int64_t>>
standardProjectionSizes(const HuggingFaceBase &base, StringRef name);
/// The checkpoint's name of `suffix` ("weight", "bias") of `projection` in
/// layer `layer`, or "" if the projection has no module name.
std::string baseTensorName(const HuggingFaceBase &base, int64_t layer,
                           StringRef projection, StringRef suffix);
/// The layers of a model.json without "layers": every layer config.json
/// counts, each with the Llama-style projections config.json sizes.
LogicalResult defaultLayers(ImportContext &ctx, std::vector<LayerDef> &layers);
/// The name `suffix` of `projection` has in the files: the checkpoint's with
/// a Hugging Face base that names its module, else the canonical
/// `layers.{i}.{proj}.{suffix}`.
std::string projectionTensorName(const ImportContext &ctx,
                                 const LayerDef &layer,
                                 const ProjectionDef &projection,
                                 StringRef suffix);
/// findTensor for the base `suffix` ("weight", "bias") of `projection`:
/// under its checkpoint name with a Hugging Face base (checked against the
/// index's shard), else under its canonical name.
LogicalResult findBaseTensor(ImportContext &ctx, const LayerDef &layer,
                             const ProjectionDef &projection, StringRef suffix,
                             ArrayRef<int64_t> shape, StringRef shapeWhat,
                             TensorArg &arg, bool optional = false,
                             bool *found = nullptr,
                             ArrayRef<atmoe_rt::DType> dtypes = kFloatDTypes);

/// Quantization.cpp: a "quantization" value over the `config` its level
/// inherits: null (not quantised there) or an object whose keys override.
LogicalResult parseQuantization(ImportContext &ctx, const JsonNode &node,
                                std::optional<QuantConfig> &config);

/// The tensors of a GPTQ base weight (Hugging Face's "gptq" layout).
struct QuantizedTensors {
  TensorArg qweight, scales;
  std::optional<TensorArg> zeros;
  GptqAttr attr;
};
/// Quantization.cpp: finds and checks the GPTQ tensors of `projection`
/// (qweight, scales, qzeros; a g_idx must be the plain i / group_size).
LogicalResult findQuantizedTensors(ImportContext &ctx, const LayerDef &layer,
                                   const ProjectionDef &projection,
                                   QuantizedTensors &tensors);

/// Emit.cpp: the layer's structure op and `layer<i>_forward`.
LogicalResult emitLayer(ImportContext &ctx, OpBuilder &builder,
                        LayerDef &layer);

} // namespace mlir::atmoe::importer

#endif // ATMOE_LIB_IMPORTER_IMPORTERINTERNALS_H
