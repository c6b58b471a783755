//===- Peft.cpp - Experts given as PEFT adapter directories ---------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// An expert may be a directory as PEFT's save_pretrained writes it:
// adapter_config.json (rank, alpha, which modules it adapts) and
// adapter_model.safetensors, whose tensors are named after the base model's
// modules (`base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`).
// Errors in adapter_config.json are located in that file.
//
//===----------------------------------------------------------------------===//

#include "ImporterInternals.h"

#include "llvm/Support/Regex.h"

#include <cmath>

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::importer;

namespace {

/// The reading of one adapter_config.json and its adapter file.
class PeftParser {
public:
  PeftParser(ImportContext &ctx, PeftAdapter &peft) : ctx(ctx), peft(peft) {}

  LogicalResult parse(const JsonNode &dirNode, const std::string &dir);

private:
  LogicalResult checkVariant(const JsonNode &root);
  LogicalResult parseRankAlpha(const JsonNode &root);
  LogicalResult parseTargets(const JsonNode &root);
  LogicalResult parseLayersToTransform(const JsonNode &root);
  LogicalResult parsePatterns(const JsonNode &root);
  void indexModules();

  ImportContext &ctx;
  PeftAdapter &peft;
};

LogicalResult PeftParser::parse(const JsonNode &dirNode,
                                const std::string &dir) {
  peft.dirRelative = dir;
  std::string dirPath = joinPath(ctx.packageDir, dir);
  peft.config =
      std::make_unique<JsonDocument>(joinPath(dirPath, "adapter_config.json"));
  if (failed(peft.config->load(ctx.context)))
    return failure();
  ctx.recordSource(joinPath(dir, "adapter_config.json"), *peft.config);
  JsonNode root{peft.config.get(), &peft.config->root(), ""};
  if (!root.value->getAsObject())
    return ctx.failAt(root, "expected a JSON object, found " + describe(root));
  if (failed(checkVariant(root)) || failed(parseRankAlpha(root)) ||
      failed(parseTargets(root)) || failed(parseLayersToTransform(root)) ||
      failed(parsePatterns(root)))
    return failure();
  if (failed(ctx.openWeightFile(
          dirNode, joinPath(dir, "adapter_model.safetensors"), peft.weights)))
    return failure();
  indexModules();
  return success();
}

/// PEFT variants whose weights would not mean what SPEC's formula says.
LogicalResult PeftParser::checkVariant(const JsonNode &root) {
  if (std::optional<JsonNode> type = ctx.member(root, "peft_type")) {
    FailureOr<std::string> text = ctx.asString(*type);
    if (failed(text))
      return failure();
    if (*text != "LORA")
      return ctx.failAt(*type, "expected \"LORA\", found " + describe(*type));
  }
  for (StringRef flag : {"use_dora", "fan_in_fan_out"}) {
    std::optional<JsonNode> value = ctx.member(root, flag);
    if (!value || value->isNull())
      continue;
    FailureOr<bool> set = ctx.asBool(*value);
    if (failed(set))
      return failure();
    if (*set)
      return ctx.failAt(*value, flag == "use_dora"
                                    ? "DoRA adapters are not supported; "
                                      "expected false, found true"
                                    : "transposed (fan_in_fan_out) adapters "
                                      "are not supported; expected false, "
                                      "found true");
  }
  if (std::optional<JsonNode> bias = ctx.member(root, "bias")) {
    FailureOr<std::string> text = ctx.asString(*bias);
    if (failed(text))
      return failure();
    if (*text != "none")
      return ctx.failAt(*bias, "LoRA biases are not supported; expected "
                               "\"none\", found " +
                                   describe(*bias));
  }
  return success();
}

/// r, lora_alpha and use_rslora.
LogicalResult PeftParser::parseRankAlpha(const JsonNode &root) {
  if (std::optional<JsonNode> rslora = ctx.member(root, "use_rslora"))
    if (!rslora->isNull()) {
      FailureOr<bool> set = ctx.asBool(*rslora);
      if (failed(set))
        return failure();
      peft.rslora = *set;
    }
  FailureOr<JsonNode> r = ctx.required(root, "r");
  if (failed(r))
    return failure();
  FailureOr<int64_t> rank = ctx.asPositiveInteger(*r);
  if (failed(rank))
    return failure();
  peft.rank = *rank;
  FailureOr<JsonNode> loraAlpha = ctx.required(root, "lora_alpha");
  if (failed(loraAlpha))
    return failure();
  FailureOr<double> alpha = ctx.asFinite(*loraAlpha);
  if (failed(alpha))
    return failure();
  peft.alpha = *alpha;
  return success();
}

/// target_modules: a list of names, a regular expression or "all-linear".
LogicalResult PeftParser::parseTargets(const JsonNode &root) {
  FailureOr<JsonNode> targets = ctx.required(root, "target_modules");
  if (failed(targets))
    return failure();
  if (std::optional<StringRef> text = targets->value->getAsString()) {
    // PEFT treats a string as a regular expression over module names, except
    // the shorthand "all-linear".
    if (*text == "all-linear") {
      peft.targetKind = PeftAdapter::Targets::AllLinear;
      return success();
    }
    peft.targetKind = PeftAdapter::Targets::Regex;
    peft.targetRegex = ("^(" + *text + ")$").str();
    std::string regexError;
    if (!llvm::Regex(peft.targetRegex).isValid(regexError))
      return ctx.failAt(*targets, "invalid regular expression: " + regexError);
    return success();
  }
  const json::Array *list = targets->value->getAsArray();
  if (!list)
    return ctx.failAt(*targets, "expected a list of module names or a regular "
                                "expression, found " +
                                    describe(*targets));
  for (auto [i, value] : llvm::enumerate(*list)) {
    FailureOr<std::string> name = ctx.asName(targets->element(i, value));
    if (failed(name))
      return failure();
    peft.targetList.push_back(*name);
  }
  return success();
}

/// layers_to_transform: an index or a list of them.
LogicalResult PeftParser::parseLayersToTransform(const JsonNode &root) {
  std::optional<JsonNode> node = ctx.member(root, "layers_to_transform");
  if (!node || node->isNull())
    return success();
  std::vector<int64_t> indexes;
  if (const json::Array *array = node->value->getAsArray()) {
    for (auto [i, value] : llvm::enumerate(*array)) {
      FailureOr<int64_t> index = ctx.asInteger(node->element(i, value), 0,
                                               "a non-negative layer index");
      if (failed(index))
        return failure();
      indexes.push_back(*index);
    }
  } else {
    FailureOr<int64_t> index =
        ctx.asInteger(*node, 0, "a non-negative layer index or a list of them");
    if (failed(index))
      return failure();
    indexes.push_back(*index);
  }
  peft.layers = std::move(indexes);
  return success();
}

/// rank_pattern / alpha_pattern: per-module overrides keyed by a regular
/// expression matched against the end of the module name.
LogicalResult PeftParser::parsePatterns(const JsonNode &root) {
  for (StringRef key : {"rank_pattern", "alpha_pattern"}) {
    std::optional<JsonNode> patterns = ctx.member(root, key);
    if (!patterns || patterns->isNull())
      continue;
    if (failed(ctx.asObject(*patterns)))
      return failure();
    for (const auto &[pattern, entry] : ctx.members(*patterns)) {
      std::string regexError;
      if (!llvm::Regex("^(.*\\.)?(" + pattern + ")$").isValid(regexError))
        return ctx.failAt(entry, "invalid regular expression: " + regexError);
      if (key == "rank_pattern") {
        FailureOr<int64_t> value = ctx.asPositiveInteger(entry);
        if (failed(value))
          return failure();
        peft.rankPattern.emplace_back(pattern, *value);
      } else {
        FailureOr<double> value = ctx.asFinite(entry);
        if (failed(value))
          return failure();
        peft.alphaPattern.emplace_back(pattern, *value);
      }
    }
  }
  return success();
}

/// Indexes the adapter's tensors by (layer, projection): PEFT names them
/// after the base model's module path, e.g.
/// base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight.
void PeftParser::indexModules() {
  for (const atmoe_rt::TensorInfo &info : peft.weights.file->tensors()) {
    StringRef name = info.name;
    if (!name.consume_back(".lora_A.weight"))
      continue;
    SmallVector<StringRef> parts;
    name.split(parts, '.');
    for (size_t k = 0; k + 1 < parts.size(); ++k) {
      int64_t layerIndex;
      if (parts[k] != "layers" || parts[k + 1].getAsInteger(10, layerIndex))
        continue;
      peft.modules[{layerIndex, parts.back().str()}].push_back(name.str());
      break;
    }
  }
}

} // namespace

LogicalResult importer::parsePeft(ImportContext &ctx, const JsonNode &node,
                                  ExpertDef &expert) {
  FailureOr<std::string> dir = ctx.asRelativePath(node, "a directory");
  if (failed(dir))
    return failure();
  auto peft = std::make_unique<PeftAdapter>();
  if (failed(PeftParser(ctx, *peft).parse(node, *dir)))
    return failure();
  expert.peft = std::move(peft);
  return success();
}

std::string importer::peftModuleName(const PeftAdapter &peft, int64_t layer,
                                     StringRef projection) {
  // Prefer the module path the adapter file actually uses (self_attn, mlp,
  // ...), without the PEFT wrapper prefix.
  auto it = peft.modules.find({layer, projection.str()});
  if (it != peft.modules.end() && it->second.size() == 1) {
    StringRef name = it->second.front();
    name.consume_front("base_model.model.");
    return name.str();
  }
  return ("model.layers." + Twine(layer) + ".self_attn." + projection).str();
}

bool importer::peftTargets(const PeftAdapter &peft, int64_t layer,
                           StringRef projection) {
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
      return module == target || StringRef(module).ends_with("." + target);
    });
  }
  return false;
}

LogicalResult importer::findPeftTensors(ImportContext &ctx,
                                        const ExpertDef &expert,
                                        const LayerDef &layer,
                                        const ProjectionDef &projection,
                                        int64_t rank, TensorArg &loraA,
                                        TensorArg &loraB) {
  const PeftAdapter &peft = *expert.peft;
  Location loc = ctx.modelLoc(projection.path);
  std::string layerText = std::to_string(layer.index);
  auto it = peft.modules.find({layer.index, projection.name});
  if (it == peft.modules.end())
    return ctx.fail(loc, peft.weights.display + ": tensor " +
                             quoted("base_model.model.model.layers." +
                                    layerText + ".self_attn." +
                                    projection.name + ".lora_A.weight") +
                             " not found (adapter " + quoted(expert.name) +
                             " targets " + projection.name + " of layer " +
                             layerText + " by its target_modules)");
  if (it->second.size() > 1)
    return ctx.fail(loc,
                    peft.weights.display + ": tensors " +
                        quoted(it->second[0] + ".lora_A.weight") + " and " +
                        quoted(it->second[1] + ".lora_A.weight") +
                        " both match projection " + quoted(projection.name) +
                        " of layer " + layerText);
  const std::string &module = it->second.front();
  std::string prefix = "layers." + layerText + "." + projection.name + ".";
  for (bool isA : {true, false}) {
    std::string source = module + (isA ? ".lora_A.weight" : ".lora_B.weight");
    const atmoe_rt::TensorInfo *info = peft.weights.file->lookup(source);
    if (!info)
      return ctx.fail(loc, peft.weights.display + ": tensor " + quoted(source) +
                               " not found (adapter " + quoted(expert.name) +
                               " of " + projection.path + ")");
    SmallVector<int64_t, 2> shape =
        isA ? SmallVector<int64_t, 2>{rank, projection.inFeatures}
            : SmallVector<int64_t, 2>{projection.outFeatures, rank};
    std::string what =
        (isA ? "rank x in_features of " : "out_features x rank of ") +
        projection.path;
    if (failed(checkTensor(ctx, loc, peft.weights, *info, shape, what)))
      return failure();
    (isA ? loraA : loraB) = {prefix + (isA ? "lora_A." : "lora_B.") +
                                 expert.name + ".weight",
                             peft.weights.relative, source, shape, info->dtype};
  }
  return success();
}
