//===- HuggingFace.cpp - Base weights from a Hugging Face checkpoint -----===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// "base": {"huggingface": DIR, "modules": {...}} names a Hugging Face model
// directory: config.json gives the layer count and the projections' sizes
// where model.json omits them, and the base weights are read from the
// checkpoint's own files (model.safetensors, or the shards of
// model.safetensors.index.json) under their own names
// (model.layers.{i}.self_attn.q_proj.weight, ...): nothing is renamed or
// copied, and the runtime maps those files.
//
//===----------------------------------------------------------------------===//

#include "ImporterInternals.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::importer;

namespace {

/// Llama-style module names (Llama, Mistral, Qwen2, Gemma, ...).
constexpr std::pair<llvm::StringLiteral, llvm::StringLiteral>
    kStandardModules[] = {
        {"q_proj", "model.layers.{i}.self_attn.q_proj"},
        {"k_proj", "model.layers.{i}.self_attn.k_proj"},
        {"v_proj", "model.layers.{i}.self_attn.v_proj"},
        {"o_proj", "model.layers.{i}.self_attn.o_proj"},
        {"gate_proj", "model.layers.{i}.mlp.gate_proj"},
        {"up_proj", "model.layers.{i}.mlp.up_proj"},
        {"down_proj", "model.layers.{i}.mlp.down_proj"},
};

class BaseParser {
public:
  BaseParser(ImportContext &ctx, HuggingFaceBase &base)
      : ctx(ctx), base(base) {}

  LogicalResult parse(const JsonNode &node);

private:
  LogicalResult parseModules(const JsonNode &node);
  LogicalResult readConfig();
  LogicalResult readSize(const JsonNode &root, StringRef key, int64_t &size,
                         bool required);
  LogicalResult openCheckpoint(const JsonNode &node);
  LogicalResult openShards(const JsonNode &node, StringRef indexRelative);

  ImportContext &ctx;
  HuggingFaceBase &base;
};

LogicalResult BaseParser::parse(const JsonNode &node) {
  base.path = node.path;
  if (failed(ctx.asObject(node)) ||
      failed(ctx.checkKeys(node, {"huggingface", "modules"})))
    return failure();
  FailureOr<JsonNode> dirNode = ctx.required(node, "huggingface");
  if (failed(dirNode))
    return failure();
  FailureOr<std::string> dir = ctx.asRelativePath(*dirNode, "a directory");
  if (failed(dir))
    return failure();
  base.dir = *dir;
  for (const auto &[name, module] : kStandardModules)
    base.modules[name] = module.str();
  if (std::optional<JsonNode> modules = ctx.member(node, "modules"))
    if (failed(parseModules(*modules)))
      return failure();
  return failure(failed(readConfig()) || failed(openCheckpoint(*dirNode)));
}

/// {"projection": "module name with {i}"}: other architectures' names.
LogicalResult BaseParser::parseModules(const JsonNode &node) {
  if (failed(ctx.asObject(node)))
    return failure();
  for (const auto &[name, entry] : ctx.members(node)) {
    FailureOr<std::string> module = ctx.asName(entry);
    if (failed(module))
      return failure();
    if (!StringRef(*module).contains("{i}"))
      return ctx.failAt(entry, "expected a module name with '{i}' where the "
                               "layer index goes, found " +
                                   quoted(*module));
    base.modules[name] = *module;
  }
  return success();
}

LogicalResult BaseParser::readConfig() {
  std::string relative = joinPath(base.dir, "config.json");
  base.config =
      std::make_unique<JsonDocument>(joinPath(ctx.packageDir, relative));
  if (failed(base.config->load(ctx.context)))
    return failure();
  ctx.recordSource(relative, *base.config);
  JsonNode root{base.config.get(), &base.config->root(), ""};
  if (failed(ctx.asObject(root)))
    return failure();
  // A GPTQ checkpoint: its quantization_config is the model's top-level
  // "quantization" (model.json's, if any, overrides it key by key).
  if (std::optional<JsonNode> quantization =
          ctx.member(root, "quantization_config"))
    if (failed(parseQuantization(ctx, *quantization, ctx.topQuant)))
      return failure();
  if (failed(readSize(root, "hidden_size", base.hidden, true)) ||
      failed(readSize(root, "num_hidden_layers", base.numLayers, true)) ||
      failed(readSize(root, "intermediate_size", base.intermediate, false)) ||
      failed(readSize(root, "num_attention_heads", base.heads, false)) ||
      failed(readSize(root, "num_key_value_heads", base.kvHeads, false)) ||
      failed(readSize(root, "head_dim", base.headDim, false)))
    return failure();
  if (!base.kvHeads)
    base.kvHeads = base.heads;
  if (!base.headDim && base.heads) {
    if (base.hidden % base.heads)
      return ctx.failAt(root, "hidden_size (" + Twine(base.hidden) +
                                  ") is not a multiple of "
                                  "num_attention_heads (" +
                                  Twine(base.heads) + "): give head_dim");
    base.headDim = base.hidden / base.heads;
  }
  return success();
}

LogicalResult BaseParser::readSize(const JsonNode &root, StringRef key,
                                   int64_t &size, bool required) {
  std::optional<JsonNode> node = ctx.member(root, key);
  if (!node || node->isNull()) {
    if (required)
      return ctx.failAt(root, "missing required key " + quoted(key));
    return success();
  }
  FailureOr<int64_t> value = ctx.asPositiveInteger(*node);
  if (failed(value))
    return failure();
  size = *value;
  return success();
}

/// model.safetensors.index.json's shards, or model.safetensors.
LogicalResult BaseParser::openCheckpoint(const JsonNode &node) {
  std::string index = joinPath(base.dir, "model.safetensors.index.json");
  if (llvm::sys::fs::exists(joinPath(ctx.packageDir, index)))
    return openShards(node, index);
  return ctx.openWeightFile(node, joinPath(base.dir, "model.safetensors"),
                            ctx.weightFiles.emplace_back());
}

LogicalResult BaseParser::openShards(const JsonNode &node,
                                     StringRef indexRelative) {
  JsonDocument index(joinPath(ctx.packageDir, indexRelative));
  if (failed(index.load(ctx.context)))
    return failure();
  JsonNode root{&index, &index.root(), ""};
  if (failed(ctx.asObject(root)))
    return failure();
  FailureOr<JsonNode> map = ctx.required(root, "weight_map");
  if (failed(map) || failed(ctx.asObject(*map)))
    return failure();
  llvm::StringSet<> opened;
  for (const auto &[tensor, entry] : ctx.members(*map)) {
    FailureOr<std::string> shard = ctx.asRelativePath(entry, "a file name");
    if (failed(shard))
      return failure();
    base.shardOf[tensor] = joinPath(base.dir, *shard);
    if (!opened.insert(*shard).second)
      continue;
    if (failed(ctx.openWeightFile(entry, joinPath(base.dir, *shard),
                                  ctx.weightFiles.emplace_back())))
      return failure();
  }
  return success();
}

} // namespace

LogicalResult importer::parseHuggingFaceBase(ImportContext &ctx,
                                             const JsonNode &node) {
  ctx.base.emplace();
  return BaseParser(ctx, *ctx.base).parse(node);
}

std::optional<std::pair<int64_t, int64_t>>
importer::standardProjectionSizes(const HuggingFaceBase &base, StringRef name) {
  int64_t attention = base.heads * base.headDim;
  int64_t keyValue = base.kvHeads * base.headDim;
  std::optional<std::pair<int64_t, int64_t>> sizes;
  if (name == "q_proj")
    sizes = {base.hidden, attention};
  else if (name == "k_proj" || name == "v_proj")
    sizes = {base.hidden, keyValue};
  else if (name == "o_proj")
    sizes = {attention, base.hidden};
  else if (name == "gate_proj" || name == "up_proj")
    sizes = {base.hidden, base.intermediate};
  else if (name == "down_proj")
    sizes = {base.intermediate, base.hidden};
  if (sizes && (sizes->first <= 0 || sizes->second <= 0))
    return std::nullopt;
  return sizes;
}

std::string importer::baseTensorName(const HuggingFaceBase &base, int64_t layer,
                                     StringRef projection, StringRef suffix) {
  auto it = base.modules.find(projection);
  if (it == base.modules.end())
    return "";
  std::string name = it->second;
  for (size_t at; (at = name.find("{i}")) != std::string::npos;)
    name.replace(at, 3, std::to_string(layer));
  return name + "." + suffix.str();
}

LogicalResult
importer::findBaseTensor(ImportContext &ctx, const LayerDef &layer,
                         const ProjectionDef &projection, StringRef suffix,
                         ArrayRef<int64_t> shape, StringRef shapeWhat,
                         TensorArg &arg, bool optional, bool *found,
                         ArrayRef<atmoe_rt::DType> dtypes) {
  std::string canonical = "layers." + std::to_string(layer.index) + "." +
                          projection.name + "." + suffix.str();
  std::string name = projectionTensorName(ctx, layer, projection, suffix);
  if (name == canonical)
    return findTensor(ctx, canonical, projection.path, shape, shapeWhat, arg,
                      optional, found, dtypes);
  // A projection config.json made (model.json lists no layers) has no JSON
  // path of its own: name it by layer and projection.
  std::string what = shapeWhat.str();
  if (projection.path == ctx.base->path)
    what = shapeWhat.substr(0, shapeWhat.rfind(" of ")).str() + " of layer " +
           std::to_string(layer.index) + "'s " + projection.name + " (from " +
           joinPath(ctx.base->dir, "config.json") + ")";
  bool present = false;
  if (failed(findTensor(ctx, name, projection.path, shape, what, arg, optional,
                        &present, dtypes)))
    return failure();
  if (found)
    *found = present;
  if (!present)
    return success();
  auto shard = ctx.base->shardOf.find(name);
  if (!ctx.base->shardOf.empty() &&
      (shard == ctx.base->shardOf.end() || shard->second != arg.file))
    return ctx.failAtModel(
        projection.path,
        "tensor " + quoted(name) + " is in " + arg.file + ", but " +
            joinPath(ctx.base->dir, "model.safetensors.index.json") +
            (shard == ctx.base->shardOf.end()
                 ? " does not list it"
                 : " says it is in " + shard->second));
  arg.tensor = canonical;
  return success();
}

std::string importer::projectionTensorName(const ImportContext &ctx,
                                           const LayerDef &layer,
                                           const ProjectionDef &projection,
                                           StringRef suffix) {
  if (ctx.base) {
    std::string name =
        baseTensorName(*ctx.base, layer.index, projection.name, suffix);
    if (!name.empty())
      return name;
  }
  return "layers." + std::to_string(layer.index) + "." + projection.name + "." +
         suffix.str();
}

LogicalResult importer::defaultLayers(ImportContext &ctx,
                                      std::vector<LayerDef> &layers) {
  const HuggingFaceBase &base = *ctx.base;
  for (int64_t i = 0; i < base.numLayers; ++i) {
    LayerDef &layer = layers.emplace_back();
    layer.index = i;
    layer.path = base.path;
    layer.hiddenSize = base.hidden;
    layer.router = ctx.topRouter;
    layer.quant = ctx.topQuant;
    for (const auto &[name, module] : kStandardModules) {
      std::optional<std::pair<int64_t, int64_t>> sizes =
          standardProjectionSizes(base, name);
      if (!sizes)
        continue;
      ProjectionDef &projection = layer.projections.emplace_back();
      projection.name = name.str();
      projection.path = base.path;
      std::tie(projection.inFeatures, projection.outFeatures) = *sizes;
      projection.biasIfPresent = true;
      projection.quant = layer.quant;
    }
    if (failed(resolveLayer(ctx, layer)))
      return failure();
  }
  return success();
}
