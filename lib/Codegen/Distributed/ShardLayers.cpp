//===- ShardLayers.cpp - parallel shardings of layer functions ----------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Gives each weight of a layer function the sharding of Megatron-style tensor
// parallelism or of expert parallelism (docs/Distributed.md); upstream's
// sharding-propagation and shard-partition do the rest.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/Shard/Interfaces/ShardingInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/Transforms/RegionUtils.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_SHARDLAYERSPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;
using namespace mlir::atmoe;

namespace {

constexpr StringLiteral kGridName = "atmoe_ranks";
constexpr StringLiteral kShardDimAttr = AtmoeDialect::kShardDimAttrName;
constexpr StringLiteral kInputAttr = AtmoeDialect::kInputAttrName;
constexpr StringLiteral kTensorAttr = AtmoeDialect::kTensorAttrName;
constexpr StringLiteral kPartsAttr = AtmoeDialect::kPartsAttrName;

StringRef matmulRole(Operation *op) {
  if (auto role =
          op->getAttrOfType<StringAttr>(AtmoeDialect::kMatmulRoleAttrName))
    return role.getValue();
  return {};
}

bool isReturned(Value value) {
  return llvm::any_of(value.getUsers(), [](Operation *user) {
    return isa<func::ReturnOp>(user);
  });
}

/// The dimension of `weight` that `strategy` splits, if any: W (and the bias
/// broadcast into a split product) along its output features; tensor: B
/// along its output and A along its input features; expert: both along the
/// rank slots.
std::optional<int64_t> splitDimension(BlockArgument weight,
                                      ParallelStrategy strategy) {
  bool expert = strategy == ParallelStrategy::Expert;
  std::optional<int64_t> dim;
  for (OpOperand &use : weight.getUses()) {
    Operation *user = use.getOwner();
    std::optional<int64_t> here;
    if (auto matmul = dyn_cast<linalg::MatmulOp>(user)) {
      if (use.getOperandNumber() != 1)
        return std::nullopt;
      StringRef role = matmulRole(matmul);
      if (role == "lora_base" ||
          (role == "projection" && isReturned(matmul.getResult(0))))
        here = 0;
      else if (role == "lora_up")
        here = expert ? 1 : 0;
      else if (role == "lora_down")
        here = expert ? 0 : 1;
    } else if (auto broadcast = dyn_cast<linalg::BroadcastOp>(user)) {
      // A bias: split when every product it initialises is.
      bool allSplit = !broadcast->use_empty();
      for (Operation *product : broadcast->getResult(0).getUsers()) {
        auto matmul = dyn_cast<linalg::MatmulOp>(product);
        allSplit &= matmul &&
                    matmul.getDpsInits()[0] == broadcast->getResult(0) &&
                    (matmulRole(matmul) == "lora_base" ||
                     (matmulRole(matmul) == "projection" &&
                      isReturned(matmul.getResult(0))));
      }
      if (allSplit)
        here = 0;
    }
    if (!here || (dim && *dim != *here))
      return std::nullopt;
    dim = here;
  }
  return dim;
}

std::string weightName(func::FuncOp func, unsigned index) {
  if (auto name = func.getArgAttrOfType<StringAttr>(index, kTensorAttr))
    return name.str();
  if (auto parts = func.getArgAttrOfType<ArrayAttr>(index, kPartsAttr)) {
    std::string names;
    for (auto part : parts.getAsRange<DictionaryAttr>())
      if (auto name = part.getAs<StringAttr>("tensor"))
        names += (names.empty() ? "" : ", ") + name.str();
    return "the stack of " + names;
  }
  return "argument " + std::to_string(index);
}

bool isLayerFunction(func::FuncOp func) {
  if (func.isPrivate() || func.isExternal())
    return false;
  for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i)
    if (func.getArgAttr(i, kInputAttr))
      return true;
  return false;
}

struct ShardLayersPass
    : public mlir::atmoe::impl::ShardLayersPassBase<ShardLayersPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (ranks < 2) {
      module.emitError() << "atmoe-shard-layers needs ranks >= 2, got "
                         << ranks.getValue();
      return signalPassFailure();
    }
    OpBuilder builder(module.getBodyRegion());
    module->setAttr(AtmoeDialect::kRanksAttrName,
                    builder.getI64IntegerAttr(ranks));
    shard::GridOp::create(builder, module.getLoc(), kGridName,
                          ArrayRef<int64_t>{ranks});
    for (auto func : module.getOps<func::FuncOp>())
      if (isLayerFunction(func) && failed(annotate(func)))
        return signalPassFailure();
  }

  Value sharding(OpBuilder &b, Location loc, std::optional<int64_t> dim) {
    SmallVector<shard::GridAxesAttr> axes;
    if (dim) {
      axes.assign(*dim + 1, b.getDenseI16ArrayAttr({}));
      axes.back() = b.getDenseI16ArrayAttr({0});
    } else {
      axes.push_back(b.getDenseI16ArrayAttr({}));
    }
    return shard::ShardingOp::create(b, loc, StringRef(kGridName), axes);
  }

  /// A tensor a linalg body reads from above (the router's gather of the
  /// routing weights) is whole on every process: shard-partition maps only
  /// values that pass through shard.shard, so the body reads it through one.
  void annotateCapturedTensors(func::FuncOp func) {
    for (Operation &op : func.getBody().front()) {
      if (op.getNumRegions() == 0)
        continue;
      llvm::SetVector<Value> captured;
      getUsedValuesDefinedAbove(op.getRegions(), captured);
      for (Value value : captured) {
        if (!isa<RankedTensorType>(value.getType()))
          continue;
        OpBuilder b(&op);
        Value whole = shard::ShardOp::create(
            b, op.getLoc(), value, sharding(b, op.getLoc(), std::nullopt),
            /*annotate_for_users=*/true);
        value.replaceUsesWithIf(whole, [&](OpOperand &use) {
          return op.isProperAncestor(use.getOwner());
        });
      }
    }
  }

  /// sharding-propagation stops at the first op without a sharding model
  /// with a message about MLIR's interfaces; this says what in the model it
  /// comes from.
  LogicalResult checkShardable(func::FuncOp func) {
    for (Operation &op : func.getBody().front()) {
      if (isa<shard::ShardingInterface, func::ReturnOp>(op))
        continue;
      InFlightDiagnostic diag = op.emitError()
                                << "cannot split this layer over processes: '"
                                << op.getName() << "' has no sharding model";
      if (isa<scf::SCFDialect>(op.getDialect()))
        diag << " (sequence granularity's merged path: compile it with "
                "--sequence-merge=unmerged)";
      else if (isa<tensor::ConcatOp, tensor::ExpandShapeOp>(op))
        diag << " (PEFT's DoRA magnitudes or lora_bias vectors, stacked at "
                "run time)";
      return diag;
    }
    return success();
  }

  LogicalResult annotate(func::FuncOp func) {
    if (failed(checkShardable(func)))
      return failure();
    Block &entry = func.getBody().front();
    OpBuilder b = OpBuilder::atBlockBegin(&entry);
    for (BlockArgument arg : func.getArguments()) {
      auto type = dyn_cast<RankedTensorType>(arg.getType());
      // Unused arguments too: shard-partition needs every tensor argument
      // annotated.
      if (!type)
        continue;
      std::optional<int64_t> dim;
      if (!func.getArgAttr(arg.getArgNumber(), kInputAttr))
        dim = splitDimension(arg, strategy);
      if (dim) {
        int64_t extent = type.getDimSize(*dim);
        if (ShapedType::isDynamic(extent) || extent % ranks != 0)
          return func.emitError()
                 << "cannot split " << weightName(func, arg.getArgNumber())
                 << " over " << ranks.getValue() << " processes: its dimension "
                 << *dim << " has " << extent << " entries, not a multiple of "
                 << ranks.getValue();
        func.setArgAttr(arg.getArgNumber(), kShardDimAttr,
                        b.getI64IntegerAttr(*dim));
      }
      Value split = shard::ShardOp::create(b, arg.getLoc(), arg,
                                           sharding(b, arg.getLoc(), dim),
                                           /*annotate_for_users=*/false);
      arg.replaceAllUsesExcept(split, split.getDefiningOp());
    }
    annotateCapturedTensors(func);
    // Every rank returns the whole result.
    func.walk([&](func::ReturnOp ret) {
      OpBuilder rb(ret);
      for (OpOperand &operand : ret->getOpOperands()) {
        if (!isa<RankedTensorType>(operand.get().getType()))
          continue;
        operand.set(
            shard::ShardOp::create(rb, ret.getLoc(), operand.get(),
                                   sharding(rb, ret.getLoc(), std::nullopt),
                                   /*annotate_for_users=*/true));
      }
    });
    return success();
  }
};

} // namespace
