//===- OutlineResults.cpp - one private function per function result ------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Codegen/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::atmoe {
#define GEN_PASS_DEF_OUTLINERESULTSPASS
#include "atmoe/Codegen/Passes.h.inc"
} // namespace mlir::atmoe

using namespace mlir;

namespace {

/// The ops of a function body that move with one of its results.
struct ResultSlice {
  unsigned index;
  SmallVector<Operation *> ops; // in block order; the last defines the result
  OpOperand *destination;       // the chain's first operand left in the caller
};

/// The op that starts `value`'s chain of destination operands (usually a
/// tensor.empty), or null for a block argument.
Operation *findChainStart(Value value) {
  while (auto result = dyn_cast<OpResult>(value)) {
    auto dps = dyn_cast<DestinationStyleOpInterface>(result.getOwner());
    if (!dps)
      return result.getOwner();
    value = dps.getTiedOpOperand(result)->get();
  }
  return nullptr;
}

/// For each op of `body`, the index of the one result all its uses lead to.
/// Constants (copied instead), ops with memory effects, the ops that start
/// the results' chains of destinations (the callee writes into what the
/// caller passes) and ops whose uses lead to several results or none stay in
/// the caller. One walk from the end: an op's users come after it.
DenseMap<Operation *, unsigned> assignOwners(Block &body,
                                             func::ReturnOp terminator) {
  llvm::SmallPtrSet<Operation *, 8> chainStarts;
  for (Value result : terminator.getOperands())
    chainStarts.insert(findChainStart(result));
  DenseMap<Operation *, unsigned> owner;
  for (Operation &op : llvm::reverse(body.without_terminator())) {
    if (op.hasTrait<OpTrait::ConstantLike>() || !isMemoryEffectFree(&op) ||
        chainStarts.contains(&op))
      continue;
    std::optional<unsigned> common;
    bool shared = false;
    for (OpOperand &use : op.getUses()) {
      Operation *user = body.findAncestorOpInBlock(*use.getOwner());
      std::optional<unsigned> index;
      if (user == terminator.getOperation())
        index = use.getOperandNumber();
      else if (auto it = owner.find(user); it != owner.end())
        index = it->second;
      if (!index || (common && *common != *index)) {
        shared = true;
        break;
      }
      common = index;
    }
    if (!shared && common)
      owner[&op] = *common;
  }
  return owner;
}

/// The first operand along `value`'s chain of destination operands whose
/// value is not computed by an op `moves` accepts, or null when the chain
/// does not leave those ops.
OpOperand *findDestination(Value value, function_ref<bool(Operation *)> moves) {
  while (auto result = dyn_cast<OpResult>(value)) {
    auto dps = dyn_cast<DestinationStyleOpInterface>(result.getOwner());
    if (!dps || !moves(dps.getOperation()))
      return nullptr;
    OpOperand *init = dps.getTiedOpOperand(result);
    if (!moves(init->get().getDefiningOp()))
      return init;
    value = init->get();
  }
  return nullptr;
}

/// The slices of `func`'s results that can be outlined.
SmallVector<ResultSlice> findSlices(func::FuncOp func) {
  Block &body = func.getBody().front();
  auto terminator = cast<func::ReturnOp>(body.getTerminator());
  DenseMap<Operation *, unsigned> owner = assignOwners(body, terminator);
  SmallVector<ResultSlice> slices(terminator.getNumOperands());
  for (unsigned index = 0; index < slices.size(); ++index) {
    auto moves = [&](Operation *op) {
      auto it = op ? owner.find(op) : owner.end();
      return it != owner.end() && it->second == index;
    };
    slices[index].index = index;
    slices[index].destination =
        findDestination(terminator.getOperand(index), moves);
  }
  for (Operation &op : body.without_terminator())
    if (auto it = owner.find(&op); it != owner.end())
      slices[it->second].ops.push_back(&op);
  return llvm::filter_to_vector(slices, [](const ResultSlice &slice) {
    return slice.destination != nullptr;
  });
}

/// The values `ops` (and the ops nested in them) use that none of them
/// defines, in order of first use; `destination` is passed on its own.
llvm::SetVector<Value> collectInputs(ArrayRef<Operation *> ops,
                                     OpOperand *destination) {
  Block *body = ops.front()->getBlock();
  llvm::SmallPtrSet<Operation *, 16> inside(ops.begin(), ops.end());
  auto definedInside = [&](Value value) {
    Operation *definer = value.getDefiningOp();
    if (!definer)
      definer = value.getParentBlock()->getParentOp();
    Operation *ancestor = body->findAncestorOpInBlock(*definer);
    return ancestor && inside.contains(ancestor);
  };
  llvm::SetVector<Value> inputs;
  for (Operation *op : ops)
    op->walk<WalkOrder::PreOrder>([&](Operation *nested) {
      for (OpOperand &operand : nested->getOpOperands())
        if (&operand != destination && !definedInside(operand.get()))
          inputs.insert(operand.get());
    });
  return inputs;
}

/// Moves `slice` of `func` into a new private function, calls it instead
/// and returns it.
func::FuncOp outline(func::FuncOp func, const ResultSlice &slice,
                     SymbolTable &symbols) {
  auto terminator =
      cast<func::ReturnOp>(func.getBody().front().getTerminator());
  Value result = terminator.getOperand(slice.index);
  llvm::SetVector<Value> inputs = collectInputs(slice.ops, slice.destination);
  SmallVector<Value> arguments;
  for (Value input : inputs)
    if (!matchPattern(input, m_Constant()))
      arguments.push_back(input);
  Value destination = slice.destination->get();
  arguments.push_back(destination);

  OpBuilder builder(func);
  Location loc = slice.ops.back()->getLoc();
  auto type = builder.getFunctionType(ValueRange(arguments).getTypes(),
                                      result.getType());
  auto callee = func::FuncOp::create(
      builder, loc, (func.getSymName() + "_result" + Twine(slice.index)).str(),
      type);
  callee.setPrivate();
  MLIRContext *context = func.getContext();
  callee->setAttr("llvm.linkage",
                  LLVM::LinkageAttr::get(context, LLVM::Linkage::Internal));
  callee->setAttr("passthrough",
                  builder.getArrayAttr({builder.getStringAttr("noinline")}));
  symbols.insert(callee);

  Block *entry = callee.addEntryBlock();
  builder.setInsertionPointToStart(entry);
  IRMapping mapping;
  for (auto [value, argument] :
       llvm::zip(ArrayRef(arguments).drop_back(), entry->getArguments()))
    mapping.map(value, argument);
  for (Value input : inputs)
    if (!mapping.contains(input))
      mapping.map(input, builder.clone(*input.getDefiningOp())->getResult(0));
  for (Operation *op : slice.ops)
    builder.clone(*op, mapping);
  // Only the chain's operand becomes the destination argument: other uses
  // of the same value inside read it through their own argument.
  Operation *chainUser = mapping.lookup(slice.destination->getOwner());
  chainUser->setOperand(slice.destination->getOperandNumber(),
                        entry->getArguments().back());
  func::ReturnOp::create(builder, loc, mapping.lookup(result));

  builder.setInsertionPoint(slice.ops.back());
  auto call = func::CallOp::create(builder, loc, callee, arguments);
  terminator.setOperand(slice.index, call.getResult(0));
  for (Operation *op : llvm::reverse(slice.ops))
    op->erase();
  return callee;
}

/// A hash that equivalent function bodies share.
llvm::hash_code hashBody(func::FuncOp func) {
  llvm::hash_code hash = hash_value(func.getFunctionType());
  func.getBody().walk([&](Operation *op) {
    hash =
        llvm::hash_combine(hash, OperationEquivalence::computeHash(
                                     op, OperationEquivalence::ignoreHashValue,
                                     OperationEquivalence::ignoreHashValue,
                                     OperationEquivalence::IgnoreLocations));
  });
  return hash;
}

/// Calls `duplicates` make go to the first of their equivalents instead;
/// the duplicates are erased.
void mergeEquivalent(ModuleOp module, ArrayRef<func::FuncOp> functions) {
  llvm::MapVector<llvm::hash_code, SmallVector<func::FuncOp>> buckets;
  DenseMap<StringAttr, func::FuncOp> replacement;
  for (func::FuncOp func : functions) {
    SmallVector<func::FuncOp> &bucket = buckets[hashBody(func)];
    auto same = llvm::find_if(bucket, [&](func::FuncOp kept) {
      return kept.getFunctionType() == func.getFunctionType() &&
             OperationEquivalence::isRegionEquivalentTo(
                 &kept.getBody(), &func.getBody(),
                 OperationEquivalence::IgnoreLocations);
    });
    if (same == bucket.end())
      bucket.push_back(func);
    else
      replacement[func.getSymNameAttr()] = *same;
  }
  if (replacement.empty())
    return;
  module.walk([&](func::CallOp call) {
    if (auto it = replacement.find(call.getCalleeAttr().getAttr());
        it != replacement.end())
      call.setCallee(it->second.getSymName());
  });
  for (func::FuncOp func : functions)
    if (replacement.contains(func.getSymNameAttr()))
      func.erase();
}

struct OutlineResultsPass
    : atmoe::impl::OutlineResultsPassBase<OutlineResultsPass> {
  using OutlineResultsPassBase::OutlineResultsPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<func::FuncOp> outlined;
    for (func::FuncOp func : llvm::to_vector(module.getOps<func::FuncOp>())) {
      if (func.isExternal() || !func.getBody().hasOneBlock())
        continue;
      for (const ResultSlice &slice : findSlices(func))
        outlined.push_back(outline(func, slice, symbols));
    }
    mergeEquivalent(module, outlined);
  }
};

} // namespace
