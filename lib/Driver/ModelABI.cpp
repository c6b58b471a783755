//===- ModelABI.cpp - The manifest, read off the layer ABI ----------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// After the fusion passes the layer functions' signatures are the compiled
// model's ABI (docs/ModelABI.md): each argument and result says what it is
// with an atmoe.input / atmoe.tensor / atmoe.output attribute. This file
// turns them into the manifest's layers (runtime/support/Manifest.h) before
// bufferization drops the attributes.
//
//===----------------------------------------------------------------------===//

#include "DriverInternals.h"

#include "atmoe_rt/support/Names.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

using namespace mlir;
using namespace mlir::atmoe;
using atmoe_rt::Argument;
using atmoe_rt::ArgumentRole;

namespace {

/// The string attribute `key` of `attrs`, or "".
std::string stringAttr(DictionaryAttr attrs, StringRef key) {
  if (auto value = attrs ? attrs.getAs<StringAttr>(key) : StringAttr())
    return value.str();
  return "";
}

std::optional<atmoe_rt::ElementType> elementTypeOf(Type type) {
  using atmoe_rt::ElementType;
  if (type.isF32())
    return ElementType::F32;
  if (type.isF16())
    return ElementType::F16;
  if (type.isBF16())
    return ElementType::BF16;
  if (type.isInteger(32))
    return ElementType::I32;
  if (type.isInteger(64))
    return ElementType::I64;
  return std::nullopt;
}

/// The parts of a weight stacked (atmoe.concat_dim) or computed
/// (atmoe.dora_scale) at bind time (atmoe.parts).
LogicalResult describeParts(Location loc, DictionaryAttr attrs, ArrayAttr parts,
                            const Twine &what, Argument &info) {
  auto dim = attrs.getAs<IntegerAttr>(AtmoeDialect::kConcatDimAttrName);
  auto doraScale = attrs.getAs<FloatAttr>(AtmoeDialect::kDoraScaleAttrName);
  if (!dim && !doraScale)
    return emitError(loc) << what << " (" << info.name
                          << ") has atmoe.parts but neither atmoe.concat_dim "
                             "nor atmoe.dora_scale";
  if (dim)
    info.concatDim = dim.getInt();
  else
    info.doraScale = doraScale.getValueAsDouble();
  for (Attribute part : parts) {
    auto dict = dyn_cast<DictionaryAttr>(part);
    auto shape =
        dict ? dict.getAs<DenseI64ArrayAttr>("shape") : DenseI64ArrayAttr();
    Argument piece;
    piece.role = ArgumentRole::Weight;
    piece.name = stringAttr(dict, "tensor");
    piece.file = stringAttr(dict, "file");
    piece.source = stringAttr(dict, "source");
    if (!shape || piece.name.empty() || piece.file.empty() ||
        piece.source.empty())
      return emitError(loc)
             << what << " (" << info.name
             << "): each of atmoe.parts needs tensor, file, source, shape";
    llvm::append_range(piece.shape, shape.asArrayRef());
    info.parts.push_back(std::move(piece));
  }
  return success();
}

/// A weight split over `ranks` processes: the manifest gives the whole
/// stored shape, which the function sees a slice of.
void describeShard(DictionaryAttr attrs, int64_t ranks, Argument &info) {
  auto dim = attrs.getAs<IntegerAttr>(AtmoeDialect::kShardDimAttrName);
  if (!dim)
    return;
  info.shardDim = dim.getInt();
  info.shape[info.shardDim] *= ranks;
}

/// A weight in panels: the function sees [n / width, rows, width], the
/// manifest gives the stored shape ([rows, n] for a GPTQ qweight, panel
/// dimension 1; [n, rows] for a float weight, panel dimension 0).
LogicalResult describePanels(Location loc, DictionaryAttr attrs,
                             const Twine &what, Argument &info) {
  auto width = attrs.getAs<IntegerAttr>(AtmoeDialect::kPanelWidthAttrName);
  if (!width)
    return success();
  if (info.shape.size() != 3 || info.shape[2] != width.getInt())
    return emitError(loc) << what << " (" << info.name << ") has "
                          << AtmoeDialect::kPanelWidthAttrName
                          << " but is not [n / width, rows, width]";
  auto dim = attrs.getAs<IntegerAttr>(AtmoeDialect::kPanelDimAttrName);
  info.panelWidth = width.getInt();
  info.panelDim = dim ? dim.getInt() : 1;
  int64_t features = info.shape[0] * info.shape[2];
  info.shape = info.panelDim == 1
                   ? std::vector<int64_t>{info.shape[1], features}
                   : std::vector<int64_t>{features, info.shape[1]};
  return success();
}

/// One argument or result of a layer function.
FailureOr<Argument> describe(Location loc, Type type, DictionaryAttr attrs,
                             int64_t ranks, const Twine &what) {
  Argument info;
  auto tensor = dyn_cast<RankedTensorType>(type);
  std::optional<atmoe_rt::ElementType> element =
      tensor ? elementTypeOf(tensor.getElementType()) : std::nullopt;
  if (!element)
    return emitError(loc)
           << what << " must be a ranked f32, f16, bf16, i32 or i64 tensor";
  info.elementType = *element;
  for (int64_t extent : tensor.getShape())
    info.shape.push_back(ShapedType::isDynamic(extent) ? atmoe_rt::kDynamic
                                                       : extent);
  if (std::string name = stringAttr(attrs, AtmoeDialect::kInputAttrName);
      !name.empty()) {
    info.role = ArgumentRole::Input;
    info.name = name;
    return info;
  }
  if (std::string name = stringAttr(attrs, AtmoeDialect::kOutputAttrName);
      !name.empty()) {
    info.role = ArgumentRole::Output;
    info.name = name;
    return info;
  }
  info.role = ArgumentRole::Weight;
  info.name = stringAttr(attrs, AtmoeDialect::kTensorAttrName);
  if (info.name.empty())
    return emitError(loc)
           << what
           << " has no atmoe.input, atmoe.tensor or atmoe.output attribute "
              "(see docs/ModelABI.md)";
  describeShard(attrs, ranks, info);
  if (auto parts = attrs.getAs<ArrayAttr>(AtmoeDialect::kPartsAttrName)) {
    if (failed(describeParts(loc, attrs, parts, what, info)))
      return failure();
    return info;
  }
  info.file = stringAttr(attrs, AtmoeDialect::kFileAttrName);
  info.source = stringAttr(attrs, AtmoeDialect::kSourceAttrName);
  if (info.file.empty() || info.source.empty())
    return emitError(loc) << what << " (" << info.name
                          << ") needs atmoe.file and atmoe.source";
  if (failed(describePanels(loc, attrs, what, info)))
    return failure();
  return info;
}

/// The layer of one public function: its index and arguments in ABI order.
FailureOr<atmoe_rt::Layer> describeLayer(func::FuncOp func,
                                         int64_t defaultIndex, int64_t ranks) {
  atmoe_rt::Layer layer;
  layer.function = func.getSymName().str();
  layer.entry = std::string(atmoe_rt::kEntryPointPrefix) + layer.function;
  layer.index = defaultIndex;
  StringRef digits = func.getSymName();
  if (digits.consume_front("layer") && digits.consume_back("_forward"))
    (void)digits.getAsInteger(10, layer.index);
  if (auto index =
          func->getAttrOfType<IntegerAttr>(AtmoeDialect::kLayerIndexAttrName))
    layer.index = index.getInt();
  FunctionType type = func.getFunctionType();
  unsigned numInputs = type.getNumInputs();
  for (unsigned i = 0; i < numInputs + type.getNumResults(); ++i) {
    bool isResult = i >= numInputs;
    unsigned position = isResult ? i - numInputs : i;
    std::string what = (isResult ? "result #" : "argument #") +
                       std::to_string(position) + " of @" + layer.function;
    FailureOr<Argument> info = describe(
        func.getLoc(), isResult ? type.getResult(position) : type.getInput(i),
        isResult ? func.getResultAttrDict(position) : func.getArgAttrDict(i),
        ranks, what);
    if (failed(info))
      return failure();
    if (isResult != (info->role == ArgumentRole::Output))
      return emitError(func.getLoc())
             << what
             << (isResult ? " must be marked with atmoe.output"
                          : " is marked as an output");
    // Inputs and outputs are named after projections, which name files.
    if (info->role != ArgumentRole::Weight)
      if (std::string problem = atmoe_rt::plainNameProblem(info->name);
          !problem.empty())
        return emitError(func.getLoc())
               << what << ": name '" << atmoe_rt::escapeName(info->name) << "' "
               << problem;
    if (info->role == ArgumentRole::Input && info->name == "segments")
      layer.granularity = atmoe_rt::Granularity::Sequence;
    layer.arguments.push_back(std::move(*info));
  }
  return layer;
}

} // namespace

LogicalResult driver::recordSources(Location loc, ModuleOp module,
                                    atmoe_rt::Manifest &manifest) {
  auto sources =
      module->getAttrOfType<DictionaryAttr>(AtmoeDialect::kSourcesAttrName);
  if (!sources)
    return success();
  for (NamedAttribute file : sources) {
    std::string path = file.getName().str();
    atmoe_rt::Result<atmoe_rt::Json> content =
        atmoe_rt::parseJson(cast<StringAttr>(file.getValue()).getValue());
    if (!content || !atmoe_rt::isPackageRelative(path))
      return emitError(loc) << AtmoeDialect::kSourcesAttrName << ": entry '"
                            << path << "' is not a relative path with JSON text"
                            << (content ? "" : ": " + content.error());
    manifest.sources.push_back({path, std::move(*content)});
  }
  return success();
}

LogicalResult driver::checkDynamicRows(ModuleOp module) {
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isPrivate() || func.isExternal())
      continue;
    FunctionType type = func.getFunctionType();
    auto check = [&](Type valueType, DictionaryAttr attrs,
                     const Twine &what) -> LogicalResult {
      std::string name = stringAttr(attrs, AtmoeDialect::kInputAttrName);
      if (name.empty())
        name = stringAttr(attrs, AtmoeDialect::kOutputAttrName);
      auto tensor = dyn_cast<RankedTensorType>(valueType);
      if (name.empty() || !tensor || tensor.getRank() == 0 ||
          tensor.isDynamicDim(0))
        return success();
      return emitError(func.getLoc())
             << what << " of @" << func.getSymName() << " ('" << name
             << "') has a static leading dimension " << tensor.getDimSize(0)
             << "; layer inputs and outputs take any number of tokens or "
                "sequences, so it must be dynamic ('?')";
    };
    for (unsigned i = 0; i < type.getNumInputs(); ++i)
      if (failed(check(type.getInput(i), func.getArgAttrDict(i),
                       "argument #" + Twine(i))))
        return failure();
    for (unsigned i = 0; i < type.getNumResults(); ++i)
      if (failed(check(type.getResult(i), func.getResultAttrDict(i),
                       "result #" + Twine(i))))
        return failure();
  }
  return success();
}

llvm::StringMap<SmallVector<std::string>>
driver::collectExperts(ModuleOp module) {
  llvm::StringMap<SmallVector<std::string>> experts;
  for (auto func : module.getOps<func::FuncOp>())
    func.walk([&](RouteOp route) {
      if (auto structure = SymbolTable::lookupNearestSymbolFrom<LayerOp>(
              route, route.getLayerAttr())) {
        SmallVector<std::string> &names = experts[func.getSymName()];
        names.clear();
        for (LoraExpertOp expert : structure.getRoutedExperts())
          names.push_back(expert.getSymName().str());
      }
    });
  return experts;
}

FailureOr<atmoe_rt::Manifest> driver::describeLayers(
    ModuleOp module, const llvm::StringMap<SmallVector<std::string>> &experts) {
  atmoe_rt::Manifest manifest;
  if (auto ranks =
          module->getAttrOfType<IntegerAttr>(AtmoeDialect::kRanksAttrName))
    manifest.ranks = ranks.getInt();
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isPrivate() || func.isExternal())
      continue;
    FailureOr<atmoe_rt::Layer> layer =
        describeLayer(func, int64_t(manifest.layers.size()), manifest.ranks);
    if (failed(layer))
      return failure();
    auto it = experts.find(layer->function);
    if (it != experts.end())
      layer->experts.assign(it->second.begin(), it->second.end());
    manifest.layers.push_back(std::move(*layer));
  }
  if (manifest.layers.empty())
    return emitError(module.getLoc()) << "the input has no layer function";
  return manifest;
}

LogicalResult driver::markHostArguments(ModuleOp module,
                                        atmoe_rt::Manifest &manifest) {
  for (atmoe_rt::Layer &layer : manifest.layers) {
    auto func = module.lookupSymbol<LLVM::LLVMFuncOp>(layer.function);
    if (!func)
      return emitError(module.getLoc())
             << "lowered module lacks @" << layer.function;
    auto hostArguments = func->getAttrOfType<DenseI64ArrayAttr>(
        AtmoeDialect::kHostArgumentsAttrName);
    if (!hostArguments)
      continue;
    for (int64_t position : hostArguments.asArrayRef()) {
      if (position < 0 || position >= int64_t(layer.arguments.size()))
        return emitError(func.getLoc())
               << "internal error: atmoe.host_arguments names argument #"
               << position << " of " << layer.arguments.size();
      layer.arguments[position].inHostMemory = true;
    }
  }
  return success();
}
