//===- ShardingModels.cpp - sharding of ops upstream does not cover ------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// sharding-propagation fails on any op without ShardingInterface, and every
// layer reads its token count with tensor.dim: MLIR 22 has no model for it.
// Its model of tensor.empty annotates the dynamic sizes (index operands) as
// if they were tensors, which produces invalid shard.sharding ops; ours
// annotates only the result.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/Shard/Interfaces/ShardingInterface.h"
#include "mlir/Dialect/Shard/Interfaces/ShardingInterfaceImpl.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/RegionUtils.h"

using namespace mlir;

namespace {

/// `tensor.dim` of a dimension that is not split reads the same extent on
/// every process: it takes no part in propagation and partitions by cloning.
/// A split dimension would read the local extent, so it is refused.
struct DimOpShardingModel
    : public shard::ShardingInterface::ExternalModel<DimOpShardingModel,
                                                     tensor::DimOp> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *) const {
    return {};
  }
  SmallVector<AffineMap> getIndexingMaps(Operation *) const { return {}; }

  FailureOr<shard::ShardingOption>
  getShardingOption(Operation *, ArrayRef<shard::Sharding>,
                    ArrayRef<shard::Sharding>) const {
    return shard::ShardingOption::makeEmpty();
  }

  LogicalResult partition(Operation *op, ArrayRef<Value> partitionedOperands,
                          ArrayRef<shard::Sharding> operandShardings,
                          ArrayRef<shard::Sharding>, IRMapping &mapping,
                          SymbolTableCollection &, OpBuilder &builder) const {
    auto dim = cast<tensor::DimOp>(op);
    if (const shard::Sharding &sharding = operandShardings.front()) {
      std::optional<int64_t> index = dim.getConstantIndex();
      ArrayRef<shard::GridAxesAttr> axes = sharding.getSplitAxes();
      if (!index ||
          (*index < static_cast<int64_t>(axes.size()) && !axes[*index].empty()))
        return op->emitOpError()
               << "reads a dimension that is split over processes";
    }
    mapping.map(op->getOperands(), partitionedOperands);
    builder.clone(*op, mapping);
    return success();
  }
};

/// `tensor.empty` takes the sharding its users ask for; its dynamic sizes
/// (the token count) stay whole, so a split dimension must be static.
struct EmptyOpShardingModel
    : public shard::ShardingInterface::ExternalModel<EmptyOpShardingModel,
                                                     tensor::EmptyOp> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *op) const {
    return SmallVector<utils::IteratorType>(
        cast<tensor::EmptyOp>(op).getType().getRank(),
        utils::IteratorType::parallel);
  }

  SmallVector<AffineMap> getIndexingMaps(Operation *op) const {
    int64_t rank = cast<tensor::EmptyOp>(op).getType().getRank();
    SmallVector<AffineMap> maps(op->getNumOperands(),
                                AffineMap::get(rank, 0, op->getContext()));
    maps.push_back(AffineMap::getMultiDimIdentityMap(rank, op->getContext()));
    return maps;
  }

  FailureOr<shard::ShardingOption>
  getShardingOption(Operation *, ArrayRef<shard::Sharding>,
                    ArrayRef<shard::Sharding> resultShardings) const {
    const shard::Sharding &result = resultShardings.front();
    if (!result)
      return shard::ShardingOption::makeEmpty();
    shard::ShardingArray loops;
    for (shard::GridAxesAttr axes : result.getSplitAxes())
      loops.emplace_back(axes.asArrayRef());
    return shard::ShardingOption(std::move(loops), result.getGridAttr());
  }

  FailureOr<std::vector<shard::Sharding>>
  getShardingAnnotations(Operation *op,
                         const shard::ShardingOption &option) const {
    std::vector<shard::Sharding> shardings(op->getNumOperands());
    shardings.push_back(resultSharding(op, option));
    return shardings;
  }

  LogicalResult
  addShardingAnnotations(Operation *op, OpBuilder &b,
                         const shard::ShardingOption &option) const {
    if (shard::Sharding sharding = resultSharding(op, option))
      shard::maybeInsertTargetShardingAnnotation(sharding, op->getResult(0), b);
    return success();
  }

  LogicalResult partition(Operation *op, ArrayRef<Value> partitionedOperands,
                          ArrayRef<shard::Sharding>,
                          ArrayRef<shard::Sharding> resultShardings,
                          IRMapping &mapping,
                          SymbolTableCollection &symbolTables,
                          OpBuilder &builder) const {
    auto empty = cast<tensor::EmptyOp>(op);
    RankedTensorType type = empty.getType();
    const shard::Sharding &sharding = resultShardings.front();
    if (sharding) {
      ArrayRef<shard::GridAxesAttr> axes = sharding.getSplitAxes();
      for (auto [dim, dimAxes] : llvm::enumerate(axes))
        if (!dimAxes.empty() && type.isDynamicDim(dim))
          return op->emitOpError() << "cannot split dynamic dimension " << dim
                                   << " over processes";
      shard::GridOp grid =
          shard::getGrid(op, sharding.getGridAttr(), symbolTables);
      type = cast<RankedTensorType>(shard::shardType(type, grid, sharding));
    }
    auto local = tensor::EmptyOp::create(builder, op->getLoc(), type,
                                         partitionedOperands);
    mapping.map(op->getResult(0), local.getResult());
    return success();
  }

private:
  static shard::Sharding resultSharding(Operation *op,
                                        const shard::ShardingOption &option) {
    if (option.empty || !option.grid)
      return shard::Sharding();
    SmallVector<shard::GridAxesAttr> axes;
    Builder b(op->getContext());
    for (ArrayRef<shard::GridAxis> loopAxes : option.shardingArray)
      axes.push_back(b.getDenseI16ArrayAttr(loopAxes));
    while (axes.size() > 1 && axes.back().empty())
      axes.pop_back();
    return shard::Sharding::get(option.grid, axes);
  }
};

/// Replicated: every tensor operand and result whole on every process.
shard::Sharding replicated(const shard::ShardingOption &option) {
  Builder b(option.grid.getContext());
  return shard::Sharding::get(option.grid, {b.getDenseI16ArrayAttr({})});
}

FailureOr<shard::ShardingOption>
replicatedOption(int64_t loops, ArrayRef<shard::Sharding> operandShardings,
                 ArrayRef<shard::Sharding> resultShardings) {
  for (ArrayRef<shard::Sharding> shardings :
       {operandShardings, resultShardings})
    for (const shard::Sharding &sharding : shardings)
      if (sharding)
        return shard::ShardingOption(shard::ShardingArray(loops),
                                     sharding.getGridAttr());
  return shard::ShardingOption::makeEmpty();
}

std::vector<shard::Sharding>
replicatedAnnotations(Operation *op, const shard::ShardingOption &option) {
  std::vector<shard::Sharding> shardings;
  for (Type type :
       llvm::concat<Type>(op->getOperandTypes(), op->getResultTypes()))
    shardings.push_back(isa<RankedTensorType>(type) ? replicated(option)
                                                    : shard::Sharding());
  return shardings;
}

void addReplicatedAnnotations(Operation *op, OpBuilder &b,
                              const shard::ShardingOption &option) {
  shard::Sharding whole = replicated(option);
  for (OpOperand &operand : op->getOpOperands())
    if (isa<RankedTensorType>(operand.get().getType()))
      shard::maybeInsertSourceShardingAnnotation(whole, operand, b);
  for (OpResult result : op->getResults())
    shard::maybeInsertTargetShardingAnnotation(whole, result, b);
}

/// A model that splits an op like any structured op when
/// `Model::splits(op)`, and otherwise computes it whole on every process.
/// `Model` gives the loops and indexing maps, and may refuse an op once its
/// operands are partitioned (`checkPartition`).
template <typename Model, typename OpTy>
struct SplitOrReplicatedModel
    : public shard::ShardingInterface::ExternalModel<Model, OpTy> {
  static LogicalResult checkPartition(Operation *, const IRMapping &) {
    return success();
  }
  FailureOr<shard::ShardingOption>
  getShardingOption(Operation *op, ArrayRef<shard::Sharding> operandShardings,
                    ArrayRef<shard::Sharding> resultShardings) const {
    if (Model::splits(op))
      return shard::detail::defaultGetShardingOption(op, operandShardings,
                                                     resultShardings);
    return replicatedOption(Model::loops(op), operandShardings,
                            resultShardings);
  }
  FailureOr<std::vector<shard::Sharding>>
  getShardingAnnotations(Operation *op,
                         const shard::ShardingOption &option) const {
    if (Model::splits(op))
      return shard::detail::defaultGetShardingAnnotations(op, option);
    return replicatedAnnotations(op, option);
  }
  LogicalResult
  addShardingAnnotations(Operation *op, OpBuilder &b,
                         const shard::ShardingOption &option) const {
    if (Model::splits(op))
      return shard::detail::defaultAddShardingAnnotations(op, b, option);
    addReplicatedAnnotations(op, b, option);
    return success();
  }
  LogicalResult partition(Operation *op, ArrayRef<Value> partitionedOperands,
                          ArrayRef<shard::Sharding> operandShardings,
                          ArrayRef<shard::Sharding> resultShardings,
                          IRMapping &mapping,
                          SymbolTableCollection &symbolTables,
                          OpBuilder &builder) const {
    if (failed(Model::checkPartition(op, mapping)))
      return failure();
    if (Model::splits(op))
      shard::partitionTriviallyShardableOperation(
          *op, partitionedOperands, operandShardings, resultShardings, mapping,
          symbolTables, builder);
    else
      shard::partitionFullyReplicatedOperation(
          *op, partitionedOperands, operandShardings, resultShardings, mapping,
          symbolTables, builder);
    return success();
  }
};

/// `arith.constant`, computed whole on every process: upstream's model
/// partitions only splat constants, and the routers' group tables are not.
struct ConstantShardingModel
    : public SplitOrReplicatedModel<ConstantShardingModel, arith::ConstantOp> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *op) const {
    return SmallVector<utils::IteratorType>(loops(op),
                                            utils::IteratorType::parallel);
  }
  SmallVector<AffineMap> getIndexingMaps(Operation *op) const {
    return {AffineMap::getMultiDimIdentityMap(loops(op), op->getContext())};
  }
  static bool splits(Operation *) { return false; }
  static int64_t loops(Operation *op) {
    auto type = dyn_cast<RankedTensorType>(op->getResult(0).getType());
    return type ? type.getRank() : 0;
  }
};

/// `linalg.generic`. An elementwise one (parallel loops, projected
/// permutation maps, a body that reads neither its position nor values from
/// above) splits like any structured op, so that expert parallelism scales
/// its split rank slots locally. Every other one is computed whole on every
/// process: the layers' other generics (router normalisation, routing-weight
/// gathers) work on replicated T x E values, index them by position, or read
/// a tensor from above, which upstream's model loses when it rebuilds the op.
struct GenericShardingModel
    : public SplitOrReplicatedModel<GenericShardingModel, linalg::GenericOp> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *op) const {
    return cast<linalg::GenericOp>(op).getIteratorTypesArray();
  }
  /// The operands' maps, then each result's (its init's).
  SmallVector<AffineMap> getIndexingMaps(Operation *op) const {
    auto generic = cast<linalg::GenericOp>(op);
    SmallVector<AffineMap> maps = generic.getIndexingMapsArray();
    for (OpOperand &init : generic.getDpsInitsMutable())
      maps.push_back(generic.getMatchingIndexingMap(&init));
    return maps;
  }
  static int64_t loops(Operation *op) {
    return cast<linalg::GenericOp>(op).getNumLoops();
  }
  static bool splits(Operation *op) {
    auto generic = cast<linalg::GenericOp>(op);
    if (generic.getNumReductionLoops() != 0 || generic.hasIndexSemantics() ||
        !llvm::all_of(generic.getIndexingMapsArray(), [](AffineMap map) {
          return map.isProjectedPermutation();
        }))
      return false;
    llvm::SetVector<Value> captured;
    getUsedValuesDefinedAbove(generic->getRegions(), captured);
    return llvm::none_of(
        captured, [](Value value) { return isa<ShapedType>(value.getType()); });
  }
};

/// `scf.for` over the sequences of a layer with sequence granularity (its
/// unmerged path: each sequence's routing row copied to its tokens), run
/// whole on every process. The body is cloned as it is, so it must read
/// only whole values from above; a split one is refused.
struct SequenceLoopShardingModel
    : public SplitOrReplicatedModel<SequenceLoopShardingModel, scf::ForOp> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *) const {
    return {};
  }
  SmallVector<AffineMap> getIndexingMaps(Operation *) const { return {}; }
  static bool splits(Operation *) { return false; }
  static int64_t loops(Operation *) { return 0; }

  static LogicalResult checkPartition(Operation *op, const IRMapping &mapping) {
    llvm::SetVector<Value> captured;
    getUsedValuesDefinedAbove(op->getRegions(), captured);
    for (Value value : captured)
      if (mapping.lookupOrDefault(value).getType() != value.getType())
        return op->emitOpError()
               << "reads a value split over processes in its body";
    return success();
  }
};

} // namespace

void mlir::atmoe::registerShardingInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, tensor::TensorDialect *) {
    tensor::DimOp::attachInterface<DimOpShardingModel>(*ctx);
    tensor::EmptyOp::attachInterface<EmptyOpShardingModel>(*ctx);
  });
  // Added before upstream's models: the first model attached wins.
  registry.addExtension(+[](MLIRContext *ctx, linalg::LinalgDialect *) {
    linalg::GenericOp::attachInterface<GenericShardingModel>(*ctx);
  });
  registry.addExtension(+[](MLIRContext *ctx, arith::ArithDialect *) {
    arith::ConstantOp::attachInterface<ConstantShardingModel>(*ctx);
  });
  registry.addExtension(+[](MLIRContext *ctx, scf::SCFDialect *) {
    scf::ForOp::attachInterface<SequenceLoopShardingModel>(*ctx);
  });
}
