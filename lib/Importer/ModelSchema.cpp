//===- ModelSchema.cpp - model.json, value by value -----------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Reads model.json (format atmoe-model/1, SPEC §3, docs/Importer.md) into the
// structs of ImporterInternals.h. Every value is checked where it is read,
// and every object's keys against the schema, so that a misspelt key is an
// error rather than a silent default.
//
//===----------------------------------------------------------------------===//

#include "ImporterInternals.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::importer;

static constexpr llvm::StringLiteral kFormatId = "atmoe-model/1";

namespace {

/// The parsing of one model.json; each method reads one kind of object.
class SchemaParser {
public:
  explicit SchemaParser(ImportContext &ctx) : ctx(ctx) {}

  LogicalResult parse();

private:
  LogicalResult parseHeader(const JsonNode &root);
  LogicalResult parseDefaults(const JsonNode &root);
  LogicalResult openWeights(const JsonNode &root);
  LogicalResult parseExperts(const JsonNode &node);
  LogicalResult parseExpert(const JsonNode &node, ExpertDef &expert);
  LogicalResult parseGroups(const JsonNode &node);
  LogicalResult parseGroup(const JsonNode &node, GroupDef &group);
  LogicalResult addGroupMember(const JsonNode &node, GroupDef &group);
  LogicalResult parseRouter(const JsonNode &node, RouterConfig &config);
  LogicalResult parseRouterEntry(StringRef key, const JsonNode &entry,
                                 RouterConfig &config);
  FailureOr<std::optional<SharedDef>>
  parseShared(const JsonNode &node, const std::optional<SharedDef> &inherited);
  LogicalResult checkSharedExpert(const SharedDef &shared);
  LogicalResult parseOverrides(const JsonNode &node,
                               llvm::StringMap<Override> &overrides,
                               const LayerDef *layer);
  LogicalResult parseOverride(const JsonNode &entry, Override &spec);
  LogicalResult parseRankAlpha(const JsonNode &node,
                               std::optional<int64_t> &rank,
                               std::optional<double> &alpha);
  LogicalResult parseLayers(const JsonNode &root);
  LogicalResult parseLayer(const JsonNode &node, LayerDef &layer);
  LogicalResult parseBase(const JsonNode &root);
  LogicalResult parseProjections(const JsonNode &node, LayerDef &layer);
  LogicalResult parseSizes(const JsonNode &node, ProjectionDef &projection);
  LogicalResult parseProjection(const JsonNode &node, LayerDef &layer,
                                ProjectionDef &projection);
  LogicalResult checkUngroupedExperts();

  ImportContext &ctx;
};

LogicalResult SchemaParser::parse() {
  ctx.model = std::make_unique<JsonDocument>(ctx.modelJsonPath);
  if (failed(ctx.model->load(ctx.context)))
    return failure();
  ctx.recordSource("model.json", *ctx.model);
  JsonNode root{ctx.model.get(), &ctx.model->root(), ""};
  if (!root.value->getAsObject())
    return ctx.failAtModel("", "expected a JSON object at the top level, "
                               "found " +
                                   describe(root));
  if (failed(
          ctx.checkKeys(root, {"format", "name", "dtype", "base", "weights",
                               "router", "groups", "experts", "shared_expert",
                               "quantization", "layers"})) ||
      failed(parseHeader(root)) || failed(parseBase(root)) ||
      failed(openWeights(root)) || failed(parseDefaults(root)) ||
      failed(parseLayers(root)))
    return failure();
  return checkUngroupedExperts();
}

/// format, name and dtype.
LogicalResult SchemaParser::parseHeader(const JsonNode &root) {
  FailureOr<JsonNode> format = ctx.required(root, "format");
  if (failed(format))
    return failure();
  FailureOr<std::string> formatId = ctx.asString(*format);
  if (failed(formatId))
    return failure();
  if (*formatId != kFormatId)
    return ctx.failAt(*format, "expected \"" + kFormatId + "\", found " +
                                   describe(*format));
  // The name defaults to the package directory's name.
  if (std::optional<JsonNode> name = ctx.member(root, "name")) {
    FailureOr<std::string> text = ctx.asName(*name);
    if (failed(text))
      return failure();
    ctx.modelName = *text;
  } else {
    llvm::SmallString<256> absolute(ctx.packageDir);
    (void)llvm::sys::fs::make_absolute(absolute);
    llvm::sys::path::remove_dots(absolute, /*remove_dot_dot=*/true);
    ctx.modelName = llvm::sys::path::filename(absolute).str();
  }
  // The declared dtype is informative: each tensor's own dtype is what the
  // runtime converts from.
  if (std::optional<JsonNode> dtype = ctx.member(root, "dtype")) {
    FailureOr<std::string> text = ctx.asString(*dtype);
    if (failed(text))
      return failure();
    if (*text != "f32" && *text != "f16" && *text != "bf16")
      return ctx.failAt(*dtype, "expected \"f32\", \"f16\" or \"bf16\", "
                                "found " +
                                    describe(*dtype));
  }
  return success();
}

/// The top-level experts, groups, shared expert and router.
LogicalResult SchemaParser::parseDefaults(const JsonNode &root) {
  if (std::optional<JsonNode> node = ctx.member(root, "experts"))
    if (failed(parseExperts(*node)))
      return failure();
  if (std::optional<JsonNode> node = ctx.member(root, "groups"))
    if (failed(parseGroups(*node)))
      return failure();
  if (std::optional<JsonNode> node = ctx.member(root, "shared_expert")) {
    FailureOr<std::optional<SharedDef>> shared =
        parseShared(*node, std::nullopt);
    if (failed(shared))
      return failure();
    ctx.topShared = *shared;
  }
  if (std::optional<JsonNode> node = ctx.member(root, "quantization"))
    if (failed(parseQuantization(ctx, *node, ctx.topQuant)))
      return failure();
  ctx.topRouter.path = "";
  if (std::optional<JsonNode> node = ctx.member(root, "router"))
    return parseRouter(*node, ctx.topRouter);
  return success();
}

/// "base": the base weights from a Hugging Face checkpoint directory.
LogicalResult SchemaParser::parseBase(const JsonNode &root) {
  std::optional<JsonNode> node = ctx.member(root, "base");
  if (!node)
    return success();
  return parseHuggingFaceBase(ctx, *node);
}

LogicalResult SchemaParser::openWeights(const JsonNode &root) {
  // With a Hugging Face base, the package's own files (router weights,
  // adapters that are not PEFT directories) are optional.
  if (ctx.base && !ctx.member(root, "weights"))
    return success();
  FailureOr<JsonNode> node =
      ctx.base ? FailureOr<JsonNode>(*ctx.member(root, "weights"))
               : ctx.requiredArray(root, "weights", "one .safetensors file");
  if (failed(node) || failed(ctx.asArray(*node)))
    return failure();
  llvm::StringSet<> seen;
  for (auto [i, value] : llvm::enumerate(*node->value->getAsArray())) {
    JsonNode element = node->element(i, value);
    FailureOr<std::string> relative = ctx.asRelativePath(element, "a path");
    if (failed(relative))
      return failure();
    if (!seen.insert(*relative).second)
      return ctx.failAt(element,
                        "file " + quoted(*relative) + " is listed twice");
    if (failed(ctx.openWeightFile(element, *relative,
                                  ctx.weightFiles.emplace_back())))
      return failure();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Experts and groups
//===----------------------------------------------------------------------===//

LogicalResult SchemaParser::parseExperts(const JsonNode &node) {
  if (failed(ctx.asObject(node)))
    return failure();
  for (const auto &[name, entry] : ctx.members(node)) {
    ExpertDef expert;
    expert.name = name;
    expert.path = entry.path;
    if (failed(ctx.checkPlainName(entry, "expert name", expert.name)))
      return failure();
    if (failed(parseExpert(entry, expert)))
      return failure();
    ctx.expertIndex[expert.name] = ctx.experts.size();
    ctx.experts.push_back(std::move(expert));
  }
  return success();
}

LogicalResult SchemaParser::parseExpert(const JsonNode &node,
                                        ExpertDef &expert) {
  if (failed(ctx.asObject(node)) ||
      failed(ctx.checkKeys(node, {"rank", "alpha", "peft"})))
    return failure();
  if (std::optional<JsonNode> peft = ctx.member(node, "peft"))
    if (failed(parsePeft(ctx, *peft, expert)))
      return failure();
  // With a PEFT adapter, rank and alpha come from adapter_config.json unless
  // model.json overrides them.
  if (!expert.peft)
    for (StringRef key : {"rank", "alpha"})
      if (!ctx.member(node, key))
        return ctx.failAt(node, "missing required key " + quoted(key) +
                                    " (or 'peft')");
  return parseRankAlpha(node, expert.rank, expert.alpha);
}

/// The optional rank (a positive integer) and alpha (a finite number) of an
/// expert or an override.
LogicalResult SchemaParser::parseRankAlpha(const JsonNode &node,
                                           std::optional<int64_t> &rank,
                                           std::optional<double> &alpha) {
  if (std::optional<JsonNode> value = ctx.member(node, "rank")) {
    FailureOr<int64_t> parsed = ctx.asPositiveInteger(*value);
    if (failed(parsed))
      return failure();
    rank = *parsed;
  }
  if (std::optional<JsonNode> value = ctx.member(node, "alpha")) {
    FailureOr<double> parsed = ctx.asFinite(*value);
    if (failed(parsed))
      return failure();
    alpha = *parsed;
  }
  return success();
}

LogicalResult SchemaParser::parseGroups(const JsonNode &node) {
  FailureOr<const json::Array *> array = ctx.asArray(node);
  if (failed(array))
    return failure();
  llvm::StringMap<std::string> groupPaths;
  for (auto [g, value] : llvm::enumerate(**array)) {
    GroupDef group;
    if (failed(parseGroup(node.element(g, value), group)))
      return failure();
    auto [it, inserted] = groupPaths.try_emplace(group.name, group.path);
    if (!inserted)
      return ctx.failAtModel(childPath(group.path, "name"),
                             "duplicate group name " + quoted(group.name) +
                                 " (also " + it->second + ")");
    ctx.groups.push_back(std::move(group));
  }
  return success();
}

LogicalResult SchemaParser::parseGroup(const JsonNode &node, GroupDef &group) {
  if (failed(ctx.asObject(node)) ||
      failed(ctx.checkKeys(node, {"name", "experts"})))
    return failure();
  group.path = node.path;
  FailureOr<JsonNode> nameNode = ctx.required(node, "name");
  if (failed(nameNode))
    return failure();
  FailureOr<std::string> name = ctx.asPlainName(*nameNode, "group name");
  if (failed(name))
    return failure();
  group.name = *name;
  FailureOr<JsonNode> membersNode = ctx.required(node, "experts");
  if (failed(membersNode))
    return failure();
  FailureOr<const json::Array *> list = ctx.asArray(*membersNode);
  if (failed(list))
    return failure();
  for (auto [k, member] : llvm::enumerate(**list))
    if (failed(addGroupMember(membersNode->element(k, member), group)))
      return failure();
  return success();
}

/// One expert of a group: a top-level expert in no other group.
LogicalResult SchemaParser::addGroupMember(const JsonNode &node,
                                           GroupDef &group) {
  FailureOr<std::string> expertName = ctx.asName(node);
  if (failed(expertName))
    return failure();
  auto found = ctx.expertIndex.find(*expertName);
  if (found == ctx.expertIndex.end())
    return ctx.failAt(node, "unknown expert " + quoted(*expertName) +
                                " (not in the top-level 'experts')");
  ExpertDef &expert = ctx.experts[found->second];
  if (expert.group && *expert.group == ctx.groups.size())
    return ctx.failAt(node, "expert " + quoted(*expertName) +
                                " is listed twice in group " +
                                quoted(group.name));
  if (expert.group) {
    const GroupDef &other = ctx.groups[*expert.group];
    return ctx.failAt(node, "expert " + quoted(*expertName) +
                                " is already in group " + quoted(other.name) +
                                " (" + other.path +
                                "); each expert must be in exactly one group");
  }
  expert.group = ctx.groups.size();
  group.experts.push_back(found->second);
  group.expertPaths.push_back(node.path);
  return success();
}

//===----------------------------------------------------------------------===//
// Router and shared expert
//===----------------------------------------------------------------------===//

LogicalResult SchemaParser::parseRouter(const JsonNode &node,
                                        RouterConfig &config) {
  config.path = node.path;
  if (node.isNull()) {
    // null = the built-in defaults.
    config = RouterConfig();
    config.path = node.path;
    return success();
  }
  if (failed(ctx.asObject(node)) ||
      failed(ctx.checkKeys(node, {"kind", "granularity", "temperature",
                                  "group_temperature", "expert_temperature",
                                  "top_k", "top_k_groups"})))
    return failure();
  for (const auto &[key, entry] : ctx.members(node))
    if (failed(parseRouterEntry(key, entry, config)))
      return failure();
  return success();
}

/// One key of a router object; null resets it to the built-in default.
LogicalResult SchemaParser::parseRouterEntry(StringRef key,
                                             const JsonNode &entry,
                                             RouterConfig &config) {
  RouterConfig defaults;
  bool reset = entry.isNull();
  if (key == "kind") {
    FailureOr<std::string> text =
        reset ? FailureOr<std::string>(
                    std::string(stringifyRouterKind(defaults.kind)))
              : ctx.asString(entry);
    if (failed(text))
      return failure();
    std::optional<RouterKind> kind = symbolizeRouterKind(*text);
    if (!kind)
      return ctx.failAt(entry, "unknown router kind " + describe(entry) +
                                   "; expected grouped_softmax, softmax, "
                                   "sigmoid or cosine");
    config.kind = *kind;
    return success();
  }
  if (key == "granularity") {
    FailureOr<std::string> text =
        reset ? FailureOr<std::string>(
                    std::string(stringifyGranularity(defaults.granularity)))
              : ctx.asString(entry);
    if (failed(text))
      return failure();
    std::optional<Granularity> granularity = symbolizeGranularity(*text);
    if (!granularity)
      return ctx.failAt(entry, "unknown granularity " + describe(entry) +
                                   "; expected token or sequence");
    config.granularity = *granularity;
    return success();
  }
  if (key == "temperature") {
    FailureOr<double> tau = reset ? FailureOr<double>(defaults.temperature)
                                  : ctx.asTemperature(entry);
    if (failed(tau))
      return failure();
    config.temperature = *tau;
    return success();
  }
  if (key == "group_temperature" || key == "expert_temperature") {
    bool group = key == "group_temperature";
    std::optional<double> &field =
        group ? config.groupTemperature : config.expertTemperature;
    (group ? config.groupTemperaturePath : config.expertTemperaturePath) =
        entry.path;
    field.reset();
    if (reset)
      return success();
    FailureOr<double> tau = ctx.asTemperature(entry);
    if (failed(tau))
      return failure();
    field = *tau;
    return success();
  }
  // top_k or top_k_groups.
  bool forGroups = key == "top_k_groups";
  std::optional<int64_t> &field = forGroups ? config.topKGroups : config.topK;
  (forGroups ? config.topKGroupsPath : config.topKPath) = entry.path;
  field.reset();
  if (reset)
    return success();
  FailureOr<int64_t> k = ctx.asPositiveInteger(entry);
  if (failed(k))
    return failure();
  field = *k;
  return success();
}

FailureOr<std::optional<SharedDef>>
SchemaParser::parseShared(const JsonNode &node,
                          const std::optional<SharedDef> &inherited) {
  if (node.isNull())
    return std::optional<SharedDef>();
  if (failed(ctx.asObject(node)) ||
      failed(ctx.checkKeys(node, {"name", "lambda"})))
    return failure();
  SharedDef shared;
  if (inherited)
    shared = *inherited;
  shared.path = node.path;
  // A layer may change only lambda, inheriting the top-level expert's name.
  StringRef why =
      inherited ? "" : " (there is no top-level shared_expert to inherit from)";
  std::optional<JsonNode> name = ctx.member(node, "name");
  if (!name && !inherited)
    return ctx.failAt(node, "missing required key 'name'" + why);
  if (name) {
    FailureOr<std::string> text = ctx.asName(*name);
    if (failed(text))
      return failure();
    shared.name = *text;
    shared.namePath = name->path;
  }
  std::optional<JsonNode> lambda = ctx.member(node, "lambda");
  if (!lambda && !inherited)
    return ctx.failAt(node, "missing required key 'lambda'" + why);
  if (lambda) {
    FailureOr<double> value = ctx.asLambda(*lambda);
    if (failed(value))
      return failure();
    shared.lambda = *value;
  }
  if (failed(checkSharedExpert(shared)))
    return failure();
  return std::optional<SharedDef>(shared);
}

/// A shared expert is a top-level expert in no group, named unlike any group.
LogicalResult SchemaParser::checkSharedExpert(const SharedDef &shared) {
  auto found = ctx.expertIndex.find(shared.name);
  if (found == ctx.expertIndex.end())
    return ctx.failAtModel(shared.namePath,
                           "unknown expert " + quoted(shared.name) +
                               " (a shared expert must be listed in the "
                               "top-level 'experts')");
  const ExpertDef &expert = ctx.experts[found->second];
  if (expert.group)
    return ctx.failAtModel(shared.namePath,
                           "expert " + quoted(shared.name) +
                               " is the shared expert but is in group " +
                               quoted(ctx.groups[*expert.group].name) +
                               "; a shared expert must be in no group");
  for (const GroupDef &group : ctx.groups)
    if (group.name == shared.name)
      return ctx.failAtModel(shared.namePath,
                             "the shared expert " + quoted(shared.name) +
                                 " has the name of a group (" + group.path +
                                 "); they share the layer's symbol table");
  return success();
}

//===----------------------------------------------------------------------===//
// Layers and projections
//===----------------------------------------------------------------------===//

LogicalResult SchemaParser::parseOverrides(const JsonNode &node,
                                           llvm::StringMap<Override> &overrides,
                                           const LayerDef *layer) {
  if (failed(ctx.asObject(node)))
    return failure();
  for (const auto &[name, entry] : ctx.members(node)) {
    if (!ctx.expertIndex.count(name))
      return ctx.failAt(entry, "unknown expert " + quoted(name) +
                                   " (not in the top-level 'experts')");
    // A projection cannot bring back an expert its layer removed: the
    // router has no column for it.
    if (layer && !entry.isNull()) {
      auto removed = layer->overrides.find(name);
      if (removed != layer->overrides.end() && removed->second.removed)
        return ctx.failAt(entry, "expert " + quoted(name) +
                                     " is removed in this layer (" +
                                     removed->second.path + ")");
    }
    Override spec;
    if (failed(parseOverride(entry, spec)))
      return failure();
    overrides[name] = spec;
  }
  return success();
}

/// null (the expert is removed) or {rank, alpha}.
LogicalResult SchemaParser::parseOverride(const JsonNode &entry,
                                          Override &spec) {
  spec.path = entry.path;
  if (entry.isNull()) {
    spec.removed = true;
    return success();
  }
  if (failed(ctx.asObject(entry)) ||
      failed(ctx.checkKeys(entry, {"rank", "alpha"})))
    return failure();
  return parseRankAlpha(entry, spec.rank, spec.alpha);
}

LogicalResult SchemaParser::parseLayers(const JsonNode &root) {
  if (ctx.base && !ctx.member(root, "layers"))
    return defaultLayers(ctx, ctx.layers);
  FailureOr<JsonNode> layersNode =
      ctx.requiredArray(root, "layers", "one layer");
  if (failed(layersNode))
    return failure();
  std::map<int64_t, std::string> seenIndexes;
  for (auto [i, value] : llvm::enumerate(*layersNode->value->getAsArray())) {
    LayerDef &layer = ctx.layers.emplace_back();
    if (failed(parseLayer(layersNode->element(i, value), layer)))
      return failure();
    auto [it, inserted] = seenIndexes.try_emplace(layer.index, layer.path);
    if (!inserted)
      return ctx.failAtModel(childPath(layer.path, "index"),
                             "duplicate layer index " + Twine(layer.index) +
                                 " (also " + it->second + ")");
  }
  return success();
}

LogicalResult SchemaParser::parseLayer(const JsonNode &node, LayerDef &layer) {
  layer.path = node.path;
  if (failed(ctx.asObject(node)) ||
      failed(ctx.checkKeys(node,
                           {"index", "hidden_size", "router", "experts",
                            "shared_expert", "quantization", "projections"})))
    return failure();
  FailureOr<JsonNode> indexNode = ctx.required(node, "index");
  if (failed(indexNode))
    return failure();
  FailureOr<int64_t> index =
      ctx.asInteger(*indexNode, 0, "a non-negative layer index");
  if (failed(index))
    return failure();
  layer.index = *index;
  if (std::optional<JsonNode> hidden = ctx.member(node, "hidden_size")) {
    FailureOr<int64_t> size = ctx.asPositiveInteger(*hidden);
    if (failed(size))
      return failure();
    layer.hiddenSize = *size;
  } else if (ctx.base) {
    layer.hiddenSize = ctx.base->hidden;
  }
  layer.router = ctx.topRouter;
  if (std::optional<JsonNode> router = ctx.member(node, "router"))
    if (failed(parseRouter(*router, layer.router)))
      return failure();
  layer.quant = ctx.topQuant;
  if (std::optional<JsonNode> quant = ctx.member(node, "quantization"))
    if (failed(parseQuantization(ctx, *quant, layer.quant)))
      return failure();
  if (std::optional<JsonNode> overrides = ctx.member(node, "experts"))
    if (failed(parseOverrides(*overrides, layer.overrides, nullptr)))
      return failure();
  if (std::optional<JsonNode> shared = ctx.member(node, "shared_expert")) {
    FailureOr<std::optional<SharedDef>> parsed =
        parseShared(*shared, ctx.topShared);
    if (failed(parsed))
      return failure();
    layer.hasSharedKey = true;
    layer.sharedOverride = *parsed;
  }
  if (failed(parseProjections(node, layer)))
    return failure();
  return resolveLayer(ctx, layer);
}

LogicalResult SchemaParser::parseProjections(const JsonNode &node,
                                             LayerDef &layer) {
  FailureOr<JsonNode> projections =
      ctx.requiredArray(node, "projections", "one projection");
  if (failed(projections))
    return failure();
  llvm::StringMap<std::string> seen;
  for (auto [j, value] : llvm::enumerate(*projections->value->getAsArray())) {
    ProjectionDef &projection = layer.projections.emplace_back();
    if (failed(
            parseProjection(projections->element(j, value), layer, projection)))
      return failure();
    auto [it, inserted] = seen.try_emplace(projection.name, projection.path);
    if (!inserted)
      return ctx.failAtModel(childPath(projection.path, "name"),
                             "duplicate projection name " +
                                 quoted(projection.name) + " (also " +
                                 it->second + ")");
  }
  return success();
}

LogicalResult SchemaParser::parseProjection(const JsonNode &node,
                                            LayerDef &layer,
                                            ProjectionDef &projection) {
  projection.path = node.path;
  if (failed(ctx.asObject(node)) ||
      failed(ctx.checkKeys(node, {"name", "in_features", "out_features", "bias",
                                  "experts", "quantization"})))
    return failure();
  FailureOr<JsonNode> nameNode = ctx.required(node, "name");
  if (failed(nameNode))
    return failure();
  FailureOr<std::string> name = ctx.asPlainName(*nameNode, "projection name");
  if (failed(name))
    return failure();
  // These name the router's input and output in the function ABI.
  if (*name == "h" || *name == "segments" || *name == "routing")
    return ctx.failAt(*nameNode, "projection name " + quoted(*name) +
                                     " is reserved for the router's inputs "
                                     "and outputs");
  projection.name = *name;
  if (failed(parseSizes(node, projection)))
    return failure();
  if (std::optional<JsonNode> bias = ctx.member(node, "bias")) {
    FailureOr<bool> flag = ctx.asBool(*bias);
    if (failed(flag))
      return failure();
    projection.bias = *flag;
  } else {
    projection.biasIfPresent = ctx.base.has_value();
  }
  projection.quant = layer.quant;
  if (std::optional<JsonNode> quant = ctx.member(node, "quantization"))
    if (failed(parseQuantization(ctx, *quant, projection.quant)))
      return failure();
  if (std::optional<JsonNode> overrides = ctx.member(node, "experts"))
    return parseOverrides(*overrides, projection.overrides, &layer);
  return success();
}

/// in_features and out_features; with a Hugging Face base, config.json's
/// sizes of a Llama-style projection where they are omitted.
LogicalResult SchemaParser::parseSizes(const JsonNode &node,
                                       ProjectionDef &projection) {
  std::optional<std::pair<int64_t, int64_t>> standard;
  if (ctx.base)
    standard = standardProjectionSizes(*ctx.base, projection.name);
  for (auto [key, field, fallback] : {std::tuple<StringRef, int64_t *, int64_t>{
                                          "in_features", &projection.inFeatures,
                                          standard ? standard->first : 0},
                                      {"out_features", &projection.outFeatures,
                                       standard ? standard->second : 0}}) {
    if (fallback && !ctx.member(node, key)) {
      *field = fallback;
      continue;
    }
    FailureOr<JsonNode> value = ctx.required(node, key);
    if (failed(value))
      return failure();
    FailureOr<int64_t> size = ctx.asPositiveInteger(*value);
    if (failed(size))
      return failure();
    *field = *size;
  }
  return success();
}

/// Every expert is in a group or is a shared expert somewhere.
LogicalResult SchemaParser::checkUngroupedExperts() {
  llvm::StringSet<> sharedNames;
  if (ctx.topShared)
    sharedNames.insert(ctx.topShared->name);
  for (const LayerDef &layer : ctx.layers)
    if (layer.sharedOverride)
      sharedNames.insert(layer.sharedOverride->name);
  for (const ExpertDef &expert : ctx.experts)
    if (!expert.group && !sharedNames.contains(expert.name))
      return ctx.failAtModel(expert.path,
                             "expert " + quoted(expert.name) +
                                 " is in no group and is not a shared expert; "
                                 "list it in one of 'groups'");
  return success();
}

} // namespace

LogicalResult importer::parseModel(ImportContext &ctx) {
  return SchemaParser(ctx).parse();
}
