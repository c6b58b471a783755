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

#include "llvm/ADT/StringSet.h"

#include <cmath>

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::importer;

namespace {

/// How the importer treats each field of PEFT's LoraConfig. Every field
/// PEFT writes is listed: an unknown one is an error, since it may change
/// PEFT's forward (docs/Importer.md has this table in prose).
enum class FieldUse {
  /// Read by the parser below.
  Read,
  /// Does not change what a saved adapter computes at inference.
  Ignored,
  /// Changes PEFT's forward in a way atmoe does not compile: accepted only
  /// at its default (null, false, empty).
  DefaultOnly,
};

struct ConfigField {
  StringRef name;
  FieldUse use;
  /// For DefaultOnly: what the field does, for the error.
  StringRef meaning = "";
};

constexpr ConfigField kConfigFields[] = {
    {"peft_type", FieldUse::Read},
    {"r", FieldUse::Read},
    {"lora_alpha", FieldUse::Read},
    {"use_rslora", FieldUse::Read},
    {"target_modules", FieldUse::Read},
    {"exclude_modules", FieldUse::Read},
    {"layers_to_transform", FieldUse::Read},
    {"layers_pattern", FieldUse::Read},
    {"rank_pattern", FieldUse::Read},
    {"alpha_pattern", FieldUse::Read},
    {"modules_to_save", FieldUse::Read},
    {"bias", FieldUse::Read},
    {"init_lora_weights", FieldUse::Read},
    {"task_type", FieldUse::Ignored},
    {"auto_mapping", FieldUse::Ignored},
    {"base_model_name_or_path", FieldUse::Ignored},
    {"revision", FieldUse::Ignored},
    {"inference_mode", FieldUse::Ignored},
    {"lora_dropout", FieldUse::Ignored},
    {"loftq_config", FieldUse::Ignored},
    {"eva_config", FieldUse::Ignored},
    {"corda_config", FieldUse::Ignored},
    {"megatron_config", FieldUse::Ignored},
    {"megatron_core", FieldUse::Ignored},
    {"runtime_config", FieldUse::Ignored},
    {"peft_version", FieldUse::Ignored},
    {"ensure_weight_tying", FieldUse::Ignored},
    {"trainable_token_indices", FieldUse::Ignored},
    {"qalora_group_size", FieldUse::Ignored},
    {"fan_in_fan_out", FieldUse::DefaultOnly,
     "adapter weights stored transposed (for Conv1D base layers)"},
    {"use_dora", FieldUse::Read},
    {"lora_bias", FieldUse::Read},
    {"use_qalora", FieldUse::DefaultOnly,
     "QALoRA (inputs pooled over quantisation groups)"},
    {"layer_replication", FieldUse::DefaultOnly,
     "replicating layers of the base model"},
    {"alora_invocation_tokens", FieldUse::DefaultOnly,
     "aLoRA (adapters active only after invocation tokens)"},
    {"arrow_config", FieldUse::DefaultOnly,
     "Arrow routing between LoRA adapters"},
    {"target_parameters", FieldUse::DefaultOnly,
     "LoRA on parameters rather than modules"},
    {"use_bdlora", FieldUse::DefaultOnly, "block-diagonal LoRA"},
};

/// Whether a DefaultOnly field holds its default.
bool isDefaultValue(const llvm::json::Value &value) {
  if (value.kind() == llvm::json::Value::Null)
    return true;
  if (std::optional<bool> flag = value.getAsBoolean())
    return !*flag;
  if (const llvm::json::Array *array = value.getAsArray())
    return array->empty();
  if (const llvm::json::Object *object = value.getAsObject())
    return object->empty();
  if (std::optional<StringRef> text = value.getAsString())
    return text->empty();
  return false;
}

/// The reading of one adapter_config.json and its adapter file.
class PeftParser {
public:
  PeftParser(ImportContext &ctx, PeftAdapter &peft) : ctx(ctx), peft(peft) {}

  LogicalResult parse(const JsonNode &dirNode, const std::string &dir);

private:
  LogicalResult checkFields(const JsonNode &root);
  LogicalResult checkVariant(const JsonNode &root);
  LogicalResult parseRankAlpha(const JsonNode &root);
  LogicalResult parseTargets(const JsonNode &root);
  LogicalResult parseExclude(const JsonNode &root);
  LogicalResult parseLayersToTransform(const JsonNode &root);
  LogicalResult parseLayersPattern(const JsonNode &root);
  LogicalResult parsePatterns(const JsonNode &root);
  LogicalResult parseModulesToSave(const JsonNode &root);
  /// A Python regex read at `node`; errors say which field it is.
  FailureOr<PythonRegex> compileAt(const JsonNode &node, const Twine &pattern);
  /// A list of names at `node` (target_modules, exclude_modules, ...).
  LogicalResult readNames(const JsonNode &node, std::vector<std::string> &out);
  LogicalResult readRegexOrNames(const JsonNode &node, StringRef expected,
                                 std::optional<PythonRegex> &regex,
                                 std::vector<std::string> &names);
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
  if (failed(checkFields(root)) || failed(checkVariant(root)) ||
      failed(parseRankAlpha(root)) || failed(parseTargets(root)) ||
      failed(parseExclude(root)) || failed(parseLayersToTransform(root)) ||
      failed(parseLayersPattern(root)) || failed(parsePatterns(root)) ||
      failed(parseModulesToSave(root)))
    return failure();
  if (failed(ctx.openWeightFile(
          dirNode, joinPath(dir, "adapter_model.safetensors"), peft.weights)))
    return failure();
  indexModules();
  return success();
}

/// Every field is known, and those atmoe does not compile hold defaults.
LogicalResult PeftParser::checkFields(const JsonNode &root) {
  for (const auto &[key, node] : ctx.members(root)) {
    const ConfigField *field =
        llvm::find_if(kConfigFields, [&, &key = key](const ConfigField &f) {
          return f.name == key;
        });
    if (field == std::end(kConfigFields))
      return ctx.failAt(node, "unknown adapter_config.json field: atmoe "
                              "cannot tell whether it changes PEFT's output "
                              "(docs/Importer.md lists the fields it knows)");
    if (field->use == FieldUse::DefaultOnly && !isDefaultValue(*node.value))
      return ctx.failAt(node, field->meaning +
                                  " is not supported; expected null or "
                                  "false, found " +
                                  describe(node));
  }
  return success();
}

/// peft_type, bias and init_lora_weights: the values under which the saved
/// weights mean what SPEC's formula says.
LogicalResult PeftParser::checkVariant(const JsonNode &root) {
  if (std::optional<JsonNode> type = ctx.member(root, "peft_type")) {
    FailureOr<std::string> text = ctx.asString(*type);
    if (failed(text))
      return failure();
    if (*text != "LORA")
      return ctx.failAt(*type, "only LoRA adapters are supported; expected "
                               "\"LORA\", found " +
                                   describe(*type));
  }
  if (std::optional<JsonNode> bias = ctx.member(root, "bias")) {
    FailureOr<std::string> text = ctx.asString(*bias);
    if (failed(text))
      return failure();
    if (*text != "none")
      return ctx.failAt(*bias, "bias " + describe(*bias) +
                                   " trains the base layers' own biases, "
                                   "which the adapter then replaces; not "
                                   "supported: expected \"none\"");
  }
  if (std::optional<JsonNode> init = ctx.member(root, "init_lora_weights")) {
    std::optional<StringRef> text = init->value->getAsString();
    // These initialisations rewrite the base weights the adapter was trained
    // on (PiSSA, OLoRA, CorDA and LoftQ keep a residual base model).
    for (StringRef prefix : {"pissa", "olora", "corda", "loftq"})
      if (text && text->starts_with(prefix))
        return ctx.failAt(*init,
                          describe(*init) +
                              " changes the base model's weights, which this "
                              "package does not hold; save the adapter with "
                              "PEFT's path_initial_model_for_weight_conversion "
                              "to turn it into a plain LoRA");
  }
  return success();
}

/// An optional boolean field (null is false).
static LogicalResult readFlag(ImportContext &ctx, const JsonNode &root,
                              StringRef field, bool &flag) {
  std::optional<JsonNode> node = ctx.member(root, field);
  if (!node || node->isNull())
    return success();
  FailureOr<bool> set = ctx.asBool(*node);
  if (failed(set))
    return failure();
  flag = *set;
  return success();
}

/// r, lora_alpha, use_rslora, lora_bias and use_dora.
LogicalResult PeftParser::parseRankAlpha(const JsonNode &root) {
  if (failed(readFlag(ctx, root, "use_rslora", peft.rslora)) ||
      failed(readFlag(ctx, root, "lora_bias", peft.loraBias)) ||
      failed(readFlag(ctx, root, "use_dora", peft.dora)))
    return failure();
  // PEFT's DoRA layer has no lora_B bias.
  if (peft.loraBias && peft.dora)
    return ctx.failAt(*ctx.member(root, "lora_bias"),
                      "a LoRA bias cannot be combined with use_dora");
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

FailureOr<PythonRegex> PeftParser::compileAt(const JsonNode &node,
                                             const Twine &pattern) {
  llvm::Expected<PythonRegex> regex = PythonRegex::compile(pattern.str());
  if (!regex)
    return ctx.failAt(node, "invalid Python regular expression " +
                                quoted(pattern.str()) + ": " +
                                llvm::toString(regex.takeError()));
  return std::move(*regex);
}

LogicalResult PeftParser::readNames(const JsonNode &node,
                                    std::vector<std::string> &out) {
  FailureOr<const json::Array *> list = ctx.asArray(node);
  if (failed(list))
    return failure();
  for (auto [i, value] : llvm::enumerate(**list)) {
    FailureOr<std::string> name = ctx.asName(node.element(i, value));
    if (failed(name))
      return failure();
    out.push_back(*name);
  }
  return success();
}

/// A Python regex (a string) or a list of module names at `node`, as
/// target_modules and exclude_modules are; `expected` says so in the error.
LogicalResult PeftParser::readRegexOrNames(const JsonNode &node,
                                           StringRef expected,
                                           std::optional<PythonRegex> &regex,
                                           std::vector<std::string> &names) {
  if (std::optional<StringRef> text = node.value->getAsString()) {
    FailureOr<PythonRegex> compiled = compileAt(node, *text);
    if (failed(compiled))
      return failure();
    regex = std::move(*compiled);
    return success();
  }
  if (!node.value->getAsArray())
    return ctx.failAt(node,
                      "expected " + expected + ", found " + describe(node));
  return readNames(node, names);
}

/// target_modules: a list of names (or dotted suffixes), a Python regex
/// that must match the whole module name, or "all-linear".
LogicalResult PeftParser::parseTargets(const JsonNode &root) {
  FailureOr<JsonNode> targets = ctx.required(root, "target_modules");
  if (failed(targets))
    return failure();
  std::optional<StringRef> text = targets->value->getAsString();
  if (text && text->equals_insensitive("all-linear")) {
    peft.targetKind = PeftAdapter::Targets::AllLinear;
    return success();
  }
  peft.targetKind =
      text ? PeftAdapter::Targets::Regex : PeftAdapter::Targets::List;
  return readRegexOrNames(*targets,
                          "a list of module names or a Python regular "
                          "expression (PEFT's defaults per architecture are "
                          "not known to atmoe)",
                          peft.targetRegex, peft.targetList);
}

/// exclude_modules: as target_modules, checked first.
LogicalResult PeftParser::parseExclude(const JsonNode &root) {
  std::optional<JsonNode> node = ctx.member(root, "exclude_modules");
  std::optional<StringRef> text =
      node ? node->value->getAsString() : std::nullopt;
  if (!node || node->isNull() || (text && text->empty()))
    return success();
  return readRegexOrNames(
      *node, "a list of module names or a Python regular expression",
      peft.excludeRegex, peft.excludeList);
}

/// layers_to_transform: an index or a list of them (an empty list selects
/// every layer, as in PEFT).
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
    if (indexes.empty())
      return success();
  } else {
    FailureOr<int64_t> index =
        ctx.asInteger(*node, 0, "a non-negative layer index or a list of them");
    if (failed(index))
      return failure();
    indexes.push_back(*index);
  }
  // PEFT's LoraConfig refuses this combination when it is created.
  if (peft.targetKind != PeftAdapter::Targets::List)
    return ctx.failAt(*node, "not allowed when target_modules is a string "
                             "(PEFT refuses the combination)");
  peft.layers = std::move(indexes);
  return success();
}

/// layers_pattern: the name of the module list whose index is the layer
/// (a string or a list, each a Python regex); PEFT's default takes the last
/// `.<name>.<index>.` of the module name.
LogicalResult PeftParser::parseLayersPattern(const JsonNode &root) {
  std::optional<JsonNode> node = ctx.member(root, "layers_pattern");
  std::vector<std::string> patterns;
  if (node && !node->isNull()) {
    if (std::optional<StringRef> text = node->value->getAsString()) {
      if (!text->empty())
        patterns.push_back(text->str());
    } else if (failed(readNames(*node, patterns))) {
      return failure();
    }
    if (!patterns.empty() && !peft.layers)
      return ctx.failAt(*node, "needs layers_to_transform (PEFT refuses it "
                               "alone)");
  }
  if (patterns.empty()) {
    FailureOr<PythonRegex> regex =
        compileAt(node ? *node : root, R"(.*\.[^.]*\.(\d+)\.)");
    if (failed(regex))
      return failure();
    peft.layerIndexPatterns.push_back(std::move(*regex));
    return success();
  }
  for (const std::string &pattern : patterns) {
    FailureOr<PythonRegex> regex =
        compileAt(*node, R"(.*\.)" + pattern + R"(\.(\d+)\.)");
    if (failed(regex))
      return failure();
    peft.layerIndexPatterns.push_back(std::move(*regex));
  }
  return success();
}

/// rank_pattern / alpha_pattern: per-module overrides; the first key (in
/// file order) for which `(.*\.)?(key)$` matches the module name wins.
LogicalResult PeftParser::parsePatterns(const JsonNode &root) {
  for (StringRef field : {"rank_pattern", "alpha_pattern"}) {
    std::optional<JsonNode> patterns = ctx.member(root, field);
    if (!patterns || patterns->isNull())
      continue;
    if (failed(ctx.asObject(*patterns)))
      return failure();
    for (const auto &[key, entry] : ctx.members(*patterns)) {
      FailureOr<PythonRegex> regex =
          compileAt(entry, R"((.*\.)?()" + key + ")$");
      if (failed(regex))
        return failure();
      if (field == "rank_pattern") {
        FailureOr<int64_t> value = ctx.asPositiveInteger(entry);
        if (failed(value))
          return failure();
        peft.rankPattern.push_back({key, std::move(*regex), *value});
      } else {
        FailureOr<double> value = ctx.asFinite(entry);
        if (failed(value))
          return failure();
        peft.alphaPattern.push_back({key, std::move(*regex), *value});
      }
    }
  }
  return success();
}

/// modules_to_save: modules PEFT trains in full; those the model lacks
/// (lm_head, a classifier) are ignored, one of its projections is refused
/// when it is selected.
LogicalResult PeftParser::parseModulesToSave(const JsonNode &root) {
  std::optional<JsonNode> node = ctx.member(root, "modules_to_save");
  if (!node || node->isNull())
    return success();
  std::vector<std::string> names;
  if (failed(readNames(*node, names)))
    return failure();
  for (const std::string &name : names) {
    FailureOr<PythonRegex> regex =
        compileAt(*node, "(^|.*\\.)" + name + "($|\\..*)");
    if (failed(regex))
      return failure();
    peft.modulesToSave.push_back(std::move(*regex));
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

//===----------------------------------------------------------------------===//
// PEFT's selection of modules
//===----------------------------------------------------------------------===//

/// Matches `regex` against `module`, failing at the adapter's config.
FailureOr<std::optional<std::string>>
matchModule(ImportContext &ctx, const PeftAdapter &peft, StringRef field,
            const PythonRegex &regex, StringRef module, bool whole,
            unsigned group = 0) {
  llvm::Expected<std::optional<std::string>> match =
      whole ? [&]() -> llvm::Expected<std::optional<std::string>> {
    llvm::Expected<bool> full = regex.fullMatch(module);
    if (!full)
      return full.takeError();
    return *full ? std::optional<std::string>("") : std::nullopt;
  }()
      : regex.matchAtStart(module, group);
  if (!match)
    return ctx.failAt(*peft.config, field,
                      "pattern " + quoted(regex.pattern()) + ": " +
                          llvm::toString(match.takeError()));
  return std::move(*match);
}

/// PEFT's rule for a list: the exact module name or a dotted suffix of it.
bool listNames(ArrayRef<std::string> names, StringRef module) {
  return llvm::any_of(names, [&](const std::string &name) {
    return module == name || module.ends_with("." + name);
  });
}

/// Whether target_modules, exclude_modules and layers_to_transform select
/// `module` (PEFT's check_target_module_exists, in its order).
FailureOr<bool> isTargeted(ImportContext &ctx, const PeftAdapter &peft,
                           StringRef module) {
  if (peft.excludeRegex) {
    auto excluded = matchModule(ctx, peft, "exclude_modules",
                                *peft.excludeRegex, module, /*whole=*/true);
    if (failed(excluded) || excluded->has_value())
      return failed(excluded) ? FailureOr<bool>(failure()) : false;
  }
  if (listNames(peft.excludeList, module))
    return false;
  switch (peft.targetKind) {
  case PeftAdapter::Targets::AllLinear:
    return true;
  case PeftAdapter::Targets::Regex: {
    auto found = matchModule(ctx, peft, "target_modules", *peft.targetRegex,
                             module, /*whole=*/true);
    return failed(found) ? FailureOr<bool>(failure()) : found->has_value();
  }
  case PeftAdapter::Targets::List:
    break;
  }
  if (llvm::is_contained(peft.targetList, module))
    return true;
  if (!listNames(peft.targetList, module))
    return false;
  if (!peft.layers)
    return true;
  for (const PythonRegex &pattern : peft.layerIndexPatterns) {
    auto index = matchModule(ctx, peft, "layers_pattern", pattern, module,
                             /*whole=*/false, 1);
    if (failed(index))
      return failure();
    int64_t layer;
    if (index->has_value() && !StringRef(**index).getAsInteger(10, layer))
      return llvm::is_contained(*peft.layers, layer);
  }
  return false;
}

/// The first rank_pattern / alpha_pattern entry matching `module`.
template <typename T>
FailureOr<std::optional<T>>
patternValue(ImportContext &ctx, const PeftAdapter &peft, StringRef field,
             ArrayRef<PeftPattern<T>> patterns, StringRef module) {
  for (const PeftPattern<T> &pattern : patterns) {
    auto match = matchModule(ctx, peft, (field + "." + pattern.key).str(),
                             pattern.regex, module, /*whole=*/false);
    if (failed(match))
      return failure();
    if (match->has_value())
      return std::optional<T>(pattern.value);
  }
  return std::optional<T>();
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

std::string importer::peftModuleName(const ImportContext &ctx,
                                     const PeftAdapter &peft, int64_t layer,
                                     StringRef projection) {
  // Prefer the module path the adapter file actually uses (self_attn, mlp,
  // ...), without the PEFT wrapper prefix.
  auto it = peft.modules.find({layer, projection.str()});
  if (it != peft.modules.end() && it->second.size() == 1) {
    StringRef name = it->second.front();
    name.consume_front("base_model.model.");
    return name.str();
  }
  // Else the base checkpoint's module name, or Llama's attention.
  if (ctx.base) {
    std::string name = baseTensorName(*ctx.base, layer, projection, "");
    if (!name.empty())
      return name.substr(0, name.size() - 1);
  }
  return ("model.layers." + Twine(layer) + ".self_attn." + projection).str();
}

FailureOr<std::optional<PeftRankAlpha>>
importer::selectPeftModule(ImportContext &ctx, PeftAdapter &peft, int64_t layer,
                           StringRef projection) {
  std::pair<int64_t, std::string> key{layer, projection.str()};
  auto cached = peft.selection.find(key);
  if (cached != peft.selection.end())
    return cached->second;
  std::string module = peftModuleName(ctx, peft, layer, projection);
  for (const PythonRegex &saved : peft.modulesToSave) {
    auto match = matchModule(ctx, peft, "modules_to_save", saved, module,
                             /*whole=*/false);
    if (failed(match))
      return failure();
    // PEFT would replace the projection by a fully trained copy.
    if (match->has_value())
      return ctx.failAt(*peft.config, "modules_to_save",
                        "names " + quoted(module) +
                            ", a projection of this model: PEFT replaces it "
                            "by a trained copy, which atmoe does not support");
  }
  FailureOr<bool> targeted = isTargeted(ctx, peft, module);
  if (failed(targeted))
    return failure();
  std::optional<PeftRankAlpha> result;
  if (*targeted) {
    auto rank = patternValue<int64_t>(ctx, peft, "rank_pattern",
                                      peft.rankPattern, module);
    auto alpha = patternValue<double>(ctx, peft, "alpha_pattern",
                                      peft.alphaPattern, module);
    if (failed(rank) || failed(alpha))
      return failure();
    result =
        PeftRankAlpha{rank->value_or(peft.rank), alpha->value_or(peft.alpha)};
    // rsLoRA scales by alpha / sqrt(r); the IR's scale is alpha / r.
    if (peft.rslora)
      result->alpha *= std::sqrt(static_cast<double>(result->rank));
  }
  peft.selection[key] = result;
  return result;
}

/// The suffixes PEFT gives a module's tensors; the magnitude vector is
/// saved without ".weight" by current PEFT, with it by some converters.
static constexpr StringLiteral kMagnitudeSuffixes[] = {
    ".lora_magnitude_vector", ".lora_magnitude_vector.weight"};

/// One tensor of `module` in the adapter file, checked against `shape`;
/// `suffixes` are the names it may have (exactly one must exist).
static FailureOr<TensorArg>
findModuleTensor(ImportContext &ctx, Location loc, const ExpertDef &expert,
                 const ProjectionDef &projection, StringRef module,
                 ArrayRef<StringLiteral> suffixes, ArrayRef<int64_t> shape,
                 StringRef what, std::string canonical) {
  const PeftAdapter &peft = *expert.peft;
  const atmoe_rt::TensorInfo *info = nullptr;
  std::string source;
  for (StringRef suffix : suffixes) {
    std::string name = (module + suffix).str();
    const atmoe_rt::TensorInfo *found = peft.weights.file->lookup(name);
    if (found && info)
      return ctx.fail(loc, peft.weights.display + ": tensors " +
                               quoted(source) + " and " + quoted(name) +
                               " both hold the " + what.str() + " of " +
                               projection.path);
    if (found)
      std::tie(info, source) = std::make_pair(found, name);
  }
  if (!info)
    return ctx.fail(loc, peft.weights.display + ": tensor " +
                             quoted((module + suffixes.front()).str()) +
                             " not found (adapter " + quoted(expert.name) +
                             " of " + projection.path + ")");
  if (failed(checkTensor(ctx, loc, peft.weights, *info, shape,
                         (what + " of " + projection.path).str())))
    return failure();
  return TensorArg{std::move(canonical), peft.weights.relative, source,
                   SmallVector<int64_t, 2>(shape), info->dtype};
}

LogicalResult importer::findPeftTensors(ImportContext &ctx,
                                        const ExpertDef &expert,
                                        const LayerDef &layer,
                                        const ProjectionDef &projection,
                                        int64_t rank, PeftTensors &tensors) {
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
  int64_t in = projection.inFeatures, out = projection.outFeatures;
  auto find = [&](ArrayRef<StringLiteral> suffixes, ArrayRef<int64_t> shape,
                  StringRef what, const std::string &canonical,
                  std::optional<TensorArg> &arg) {
    FailureOr<TensorArg> found = findModuleTensor(
        ctx, loc, expert, projection, module, suffixes, shape, what, canonical);
    if (failed(found))
      return failure();
    arg = std::move(*found);
    return success();
  };
  const std::string &name = expert.name;
  std::optional<TensorArg> loraA, loraB;
  if (failed(find({".lora_A.weight"}, {rank, in}, "rank x in_features",
                  prefix + "lora_A." + name + ".weight", loraA)) ||
      failed(find({".lora_B.weight"}, {out, rank}, "out_features x rank",
                  prefix + "lora_B." + name + ".weight", loraB)) ||
      (peft.loraBias &&
       failed(find({".lora_B.bias"}, {out}, "out_features (lora_B's bias)",
                   prefix + "lora_B." + name + ".bias", tensors.bias))) ||
      (peft.dora &&
       failed(find(kMagnitudeSuffixes, {out}, "out_features (DoRA magnitude)",
                   prefix + "lora_magnitude_vector." + name,
                   tensors.magnitude))))
    return failure();
  tensors.loraA = std::move(*loraA);
  tensors.loraB = std::move(*loraB);
  return success();
}

/// The module prefixes of `peft`'s tensors that PEFT's rules select for a
/// projection of the model.
static llvm::StringSet<> selectedModules(const PeftAdapter &peft) {
  llvm::StringSet<> selected;
  for (const auto &[key, prefixes] : peft.modules) {
    auto decision = peft.selection.find(key);
    if (decision != peft.selection.end() && decision->second)
      selected.insert_range(prefixes);
  }
  return selected;
}

/// Whether `name` is a tensor of the kinds `peft` uses (lora_A, lora_B, and
/// with its variants lora_B's bias or the magnitude) of a selected module.
static bool isUsedPeftTensor(const PeftAdapter &peft,
                             const llvm::StringSet<> &selected,
                             StringRef name) {
  StringRef module = name;
  bool known =
      module.consume_back(".lora_A.weight") ||
      module.consume_back(".lora_B.weight") ||
      (peft.loraBias && module.consume_back(".lora_B.bias")) ||
      (peft.dora && llvm::any_of(kMagnitudeSuffixes, [&](StringRef suffix) {
         return module.consume_back(suffix);
       }));
  return known && selected.contains(module);
}

LogicalResult importer::checkUnusedPeftTensors(ImportContext &ctx,
                                               const ImportOptions &options) {
  for (const ExpertDef &expert : ctx.experts) {
    if (!expert.peft)
      continue;
    const PeftAdapter &peft = *expert.peft;
    llvm::StringSet<> selected = selectedModules(peft);
    std::vector<std::string> unused;
    for (const atmoe_rt::TensorInfo &info : peft.weights.file->tensors())
      if (!isUsedPeftTensor(peft, selected, info.name))
        unused.push_back(quoted(info.name));
    if (unused.empty())
      continue;
    constexpr size_t kListed = 8;
    std::string list = llvm::join(ArrayRef(unused).take_front(kListed), ", ");
    if (unused.size() > kListed)
      list += ", and " + std::to_string(unused.size() - kListed) + " more";
    Location loc = ctx.modelLoc(expert.path);
    std::string message =
        peft.weights.display + ": " + std::to_string(unused.size()) +
        " tensor(s) of adapter " + quoted(expert.name) +
        " are used by no projection of the model (not selected by the "
        "adapter's config, or not a LoRA tensor it has): " +
        list;
    if (options.allowUnusedAdapterTensors) {
      emitWarning(loc) << message;
      continue;
    }
    return ctx.fail(loc, message + "; pass --allow-unused-adapter-tensors to "
                                   "compile without them");
  }
  return success();
}
