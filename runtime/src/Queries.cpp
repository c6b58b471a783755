//===- Queries.cpp - What a compiled model holds --------------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "Model.h"
#include "Status.h"

#include "atmoe_rt/support/Text.h"

using namespace atmoe_rt;

atmoe_rt_status_t atmoe_rt_model_get_info(const atmoe_rt_model_t *model,
                                          const char **name,
                                          const char **target) {
  if (!model)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_get_info: model is NULL");
  if (name)
    *name = model->manifest.model.c_str();
  if (target)
    *target = model->manifest.target.c_str();
  return ATMOE_RT_OK;
}

atmoe_rt_status_t atmoe_rt_model_get_num_layers(const atmoe_rt_model_t *model,
                                                size_t *numLayers) {
  if (!model || !numLayers)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_get_num_layers: model or num_layers is NULL");
  *numLayers = model->manifest.layers.size();
  return ATMOE_RT_OK;
}

atmoe_rt_status_t atmoe_rt_model_get_process(const atmoe_rt_model_t *model,
                                             int *rank, int *numProcesses) {
  if (!model)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_get_process: model is NULL");
  if (rank)
    *rank = model->processes ? model->processes->rank() : 0;
  if (numProcesses)
    *numProcesses = model->processes ? model->processes->size() : 1;
  return ATMOE_RT_OK;
}

void atmoe_rt_model_abort_job(const atmoe_rt_model_t *model, int exitCode) {
  if (model && model->processes)
    model->processes->abort(exitCode);
}

atmoe_rt_status_t atmoe_rt_model_find_layer(const atmoe_rt_model_t *model,
                                            int64_t index, size_t *layer) {
  if (!model || !layer)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_model_find_layer: model or layer is NULL");
  const std::vector<Layer> &layers = model->manifest.layers;
  for (size_t position = 0; position < layers.size(); ++position) {
    if (layers[position].index == index) {
      *layer = position;
      return ATMOE_RT_OK;
    }
  }
  std::string known =
      joinComma(layers, [](const Layer &l) { return std::to_string(l.index); });
  return fail(ATMOE_RT_INVALID_ARGUMENT,
              model->path + ": no layer with index " + std::to_string(index) +
                  " (the model has layers " + known + ")");
}

atmoe_rt_status_t atmoe_rt_layer_get_index(const atmoe_rt_model_t *model,
                                           size_t layer, int64_t *index) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_get_index"))
    return status;
  if (!index)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_layer_get_index: index is NULL");
  *index = model->manifest.layers[layer].index;
  return ATMOE_RT_OK;
}

atmoe_rt_status_t
atmoe_rt_layer_get_num_projections(const atmoe_rt_model_t *model, size_t layer,
                                   size_t *numProjections) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_get_num_projections"))
    return status;
  if (!numProjections)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_layer_get_num_projections: num_projections is NULL");
  *numProjections = model->manifest.layers[layer].projections.size();
  return ATMOE_RT_OK;
}

atmoe_rt_status_t atmoe_rt_layer_get_projection(const atmoe_rt_model_t *model,
                                                size_t layer, size_t projection,
                                                const char **name, int64_t *dIn,
                                                int64_t *dOut) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_get_projection"))
    return status;
  const Layer &l = model->manifest.layers[layer];
  if (projection >= l.projections.size())
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_layer_get_projection: projection position " +
                    std::to_string(projection) + " is out of range (" +
                    layerName(l) + " has " +
                    std::to_string(l.projections.size()) + " projections)");
  const Projection &p = l.projections[projection];
  if (name)
    *name = p.name.c_str();
  if (dIn)
    *dIn = p.dIn;
  if (dOut)
    *dOut = p.dOut;
  return ATMOE_RT_OK;
}

atmoe_rt_status_t atmoe_rt_layer_find_projection(const atmoe_rt_model_t *model,
                                                 size_t layer, const char *name,
                                                 size_t *projection) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_find_projection"))
    return status;
  if (!name || !projection)
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_layer_find_projection: name or projection is NULL");
  const Layer &l = model->manifest.layers[layer];
  for (size_t position = 0; position < l.projections.size(); ++position) {
    if (l.projections[position].name == name) {
      *projection = position;
      return ATMOE_RT_OK;
    }
  }
  std::string known =
      joinComma(l.projections, [](const Projection &p) { return p.name; });
  return fail(ATMOE_RT_INVALID_ARGUMENT, model->path + ": " + layerName(l) +
                                             " has no projection '" + name +
                                             "' (it has " + known + ")");
}

atmoe_rt_status_t atmoe_rt_layer_get_router(const atmoe_rt_model_t *model,
                                            size_t layer, int64_t *dH,
                                            size_t *numExperts,
                                            atmoe_rt_granularity_t *gran) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_get_router"))
    return status;
  const Layer &l = model->manifest.layers[layer];
  if (dH)
    *dH = l.routerWidth;
  if (numExperts)
    *numExperts = l.experts.size();
  if (gran)
    *gran = l.granularity == Granularity::Sequence
                ? ATMOE_RT_GRANULARITY_SEQUENCE
                : ATMOE_RT_GRANULARITY_TOKEN;
  return ATMOE_RT_OK;
}

atmoe_rt_status_t atmoe_rt_layer_get_expert_name(const atmoe_rt_model_t *model,
                                                 size_t layer, size_t expert,
                                                 const char **name) {
  if (atmoe_rt_status_t status =
          checkLayer(model, layer, "atmoe_rt_layer_get_expert_name"))
    return status;
  const Layer &l = model->manifest.layers[layer];
  if (!name || expert >= l.experts.size())
    return fail(ATMOE_RT_INVALID_ARGUMENT,
                "atmoe_rt_layer_get_expert_name: name is NULL or expert " +
                    std::to_string(expert) + " is out of range (" +
                    layerName(l) + " has " + std::to_string(l.experts.size()) +
                    " experts)");
  *name = l.experts[expert].c_str();
  return ATMOE_RT_OK;
}
