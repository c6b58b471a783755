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

/// PEFT's decision for every adapter and projection of the layer, made
/// now so that a pattern that cannot be matched is an error here.
LogicalResult selectPeftModules(ImportContext &ctx, const LayerDef &layer) {
  for (ExpertDef &expert : ctx.experts) {
    if (!expert.peft)
      continue;
    for (const ProjectionDef &projection : layer.projections)
      if (failed(selectPeftModule(ctx, *expert.peft, layer.index,
                                  projection.name)))
        return failure();
  }
  return success();
}

} // namespace

LogicalResult importer::resolveLayer(ImportContext &ctx, LayerDef &layer) {
  collectStructure(ctx, layer);
  if (failed(selectPeftModules(ctx, layer)))
    return failure();
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
    auto selected = peft->selection.find({layer.index, projection.name});
    assert(selected != peft->selection.end() &&
           "resolveLayer selects every projection's PEFT modules");
    if (!selected->second)
      return std::nullopt;
    rank = selected->second->rank;
    alpha = selected->second->alpha;
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
