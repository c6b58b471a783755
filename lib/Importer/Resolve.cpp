//===- Resolve.cpp - Per layer and projection: experts, router, ranks -----===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The top-level experts, groups, shared expert and router are defaults that a
// layer, and within a layer a projection, may override (SPEC §3). This file
// works out what holds where: the layer's groups restricted to its experts,
// its shared expert, the router settings that only make sense together with
// them, and each adapter's rank and alpha.
//
//===----------------------------------------------------------------------===//

#include "ImporterInternals.h"

#include "llvm/Support/Regex.h"

#include <cmath>

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::importer;

namespace {

/// The layer's groups (top-level order, empty ones dropped), routed experts
/// and shared expert, after its removals.
void collectStructure(ImportContext &ctx, LayerDef &layer) {
  auto removedInLayer = [&](size_t expert) {
    auto it = layer.overrides.find(ctx.experts[expert].name);
    return it != layer.overrides.end() && it->second.removed;
  };
  for (auto [g, group] : llvm::enumerate(ctx.groups)) {
    LayerGroup kept{g, {}};
    for (size_t expert : group.experts)
      if (!removedInLayer(expert))
        kept.experts.push_back(expert);
    if (kept.experts.empty())
      continue;
    llvm::append_range(layer.routed, kept.experts);
    layer.groups.push_back(std::move(kept));
  }
  layer.shared = layer.hasSharedKey ? layer.sharedOverride : ctx.topShared;
  if (layer.shared &&
      removedInLayer(ctx.expertIndex.lookup(layer.shared->name)))
    layer.shared.reset();
}

/// Router settings that only some kinds take.
LogicalResult checkRouterKind(ImportContext &ctx, const LayerDef &layer) {
  const RouterConfig &router = layer.router;
  StringRef kindName = stringifyRouterKind(router.kind);
  bool grouped = router.kind == RouterKind::grouped_softmax;
  auto onlyGrouped = [&](const std::string &path, StringRef setting) {
    return ctx.failAtModel(path, setting +
                                     " is only allowed with router kind "
                                     "grouped_softmax, found " +
                                     kindName + " (in " + layer.path + ")");
  };
  if (grouped && router.topK)
    return ctx.failAtModel(router.topKPath,
                           "top_k is not allowed with router kind "
                           "grouped_softmax (in " +
                               layer.path + "); use top_k_groups");
  if (!grouped && router.topKGroups)
    return onlyGrouped(router.topKGroupsPath, "top_k_groups");
  if (!grouped && router.groupTemperature)
    return onlyGrouped(router.groupTemperaturePath, "group_temperature");
  if (!grouped && router.expertTemperature)
    return onlyGrouped(router.expertTemperaturePath, "expert_temperature");
  return success();
}

/// top_k and top_k_groups against what the layer has.
LogicalResult checkTopK(ImportContext &ctx, const LayerDef &layer) {
  const RouterConfig &router = layer.router;
  auto where = [&](const std::string &path) -> std::string {
    return path.empty() ? layer.path : path;
  };
  int64_t numExperts = static_cast<int64_t>(layer.routed.size());
  int64_t numGroups = static_cast<int64_t>(layer.groups.size());
  if (router.topK && *router.topK > numExperts)
    return ctx.failAtModel(where(router.topKPath),
                           "expected top_k <= " + Twine(numExperts) +
                               " (the routed experts of " + layer.path +
                               "), found " + Twine(*router.topK));
  if (router.topKGroups && *router.topKGroups > numGroups)
    return ctx.failAtModel(where(router.topKGroupsPath),
                           "expected top_k_groups <= " + Twine(numGroups) +
                               " (the groups of " + layer.path + "), found " +
                               Twine(*router.topKGroups));
  return success();
}

/// The rank and alpha a PEFT adapter gives `module`: r and lora_alpha unless
/// a rank_pattern or alpha_pattern key matches (the first, in file order).
std::pair<int64_t, double> peftRankAlpha(const PeftAdapter &peft,
                                         const std::string &module) {
  int64_t rank = peft.rank;
  double alpha = peft.alpha;
  auto matches = [&](const std::string &pattern) {
    return llvm::Regex("^(.*\\.)?(" + pattern + ")$").match(module);
  };
  for (const auto &[pattern, value] : peft.rankPattern)
    if (matches(pattern)) {
      rank = value;
      break;
    }
  for (const auto &[pattern, value] : peft.alphaPattern)
    if (matches(pattern)) {
      alpha = value;
      break;
    }
  // rsLoRA scales by alpha / sqrt(r); the IR's scale is alpha / r.
  if (peft.rslora)
    alpha *= std::sqrt(static_cast<double>(rank));
  return {rank, alpha};
}

} // namespace

LogicalResult importer::resolveLayer(ImportContext &ctx, LayerDef &layer) {
  collectStructure(ctx, layer);
  if (layer.routed.empty())
    return success();
  if (!layer.hiddenSize)
    return ctx.failAtModel(layer.path,
                           "missing required key 'hidden_size' (the router "
                           "input size of a layer with routed experts)");
  if (failed(checkRouterKind(ctx, layer)))
    return failure();
  return checkTopK(ctx, layer);
}

std::optional<std::pair<int64_t, double>>
importer::adapterRankAlpha(const ExpertDef &expert, const LayerDef &layer,
                           const ProjectionDef &projection) {
  int64_t rank = 0;
  double alpha = 0.0;
  if (const PeftAdapter *peft = expert.peft.get()) {
    if (!peftTargets(*peft, layer.index, projection.name))
      return std::nullopt;
    std::tie(rank, alpha) = peftRankAlpha(
        *peft, peftModuleName(*peft, layer.index, projection.name));
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
