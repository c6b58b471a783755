//===- Quantization.cpp - GPTQ base weights ---------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A base weight may be stored as a GPTQ checkpoint stores it (Hugging Face's
// "gptq" layout, as AutoGPTQ, GPTQModel and Transformers write it):
// `layers.{i}.{proj}.qweight`, `.qzeros`, `.scales` and an optional `.g_idx`,
// declared by a "quantization" object at top level, per layer or per
// projection (docs/Importer.md). Every inconsistency is one error located at
// the JSON value or tensor concerned.
//
//===----------------------------------------------------------------------===//

#include "ImporterInternals.h"

#include "atmoe_rt/support/JsonPath.h"

#include <cstring>

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::importer;
using atmoe_rt::DType;

namespace {

/// Keys of Transformers' quantization_config that only describe how the
/// weights were quantised, not how to read them: accepted and ignored.
constexpr StringLiteral kProcessOnlyKeys[] = {
    "damp_percent",
    "true_sequential",
    "static_groups",
    "dataset",
    "tokenizer",
    "model_name_or_path",
    "model_file_base_name",
    "batch_size",
    "pad_token_id",
    "cache_block_outputs",
    "use_exllama",
    "exllama_config",
    "use_cuda_fp16",
    "max_input_length",
    "backend",
    "module_name_preceding_first_block",
    "meta"};

constexpr StringLiteral kSemanticKeys[] = {
    "method",   "quant_method",     "bits", "group_size", "sym",
    "desc_act", "checkpoint_format"};

LogicalResult parseEntry(ImportContext &ctx, StringRef key,
                         const JsonNode &entry, QuantConfig &config) {
  if (key == "method" || key == "quant_method") {
    FailureOr<std::string> method = ctx.asString(entry);
    if (failed(method))
      return failure();
    if (*method != "gptq")
      return ctx.failAt(entry, "unknown quantization method " +
                                   quoted(*method) + " (expected \"gptq\")");
    return success();
  }
  if (key == "bits") {
    FailureOr<int64_t> bits = ctx.asInteger(entry, 1, "4 or 8");
    if (failed(bits))
      return failure();
    if (*bits != 4 && *bits != 8)
      return ctx.failAt(entry, "expected 4 or 8 bits, found " + Twine(*bits));
    config.bits = *bits;
    config.bitsPath = entry.path;
    return success();
  }
  if (key == "group_size") {
    FailureOr<int64_t> size =
        ctx.asInteger(entry, -1, "a positive group size or -1");
    if (failed(size))
      return failure();
    if (*size == 0)
      return ctx.failAt(entry, "expected a positive group size or -1, found 0");
    config.groupSize = *size;
    config.groupSizePath = entry.path;
    return success();
  }
  if (key == "sym") {
    FailureOr<bool> sym = ctx.asBool(entry);
    if (failed(sym))
      return failure();
    config.sym = *sym;
    return success();
  }
  if (key == "desc_act") {
    FailureOr<bool> descAct = ctx.asBool(entry);
    if (failed(descAct))
      return failure();
    if (*descAct)
      return ctx.failAt(entry, "act-order (desc_act: true) checkpoints are "
                               "not supported: their g_idx permutes the "
                               "groups; quantize with desc_act: false");
    return success();
  }
  // checkpoint_format
  FailureOr<std::string> format = ctx.asString(entry);
  if (failed(format))
    return failure();
  if (*format != "gptq" && *format != "gptq_v2")
    return ctx.failAt(entry, "unknown checkpoint format " + quoted(*format) +
                                 " (expected \"gptq\" or \"gptq_v2\")");
  config.zeroOffset = *format == "gptq" ? 1 : 0;
  return success();
}

} // namespace

LogicalResult importer::parseQuantization(ImportContext &ctx,
                                          const JsonNode &node,
                                          std::optional<QuantConfig> &config) {
  if (node.isNull()) {
    config.reset();
    return success();
  }
  SmallVector<StringRef> allowed(std::begin(kSemanticKeys),
                                 std::end(kSemanticKeys));
  allowed.append(std::begin(kProcessOnlyKeys), std::end(kProcessOnlyKeys));
  if (failed(ctx.asObject(node)) || failed(ctx.checkKeys(node, allowed)))
    return failure();
  QuantConfig parsed = config.value_or(QuantConfig());
  parsed.path = node.path;
  parsed.doc = node.doc;
  for (const auto &[key, entry] : ctx.members(node))
    if (llvm::is_contained(kSemanticKeys, key) &&
        failed(parseEntry(ctx, key, entry, parsed)))
      return failure();
  if (parsed.bits == 0)
    return ctx.failAt(node, "expected \"bits\" (4 or 8)");
  config = parsed;
  return success();
}

namespace {

/// Checks the sizes of `projection` against its quantisation; fills the
/// attribute.
LogicalResult checkSizes(ImportContext &ctx, const ProjectionDef &projection,
                         QuantizedTensors &tensors) {
  const QuantConfig &quant = *projection.quant;
  int64_t groupSize =
      quant.groupSize == -1 ? projection.inFeatures : quant.groupSize;
  StringRef groupPath =
      quant.groupSizePath.empty() ? StringRef(quant.path) : quant.groupSizePath;
  if (projection.inFeatures % groupSize != 0)
    return ctx.failAt(
        quant.doc ? *quant.doc : *ctx.model, groupPath,
        "group size " + Twine(groupSize) + " does not divide in_features " +
            Twine(projection.inFeatures) + " of " + projection.path);
  int64_t perWord = 32 / quant.bits;
  if (projection.inFeatures % perWord != 0)
    return ctx.failAtModel(projection.path + ".in_features",
                           "in_features " + Twine(projection.inFeatures) +
                               " is not a multiple of " + Twine(perWord) +
                               " (" + Twine(quant.bits) +
                               "-bit values per int32 word)");
  tensors.attr =
      GptqAttr::get(&ctx.context, quant.bits, groupSize, quant.zeroOffset);
  return success();
}

/// A g_idx must map input feature i to group i / group_size: the order
/// the kernels read groups in.
LogicalResult checkGroupIndex(ImportContext &ctx,
                              const ProjectionDef &projection,
                              const TensorArg &arg, int64_t groupSize) {
  const WeightFile *file = nullptr;
  for (const WeightFile &candidate : ctx.weightFiles)
    if (candidate.relative == arg.file)
      file = &candidate;
  const atmoe_rt::TensorInfo *info = file->file->lookup(arg.source);
  for (int64_t i = 0; i < projection.inFeatures; ++i) {
    int32_t group;
    std::memcpy(&group, info->data + i * sizeof(int32_t), sizeof(group));
    if (group != i / groupSize)
      return ctx.fail(ctx.modelLoc(projection.path),
                      file->display + ": tensor " + quoted(arg.source) +
                          ": g_idx[" + Twine(i) + "] is " + Twine(group) +
                          ", expected " + Twine(i / groupSize) +
                          " (i / group_size): act-order checkpoints are not "
                          "supported; quantize with desc_act: false");
  }
  return success();
}

} // namespace

LogicalResult importer::findQuantizedTensors(ImportContext &ctx,
                                             const LayerDef &layer,
                                             const ProjectionDef &projection,
                                             QuantizedTensors &tensors) {
  if (failed(checkSizes(ctx, projection, tensors)))
    return failure();
  const QuantConfig &quant = *projection.quant;
  int64_t bits = quant.bits, perWord = 32 / bits;
  int64_t groups = projection.inFeatures / tensors.attr.getGroupSize();
  int64_t in = projection.inFeatures, out = projection.outFeatures;
  std::string of = " of " + projection.path + " (" + Twine(bits).str() +
                   "-bit GPTQ, group size " +
                   Twine(tensors.attr.getGroupSize()).str() + ")";
  DType i32[] = {DType::I32};
  if (failed(findBaseTensor(ctx, layer, projection, "qweight",
                            {in / perWord, out},
                            "in_features * bits / 32 x out_features" + of,
                            tensors.qweight, false, nullptr, i32)) ||
      failed(findBaseTensor(ctx, layer, projection, "scales", {groups, out},
                            "groups x out_features" + of, tensors.scales)))
    return failure();
  bool found = false;
  TensorArg zeros;
  if (out % perWord == 0 &&
      failed(findBaseTensor(ctx, layer, projection, "qzeros",
                            {groups, out / perWord},
                            "groups x out_features * bits / 32" + of, zeros,
                            /*optional=*/quant.sym, &found, i32)))
    return failure();
  if (found)
    tensors.zeros = zeros;
  else if (!quant.sym)
    return ctx.failAtModel(
        projection.path,
        "tensor " +
            quoted(projectionTensorName(ctx, layer, projection, "qzeros")) +
            " is needed: out_features " + Twine(out) +
            " is not a multiple of " + Twine(perWord) +
            " and the quantization is asymmetric");
  TensorArg groupIndex;
  if (failed(findBaseTensor(ctx, layer, projection, "g_idx", {in},
                            "in_features" + of, groupIndex,
                            /*optional=*/true, &found, i32)))
    return failure();
  return found ? checkGroupIndex(ctx, projection, groupIndex,
                                 tensors.attr.getGroupSize())
               : success();
}
