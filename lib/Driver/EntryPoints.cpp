//===- EntryPoints.cpp - Entry points and the embedded manifest -----------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "DriverInternals.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Module.h"

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// The lowered operands of one memref descriptor (allocated, aligned,
/// offset, sizes..., strides...) loaded from the descriptor at `slot`.
void unpackDescriptor(llvm::IRBuilder<> &b, llvm::Value *descriptor,
                      unsigned rank, SmallVectorImpl<llvm::Value *> &operands) {
  llvm::LLVMContext &ctx = b.getContext();
  llvm::Type *ptr = llvm::PointerType::get(ctx, 0);
  llvm::Type *i64 = llvm::Type::getInt64Ty(ctx);
  auto *array = llvm::ArrayType::get(i64, rank);
  auto *descriptorType =
      llvm::StructType::get(ctx, {ptr, ptr, i64, array, array});
  auto field = [&](ArrayRef<unsigned> path, llvm::Type *fieldType) {
    SmallVector<llvm::Value *> indices = {b.getInt32(0)};
    for (unsigned index : path)
      indices.push_back(b.getInt32(index));
    return b.CreateLoad(
        fieldType, b.CreateInBoundsGEP(descriptorType, descriptor, indices));
  };
  operands.push_back(field({0}, ptr));
  operands.push_back(field({1}, ptr));
  operands.push_back(field({2}, i64));
  for (unsigned d = 0; d < rank; ++d)
    operands.push_back(field({3, d}, i64));
  for (unsigned d = 0; d < rank; ++d)
    operands.push_back(field({4, d}, i64));
}

/// Adds `void atmoe_entry_<fn>(void **args)` that unpacks one memref
/// descriptor per argument into the expanded signature MLIR lowers memrefs
/// to. A fixed C signature lets the runtime call any layer without
/// generating code itself.
LogicalResult addEntryPoint(Location loc, llvm::Module &module,
                            const atmoe_rt::Layer &layer) {
  llvm::Function *callee = module.getFunction(layer.function);
  if (!callee)
    return emitError(loc) << "lowered module lacks @" << layer.function;
  llvm::LLVMContext &ctx = module.getContext();
  llvm::Type *ptr = llvm::PointerType::get(ctx, 0);
  auto *type =
      llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptr}, false);
  auto *entry = llvm::Function::Create(type, llvm::GlobalValue::ExternalLinkage,
                                       layer.entry, module);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", entry));
  SmallVector<llvm::Value *> operands;
  for (auto [i, arg] : llvm::enumerate(layer.arguments)) {
    llvm::Value *slot = b.CreateConstInBoundsGEP1_64(ptr, entry->getArg(0), i);
    unpackDescriptor(b, b.CreateLoad(ptr, slot), atmoe_rt::compiledRank(arg),
                     operands);
  }
  if (operands.size() != callee->arg_size())
    return emitError(loc) << "internal error: @" << layer.function << " takes "
                          << callee->arg_size() << " lowered arguments, the "
                          << "manifest describes " << operands.size();
  b.CreateCall(callee, operands);
  b.CreateRetVoid();
  // Only the entry points and the manifest are the library's interface.
  callee->setLinkage(llvm::GlobalValue::InternalLinkage);
  return success();
}

} // namespace

LogicalResult driver::addEntryPoints(Location loc, llvm::Module &module,
                                     const atmoe_rt::Manifest &manifest) {
  for (const atmoe_rt::Layer &layer : manifest.layers)
    if (failed(addEntryPoint(loc, module, layer)))
      return failure();
  return success();
}

void driver::addManifest(llvm::Module &module,
                         const atmoe_rt::Manifest &manifest) {
  llvm::Constant *text = llvm::ConstantDataArray::getString(
      module.getContext(), atmoe_rt::writeManifest(manifest), true);
  auto *global =
      new llvm::GlobalVariable(module, text->getType(), /*isConstant=*/true,
                               llvm::GlobalValue::ExternalLinkage, text,
                               llvm::StringRef(atmoe_rt::kManifestSymbol));
  // The runtime reads the section from the file before loading it.
  global->setSection(llvm::StringRef(atmoe_rt::kManifestSection));
  global->setAlignment(llvm::Align(1));
}
