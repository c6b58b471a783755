//===- Emit.cpp - The module of docs/ModelABI.md --------------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Per layer: the structure op (atmoe.layer with its groups, experts and
// shared expert) and `layer<i>_forward`, whose signature is the ABI: the
// projections' inputs, the router's input (and segment lengths), every
// weight as an argument that says where the runtime finds it, the
// projections' outputs and the routing weights. Every tensor is looked up
// and checked while the signature is planned, before any op is built.
//
//===----------------------------------------------------------------------===//

#include "ImporterInternals.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include <cstdio>

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::importer;

namespace {

/// Collects a function's arguments and results with their ABI attributes.
class SignatureBuilder {
public:
  explicit SignatureBuilder(MLIRContext &context) : builder(&context) {}

  unsigned addInput(Type type, StringRef name) {
    return add(type, {builder.getNamedAttr(AtmoeDialect::kInputAttrName,
                                           builder.getStringAttr(name))});
  }
  unsigned addTensor(const TensorArg &tensor) {
    Type type = RankedTensorType::get(tensor.shape, elementType(tensor.dtype));
    return add(type,
               {builder.getNamedAttr(AtmoeDialect::kTensorAttrName,
                                     builder.getStringAttr(tensor.tensor)),
                builder.getNamedAttr(AtmoeDialect::kFileAttrName,
                                     builder.getStringAttr(tensor.file)),
                builder.getNamedAttr(AtmoeDialect::kSourceAttrName,
                                     builder.getStringAttr(tensor.source))});
  }
  void addResult(Type type, StringRef name) {
    resultTypes.push_back(type);
    resultAttrs.push_back(builder.getDictionaryAttr(builder.getNamedAttr(
        AtmoeDialect::kOutputAttrName, builder.getStringAttr(name))));
  }

  SmallVector<Type> argTypes, resultTypes;
  SmallVector<DictionaryAttr> argAttrs, resultAttrs;

private:
  Type elementType(atmoe_rt::DType dtype) {
    switch (dtype) {
    case atmoe_rt::DType::F16:
      return builder.getF16Type();
    case atmoe_rt::DType::BF16:
      return builder.getBF16Type();
    case atmoe_rt::DType::I32:
      return builder.getI32Type();
    default:
      return builder.getF32Type();
    }
  }
  unsigned add(Type type, ArrayRef<NamedAttribute> attrs) {
    argTypes.push_back(type);
    argAttrs.push_back(builder.getDictionaryAttr(attrs));
    return argTypes.size() - 1;
  }
  Builder builder;
};

/// The positions of the router's tensor arguments (RouteOp's operands).
struct RouterArguments {
  std::optional<unsigned> groupWeight, groupBias, expertWeight, expertBias,
      projection, expertEmbedding;
};

/// One adapter of a projection, resolved.
struct AdapterPlan {
  size_t expert;
  int64_t rank;
  double alpha;
  unsigned loraA, loraB;
  /// PEFT's lora_bias (lora_B's bias) and DoRA magnitude vector.
  std::optional<unsigned> bias, magnitude;
};

/// The arguments one projection's op takes.
struct ProjectionPlan {
  unsigned input, weight;
  /// A GPTQ base weight: `weight` is qweight, then scales and zeros.
  GptqAttr quant;
  unsigned scales = 0;
  std::optional<unsigned> zeros;
  std::optional<unsigned> bias;
  std::vector<AdapterPlan> adapters;
  /// Whether an adapter other than the shared expert's uses the routing.
  bool hasRouted = false;
};

/// Emits one layer: plans the signature (checking every tensor), then
/// builds the ops.
class LayerEmitter {
public:
  LayerEmitter(ImportContext &ctx, OpBuilder &builder, LayerDef &layer)
      : ctx(ctx), builder(builder), layer(layer), sig(ctx.context),
        plans(layer.projections.size()),
        name(("layer" + Twine(layer.index)).str()),
        routed(!layer.routed.empty()),
        perSequence(routed &&
                    layer.router.granularity == Granularity::sequence) {}

  LogicalResult run();

private:
  LogicalResult planRouter();
  LogicalResult addRouterTensor(std::optional<unsigned> &slot, StringRef suffix,
                                ArrayRef<int64_t> shape, StringRef what,
                                bool optional);
  int64_t cosineProjectionSize(StringRef tensorName) const;
  LogicalResult planProjection(const ProjectionDef &projection,
                               ProjectionPlan &plan);
  LogicalResult planAdapter(const ProjectionDef &projection, size_t expert,
                            ProjectionPlan &plan);
  void emitStructure();
  Value emitRoute(Block *body);
  Value emitProjection(Block *body, const ProjectionDef &projection,
                       const ProjectionPlan &plan, Value routing);

  Type f32() { return builder.getF32Type(); }
  RankedTensorType rows(int64_t width) {
    return RankedTensorType::get({ShapedType::kDynamic, width}, f32());
  }
  Value argOf(Block *body, std::optional<unsigned> index) {
    return index ? body->getArgument(*index) : Value();
  }

  ImportContext &ctx;
  OpBuilder &builder;
  LayerDef &layer;
  SignatureBuilder sig;
  std::vector<ProjectionPlan> plans;
  std::string name;
  bool routed, perSequence;
  std::optional<unsigned> hArg, segmentsArg;
  RouterArguments routerArgs;
};

LogicalResult LayerEmitter::run() {
  for (auto [j, projection] : llvm::enumerate(layer.projections))
    plans[j].input = sig.addInput(rows(projection.inFeatures), projection.name);
  if (routed && failed(planRouter()))
    return failure();
  for (auto [j, projection] : llvm::enumerate(layer.projections))
    if (failed(planProjection(projection, plans[j])))
      return failure();
  for (const ProjectionDef &projection : layer.projections)
    sig.addResult(rows(projection.outFeatures), projection.name);
  if (routed)
    sig.addResult(rows(layer.routed.size()), "routing");

  // A layer without any expert has nothing to declare (and an empty
  // atmoe.layer does not verify): its projections are all atmoe.linear.
  if (routed || layer.shared)
    emitStructure();
  Location loc = ctx.modelLoc(layer.path);
  auto func = func::FuncOp::create(
      builder, loc, name + "_forward",
      builder.getFunctionType(sig.argTypes, sig.resultTypes));
  // All at once: setting them one by one rebuilds the whole array each time
  // (quadratic: 3 GB at 10,000 experts).
  func.setAllArgAttrs(sig.argAttrs);
  func.setAllResultAttrs(sig.resultAttrs);
  Block *body = func.addEntryBlock();
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(body);
  Value routing = routed ? emitRoute(body) : Value();
  SmallVector<Value> results;
  for (auto [j, projection] : llvm::enumerate(layer.projections))
    results.push_back(emitProjection(body, projection, plans[j], routing));
  if (routed)
    results.push_back(routing);
  func::ReturnOp::create(builder, loc, results);
  return success();
}

//===----------------------------------------------------------------------===//
// Planning the signature
//===----------------------------------------------------------------------===//

/// h, segments and the router's tensors, in RouteOp's operand order.
LogicalResult LayerEmitter::planRouter() {
  int64_t dHidden = *layer.hiddenSize;
  int64_t numExperts = layer.routed.size();
  int64_t numGroups = layer.groups.size();
  hArg = sig.addInput(rows(dHidden), "h");
  if (perSequence)
    segmentsArg = sig.addInput(
        RankedTensorType::get({ShapedType::kDynamic}, builder.getI64Type()),
        "segments");
  RouterKind kind = layer.router.kind;
  RouterArguments &args = routerArgs;
  if (kind == RouterKind::grouped_softmax &&
      (failed(addRouterTensor(args.groupWeight, "group.weight",
                              {numGroups, dHidden}, "groups x hidden_size",
                              false)) ||
       failed(addRouterTensor(args.groupBias, "group.bias", {numGroups},
                              "groups", true))))
    return failure();
  if (kind != RouterKind::cosine)
    return failure(failed(addRouterTensor(args.expertWeight, "expert.weight",
                                          {numExperts, dHidden},
                                          "experts x hidden_size", false)) ||
                   failed(addRouterTensor(args.expertBias, "expert.bias",
                                          {numExperts}, "experts", true)));
  std::string prefix = "layers." + std::to_string(layer.index) + ".router.";
  int64_t dProj = cosineProjectionSize(prefix + "proj.weight");
  return failure(
      failed(addRouterTensor(args.projection, "proj.weight", {dProj, dHidden},
                             "projection size x hidden_size", false)) ||
      failed(addRouterTensor(args.expertEmbedding, "expert_embedding",
                             {numExperts, dProj}, "experts x projection size",
                             false)));
}

LogicalResult LayerEmitter::addRouterTensor(std::optional<unsigned> &slot,
                                            StringRef suffix,
                                            ArrayRef<int64_t> shape,
                                            StringRef what, bool optional) {
  std::string tensorName =
      "layers." + std::to_string(layer.index) + ".router." + suffix.str();
  std::string userPath =
      layer.router.path.empty() ? layer.path : layer.router.path;
  TensorArg arg;
  bool found = false;
  if (failed(findTensor(ctx, tensorName, userPath, shape,
                        (what + " of " + layer.path).str(), arg, optional,
                        &found)))
    return failure();
  if (found)
    slot = sig.addTensor(arg);
  return success();
}

/// d_p of a cosine router is not in model.json: the projection tensor's row
/// count defines it (1 when there is none; findTensor then reports it).
int64_t LayerEmitter::cosineProjectionSize(StringRef tensorName) const {
  for (const WeightFile &file : ctx.weightFiles)
    if (const atmoe_rt::TensorInfo *info = file.file->lookup(tensorName))
      return info->shape.size() == 2 && info->shape[0] > 0 ? info->shape[0] : 1;
  return 1;
}

/// The base weight, bias and adapters of one projection.
LogicalResult LayerEmitter::planProjection(const ProjectionDef &projection,
                                           ProjectionPlan &plan) {
  TensorArg arg;
  if (projection.quant) {
    QuantizedTensors quantized;
    if (failed(findQuantizedTensors(ctx, layer, projection, quantized)))
      return failure();
    plan.quant = quantized.attr;
    plan.weight = sig.addTensor(quantized.qweight);
    plan.scales = sig.addTensor(quantized.scales);
    if (quantized.zeros)
      plan.zeros = sig.addTensor(*quantized.zeros);
  } else {
    if (failed(findBaseTensor(
            ctx, layer, projection, "weight",
            {projection.outFeatures, projection.inFeatures},
            "out_features x in_features of " + projection.path, arg)))
      return failure();
    plan.weight = sig.addTensor(arg);
  }
  bool hasBias = projection.bias;
  if (projection.bias || projection.biasIfPresent) {
    if (failed(findBaseTensor(ctx, layer, projection, "bias",
                              {projection.outFeatures},
                              "out_features of " + projection.path, arg,
                              /*optional=*/projection.biasIfPresent, &hasBias)))
      return failure();
    if (hasBias)
      plan.bias = sig.addTensor(arg);
  }
  std::vector<size_t> candidates = layer.routed;
  if (layer.shared)
    candidates.push_back(ctx.expertIndex.lookup(layer.shared->name));
  for (size_t e : candidates)
    if (failed(planAdapter(projection, e, plan)))
      return failure();
  return success();
}

/// Expert `e`'s adapter of `projection`, if it has one.
LogicalResult LayerEmitter::planAdapter(const ProjectionDef &projection,
                                        size_t e, ProjectionPlan &plan) {
  const ExpertDef &expert = ctx.experts[e];
  std::optional<std::pair<int64_t, double>> rankAlpha =
      adapterRankAlpha(expert, layer, projection);
  if (!rankAlpha)
    return success();
  auto [rank, alpha] = *rankAlpha;
  if (!LoraAttr::isScaleFiniteF32(alpha, rank)) {
    char scale[64];
    std::snprintf(scale, sizeof(scale), "%g / %lld", alpha, (long long)rank);
    return ctx.failAtModel(expert.path, "expert " + quoted(expert.name) +
                                            " on " + projection.path +
                                            ": the scale alpha / r = " + scale +
                                            " does not fit in f32 (at most "
                                            "3.4e38)");
  }
  PeftTensors tensors;
  std::string prefix =
      "layers." + std::to_string(layer.index) + "." + projection.name + ".";
  std::string what = " of " + projection.path + " expert " + expert.name;
  if (expert.peft
          ? failed(
                findPeftTensors(ctx, expert, layer, projection, rank, tensors))
          : failed(findTensor(ctx, prefix + "lora_A." + expert.name + ".weight",
                              projection.path, {rank, projection.inFeatures},
                              "rank x in_features" + what, tensors.loraA)) ||
                failed(findTensor(
                    ctx, prefix + "lora_B." + expert.name + ".weight",
                    projection.path, {projection.outFeatures, rank},
                    "out_features x rank" + what, tensors.loraB)))
    return failure();
  auto addOptional = [&](const std::optional<TensorArg> &tensor) {
    return tensor ? std::optional<unsigned>(sig.addTensor(*tensor))
                  : std::nullopt;
  };
  unsigned loraA = sig.addTensor(tensors.loraA);
  unsigned loraB = sig.addTensor(tensors.loraB);
  plan.adapters.push_back({e, rank, alpha, loraA, loraB,
                           addOptional(tensors.bias),
                           addOptional(tensors.magnitude)});
  if (!layer.shared || expert.name != layer.shared->name)
    plan.hasRouted = true;
  return success();
}

//===----------------------------------------------------------------------===//
// Building the ops
//===----------------------------------------------------------------------===//

/// atmoe.layer with its groups, experts and shared expert.
void LayerEmitter::emitStructure() {
  auto layerOp =
      LayerOp::create(builder, ctx.modelLoc(layer.path), name, StringAttr());
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(&layerOp.getBody().emplaceBlock());
  for (const LayerGroup &kept : layer.groups) {
    const GroupDef &group = ctx.groups[kept.group];
    auto groupOp =
        ExpertGroupOp::create(builder, ctx.modelLoc(group.path), group.name);
    OpBuilder::InsertionGuard innerGuard(builder);
    builder.setInsertionPointToStart(&groupOp.getBody().emplaceBlock());
    for (size_t e : kept.experts) {
      size_t position = llvm::find(group.experts, e) - group.experts.begin();
      LoraExpertOp::create(builder, ctx.modelLoc(group.expertPaths[position]),
                           ctx.experts[e].name);
    }
  }
  if (layer.shared)
    SharedExpertOp::create(builder, ctx.modelLoc(layer.shared->path),
                           layer.shared->name,
                           llvm::APFloat(layer.shared->lambda));
}

Value LayerEmitter::emitRoute(Block *body) {
  const RouterConfig &router = layer.router;
  MLIRContext *mlirContext = &ctx.context;
  SmallVector<int64_t> groupSizes;
  for (const LayerGroup &kept : layer.groups)
    groupSizes.push_back(static_cast<int64_t>(kept.experts.size()));
  auto optionalF64 = [&](std::optional<double> value) {
    return value ? builder.getF64FloatAttr(*value) : FloatAttr();
  };
  auto optionalI64 = [&](std::optional<int64_t> value) {
    return value ? builder.getI64IntegerAttr(*value) : IntegerAttr();
  };
  bool grouped = router.kind == RouterKind::grouped_softmax;
  const RouterArguments &args = routerArgs;
  return RouteOp::create(
      builder, ctx.modelLoc(router.path.empty() ? layer.path : router.path),
      rows(layer.routed.size()), RouterKindAttr::get(mlirContext, router.kind),
      FlatSymbolRefAttr::get(mlirContext, name),
      grouped ? builder.getDenseI64ArrayAttr(groupSizes) : DenseI64ArrayAttr(),
      builder.getF64FloatAttr(router.temperature),
      optionalF64(router.groupTemperature),
      optionalF64(router.expertTemperature), optionalI64(router.topK),
      optionalI64(router.topKGroups), argOf(body, hArg),
      argOf(body, args.groupWeight), argOf(body, args.groupBias),
      argOf(body, args.expertWeight), argOf(body, args.expertBias),
      argOf(body, args.projection), argOf(body, args.expertEmbedding));
}

/// atmoe.linear for a projection without adapters, else atmoe.lora_linear.
Value LayerEmitter::emitProjection(Block *body, const ProjectionDef &projection,
                                   const ProjectionPlan &plan, Value routing) {
  MLIRContext *mlirContext = &ctx.context;
  Location loc = ctx.modelLoc(projection.path);
  Type outType = rows(projection.outFeatures);
  Value input = body->getArgument(plan.input);
  Value weight = body->getArgument(plan.weight);
  if (plan.quant)
    weight = DequantizeOp::create(
        builder, loc,
        RankedTensorType::get({projection.outFeatures, projection.inFeatures},
                              f32()),
        weight, body->getArgument(plan.scales), argOf(body, plan.zeros),
        plan.quant);
  Value bias = argOf(body, plan.bias);
  if (plan.adapters.empty())
    return LinearOp::create(builder, loc, outType, input, weight, bias);
  SmallVector<Attribute> adapters;
  SmallVector<Value> loraA, loraB, loraBias, doraScale;
  for (const AdapterPlan &adapter : plan.adapters) {
    auto attr = LoraAttr::get(
        mlirContext,
        FlatSymbolRefAttr::get(mlirContext, ctx.experts[adapter.expert].name),
        adapter.rank, llvm::APFloat(adapter.alpha), adapter.bias.has_value(),
        adapter.magnitude.has_value());
    adapters.push_back(attr);
    loraA.push_back(body->getArgument(adapter.loraA));
    loraB.push_back(body->getArgument(adapter.loraB));
    if (adapter.bias)
      loraBias.push_back(body->getArgument(*adapter.bias));
    if (adapter.magnitude)
      doraScale.push_back(DoraScaleOp::create(
          builder, loc, RankedTensorType::get({projection.outFeatures}, f32()),
          weight, loraA.back(), loraB.back(),
          body->getArgument(*adapter.magnitude),
          builder.getF64FloatAttr(attr.getScale())));
  }
  // Routing (and, per sequence, the segments) only where a routed adapter
  // uses it; a shared-only projection needs neither.
  bool useRouting = plan.hasRouted;
  bool useSegments = useRouting && perSequence;
  return LoraLinearOp::create(
      builder, loc, outType, input, weight, bias, loraA, loraB, loraBias,
      doraScale, useRouting ? routing : Value(),
      useSegments ? argOf(body, segmentsArg) : Value(),
      FlatSymbolRefAttr::get(mlirContext, name), builder.getArrayAttr(adapters),
      useSegments ? GranularityAttr::get(mlirContext, Granularity::sequence)
                  : GranularityAttr());
}

} // namespace

LogicalResult importer::emitLayer(ImportContext &ctx, OpBuilder &builder,
                                  LayerDef &layer) {
  return LayerEmitter(ctx, builder, layer).run();
}
