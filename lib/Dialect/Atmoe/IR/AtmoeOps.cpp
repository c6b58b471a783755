//===- AtmoeOps.cpp - atmoe op verifiers and helpers ------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::atmoe;

/// True when both extents are static and differ: dynamic extents are checked
/// at run time by the runtime, not here.
static bool staticMismatch(int64_t lhs, int64_t rhs) {
  return !ShapedType::isDynamic(lhs) && !ShapedType::isDynamic(rhs) &&
         lhs != rhs;
}

static int64_t dimOf(Value value, unsigned dim) {
  return cast<RankedTensorType>(value.getType()).getDimSize(dim);
}

/// A symbol name as users write it: `@name`.
static FlatSymbolRefAttr symRef(StringAttr name) {
  return FlatSymbolRefAttr::get(name);
}

/// A double in its shortest round-trip form (`1.5`, not `1.500000e+00`).
static std::string numberStr(double value) {
  SmallString<16> text;
  llvm::APFloat(value).toString(text);
  return std::string(text);
}

/// Prints a dynamic extent as `?`.
static std::string extentStr(int64_t extent) {
  return ShapedType::isDynamic(extent) ? "?" : std::to_string(extent);
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

SmallVector<ExpertGroupOp, 4> LayerOp::getGroups() {
  if (getBody().empty())
    return {};
  return llvm::to_vector(getBody().front().getOps<ExpertGroupOp>());
}

SmallVector<LoraExpertOp, 4> LayerOp::getRoutedExperts() {
  SmallVector<LoraExpertOp, 4> experts;
  for (ExpertGroupOp group : getGroups())
    llvm::append_range(experts, group.getExperts());
  return experts;
}

SmallVector<int64_t> LayerOp::getGroupSizes() {
  return llvm::map_to_vector(getGroups(), [](ExpertGroupOp group) {
    return static_cast<int64_t>(group.getExperts().size());
  });
}

SharedExpertOp LayerOp::getSharedExpert() {
  if (getBody().empty())
    return {};
  auto shared = getBody().front().getOps<SharedExpertOp>();
  return shared.empty() ? SharedExpertOp() : *shared.begin();
}

llvm::StringMap<int64_t> LayerOp::getRoutedExpertColumns() {
  llvm::StringMap<int64_t> columns;
  for (auto [index, expert] : llvm::enumerate(getRoutedExperts()))
    columns.try_emplace(expert.getSymName(), static_cast<int64_t>(index));
  return columns;
}

LogicalResult LayerOp::verifyRegions() {
  if (getBody().empty() || getBody().front().empty())
    return emitOpError("expects at least one expert group or shared expert");

  // Each routed expert must be in exactly one group: remember where each name
  // was first seen.
  llvm::StringMap<ExpertGroupOp> groupOfExpert;
  SharedExpertOp shared;
  for (Operation &op : getBody().front()) {
    if (auto other = dyn_cast<SharedExpertOp>(op)) {
      if (shared) {
        InFlightDiagnostic diag = emitOpError("has two shared experts: ")
                                  << symRef(shared.getSymNameAttr()) << " and "
                                  << symRef(other.getSymNameAttr());
        diag.attachNote(shared.getLoc()) << "first shared expert declared here";
        return diag;
      }
      shared = other;
      continue;
    }
    auto group = dyn_cast<ExpertGroupOp>(op);
    if (!group)
      return emitOpError("expects only atmoe.expert_group and "
                         "atmoe.shared_expert ops in its body, found '")
             << op.getName() << "'";
    for (LoraExpertOp expert : group.getExperts()) {
      auto [it, inserted] =
          groupOfExpert.try_emplace(expert.getSymName(), group);
      if (inserted)
        continue;
      InFlightDiagnostic diag = emitOpError("expects expert ")
                                << symRef(expert.getSymNameAttr())
                                << " to be in exactly one group, but it is in "
                                << symRef(it->second.getSymNameAttr())
                                << " and " << symRef(group.getSymNameAttr());
      diag.attachNote(it->second.getLoc()) << "first group declared here";
      return diag;
    }
  }
  if (shared) {
    auto it = groupOfExpert.find(shared.getSymName());
    if (it != groupOfExpert.end()) {
      InFlightDiagnostic diag =
          emitOpError("expects shared expert ")
          << symRef(shared.getSymNameAttr()) << " to be in no group, but group "
          << symRef(it->second.getSymNameAttr()) << " routes it";
      diag.attachNote(it->second.getLoc()) << "group declared here";
      return diag;
    }
  }
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertGroupOp
//===----------------------------------------------------------------------===//

SmallVector<LoraExpertOp, 4> ExpertGroupOp::getExperts() {
  if (getBody().empty())
    return {};
  return llvm::to_vector(getBody().front().getOps<LoraExpertOp>());
}

LogicalResult ExpertGroupOp::verifyRegions() {
  if (getBody().empty() || getBody().front().empty())
    return emitOpError("expects group ")
           << symRef(getSymNameAttr()) << " to hold at least one expert";
  for (Operation &op : getBody().front())
    if (!isa<LoraExpertOp>(op))
      return emitOpError("expects only atmoe.lora_expert ops in group ")
             << symRef(getSymNameAttr()) << ", found '" << op.getName() << "'";
  return success();
}

//===----------------------------------------------------------------------===//
// SharedExpertOp
//===----------------------------------------------------------------------===//

LogicalResult SharedExpertOp::verify() {
  double lambda = getLambda().convertToDouble();
  if (!(lambda >= 0.0 && lambda <= 1.0))
    return emitOpError("expects lambda (")
           << numberStr(lambda) << ") of shared expert "
           << symRef(getSymNameAttr()) << " to be in [0, 1]";
  return success();
}

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

/// Resolves `layer` from `op` through the symbol table collection, reporting
/// a missing or wrongly typed symbol on `op`.
static FailureOr<LayerOp> resolveLayer(Operation *op, FlatSymbolRefAttr layer,
                                       SymbolTableCollection &symbolTable) {
  Operation *symbol = symbolTable.lookupNearestSymbolFrom(op, layer);
  auto layerOp = dyn_cast_or_null<LayerOp>(symbol);
  if (!layerOp)
    return op->emitOpError("expects ")
           << layer << " to reference an atmoe.layer";
  return layerOp;
}

/// Verifies what `atmoe.route` and `atmoe.normalize_routing` share: group
/// sizes against the kind and the expert count, temperatures and top-k.
/// Sets `numGroups` (kDynamic without groups).
template <typename OpTy>
static LogicalResult verifyRoutingSemantics(OpTy op, int64_t experts,
                                            int64_t &numGroups) {
  RouterKind kind = op.getKind();
  StringRef kindName = stringifyRouterKind(kind);
  bool grouped = kind == RouterKind::grouped_softmax;
  auto emitOpError = [&](const Twine &message) {
    return op.emitOpError(message);
  };
  std::optional<ArrayRef<int64_t>> groupSizes = op.getGroupSizes();
  numGroups = ShapedType::kDynamic;
  if (grouped && !groupSizes)
    return emitOpError("with kind grouped_softmax expects group sizes");
  if (!grouped && groupSizes)
    return emitOpError("with kind ")
           << kindName << " does not take group sizes";
  if (groupSizes) {
    numGroups = static_cast<int64_t>(groupSizes->size());
    int64_t total = 0;
    for (auto [index, size] : llvm::enumerate(*groupSizes)) {
      if (size <= 0)
        return emitOpError("expects group #")
               << index << " to hold at least one expert, got " << size;
      total += size;
    }
    if (staticMismatch(total, experts))
      return emitOpError("expects group sizes to sum to the number of "
                         "experts (")
             << experts << "), got " << total;
  }

  // Temperatures and top-k.
  auto checkTau = [&](std::optional<llvm::APFloat> tau,
                      StringRef name) -> LogicalResult {
    if (!tau)
      return success();
    double value = tau->convertToDouble();
    if (!(value > 0.0) || !std::isfinite(value))
      return emitOpError("expects ")
             << name << " (" << numberStr(value) << ") to be > 0";
    return success();
  };
  if (failed(checkTau(op.getTemperature(), "temperature")) ||
      failed(checkTau(op.getGroupTemperature(), "group_temperature")) ||
      failed(checkTau(op.getExpertTemperature(), "expert_temperature")))
    return failure();
  if (!grouped && (op.getGroupTemperature() || op.getExpertTemperature()))
    return emitOpError("with kind ")
           << kindName
           << " does not take group_temperature or expert_temperature";

  if (std::optional<uint64_t> topK = op.getTopK()) {
    if (grouped)
      return emitOpError("with kind grouped_softmax does not take top_k; use "
                         "top_k_groups");
    int64_t k = static_cast<int64_t>(*topK);
    if (k < 1)
      return emitOpError("expects top_k (") << k << ") to be >= 1";
    if (!ShapedType::isDynamic(experts) && k > experts)
      return emitOpError("expects top_k (")
             << k << ") to be <= number of experts (" << experts << ")";
  }
  if (std::optional<uint64_t> topKGroups = op.getTopKGroups()) {
    if (!grouped)
      return emitOpError("with kind ")
             << kindName << " does not take top_k_groups";
    int64_t k = static_cast<int64_t>(*topKGroups);
    if (k < 1)
      return emitOpError("expects top_k_groups (") << k << ") to be >= 1";
    if (k > numGroups)
      return emitOpError("expects top_k_groups (")
             << k << ") to be <= number of groups (" << numGroups << ")";
  }
  return success();
}

LogicalResult RouteOp::verify() {
  RouterKind kind = getKind();
  StringRef kindName = stringifyRouterKind(kind);
  bool grouped = kind == RouterKind::grouped_softmax;
  bool cosine = kind == RouterKind::cosine;

  // Which logit operands each kind takes.
  auto expectOperand = [&](Value operand, bool wanted,
                           StringRef name) -> LogicalResult {
    if (wanted && !operand)
      return emitOpError("with kind ") << kindName << " expects " << name;
    if (!wanted && operand)
      return emitOpError("with kind ") << kindName << " does not take " << name;
    return success();
  };
  if (failed(expectOperand(getGroupWeight(), grouped, "group_weight")) ||
      failed(expectOperand(getExpertWeight(), !cosine, "expert_weight")) ||
      failed(expectOperand(getProjWeight(), cosine, "proj_weight")) ||
      failed(expectOperand(getExpertEmbedding(), cosine, "expert_embedding")))
    return failure();
  if (getGroupBias() && !getGroupWeight())
    return emitOpError("with kind ") << kindName << " does not take group_bias";
  if (getExpertBias() && !getExpertWeight())
    return emitOpError("with kind ")
           << kindName << " does not take expert_bias";

  // Shapes: h is N x d_h, w is N x E.
  int64_t rows = dimOf(getInput(), 0);
  int64_t features = dimOf(getInput(), 1);
  int64_t experts = getNumExperts();
  if (staticMismatch(rows, dimOf(getWeights(), 0)))
    return emitOpError("expects result rows (")
           << extentStr(dimOf(getWeights(), 0)) << ") to equal input rows ("
           << rows << ")";
  auto checkMatrix = [&](Value matrix, StringRef name, int64_t wantRows,
                         StringRef rowsWhat, int64_t wantCols,
                         StringRef colsWhat) -> LogicalResult {
    if (!matrix)
      return success();
    if (staticMismatch(dimOf(matrix, 0), wantRows))
      return emitOpError("expects ")
             << name << " rows (" << dimOf(matrix, 0) << ") to equal "
             << rowsWhat << " (" << wantRows << ")";
    if (staticMismatch(dimOf(matrix, 1), wantCols))
      return emitOpError("expects ")
             << name << " columns (" << dimOf(matrix, 1) << ") to equal "
             << colsWhat << " (" << wantCols << ")";
    return success();
  };
  auto checkVector = [&](Value vector, StringRef name, int64_t wantSize,
                         StringRef what) -> LogicalResult {
    if (vector && staticMismatch(dimOf(vector, 0), wantSize))
      return emitOpError("expects ")
             << name << " size (" << dimOf(vector, 0) << ") to equal " << what
             << " (" << wantSize << ")";
    return success();
  };

  int64_t numGroups;
  if (failed(verifyRoutingSemantics(*this, experts, numGroups)))
    return failure();
  if (failed(checkMatrix(getGroupWeight(), "group_weight", numGroups,
                         "the number of groups", features,
                         "router input features")) ||
      failed(checkVector(getGroupBias(), "group_bias", numGroups,
                         "the number of groups")) ||
      failed(checkMatrix(getExpertWeight(), "expert_weight", experts,
                         "the number of experts", features,
                         "router input features")) ||
      failed(checkVector(getExpertBias(), "expert_bias", experts,
                         "the number of experts")) ||
      failed(checkMatrix(getProjWeight(), "proj_weight", ShapedType::kDynamic,
                         "", features, "router input features")))
    return failure();
  if (getExpertEmbedding() &&
      failed(checkMatrix(getExpertEmbedding(), "expert_embedding", experts,
                         "the number of experts", dimOf(getProjWeight(), 0),
                         "proj_weight rows")))
    return failure();

  return success();
}

LogicalResult RouteOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  FailureOr<LayerOp> layer = resolveLayer(*this, getLayerAttr(), symbolTable);
  if (failed(layer))
    return failure();
  int64_t layerExperts = static_cast<int64_t>(layer->getRoutedExperts().size());
  if (staticMismatch(getNumExperts(), layerExperts)) {
    InFlightDiagnostic diag = emitOpError("expects ")
                              << getNumExperts()
                              << " routing columns to equal the routed "
                                 "experts of "
                              << getLayerAttr() << " (" << layerExperts << ")";
    diag.attachNote(layer->getLoc()) << "layer declared here";
    return diag;
  }
  if (std::optional<ArrayRef<int64_t>> sizes = getGroupSizes()) {
    SmallVector<int64_t> layerSizes = layer->getGroupSizes();
    if (ArrayRef<int64_t>(layerSizes) != *sizes) {
      InFlightDiagnostic diag = emitOpError("expects group sizes [");
      llvm::interleaveComma(*sizes, diag);
      diag << "] to match the groups of " << getLayerAttr() << " [";
      llvm::interleaveComma(layerSizes, diag);
      diag << "]";
      diag.attachNote(layer->getLoc()) << "layer declared here";
      return diag;
    }
  }
  return success();
}

//===----------------------------------------------------------------------===//
// LoraLinearOp
//===----------------------------------------------------------------------===//

/// Checks `x` (T x d_in), `W` (d_out x d_in), `b` (d_out) and the result
/// (T x d_out) of a linear projection.
static LogicalResult verifyLinearShapes(Operation *op, Value input,
                                        Value weight, Value bias,
                                        Value output) {
  int64_t tokens = dimOf(input, 0);
  int64_t inFeatures = dimOf(input, 1);
  int64_t outFeatures = dimOf(weight, 0);
  if (staticMismatch(dimOf(weight, 1), inFeatures))
    return op->emitOpError("expects weight columns (")
           << dimOf(weight, 1) << ") to equal input features (" << inFeatures
           << ")";
  if (bias && staticMismatch(dimOf(bias, 0), outFeatures))
    return op->emitOpError("expects bias size (")
           << dimOf(bias, 0) << ") to equal weight rows (" << outFeatures
           << ")";
  if (staticMismatch(dimOf(output, 0), tokens))
    return op->emitOpError("expects result rows (")
           << dimOf(output, 0) << ") to equal input rows (" << tokens << ")";
  if (staticMismatch(dimOf(output, 1), outFeatures))
    return op->emitOpError("expects result columns (")
           << dimOf(output, 1) << ") to equal weight rows (" << outFeatures
           << ")";
  return success();
}

/// The position of adapter i's operand among those of the adapters for which
/// `has` holds, or -1.
template <typename Predicate>
static int64_t variantPosition(LoraLinearOp op, unsigned i, Predicate has) {
  if (!has(op.getAdapter(i)))
    return -1;
  int64_t position = 0;
  for (unsigned j = 0; j < i; ++j)
    position += has(op.getAdapter(j));
  return position;
}

Value LoraLinearOp::getLoraBiasOf(unsigned i) {
  int64_t position =
      variantPosition(*this, i, [](LoraAttr a) { return a.getBias(); });
  return position < 0 ? Value() : getLoraBias()[position];
}

Value LoraLinearOp::getDoraScaleOf(unsigned i) {
  int64_t position =
      variantPosition(*this, i, [](LoraAttr a) { return a.getDora(); });
  return position < 0 ? Value() : getDoraScale()[position];
}

/// One lora_bias per `bias` adapter and one dora_scale per `dora` adapter,
/// each of d_out elements.
LogicalResult LoraLinearOp::verifyVariantOperands() {
  size_t numBias = llvm::count_if(getAdapterList(), [](Attribute a) {
    return cast<LoraAttr>(a).getBias();
  });
  size_t numDora = llvm::count_if(getAdapterList(), [](Attribute a) {
    return cast<LoraAttr>(a).getDora();
  });
  if (getLoraBias().size() != numBias || getDoraScale().size() != numDora)
    return emitOpError("expects one lora_bias per bias adapter (")
           << numBias << ") and one dora_scale per dora adapter (" << numDora
           << "), got " << getLoraBias().size() << " and "
           << getDoraScale().size();
  int64_t outFeatures = dimOf(getWeight(), 0);
  for (Value vector : llvm::concat<Value>(getLoraBias(), getDoraScale()))
    if (staticMismatch(dimOf(vector, 0), outFeatures))
      return emitOpError("expects lora_bias and dora_scale of ")
             << outFeatures << " output features, got " << vector.getType();
  return success();
}

LogicalResult LoraLinearOp::verify() {
  if (failed(verifyLinearShapes(*this, getInput(), getWeight(), getBias(),
                                getOutput())))
    return failure();

  size_t numAdapters = getAdapters().size();
  if (getLoraA().size() != numAdapters || getLoraB().size() != numAdapters)
    return emitOpError("expects one lora_a and one lora_b per adapter (")
           << numAdapters << "), got " << getLoraA().size() << " and "
           << getLoraB().size();

  int64_t inFeatures = dimOf(getInput(), 1);
  int64_t outFeatures = dimOf(getWeight(), 0);
  llvm::SmallDenseMap<Attribute, unsigned> seen;
  for (unsigned i = 0; i < numAdapters; ++i) {
    LoraAttr adapter = getAdapter(i);
    auto [it, inserted] = seen.try_emplace(adapter.getExpert(), i);
    if (!inserted)
      return emitOpError("expects expert ")
             << adapter.getExpert() << " once, but adapters #" << it->second
             << " and #" << i << " both name it";
    Value loraA = getLoraA()[i], loraB = getLoraB()[i];
    int64_t rank = adapter.getRank();
    if (staticMismatch(dimOf(loraA, 0), rank))
      return emitOpError("expects lora_a #")
             << i << " rows (" << dimOf(loraA, 0) << ") to equal the rank ("
             << rank << ") of adapter " << adapter.getExpert();
    if (staticMismatch(dimOf(loraA, 1), inFeatures))
      return emitOpError("expects lora_a #")
             << i << " columns (" << dimOf(loraA, 1)
             << ") to equal input features (" << inFeatures << ")";
    if (staticMismatch(dimOf(loraB, 0), outFeatures))
      return emitOpError("expects lora_b #")
             << i << " rows (" << dimOf(loraB, 0)
             << ") to equal output features (" << outFeatures << ")";
    if (staticMismatch(dimOf(loraB, 1), rank))
      return emitOpError("expects lora_b #")
             << i << " columns (" << dimOf(loraB, 1) << ") to equal the rank ("
             << rank << ") of adapter " << adapter.getExpert();
  }
  if (failed(verifyVariantOperands()))
    return failure();

  // Routing rows: one per token, or one per sequence.
  int64_t tokens = dimOf(getInput(), 0);
  bool perSequence = getGranularity() == Granularity::sequence;
  if (!perSequence && getSegments())
    return emitOpError("with token granularity does not take segments");
  if (!getRouting()) {
    if (getSegments())
      return emitOpError("expects routing weights when segments are given");
    return success();
  }
  int64_t routingRows = dimOf(getRouting(), 0);
  if (!perSequence) {
    if (staticMismatch(routingRows, tokens))
      return emitOpError("expects routing rows (")
             << routingRows << ") to equal input rows (" << tokens
             << ") with token granularity";
    return success();
  }
  int64_t sequences = getSegments() ? dimOf(getSegments(), 0) : 1;
  if (staticMismatch(routingRows, sequences))
    return emitOpError("expects routing rows (")
           << routingRows << ") to equal the number of sequences (" << sequences
           << ")";

  // Segment lengths are usually run-time values; when they are constants,
  // check them here rather than let the runtime fail later.
  DenseIntElementsAttr lengths;
  if (getSegments() && matchPattern(getSegments(), m_Constant(&lengths))) {
    int64_t total = 0;
    for (auto [index, length] : llvm::enumerate(lengths.getValues<int64_t>())) {
      if (length < 0)
        return emitOpError("expects segment #")
               << index << " length (" << length << ") to be >= 0";
      total += length;
    }
    if (staticMismatch(total, tokens))
      return emitOpError("expects segment lengths to sum to the input rows (")
             << tokens << "), got " << total;
  }
  return success();
}

LogicalResult
LoraLinearOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  FailureOr<LayerOp> layer = resolveLayer(*this, getLayerAttr(), symbolTable);
  if (failed(layer))
    return failure();
  SharedExpertOp shared = layer->getSharedExpert();
  llvm::StringMap<int64_t> columns = layer->getRoutedExpertColumns();
  int64_t layerExperts = static_cast<int64_t>(columns.size());
  for (unsigned i = 0, e = getAdapters().size(); i < e; ++i) {
    FlatSymbolRefAttr expert = getAdapter(i).getExpert();
    if (shared && shared.getSymName() == expert.getValue())
      continue;
    if (!columns.contains(expert.getValue())) {
      InFlightDiagnostic diag = emitOpError("expects adapter #")
                                << i << " to name an expert of "
                                << getLayerAttr() << ", but " << expert
                                << " is not one";
      diag.attachNote(layer->getLoc()) << "layer declared here";
      return diag;
    }
    if (!getRouting())
      return emitOpError("expects routing weights for the routed expert ")
             << expert;
  }
  if (getRouting() && staticMismatch(dimOf(getRouting(), 1), layerExperts)) {
    InFlightDiagnostic diag = emitOpError("expects routing columns (")
                              << dimOf(getRouting(), 1)
                              << ") to equal the routed experts of "
                              << getLayerAttr() << " (" << layerExperts << ")";
    diag.attachNote(layer->getLoc()) << "layer declared here";
    return diag;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::verify() {
  return verifyLinearShapes(*this, getInput(), getWeight(), getBias(),
                            getOutput());
}

//===----------------------------------------------------------------------===//
// DequantizeOp
//===----------------------------------------------------------------------===//

/// Checks that `value` is `rows` x `cols`; `what` names it and the sizes.
static LogicalResult expectShape(Operation *op, Value value, StringRef what,
                                 int64_t rows, int64_t cols,
                                 StringRef because) {
  auto type = cast<RankedTensorType>(value.getType());
  if (type.getDimSize(0) == rows && type.getDimSize(1) == cols)
    return success();
  return op->emitOpError("expects ")
         << what << " to be " << rows << "x" << cols << " (" << because
         << "), got " << type.getDimSize(0) << "x" << type.getDimSize(1);
}

LogicalResult DequantizeOp::verify() {
  GptqAttr quant = getQuantization();
  int64_t outFeatures = dimOf(getWeight(), 0);
  int64_t inFeatures = dimOf(getWeight(), 1);
  if (!getWeight().getType().hasStaticShape())
    return emitOpError("expects a static result shape");
  int64_t perWord = quant.getValuesPerWord();
  if (inFeatures % quant.getGroupSize() != 0)
    return emitOpError("expects the group size (")
           << quant.getGroupSize() << ") to divide in_features (" << inFeatures
           << ")";
  if (inFeatures % perWord != 0)
    return emitOpError("expects in_features (")
           << inFeatures << ") to be a multiple of " << perWord << " ("
           << quant.getBits() << "-bit values per i32 word)";
  int64_t groups = inFeatures / quant.getGroupSize();
  if (failed(expectShape(*this, getQweight(), "qweight", inFeatures / perWord,
                         outFeatures,
                         "in_features * bits / 32 x out_features")) ||
      failed(expectShape(*this, getScales(), "scales", groups, outFeatures,
                         "in_features / group_size x out_features")))
    return failure();
  if (!getZeros())
    return success();
  if (outFeatures % perWord != 0)
    return emitOpError("expects out_features (")
           << outFeatures << ") to be a multiple of " << perWord
           << " to pack zero points (" << quant.getBits() << "-bit values)";
  return expectShape(*this, getZeros(), "zeros", groups, outFeatures / perWord,
                     "in_features / group_size x out_features * bits / 32");
}

//===----------------------------------------------------------------------===//
// ExpandSegmentsOp
//===----------------------------------------------------------------------===//

LogicalResult ExpandSegmentsOp::verify() {
  int64_t experts = dimOf(getRouting(), 1);
  if (staticMismatch(dimOf(getExpanded(), 1), experts))
    return emitOpError("expects result columns (")
           << dimOf(getExpanded(), 1) << ") to equal routing columns ("
           << experts << ")";
  int64_t sequences = getSegments() ? dimOf(getSegments(), 0) : 1;
  if (staticMismatch(dimOf(getRouting(), 0), sequences))
    return emitOpError("expects routing rows (")
           << dimOf(getRouting(), 0) << ") to equal the number of sequences ("
           << sequences << ")";
  return success();
}

//===----------------------------------------------------------------------===//
// NormalizeRoutingOp
//===----------------------------------------------------------------------===//

LogicalResult NormalizeRoutingOp::verify() {
  int64_t experts = dimOf(getExpertScores(), 1);
  if (staticMismatch(dimOf(getWeights(), 1), experts) ||
      staticMismatch(dimOf(getWeights(), 0), dimOf(getExpertScores(), 0)))
    return emitOpError("expects the result shape to equal the expert scores "
                       "shape");
  bool grouped = getKind() == RouterKind::grouped_softmax;
  if (grouped != static_cast<bool>(getGroupScores()))
    return emitOpError("expects group scores exactly with kind "
                       "grouped_softmax");
  int64_t numGroups;
  if (failed(verifyRoutingSemantics(*this, experts, numGroups)))
    return failure();
  if (getGroupScores() && staticMismatch(dimOf(getGroupScores(), 1), numGroups))
    return emitOpError("expects group score columns (")
           << dimOf(getGroupScores(), 1) << ") to equal the number of groups ("
           << numGroups << ")";
  return success();
}

//===----------------------------------------------------------------------===//
// CosineSimilarityOp
//===----------------------------------------------------------------------===//

LogicalResult CosineSimilarityOp::verify() {
  if (staticMismatch(dimOf(getLhs(), 1), dimOf(getRhs(), 1)))
    return emitOpError("expects lhs columns (")
           << dimOf(getLhs(), 1) << ") to equal rhs columns ("
           << dimOf(getRhs(), 1) << ")";
  if (staticMismatch(dimOf(getResult(), 0), dimOf(getLhs(), 0)) ||
      staticMismatch(dimOf(getResult(), 1), dimOf(getRhs(), 0)))
    return emitOpError("expects a result of lhs rows x rhs rows");
  return success();
}

//===----------------------------------------------------------------------===//
// LoraScalesOp
//===----------------------------------------------------------------------===//

LogicalResult LoraScalesOp::verify() {
  ArrayRef<int64_t> ranks = getRanks(), columns = getColumns();
  if (columns.size() != ranks.size() || getFactors().size() != ranks.size())
    return emitOpError("expects one rank, column and factor per adapter, got ")
           << ranks.size() << ", " << columns.size() << " and "
           << getFactors().size();
  int64_t totalRank = 0;
  int64_t experts =
      getRouting() ? dimOf(getRouting(), 1) : ShapedType::kDynamic;
  for (auto [index, rank, column] : llvm::enumerate(ranks, columns)) {
    if (rank <= 0)
      return emitOpError("expects rank #")
             << index << " (" << rank << ") to be positive";
    if (column < -1 || (column >= 0 && !getRouting()) ||
        (!ShapedType::isDynamic(experts) && column >= experts))
      return emitOpError("expects column #")
             << index << " (" << column
             << ") to be -1 or a column of the routing weights";
    totalRank += rank;
  }
  if (staticMismatch(dimOf(getScales(), 1), totalRank))
    return emitOpError("expects result columns (")
           << dimOf(getScales(), 1) << ") to equal the sum of the ranks ("
           << totalRank << ")";
  if (getRouting() &&
      staticMismatch(dimOf(getScales(), 0), dimOf(getRouting(), 0)))
    return emitOpError("expects result rows (")
           << dimOf(getScales(), 0) << ") to equal routing rows ("
           << dimOf(getRouting(), 0) << ")";
  return success();
}

//===----------------------------------------------------------------------===//
// StackedLoraLinearOp
//===----------------------------------------------------------------------===//

/// The stacked adapters of StackedLoraLinearOp and MergeLoraOp: down
/// (R x d_in), up (d_out x R) and scales (_ x R), against the d_in and d_out
/// the op takes them from (named in the messages).
static LogicalResult verifyStackedAdapters(Operation *op, Value down, Value up,
                                           Value scales, int64_t inFeatures,
                                           StringRef inWhat,
                                           int64_t outFeatures,
                                           StringRef outWhat) {
  int64_t rank = dimOf(down, 0);
  if (staticMismatch(dimOf(down, 1), inFeatures))
    return op->emitOpError("expects down columns (")
           << dimOf(down, 1) << ") to equal " << inWhat << " (" << inFeatures
           << ")";
  if (staticMismatch(dimOf(up, 0), outFeatures))
    return op->emitOpError("expects up rows (")
           << dimOf(up, 0) << ") to equal " << outWhat << " (" << outFeatures
           << ")";
  if (staticMismatch(dimOf(up, 1), rank) ||
      staticMismatch(dimOf(scales, 1), rank))
    return op->emitOpError("expects up columns (")
           << dimOf(up, 1) << ") and scales columns (" << dimOf(scales, 1)
           << ") to equal down rows (" << rank << ")";
  return success();
}

LogicalResult StackedLoraLinearOp::verify() {
  if (failed(verifyLinearShapes(*this, getInput(), getWeight(), getBias(),
                                getOutput())) ||
      failed(verifyStackedAdapters(*this, getDown(), getUp(), getScales(),
                                   dimOf(getInput(), 1), "input features",
                                   dimOf(getWeight(), 0), "output features")))
    return failure();
  if (staticMismatch(dimOf(getScales(), 0), dimOf(getInput(), 0)))
    return emitOpError("expects scales rows (")
           << dimOf(getScales(), 0) << ") to equal input rows ("
           << dimOf(getInput(), 0) << ")";
  for (auto [term, name] : {std::pair(getBaseScale(), "base_scale"),
                            std::pair(getOffset(), "offset")})
    if (term && (staticMismatch(dimOf(term, 0), dimOf(getInput(), 0)) ||
                 staticMismatch(dimOf(term, 1), dimOf(getWeight(), 0))))
      return emitOpError("expects ")
             << name << " to be input rows x output features ("
             << extentStr(dimOf(getInput(), 0)) << "x"
             << extentStr(dimOf(getWeight(), 0)) << "), got " << term.getType();
  return success();
}

LogicalResult ScaleRowsOp::verify() {
  if (staticMismatch(dimOf(getMatrix(), 0), dimOf(getScale(), 0)))
    return emitOpError("expects one scale per row (")
           << extentStr(dimOf(getMatrix(), 0)) << "), got "
           << getScale().getType();
  return success();
}

LogicalResult DoraScaleOp::verify() {
  int64_t outFeatures = dimOf(getWeight(), 0);
  int64_t inFeatures = dimOf(getWeight(), 1);
  int64_t rank = dimOf(getLoraA(), 0);
  if (staticMismatch(dimOf(getLoraA(), 1), inFeatures) ||
      staticMismatch(dimOf(getLoraB(), 0), outFeatures) ||
      staticMismatch(dimOf(getLoraB(), 1), rank))
    return emitOpError("expects lora_a rank x ")
           << extentStr(inFeatures) << " and lora_b " << extentStr(outFeatures)
           << " x rank for a weight of " << getWeight().getType() << ", got "
           << getLoraA().getType() << " and " << getLoraB().getType();
  for (Value vector : {getMagnitude(), getResult()})
    if (staticMismatch(dimOf(vector, 0), outFeatures))
      return emitOpError("expects magnitude and result of ")
             << extentStr(outFeatures) << " output features, got "
             << vector.getType();
  if (!std::isfinite(getScale().convertToDouble()))
    return emitOpError("expects a finite scale");
  return success();
}

LogicalResult MergeLoraOp::verify() {
  if (failed(verifyStackedAdapters(*this, getDown(), getUp(), getScales(),
                                   dimOf(getWeight(), 1), "weight columns",
                                   dimOf(getWeight(), 0), "weight rows")))
    return failure();
  if (staticMismatch(dimOf(getScales(), 0), 1))
    return emitOpError("expects one row of scales, got ")
           << dimOf(getScales(), 0);
  return success();
}

#define GET_OP_CLASSES
#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.cpp.inc"
