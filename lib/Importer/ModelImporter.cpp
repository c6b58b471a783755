//===- ModelImporter.cpp - model package to atmoe IR ------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The importer works in three steps:
//
//   1. parse model.json (and PEFT adapter_config.json files) into plain
//      structs, checking every value where it is read;
//   2. resolve each layer: its expert set, groups, shared expert, router and,
//      per projection, the adapters with their ranks and alphas; look every
//      tensor up in the package and check its dtype and shape;
//   3. emit the module of docs/ModelABI.md and run the verifier.
//
// Errors are collected as the first message only: a package with several
// problems is reported one problem at a time, each as one line that names the
// file (with line:column for JSON), the JSON path or tensor, and what was
// expected versus found.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Importer/ModelImporter.h"

#include "JsonDocument.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.h"
#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"
#include "atmoe/Support/SafeTensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

using namespace mlir;
using namespace mlir::atmoe;
using ::atmoe::DType;
using ::atmoe::SafeTensorsFile;
using ::atmoe::TensorInfo;
using namespace mlir::atmoe::importer;

static constexpr llvm::StringLiteral kFormatId = "atmoe-model/1";

static std::string formatShape(llvm::ArrayRef<int64_t> shape) {
  std::string text = "[";
  llvm::raw_string_ostream os(text);
  llvm::interleaveComma(shape, os);
  os << "]";
  return text;
}

static std::string quoted(llvm::StringRef text) {
  return ("'" + text + "'").str();
}

//===----------------------------------------------------------------------===//
// The parsed model
//===----------------------------------------------------------------------===//

namespace {
/// A safetensors file of the package, with its path relative to the package
/// (what `atmoe.file` records) and as displayed in errors.
struct WeightFile {
  std::string relative;
  std::string display;
  std::unique_ptr<SafeTensorsFile> file;
};

/// An expert given as a PEFT adapter directory.
struct PeftAdapter {
  std::string dirRelative;
  std::unique_ptr<JsonDocument> config;
  int64_t rank = 0;
  double alpha = 0.0;
  bool rslora = false;
  enum class Targets { List, Regex, AllLinear } targetKind = Targets::List;
  std::vector<std::string> targetList;
  std::string targetRegex;
  std::optional<std::vector<int64_t>> layers;
  std::vector<std::pair<std::string, int64_t>> rankPattern;
  std::vector<std::pair<std::string, double>> alphaPattern;
  WeightFile weights;
  /// The module prefixes of the lora_A tensors in the adapter file, by
  /// (layer index, projection name).
  std::map<std::pair<int64_t, std::string>, std::vector<std::string>> modules;
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

struct ProjectionDef {
  std::string name;
  std::string path;
  int64_t inFeatures = 0, outFeatures = 0;
  bool bias = false;
  llvm::StringMap<Override> overrides;
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
  std::vector<ProjectionDef> projections;

  // Resolved structure.
  std::vector<LayerGroup> groups;
  std::vector<size_t> routed;
  std::optional<SharedDef> shared;
};

/// A tensor argument of a layer function.
struct TensorArg {
  std::string tensor; // canonical SPEC name
  std::string file;   // relative to the package
  std::string source; // name inside `file`
  llvm::SmallVector<int64_t, 2> shape;
};

/// One adapter of a projection, resolved.
struct AdapterPlan {
  size_t expert;
  int64_t rank;
  double alpha;
  unsigned loraA, loraB;
};

struct ProjectionPlan {
  unsigned input, weight;
  std::optional<unsigned> bias;
  std::vector<AdapterPlan> adapters;
  bool hasRouted = false;
};

//===----------------------------------------------------------------------===//
// The importer
//===----------------------------------------------------------------------===//

class Importer {
public:
  Importer(MLIRContext &context, llvm::StringRef modelJsonPath)
      : context(context), modelJsonPath(modelJsonPath.str()),
        packageDir(llvm::sys::path::parent_path(modelJsonPath).str()) {}

  llvm::Expected<OwningOpRef<ModuleOp>> run();

private:
  //===--- errors ---------------------------------------------------------===//

  LogicalResult fail(const llvm::Twine &message) {
    if (error.empty())
      error = message.str();
    return failure();
  }
  /// `file:line:col: json.path: message`.
  LogicalResult failAt(const JsonDocument &doc, llvm::StringRef path,
                       const llvm::Twine &message) {
    std::string prefix = doc.where(path) + ": ";
    if (!path.empty())
      prefix += path.str() + ": ";
    return fail(prefix + message);
  }
  LogicalResult failAt(const JsonNode &node, const llvm::Twine &message) {
    return failAt(*node.doc, node.path, message);
  }
  LogicalResult failAtModel(llvm::StringRef path, const llvm::Twine &message) {
    return failAt(*model, path, message);
  }

  //===--- typed JSON access ----------------------------------------------===//

  FailureOr<const json::Object *> asObject(const JsonNode &node) {
    if (const json::Object *object = node.value->getAsObject())
      return object;
    return failAt(node, "expected an object, found " + describe(node));
  }
  FailureOr<const json::Array *> asArray(const JsonNode &node) {
    if (const json::Array *array = node.value->getAsArray())
      return array;
    return failAt(node, "expected an array, found " + describe(node));
  }
  FailureOr<std::string> asString(const JsonNode &node) {
    std::optional<llvm::StringRef> text = node.value->getAsString();
    if (!text)
      return failAt(node, "expected a string, found " + describe(node));
    return text->str();
  }
  FailureOr<std::string> asName(const JsonNode &node) {
    FailureOr<std::string> text = asString(node);
    if (succeeded(text) && text->empty())
      return failAt(node, "expected a non-empty name, found \"\"");
    return text;
  }
  FailureOr<bool> asBool(const JsonNode &node) {
    if (std::optional<bool> flag = node.value->getAsBoolean())
      return *flag;
    return failAt(node, "expected true or false, found " + describe(node));
  }
  FailureOr<int64_t> asInteger(const JsonNode &node, int64_t minimum,
                               llvm::StringRef expected) {
    std::optional<int64_t> number = node.value->getAsInteger();
    if (!number || *number < minimum)
      return failAt(node, "expected " + expected + ", found " + describe(node));
    return *number;
  }
  FailureOr<int64_t> asPositiveInteger(const JsonNode &node) {
    return asInteger(node, 1, "a positive integer");
  }
  FailureOr<double> asFinite(const JsonNode &node) {
    std::optional<double> number = node.value->getAsNumber();
    if (!number || !std::isfinite(*number))
      return failAt(node, "expected a finite number, found " + describe(node));
    return *number;
  }
  FailureOr<double> asTemperature(const JsonNode &node) {
    FailureOr<double> tau = asFinite(node);
    if (succeeded(tau) && !(*tau > 0.0))
      return failAt(node,
                    "expected a temperature > 0, found " + describe(node));
    return tau;
  }
  FailureOr<double> asLambda(const JsonNode &node) {
    FailureOr<double> lambda = asFinite(node);
    if (succeeded(lambda) && !(*lambda >= 0.0 && *lambda <= 1.0))
      return failAt(node, "expected lambda in [0, 1], found " + describe(node));
    return lambda;
  }

  /// The member `key` of an object node, if present.
  std::optional<JsonNode> member(const JsonNode &object, llvm::StringRef key) {
    const json::Value *value = object.value->getAsObject()->get(key);
    if (!value)
      return std::nullopt;
    return object.child(key, *value);
  }
  FailureOr<JsonNode> required(const JsonNode &object, llvm::StringRef key,
                               llvm::StringRef why = "") {
    if (std::optional<JsonNode> node = member(object, key))
      return *node;
    return failAt(object, "missing required key " + quoted(key) + why);
  }
  /// Rejects keys outside `allowed`: a misspelt key (`"temprature"`) would
  /// otherwise silently fall back to a default.
  LogicalResult checkKeys(const JsonNode &object,
                          llvm::ArrayRef<llvm::StringRef> allowed) {
    const json::Object &map = *object.value->getAsObject();
    for (const std::string &key : object.doc->keys(object.path, map)) {
      if (llvm::is_contained(allowed, key))
        continue;
      std::string list;
      llvm::raw_string_ostream os(list);
      llvm::interleave(allowed, os, [&](llvm::StringRef k) { os << k; }, ", ");
      return failAt(*object.doc, childPath(object.path, key),
                    "unknown key; expected one of " + list);
    }
    return success();
  }
  /// The members of an object node in source order, with their keys.
  std::vector<std::pair<std::string, JsonNode>>
  members(const JsonNode &object) {
    const json::Object &map = *object.value->getAsObject();
    std::vector<std::pair<std::string, JsonNode>> result;
    for (const std::string &key : object.doc->keys(object.path, map))
      if (const json::Value *value = map.get(key))
        result.emplace_back(key, object.child(key, *value));
    return result;
  }

  //===--- parsing
  //---------------------------------------------------------===//

  LogicalResult parseModel();
  LogicalResult openWeights(const JsonNode &root);
  LogicalResult parseExperts(const JsonNode &node);
  LogicalResult parseExpert(const JsonNode &node, ExpertDef &expert);
  LogicalResult parsePeft(const JsonNode &node, ExpertDef &expert);
  LogicalResult parseGroups(const JsonNode &node);
  LogicalResult parseRouter(const JsonNode &node, RouterConfig &config);
  FailureOr<std::optional<SharedDef>>
  parseShared(const JsonNode &node, const std::optional<SharedDef> &inherited);
  LogicalResult parseOverrides(const JsonNode &node,
                               llvm::StringMap<Override> &overrides,
                               const LayerDef *layer);
  LogicalResult parseLayer(const JsonNode &node, LayerDef &layer);
  LogicalResult parseProjection(const JsonNode &node, LayerDef &layer,
                                ProjectionDef &projection);
  LogicalResult checkUngroupedExperts();
  LogicalResult resolveLayer(LayerDef &layer);

  //===--- tensors
  //----------------------------------------------------------===//

  LogicalResult checkTensor(const WeightFile &file, const TensorInfo &info,
                            llvm::ArrayRef<int64_t> shape,
                            llvm::StringRef shapeWhat);
  /// Looks `name` up in the package's weight files. With `optional`, a
  /// missing tensor is not an error and leaves `found` false.
  LogicalResult findTensor(llvm::StringRef name, llvm::StringRef userPath,
                           llvm::ArrayRef<int64_t> shape,
                           llvm::StringRef shapeWhat, TensorArg &arg,
                           bool optional = false, bool *found = nullptr);
  LogicalResult findPeftTensors(const ExpertDef &expert, const LayerDef &layer,
                                const ProjectionDef &projection, int64_t rank,
                                TensorArg &loraA, TensorArg &loraB);

  //===--- adapters
  //---------------------------------------------------------===//

  /// The rank and alpha of `expert` in `projection`, or nullopt when the
  /// projection has no adapter for it.
  std::optional<std::pair<int64_t, double>>
  adapterRankAlpha(const ExpertDef &expert, const LayerDef &layer,
                   const ProjectionDef &projection);
  std::string peftModuleName(const PeftAdapter &peft, int64_t layer,
                             llvm::StringRef projection) const;
  bool peftTargets(const PeftAdapter &peft, int64_t layer,
                   llvm::StringRef projection) const;

  //===--- emission
  //----------------------------------------------------------===//

  Location locFor(llvm::StringRef path) {
    auto [line, col] = model->lineCol(path);
    Location fileLoc = FileLineColLoc::get(&context, modelJsonPath, line, col);
    return NameLoc::get(
        StringAttr::get(&context, path.empty() ? "model" : path), fileLoc);
  }
  LogicalResult emitLayer(OpBuilder &builder, LayerDef &layer);

  MLIRContext &context;
  std::string modelJsonPath;
  std::string packageDir;
  std::string error;

  std::unique_ptr<JsonDocument> model;
  std::string modelName;
  std::vector<WeightFile> weightFiles;
  std::vector<ExpertDef> experts;
  llvm::StringMap<size_t> expertIndex;
  std::vector<GroupDef> groups;
  std::optional<SharedDef> topShared;
  RouterConfig topRouter;
  std::vector<LayerDef> layers;
};

} // namespace

//===----------------------------------------------------------------------===//
// Parsing model.json
//===----------------------------------------------------------------------===//

/// `packageDir/relative` as displayed and opened.
static std::string joinPath(llvm::StringRef dir, llvm::StringRef relative) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, relative);
  return std::string(path);
}

/// Package files are named relative to the package so that a package can be
/// moved; `..` is allowed (shared base weights beside several packages).
static LogicalResult checkRelative(llvm::StringRef path) {
  return success(!path.empty() && !llvm::sys::path::is_absolute(path));
}

LogicalResult Importer::parseModel() {
  model = std::make_unique<JsonDocument>(modelJsonPath);
  if (failed(model->load(error)))
    return failure();
  JsonNode root{model.get(), &model->root(), ""};
  if (!root.value->getAsObject())
    return failAtModel("", "expected a JSON object at the top level, found " +
                               describe(root));

  FailureOr<JsonNode> format = required(root, "format");
  if (failed(format))
    return failure();
  FailureOr<std::string> formatId = asString(*format);
  if (failed(formatId))
    return failure();
  if (*formatId != kFormatId)
    return failAt(*format,
                  "expected \"" + kFormatId + "\", found " + describe(*format));

  // The name defaults to the package directory's name.
  if (std::optional<JsonNode> name = member(root, "name")) {
    FailureOr<std::string> text = asName(*name);
    if (failed(text))
      return failure();
    modelName = *text;
  } else {
    llvm::SmallString<256> absolute(packageDir);
    (void)llvm::sys::fs::make_absolute(absolute);
    llvm::sys::path::remove_dots(absolute, /*remove_dot_dot=*/true);
    modelName = llvm::sys::path::filename(absolute).str();
  }

  // The declared dtype is informative: each tensor's own dtype is what the
  // runtime converts from.
  if (std::optional<JsonNode> dtype = member(root, "dtype")) {
    FailureOr<std::string> text = asString(*dtype);
    if (failed(text))
      return failure();
    if (*text != "f32" && *text != "f16" && *text != "bf16")
      return failAt(*dtype, "expected \"f32\", \"f16\" or \"bf16\", found " +
                                describe(*dtype));
  }

  if (failed(openWeights(root)))
    return failure();

  if (std::optional<JsonNode> node = member(root, "experts"))
    if (failed(parseExperts(*node)))
      return failure();
  if (std::optional<JsonNode> node = member(root, "groups"))
    if (failed(parseGroups(*node)))
      return failure();
  if (std::optional<JsonNode> node = member(root, "shared_expert")) {
    FailureOr<std::optional<SharedDef>> shared =
        parseShared(*node, std::nullopt);
    if (failed(shared))
      return failure();
    topShared = *shared;
  }
  topRouter.path = "";
  if (std::optional<JsonNode> node = member(root, "router"))
    if (failed(parseRouter(*node, topRouter)))
      return failure();

  FailureOr<JsonNode> layersNode = required(root, "layers");
  if (failed(layersNode))
    return failure();
  FailureOr<const json::Array *> layerArray = asArray(*layersNode);
  if (failed(layerArray))
    return failure();
  if ((*layerArray)->empty())
    return failAt(*layersNode, "expected at least one layer, found []");
  std::map<int64_t, std::string> seenIndexes;
  for (auto [i, value] : llvm::enumerate(**layerArray)) {
    LayerDef &layer = layers.emplace_back();
    if (failed(parseLayer(layersNode->element(i, value), layer)))
      return failure();
    auto [it, inserted] = seenIndexes.try_emplace(layer.index, layer.path);
    if (!inserted)
      return failAtModel(childPath(layer.path, "index"),
                         "duplicate layer index " + llvm::Twine(layer.index) +
                             " (also " + it->second + ")");
  }
  return checkUngroupedExperts();
}

LogicalResult Importer::openWeights(const JsonNode &root) {
  FailureOr<JsonNode> node = required(root, "weights");
  if (failed(node))
    return failure();
  FailureOr<const json::Array *> array = asArray(*node);
  if (failed(array))
    return failure();
  if ((*array)->empty())
    return failAt(*node, "expected at least one .safetensors file, found []");
  llvm::StringSet<> seen;
  for (auto [i, value] : llvm::enumerate(**array)) {
    JsonNode element = node->element(i, value);
    FailureOr<std::string> relative = asName(element);
    if (failed(relative))
      return failure();
    if (failed(checkRelative(*relative)))
      return failAt(element, "expected a path relative to the package, found " +
                                 describe(element));
    if (!seen.insert(*relative).second)
      return failAt(element, "file " + quoted(*relative) + " is listed twice");
    WeightFile &file = weightFiles.emplace_back();
    file.relative = *relative;
    file.display = joinPath(packageDir, *relative);
    auto opened = SafeTensorsFile::open(file.display);
    if (!opened)
      return fail(llvm::toString(opened.takeError()));
    file.file = std::move(*opened);
  }
  return success();
}

LogicalResult Importer::parseExperts(const JsonNode &node) {
  if (failed(asObject(node)))
    return failure();
  for (const auto &[name, entry] : members(node)) {
    ExpertDef expert;
    expert.name = name;
    expert.path = entry.path;
    if (expert.name.empty())
      return failAt(entry, "expected a non-empty expert name");
    if (failed(parseExpert(entry, expert)))
      return failure();
    expertIndex[expert.name] = experts.size();
    experts.push_back(std::move(expert));
  }
  return success();
}

LogicalResult Importer::parseExpert(const JsonNode &node, ExpertDef &expert) {
  if (failed(asObject(node)) ||
      failed(checkKeys(node, {"rank", "alpha", "peft"})))
    return failure();
  if (std::optional<JsonNode> peft = member(node, "peft"))
    if (failed(parsePeft(*peft, expert)))
      return failure();
  // With a PEFT adapter, rank and alpha come from adapter_config.json unless
  // model.json overrides them.
  llvm::StringRef why = expert.peft ? "" : " (or 'peft')";
  std::optional<JsonNode> rank = member(node, "rank");
  if (!rank && !expert.peft)
    return failAt(node, "missing required key 'rank'" + why);
  if (rank) {
    FailureOr<int64_t> value = asPositiveInteger(*rank);
    if (failed(value))
      return failure();
    expert.rank = *value;
  }
  std::optional<JsonNode> alpha = member(node, "alpha");
  if (!alpha && !expert.peft)
    return failAt(node, "missing required key 'alpha'" + why);
  if (alpha) {
    FailureOr<double> value = asFinite(*alpha);
    if (failed(value))
      return failure();
    expert.alpha = *value;
  }
  return success();
}

LogicalResult Importer::parsePeft(const JsonNode &node, ExpertDef &expert) {
  FailureOr<std::string> dir = asName(node);
  if (failed(dir))
    return failure();
  if (failed(checkRelative(*dir)))
    return failAt(node, "expected a directory relative to the package, found " +
                            describe(node));
  auto peft = std::make_unique<PeftAdapter>();
  peft->dirRelative = *dir;
  std::string dirPath = joinPath(packageDir, *dir);
  peft->config =
      std::make_unique<JsonDocument>(joinPath(dirPath, "adapter_config.json"));
  if (failed(peft->config->load(error)))
    return failure();
  JsonNode root{peft->config.get(), &peft->config->root(), ""};
  if (!root.value->getAsObject())
    return failAt(root, "expected a JSON object, found " + describe(root));

  // PEFT variants whose weights would not mean what SPEC's formula says.
  if (std::optional<JsonNode> type = member(root, "peft_type")) {
    FailureOr<std::string> text = asString(*type);
    if (failed(text))
      return failure();
    if (*text != "LORA")
      return failAt(*type, "expected \"LORA\", found " + describe(*type));
  }
  for (llvm::StringRef flag : {"use_dora", "fan_in_fan_out"}) {
    std::optional<JsonNode> value = member(root, flag);
    if (!value || value->isNull())
      continue;
    FailureOr<bool> set = asBool(*value);
    if (failed(set))
      return failure();
    if (*set)
      return failAt(*value, flag == "use_dora"
                                ? "DoRA adapters are not supported; expected "
                                  "false, found true"
                                : "transposed (fan_in_fan_out) adapters are "
                                  "not supported; expected false, found true");
  }
  if (std::optional<JsonNode> bias = member(root, "bias")) {
    FailureOr<std::string> text = asString(*bias);
    if (failed(text))
      return failure();
    if (*text != "none")
      return failAt(*bias, "LoRA biases are not supported; expected \"none\", "
                           "found " +
                               describe(*bias));
  }
  if (std::optional<JsonNode> rslora = member(root, "use_rslora"))
    if (!rslora->isNull()) {
      FailureOr<bool> set = asBool(*rslora);
      if (failed(set))
        return failure();
      peft->rslora = *set;
    }

  FailureOr<JsonNode> r = required(root, "r");
  if (failed(r))
    return failure();
  FailureOr<int64_t> rank = asPositiveInteger(*r);
  if (failed(rank))
    return failure();
  peft->rank = *rank;
  FailureOr<JsonNode> loraAlpha = required(root, "lora_alpha");
  if (failed(loraAlpha))
    return failure();
  FailureOr<double> alpha = asFinite(*loraAlpha);
  if (failed(alpha))
    return failure();
  peft->alpha = *alpha;

  FailureOr<JsonNode> targets = required(root, "target_modules");
  if (failed(targets))
    return failure();
  if (std::optional<llvm::StringRef> text = targets->value->getAsString()) {
    // PEFT treats a string as a regular expression over module names, except
    // the shorthand "all-linear".
    if (*text == "all-linear") {
      peft->targetKind = PeftAdapter::Targets::AllLinear;
    } else {
      peft->targetKind = PeftAdapter::Targets::Regex;
      peft->targetRegex = ("^(" + *text + ")$").str();
      std::string regexError;
      if (!llvm::Regex(peft->targetRegex).isValid(regexError))
        return failAt(*targets, "invalid regular expression: " + regexError);
    }
  } else {
    const json::Array *list = targets->value->getAsArray();
    if (!list)
      return failAt(*targets, "expected a list of module names or a regular "
                              "expression, found " +
                                  describe(*targets));
    for (auto [i, value] : llvm::enumerate(*list)) {
      FailureOr<std::string> name = asName(targets->element(i, value));
      if (failed(name))
        return failure();
      peft->targetList.push_back(*name);
    }
  }

  if (std::optional<JsonNode> layersNode =
          member(root, "layers_to_transform")) {
    if (!layersNode->isNull()) {
      std::vector<int64_t> indexes;
      if (layersNode->value->getAsArray()) {
        for (auto [i, value] :
             llvm::enumerate(*layersNode->value->getAsArray())) {
          FailureOr<int64_t> index = asInteger(layersNode->element(i, value), 0,
                                               "a non-negative layer index");
          if (failed(index))
            return failure();
          indexes.push_back(*index);
        }
      } else {
        FailureOr<int64_t> index = asInteger(
            *layersNode, 0, "a non-negative layer index or a list of them");
        if (failed(index))
          return failure();
        indexes.push_back(*index);
      }
      peft->layers = std::move(indexes);
    }
  }

  // rank_pattern / alpha_pattern: per-module overrides keyed by a regular
  // expression matched against the end of the module name.
  for (llvm::StringRef key : {"rank_pattern", "alpha_pattern"}) {
    std::optional<JsonNode> patterns = member(root, key);
    if (!patterns || patterns->isNull())
      continue;
    if (failed(asObject(*patterns)))
      return failure();
    for (const auto &[pattern, entry] : members(*patterns)) {
      std::string regexError;
      if (!llvm::Regex("^(.*\\.)?(" + pattern + ")$").isValid(regexError))
        return failAt(entry, "invalid regular expression: " + regexError);
      if (key == "rank_pattern") {
        FailureOr<int64_t> value = asPositiveInteger(entry);
        if (failed(value))
          return failure();
        peft->rankPattern.emplace_back(pattern, *value);
      } else {
        FailureOr<double> value = asFinite(entry);
        if (failed(value))
          return failure();
        peft->alphaPattern.emplace_back(pattern, *value);
      }
    }
  }

  peft->weights.relative = joinPath(*dir, "adapter_model.safetensors");
  peft->weights.display = joinPath(dirPath, "adapter_model.safetensors");
  auto opened = SafeTensorsFile::open(peft->weights.display);
  if (!opened)
    return fail(llvm::toString(opened.takeError()));
  peft->weights.file = std::move(*opened);

  // Index the adapter's tensors by (layer, projection): PEFT names them after
  // the base model's module path, e.g.
  // base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight.
  for (const TensorInfo &info : peft->weights.file->tensors()) {
    llvm::StringRef name = info.name;
    if (!name.consume_back(".lora_A.weight"))
      continue;
    llvm::SmallVector<llvm::StringRef> parts;
    name.split(parts, '.');
    for (size_t k = 0; k + 1 < parts.size(); ++k) {
      int64_t layerIndex;
      if (parts[k] != "layers" || parts[k + 1].getAsInteger(10, layerIndex))
        continue;
      peft->modules[{layerIndex, parts.back().str()}].push_back(name.str());
      break;
    }
  }
  expert.peft = std::move(peft);
  return success();
}

LogicalResult Importer::parseGroups(const JsonNode &node) {
  FailureOr<const json::Array *> array = asArray(node);
  if (failed(array))
    return failure();
  llvm::StringMap<std::string> groupPaths;
  for (auto [g, value] : llvm::enumerate(**array)) {
    JsonNode groupNode = node.element(g, value);
    if (failed(asObject(groupNode)) ||
        failed(checkKeys(groupNode, {"name", "experts"})))
      return failure();
    GroupDef group;
    group.path = groupNode.path;
    FailureOr<JsonNode> nameNode = required(groupNode, "name");
    if (failed(nameNode))
      return failure();
    FailureOr<std::string> name = asName(*nameNode);
    if (failed(name))
      return failure();
    group.name = *name;
    auto [it, inserted] = groupPaths.try_emplace(group.name, group.path);
    if (!inserted)
      return failAt(*nameNode, "duplicate group name " + quoted(group.name) +
                                   " (also " + it->second + ")");
    FailureOr<JsonNode> membersNode = required(groupNode, "experts");
    if (failed(membersNode))
      return failure();
    FailureOr<const json::Array *> list = asArray(*membersNode);
    if (failed(list))
      return failure();
    for (auto [k, member] : llvm::enumerate(**list)) {
      JsonNode memberNode = membersNode->element(k, member);
      FailureOr<std::string> expertName = asName(memberNode);
      if (failed(expertName))
        return failure();
      auto found = expertIndex.find(*expertName);
      if (found == expertIndex.end())
        return failAt(memberNode, "unknown expert " + quoted(*expertName) +
                                      " (not in the top-level 'experts')");
      ExpertDef &expert = experts[found->second];
      if (expert.group && *expert.group == groups.size())
        return failAt(memberNode, "expert " + quoted(*expertName) +
                                      " is listed twice in group " +
                                      quoted(group.name));
      if (expert.group) {
        const GroupDef &other = groups[*expert.group];
        return failAt(memberNode, "expert " + quoted(*expertName) +
                                      " is already in group " +
                                      quoted(other.name) + " (" + other.path +
                                      "); each expert must be in exactly "
                                      "one group");
      }
      expert.group = groups.size();
      group.experts.push_back(found->second);
      group.expertPaths.push_back(memberNode.path);
    }
    groups.push_back(std::move(group));
  }
  return success();
}

LogicalResult Importer::parseRouter(const JsonNode &node,
                                    RouterConfig &config) {
  config.path = node.path;
  if (node.isNull()) {
    // null = the built-in defaults.
    config = RouterConfig();
    config.path = node.path;
    return success();
  }
  if (failed(asObject(node)) ||
      failed(checkKeys(node, {"kind", "granularity", "temperature",
                              "group_temperature", "expert_temperature",
                              "top_k", "top_k_groups"})))
    return failure();
  RouterConfig defaults;
  for (const auto &[key, entry] : members(node)) {
    bool reset = entry.isNull();
    if (key == "kind") {
      if (reset) {
        config.kind = defaults.kind;
        continue;
      }
      FailureOr<std::string> text = asString(entry);
      if (failed(text))
        return failure();
      std::optional<RouterKind> kind = symbolizeRouterKind(*text);
      if (!kind)
        return failAt(entry, "unknown router kind " + describe(entry) +
                                 "; expected grouped_softmax, softmax, "
                                 "sigmoid or cosine");
      config.kind = *kind;
    } else if (key == "granularity") {
      if (reset) {
        config.granularity = defaults.granularity;
        continue;
      }
      FailureOr<std::string> text = asString(entry);
      if (failed(text))
        return failure();
      std::optional<Granularity> granularity = symbolizeGranularity(*text);
      if (!granularity)
        return failAt(entry, "unknown granularity " + describe(entry) +
                                 "; expected token or sequence");
      config.granularity = *granularity;
    } else if (key == "temperature") {
      if (reset) {
        config.temperature = defaults.temperature;
        continue;
      }
      FailureOr<double> tau = asTemperature(entry);
      if (failed(tau))
        return failure();
      config.temperature = *tau;
    } else if (key == "group_temperature" || key == "expert_temperature") {
      bool group = key == "group_temperature";
      std::optional<double> &field =
          group ? config.groupTemperature : config.expertTemperature;
      (group ? config.groupTemperaturePath : config.expertTemperaturePath) =
          entry.path;
      field.reset();
      if (reset)
        continue;
      FailureOr<double> tau = asTemperature(entry);
      if (failed(tau))
        return failure();
      field = *tau;
    } else if (key == "top_k" || key == "top_k_groups") {
      bool forGroups = key == "top_k_groups";
      std::optional<int64_t> &field =
          forGroups ? config.topKGroups : config.topK;
      (forGroups ? config.topKGroupsPath : config.topKPath) = entry.path;
      field.reset();
      if (reset)
        continue;
      FailureOr<int64_t> k = asPositiveInteger(entry);
      if (failed(k))
        return failure();
      field = *k;
    }
  }
  return success();
}

FailureOr<std::optional<SharedDef>>
Importer::parseShared(const JsonNode &node,
                      const std::optional<SharedDef> &inherited) {
  if (node.isNull())
    return std::optional<SharedDef>();
  if (failed(asObject(node)) || failed(checkKeys(node, {"name", "lambda"})))
    return failure();
  SharedDef shared;
  if (inherited)
    shared = *inherited;
  shared.path = node.path;
  // A layer may change only lambda, inheriting the top-level expert's name.
  llvm::StringRef why =
      inherited ? "" : " (there is no top-level shared_expert to inherit from)";
  std::optional<JsonNode> name = member(node, "name");
  if (!name && !inherited)
    return failAt(node, "missing required key 'name'" + why);
  if (name) {
    FailureOr<std::string> text = asName(*name);
    if (failed(text))
      return failure();
    shared.name = *text;
    shared.namePath = name->path;
  }
  std::optional<JsonNode> lambda = member(node, "lambda");
  if (!lambda && !inherited)
    return failAt(node, "missing required key 'lambda'" + why);
  if (lambda) {
    FailureOr<double> value = asLambda(*lambda);
    if (failed(value))
      return failure();
    shared.lambda = *value;
  }

  auto found = expertIndex.find(shared.name);
  if (found == expertIndex.end())
    return failAtModel(shared.namePath,
                       "unknown expert " + quoted(shared.name) +
                           " (a shared expert must be listed in the "
                           "top-level 'experts')");
  const ExpertDef &expert = experts[found->second];
  if (expert.group)
    return failAtModel(shared.namePath,
                       "expert " + quoted(shared.name) +
                           " is the shared expert but is in group " +
                           quoted(groups[*expert.group].name) +
                           "; a shared expert must be in no group");
  for (const GroupDef &group : groups)
    if (group.name == shared.name)
      return failAtModel(shared.namePath,
                         "the shared expert " + quoted(shared.name) +
                             " has the name of a group (" + group.path +
                             "); they share the layer's symbol table");
  return std::optional<SharedDef>(shared);
}

LogicalResult Importer::parseOverrides(const JsonNode &node,
                                       llvm::StringMap<Override> &overrides,
                                       const LayerDef *layer) {
  if (failed(asObject(node)))
    return failure();
  for (const auto &[name, entry] : members(node)) {
    if (!expertIndex.count(name))
      return failAt(entry, "unknown expert " + quoted(name) +
                               " (not in the top-level 'experts')");
    Override spec;
    spec.path = entry.path;
    if (entry.isNull()) {
      spec.removed = true;
    } else {
      // A projection cannot bring back an expert its layer removed: the
      // router has no column for it.
      if (layer) {
        auto removed = layer->overrides.find(name);
        if (removed != layer->overrides.end() && removed->second.removed)
          return failAt(entry, "expert " + quoted(name) +
                                   " is removed in this layer (" +
                                   removed->second.path + ")");
      }
      if (failed(asObject(entry)) ||
          failed(checkKeys(entry, {"rank", "alpha"})))
        return failure();
      if (std::optional<JsonNode> rank = member(entry, "rank")) {
        FailureOr<int64_t> value = asPositiveInteger(*rank);
        if (failed(value))
          return failure();
        spec.rank = *value;
      }
      if (std::optional<JsonNode> alpha = member(entry, "alpha")) {
        FailureOr<double> value = asFinite(*alpha);
        if (failed(value))
          return failure();
        spec.alpha = *value;
      }
    }
    overrides[name] = spec;
  }
  return success();
}

LogicalResult Importer::parseLayer(const JsonNode &node, LayerDef &layer) {
  layer.path = node.path;
  if (failed(asObject(node)) ||
      failed(checkKeys(node, {"index", "hidden_size", "router", "experts",
                              "shared_expert", "projections"})))
    return failure();
  FailureOr<JsonNode> indexNode = required(node, "index");
  if (failed(indexNode))
    return failure();
  FailureOr<int64_t> index =
      asInteger(*indexNode, 0, "a non-negative layer index");
  if (failed(index))
    return failure();
  layer.index = *index;

  if (std::optional<JsonNode> hidden = member(node, "hidden_size")) {
    FailureOr<int64_t> size = asPositiveInteger(*hidden);
    if (failed(size))
      return failure();
    layer.hiddenSize = *size;
  }

  layer.router = topRouter;
  if (std::optional<JsonNode> router = member(node, "router"))
    if (failed(parseRouter(*router, layer.router)))
      return failure();

  if (std::optional<JsonNode> overrides = member(node, "experts"))
    if (failed(parseOverrides(*overrides, layer.overrides, nullptr)))
      return failure();

  if (std::optional<JsonNode> shared = member(node, "shared_expert")) {
    FailureOr<std::optional<SharedDef>> parsed =
        parseShared(*shared, topShared);
    if (failed(parsed))
      return failure();
    layer.hasSharedKey = true;
    layer.sharedOverride = *parsed;
  }

  FailureOr<JsonNode> projections = required(node, "projections");
  if (failed(projections))
    return failure();
  FailureOr<const json::Array *> array = asArray(*projections);
  if (failed(array))
    return failure();
  if ((*array)->empty())
    return failAt(*projections, "expected at least one projection, found []");
  llvm::StringMap<std::string> seen;
  for (auto [j, value] : llvm::enumerate(**array)) {
    ProjectionDef &projection = layer.projections.emplace_back();
    if (failed(
            parseProjection(projections->element(j, value), layer, projection)))
      return failure();
    auto [it, inserted] = seen.try_emplace(projection.name, projection.path);
    if (!inserted)
      return failAtModel(childPath(projection.path, "name"),
                         "duplicate projection name " +
                             quoted(projection.name) + " (also " + it->second +
                             ")");
  }
  return resolveLayer(layer);
}

LogicalResult Importer::parseProjection(const JsonNode &node, LayerDef &layer,
                                        ProjectionDef &projection) {
  projection.path = node.path;
  if (failed(asObject(node)) ||
      failed(checkKeys(
          node, {"name", "in_features", "out_features", "bias", "experts"})))
    return failure();
  FailureOr<JsonNode> nameNode = required(node, "name");
  if (failed(nameNode))
    return failure();
  FailureOr<std::string> name = asName(*nameNode);
  if (failed(name))
    return failure();
  // These name the router's input and output in the function ABI.
  if (*name == "h" || *name == "segments" || *name == "routing")
    return failAt(*nameNode, "projection name " + quoted(*name) +
                                 " is reserved for the router's inputs and "
                                 "outputs");
  projection.name = *name;

  for (auto [key, field] : {std::pair<llvm::StringRef, int64_t *>{
                                "in_features", &projection.inFeatures},
                            {"out_features", &projection.outFeatures}}) {
    FailureOr<JsonNode> value = required(node, key);
    if (failed(value))
      return failure();
    FailureOr<int64_t> size = asPositiveInteger(*value);
    if (failed(size))
      return failure();
    *field = *size;
  }
  if (std::optional<JsonNode> bias = member(node, "bias")) {
    FailureOr<bool> flag = asBool(*bias);
    if (failed(flag))
      return failure();
    projection.bias = *flag;
  }
  if (std::optional<JsonNode> overrides = member(node, "experts"))
    if (failed(parseOverrides(*overrides, projection.overrides, &layer)))
      return failure();
  return success();
}

LogicalResult Importer::resolveLayer(LayerDef &layer) {
  auto removedInLayer = [&](size_t expert) {
    auto it = layer.overrides.find(experts[expert].name);
    return it != layer.overrides.end() && it->second.removed;
  };
  for (auto [g, group] : llvm::enumerate(groups)) {
    LayerGroup kept{g, {}};
    for (size_t expert : group.experts)
      if (!removedInLayer(expert))
        kept.experts.push_back(expert);
    if (kept.experts.empty())
      continue;
    llvm::append_range(layer.routed, kept.experts);
    layer.groups.push_back(std::move(kept));
  }
  layer.shared = layer.hasSharedKey ? layer.sharedOverride : topShared;
  if (layer.shared && removedInLayer(expertIndex.lookup(layer.shared->name)))
    layer.shared.reset();

  if (layer.routed.empty())
    return success();
  if (!layer.hiddenSize)
    return failAtModel(layer.path,
                       "missing required key 'hidden_size' (the router "
                       "input size of a layer with routed experts)");

  // Combinations only known once the layer's router and experts are.
  RouterConfig &router = layer.router;
  llvm::StringRef kindName = stringifyRouterKind(router.kind);
  bool grouped = router.kind == RouterKind::grouped_softmax;
  auto where = [&](const std::string &path) -> std::string {
    return path.empty() ? layer.path : path;
  };
  if (grouped && router.topK)
    return failAtModel(router.topKPath, "top_k is not allowed with router kind "
                                        "grouped_softmax (in " +
                                            layer.path + "); use top_k_groups");
  if (!grouped && router.topKGroups)
    return failAtModel(router.topKGroupsPath,
                       "top_k_groups is only allowed with router kind "
                       "grouped_softmax, found " +
                           kindName + " (in " + layer.path + ")");
  if (!grouped && router.groupTemperature)
    return failAtModel(router.groupTemperaturePath,
                       "group_temperature is only allowed with router kind "
                       "grouped_softmax, found " +
                           kindName + " (in " + layer.path + ")");
  if (!grouped && router.expertTemperature)
    return failAtModel(router.expertTemperaturePath,
                       "expert_temperature is only allowed with router kind "
                       "grouped_softmax, found " +
                           kindName + " (in " + layer.path + ")");
  int64_t numExperts = static_cast<int64_t>(layer.routed.size());
  int64_t numGroups = static_cast<int64_t>(layer.groups.size());
  if (router.topK && *router.topK > numExperts)
    return failAtModel(where(router.topKPath),
                       "expected top_k <= " + llvm::Twine(numExperts) +
                           " (the routed experts of " + layer.path +
                           "), found " + llvm::Twine(*router.topK));
  if (router.topKGroups && *router.topKGroups > numGroups)
    return failAtModel(where(router.topKGroupsPath),
                       "expected top_k_groups <= " + llvm::Twine(numGroups) +
                           " (the groups of " + layer.path + "), found " +
                           llvm::Twine(*router.topKGroups));
  return success();
}

LogicalResult Importer::checkUngroupedExperts() {
  llvm::StringSet<> sharedNames;
  if (topShared)
    sharedNames.insert(topShared->name);
  for (const LayerDef &layer : layers)
    if (layer.sharedOverride)
      sharedNames.insert(layer.sharedOverride->name);
  for (const ExpertDef &expert : experts)
    if (!expert.group && !sharedNames.contains(expert.name))
      return failAtModel(expert.path,
                         "expert " + quoted(expert.name) +
                             " is in no group and is not a shared expert; "
                             "list it in one of 'groups'");
  return success();
}

//===----------------------------------------------------------------------===//
// Adapters
//===----------------------------------------------------------------------===//

std::string Importer::peftModuleName(const PeftAdapter &peft, int64_t layer,
                                     llvm::StringRef projection) const {
  // Prefer the module path the adapter file actually uses (self_attn, mlp,
  // ...), without the PEFT wrapper prefix.
  auto it = peft.modules.find({layer, projection.str()});
  if (it != peft.modules.end() && it->second.size() == 1) {
    llvm::StringRef name = it->second.front();
    name.consume_front("base_model.model.");
    return name.str();
  }
  return ("model.layers." + llvm::Twine(layer) + ".self_attn." + projection)
      .str();
}

bool Importer::peftTargets(const PeftAdapter &peft, int64_t layer,
                           llvm::StringRef projection) const {
  if (peft.layers && !llvm::is_contained(*peft.layers, layer))
    return false;
  std::string module = peftModuleName(peft, layer, projection);
  switch (peft.targetKind) {
  case PeftAdapter::Targets::AllLinear:
    return true;
  case PeftAdapter::Targets::Regex:
    return llvm::Regex(peft.targetRegex).match(module);
  case PeftAdapter::Targets::List:
    // PEFT's rule: the module name or its last dotted components.
    return llvm::any_of(peft.targetList, [&](const std::string &target) {
      return module == target ||
             llvm::StringRef(module).ends_with("." + target);
    });
  }
  return false;
}

std::optional<std::pair<int64_t, double>>
Importer::adapterRankAlpha(const ExpertDef &expert, const LayerDef &layer,
                           const ProjectionDef &projection) {
  int64_t rank = 0;
  double alpha = 0.0;
  if (const PeftAdapter *peft = expert.peft.get()) {
    if (!peftTargets(*peft, layer.index, projection.name))
      return std::nullopt;
    std::string module = peftModuleName(*peft, layer.index, projection.name);
    rank = peft->rank;
    alpha = peft->alpha;
    for (const auto &[pattern, value] : peft->rankPattern)
      if (llvm::Regex("^(.*\\.)?(" + pattern + ")$").match(module)) {
        rank = value;
        break;
      }
    for (const auto &[pattern, value] : peft->alphaPattern)
      if (llvm::Regex("^(.*\\.)?(" + pattern + ")$").match(module)) {
        alpha = value;
        break;
      }
    // rsLoRA scales by alpha / sqrt(r); the IR's scale is alpha / r.
    if (peft->rslora)
      alpha *= std::sqrt(static_cast<double>(rank));
  }
  if (expert.rank)
    rank = *expert.rank;
  if (expert.alpha)
    alpha = *expert.alpha;
  for (const llvm::StringMap<Override> *overrides :
       {&layer.overrides, &projection.overrides}) {
    auto it = overrides->find(expert.name);
    if (it == overrides->end())
      continue;
    if (it->second.removed)
      return std::nullopt;
    rank = it->second.rank.value_or(rank);
    alpha = it->second.alpha.value_or(alpha);
  }
  return std::make_pair(rank, alpha);
}

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

LogicalResult Importer::checkTensor(const WeightFile &file,
                                    const TensorInfo &info,
                                    llvm::ArrayRef<int64_t> shape,
                                    llvm::StringRef shapeWhat) {
  if (info.dtype != DType::F32 && info.dtype != DType::F16 &&
      info.dtype != DType::BF16)
    return fail(file.display + ": tensor " + quoted(info.name) +
                ": expected dtype F32, F16 or BF16, found " +
                ::atmoe::dtypeName(info.dtype).str());
  if (llvm::ArrayRef<int64_t>(info.shape) != shape)
    return fail(file.display + ": tensor " + quoted(info.name) +
                ": expected shape " + formatShape(shape) + " (" + shapeWhat +
                "), found " + formatShape(info.shape));
  return success();
}

LogicalResult Importer::findTensor(llvm::StringRef name,
                                   llvm::StringRef userPath,
                                   llvm::ArrayRef<int64_t> shape,
                                   llvm::StringRef shapeWhat, TensorArg &arg,
                                   bool optional, bool *found) {
  const WeightFile *owner = nullptr;
  const TensorInfo *info = nullptr;
  for (const WeightFile &file : weightFiles) {
    const TensorInfo *candidate = file.file->lookup(name);
    if (!candidate)
      continue;
    if (owner)
      return failAtModel(userPath, "tensor " + quoted(name) + " is in both " +
                                       owner->relative + " and " +
                                       file.relative);
    owner = &file;
    info = candidate;
  }
  if (found)
    *found = owner != nullptr;
  if (!owner) {
    if (optional)
      return success();
    std::string files;
    llvm::raw_string_ostream os(files);
    llvm::interleave(
        weightFiles, os, [&](const WeightFile &file) { os << file.relative; },
        ", ");
    return failAtModel(userPath,
                       "tensor " + quoted(name) + " not found in " + files);
  }
  if (failed(checkTensor(*owner, *info, shape, shapeWhat)))
    return failure();
  arg = {name.str(), owner->relative, name.str(),
         llvm::SmallVector<int64_t, 2>(shape)};
  return success();
}

LogicalResult Importer::findPeftTensors(const ExpertDef &expert,
                                        const LayerDef &layer,
                                        const ProjectionDef &projection,
                                        int64_t rank, TensorArg &loraA,
                                        TensorArg &loraB) {
  const PeftAdapter &peft = *expert.peft;
  auto it = peft.modules.find({layer.index, projection.name});
  if (it == peft.modules.end())
    return fail(peft.weights.display + ": tensor " +
                quoted("base_model.model.model.layers." +
                       llvm::Twine(layer.index).str() + ".self_attn." +
                       projection.name + ".lora_A.weight") +
                " not found (adapter " + quoted(expert.name) + " targets " +
                projection.name + " of layer " +
                llvm::Twine(layer.index).str() + " by its target_modules)");
  if (it->second.size() > 1)
    return fail(peft.weights.display + ": tensors " +
                quoted(it->second[0] + ".lora_A.weight") + " and " +
                quoted(it->second[1] + ".lora_A.weight") +
                " both match projection " + quoted(projection.name) +
                " of layer " + llvm::Twine(layer.index).str());
  const std::string &module = it->second.front();
  std::string prefix =
      ("layers." + llvm::Twine(layer.index) + "." + projection.name + ".")
          .str();
  for (bool isA : {true, false}) {
    std::string source = module + (isA ? ".lora_A.weight" : ".lora_B.weight");
    const TensorInfo *info = peft.weights.file->lookup(source);
    if (!info)
      return fail(peft.weights.display + ": tensor " + quoted(source) +
                  " not found (adapter " + quoted(expert.name) + " of " +
                  projection.path + ")");
    llvm::SmallVector<int64_t, 2> shape =
        isA ? llvm::SmallVector<int64_t, 2>{rank, projection.inFeatures}
            : llvm::SmallVector<int64_t, 2>{projection.outFeatures, rank};
    std::string what =
        (isA ? "rank x in_features of " : "out_features x rank of ") +
        projection.path;
    if (failed(checkTensor(peft.weights, *info, shape, what)))
      return failure();
    TensorArg &arg = isA ? loraA : loraB;
    arg = {prefix + (isA ? "lora_A." : "lora_B.") + expert.name + ".weight",
           peft.weights.relative, source, shape};
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Emission
//===----------------------------------------------------------------------===//

namespace {
/// Collects a function's arguments and results with their ABI attributes.
class SignatureBuilder {
public:
  explicit SignatureBuilder(MLIRContext &context) : builder(&context) {}

  unsigned addInput(Type type, llvm::StringRef name) {
    return add(type, {builder.getNamedAttr("atmoe.input",
                                           builder.getStringAttr(name))});
  }
  unsigned addTensor(const TensorArg &tensor) {
    Type type = RankedTensorType::get(tensor.shape, builder.getF32Type());
    return add(
        type,
        {builder.getNamedAttr("atmoe.tensor",
                              builder.getStringAttr(tensor.tensor)),
         builder.getNamedAttr("atmoe.file", builder.getStringAttr(tensor.file)),
         builder.getNamedAttr("atmoe.source",
                              builder.getStringAttr(tensor.source))});
  }
  void addResult(Type type, llvm::StringRef name) {
    resultTypes.push_back(type);
    resultAttrs.push_back(builder.getDictionaryAttr(
        builder.getNamedAttr("atmoe.output", builder.getStringAttr(name))));
  }

  llvm::SmallVector<Type> argTypes, resultTypes;
  llvm::SmallVector<DictionaryAttr> argAttrs, resultAttrs;

private:
  unsigned add(Type type, llvm::ArrayRef<NamedAttribute> attrs) {
    argTypes.push_back(type);
    argAttrs.push_back(builder.getDictionaryAttr(attrs));
    return argTypes.size() - 1;
  }
  Builder builder;
};
} // namespace

LogicalResult Importer::emitLayer(OpBuilder &builder, LayerDef &layer) {
  MLIRContext *ctx = &context;
  Type f32 = builder.getF32Type();
  int64_t dynamic = ShapedType::kDynamic;
  std::string layerName = ("layer" + llvm::Twine(layer.index)).str();
  std::string indexText = llvm::Twine(layer.index).str();
  bool routed = !layer.routed.empty();
  bool perSequence =
      routed && layer.router.granularity == Granularity::sequence;
  int64_t numExperts = static_cast<int64_t>(layer.routed.size());
  int64_t numGroups = static_cast<int64_t>(layer.groups.size());

  // Plan the signature (ABI order) and check every tensor on the way.
  SignatureBuilder sig(context);
  std::vector<ProjectionPlan> plans(layer.projections.size());
  for (auto [j, projection] : llvm::enumerate(layer.projections))
    plans[j].input = sig.addInput(
        RankedTensorType::get({dynamic, projection.inFeatures}, f32),
        projection.name);

  std::optional<unsigned> hArg, segmentsArg;
  std::optional<unsigned> routerArgs[6]; // SPEC order, see RouteOp operands.
  int64_t dHidden = layer.hiddenSize.value_or(0);
  if (routed) {
    hArg = sig.addInput(RankedTensorType::get({dynamic, dHidden}, f32), "h");
    if (perSequence)
      segmentsArg = sig.addInput(
          RankedTensorType::get({dynamic}, builder.getI64Type()), "segments");
    std::string prefix = "layers." + indexText + ".router.";
    std::string userPath =
        layer.router.path.empty() ? layer.path : layer.router.path;
    RouterKind kind = layer.router.kind;
    auto add = [&](unsigned slot, llvm::StringRef suffix,
                   llvm::ArrayRef<int64_t> shape, llvm::StringRef what,
                   bool optional) -> LogicalResult {
      TensorArg arg;
      bool found = false;
      if (failed(findTensor(prefix + suffix.str(), userPath, shape,
                            (what + " of " + layer.path).str(), arg, optional,
                            &found)))
        return failure();
      if (found)
        routerArgs[slot] = sig.addTensor(arg);
      return success();
    };
    if (kind == RouterKind::grouped_softmax &&
        (failed(add(0, "group.weight", {numGroups, dHidden},
                    "groups x hidden_size", false)) ||
         failed(add(1, "group.bias", {numGroups}, "groups", true))))
      return failure();
    if (kind != RouterKind::cosine &&
        (failed(add(2, "expert.weight", {numExperts, dHidden},
                    "experts x hidden_size", false)) ||
         failed(add(3, "expert.bias", {numExperts}, "experts", true))))
      return failure();
    if (kind == RouterKind::cosine) {
      // d_p is not in model.json: the projection's row count defines it.
      std::string projName = prefix + "proj.weight";
      const TensorInfo *info = nullptr;
      for (const WeightFile &file : weightFiles)
        if ((info = file.file->lookup(projName)))
          break;
      int64_t dProj = 1;
      if (info && info->shape.size() == 2 && info->shape[0] > 0)
        dProj = info->shape[0];
      if (failed(add(4, "proj.weight", {dProj, dHidden},
                     "projection size x hidden_size", false)) ||
          failed(add(5, "expert_embedding", {numExperts, dProj},
                     "experts x projection size", false)))
        return failure();
    }
  }

  for (auto [j, projection] : llvm::enumerate(layer.projections)) {
    ProjectionPlan &plan = plans[j];
    std::string prefix = "layers." + indexText + "." + projection.name + ".";
    TensorArg arg;
    if (failed(findTensor(prefix + "weight", projection.path,
                          {projection.outFeatures, projection.inFeatures},
                          "out_features x in_features of " + projection.path,
                          arg)))
      return failure();
    plan.weight = sig.addTensor(arg);
    if (projection.bias) {
      if (failed(findTensor(prefix + "bias", projection.path,
                            {projection.outFeatures},
                            "out_features of " + projection.path, arg)))
        return failure();
      plan.bias = sig.addTensor(arg);
    }
    std::vector<size_t> candidates = layer.routed;
    if (layer.shared)
      candidates.push_back(expertIndex.lookup(layer.shared->name));
    for (size_t e : candidates) {
      const ExpertDef &expert = experts[e];
      std::optional<std::pair<int64_t, double>> rankAlpha =
          adapterRankAlpha(expert, layer, projection);
      if (!rankAlpha)
        continue;
      auto [rank, alpha] = *rankAlpha;
      TensorArg loraA, loraB;
      if (expert.peft) {
        if (failed(
                findPeftTensors(expert, layer, projection, rank, loraA, loraB)))
          return failure();
      } else {
        std::string what = " of " + projection.path + " expert " + expert.name;
        if (failed(findTensor(prefix + "lora_A." + expert.name + ".weight",
                              projection.path, {rank, projection.inFeatures},
                              "rank x in_features" + what, loraA)) ||
            failed(findTensor(prefix + "lora_B." + expert.name + ".weight",
                              projection.path, {projection.outFeatures, rank},
                              "out_features x rank" + what, loraB)))
          return failure();
      }
      unsigned a = sig.addTensor(loraA);
      unsigned b = sig.addTensor(loraB);
      plan.adapters.push_back({e, rank, alpha, a, b});
      if (!layer.shared || expert.name != layer.shared->name)
        plan.hasRouted = true;
    }
  }

  for (const ProjectionDef &projection : layer.projections)
    sig.addResult(RankedTensorType::get({dynamic, projection.outFeatures}, f32),
                  projection.name);
  Type routingType = RankedTensorType::get({dynamic, numExperts}, f32);
  if (routed)
    sig.addResult(routingType, "routing");

  // The structure symbol. A layer without any expert has nothing to declare
  // (and an empty atmoe.layer does not verify): its projections are all
  // atmoe.linear, which refer to no layer.
  Location layerLoc = locFor(layer.path);
  FlatSymbolRefAttr layerRef = FlatSymbolRefAttr::get(ctx, layerName);
  if (routed || layer.shared) {
    auto layerOp = LayerOp::create(builder, layerLoc, layerName, StringAttr());
    OpBuilder::InsertionGuard guard(builder);
    builder.setInsertionPointToStart(&layerOp.getBody().emplaceBlock());
    for (const LayerGroup &kept : layer.groups) {
      const GroupDef &group = groups[kept.group];
      auto groupOp =
          ExpertGroupOp::create(builder, locFor(group.path), group.name);
      OpBuilder::InsertionGuard innerGuard(builder);
      builder.setInsertionPointToStart(&groupOp.getBody().emplaceBlock());
      for (size_t e : kept.experts) {
        size_t position = llvm::find(group.experts, e) - group.experts.begin();
        LoraExpertOp::create(builder, locFor(group.expertPaths[position]),
                             experts[e].name);
      }
    }
    if (layer.shared)
      SharedExpertOp::create(builder, locFor(layer.shared->path),
                             layer.shared->name,
                             llvm::APFloat(layer.shared->lambda));
  }

  auto funcType = builder.getFunctionType(sig.argTypes, sig.resultTypes);
  auto func =
      func::FuncOp::create(builder, layerLoc, layerName + "_forward", funcType);
  for (auto [i, attrs] : llvm::enumerate(sig.argAttrs))
    func.setArgAttrs(i, attrs);
  for (auto [i, attrs] : llvm::enumerate(sig.resultAttrs))
    func.setResultAttrs(i, attrs);
  Block *body = func.addEntryBlock();
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(body);
  auto argOf = [&](std::optional<unsigned> index) -> Value {
    return index ? body->getArgument(*index) : Value();
  };

  Value routing;
  if (routed) {
    const RouterConfig &router = layer.router;
    bool grouped = router.kind == RouterKind::grouped_softmax;
    llvm::SmallVector<int64_t> groupSizes;
    for (const LayerGroup &kept : layer.groups)
      groupSizes.push_back(static_cast<int64_t>(kept.experts.size()));
    auto optionalF64 = [&](std::optional<double> value) {
      return value ? builder.getF64FloatAttr(*value) : FloatAttr();
    };
    auto optionalI64 = [&](std::optional<int64_t> value) {
      return value ? builder.getI64IntegerAttr(*value) : IntegerAttr();
    };
    Location routeLoc = locFor(router.path.empty() ? layer.path : router.path);
    routing = RouteOp::create(
        builder, routeLoc, routingType, RouterKindAttr::get(ctx, router.kind),
        layerRef,
        grouped ? builder.getDenseI64ArrayAttr(groupSizes)
                : DenseI64ArrayAttr(),
        builder.getF64FloatAttr(router.temperature),
        optionalF64(router.groupTemperature),
        optionalF64(router.expertTemperature), optionalI64(router.topK),
        optionalI64(router.topKGroups), argOf(hArg), argOf(routerArgs[0]),
        argOf(routerArgs[1]), argOf(routerArgs[2]), argOf(routerArgs[3]),
        argOf(routerArgs[4]), argOf(routerArgs[5]));
  }

  llvm::SmallVector<Value> results;
  for (auto [j, projection] : llvm::enumerate(layer.projections)) {
    const ProjectionPlan &plan = plans[j];
    Location loc = locFor(projection.path);
    Type outType =
        RankedTensorType::get({dynamic, projection.outFeatures}, f32);
    Value input = body->getArgument(plan.input);
    Value weight = body->getArgument(plan.weight);
    Value bias = argOf(plan.bias);
    if (plan.adapters.empty()) {
      results.push_back(
          LinearOp::create(builder, loc, outType, input, weight, bias));
      continue;
    }
    llvm::SmallVector<Attribute> adapters;
    llvm::SmallVector<Value> loraA, loraB;
    for (const AdapterPlan &adapter : plan.adapters) {
      adapters.push_back(LoraAttr::get(
          ctx, FlatSymbolRefAttr::get(ctx, experts[adapter.expert].name),
          adapter.rank, llvm::APFloat(adapter.alpha)));
      loraA.push_back(body->getArgument(adapter.loraA));
      loraB.push_back(body->getArgument(adapter.loraB));
    }
    // Routing (and, per sequence, the segments) only where a routed adapter
    // uses it; a shared-only projection needs neither.
    bool useRouting = plan.hasRouted;
    results.push_back(LoraLinearOp::create(
        builder, loc, outType, input, weight, bias, loraA, loraB,
        useRouting ? routing : Value(),
        useRouting && perSequence ? argOf(segmentsArg) : Value(), layerRef,
        builder.getArrayAttr(adapters),
        useRouting && perSequence
            ? GranularityAttr::get(ctx, Granularity::sequence)
            : GranularityAttr()));
  }
  if (routed)
    results.push_back(routing);
  func::ReturnOp::create(builder, layerLoc, results);
  return success();
}

/// `loc` as `file:line:col: name` for verifier errors.
static std::string formatLocation(Location loc) {
  std::string prefix;
  if (auto nameLoc = dyn_cast<NameLoc>(loc)) {
    prefix = nameLoc.getName().str();
    loc = nameLoc.getChildLoc();
  }
  std::string text;
  if (auto fileLoc = dyn_cast<FileLineColLoc>(loc))
    text =
        (fileLoc.getFilename().strref() + ":" + llvm::Twine(fileLoc.getLine()) +
         ":" + llvm::Twine(fileLoc.getColumn()))
            .str();
  if (!prefix.empty())
    text += (text.empty() ? "" : ": ") + prefix;
  return text;
}

std::error_code mlir::atmoe::importerInternalErrorCode() {
  return std::make_error_code(std::errc::state_not_recoverable);
}

llvm::Expected<OwningOpRef<ModuleOp>> Importer::run() {
  context.loadDialect<AtmoeDialect, func::FuncDialect>();
  auto asError = [&]() {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), error);
  };
  if (failed(parseModel()))
    return asError();

  OpBuilder builder(&context);
  OwningOpRef<ModuleOp> module = ModuleOp::create(locFor(""));
  llvm::SmallString<256> absolute(packageDir);
  (void)llvm::sys::fs::make_absolute(absolute);
  llvm::sys::path::remove_dots(absolute, /*remove_dot_dot=*/true);
  (*module)->setAttr("atmoe.model", builder.getStringAttr(modelName));
  (*module)->setAttr("atmoe.package", builder.getStringAttr(absolute));
  builder.setInsertionPointToEnd(module->getBody());
  for (LayerDef &layer : layers)
    if (failed(emitLayer(builder, layer)))
      return asError();

  // The checks above should make this unreachable; if they missed a case, the
  // verifier's message still comes back as one line pointing at the JSON.
  std::string verifyError;
  {
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      if (verifyError.empty() &&
          diag.getSeverity() == DiagnosticSeverity::Error) {
        verifyError = formatLocation(diag.getLocation());
        verifyError += (verifyError.empty() ? "" : ": ") + diag.str();
      }
      return success();
    });
    if (failed(verify(*module)))
      return llvm::createStringError(importerInternalErrorCode(),
                                     "the imported IR does not verify: " +
                                         (verifyError.empty()
                                              ? std::string("unknown error")
                                              : verifyError));
  }
  return std::move(module);
}

llvm::Expected<OwningOpRef<ModuleOp>>
mlir::atmoe::importModelFile(MLIRContext &context,
                             llvm::StringRef modelJsonPath) {
  return Importer(context, modelJsonPath).run();
}

llvm::Expected<OwningOpRef<ModuleOp>>
mlir::atmoe::importModelPackage(MLIRContext &context,
                                llvm::StringRef modelDir) {
  return importModelFile(context, joinPath(modelDir, "model.json"));
}
