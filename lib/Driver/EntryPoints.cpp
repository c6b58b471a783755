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

/// Defines `name` (declared by the lowered code, which calls it) as a call
/// through the hook in `slot` with the context in `context`, or of
/// `fallback` while the hook is null.
static void defineThroughHook(llvm::Module &module, StringRef name,
                              llvm::GlobalVariable *slot,
                              llvm::GlobalVariable *context,
                              llvm::FunctionCallee fallback) {
  llvm::Function *function = module.getFunction(name);
  if (!function || !function->isDeclaration())
    return;
  llvm::LLVMContext &ctx = module.getContext();
  llvm::Type *ptr = llvm::PointerType::get(ctx, 0);
  function->setLinkage(llvm::GlobalValue::InternalLinkage);
  auto *entry = llvm::BasicBlock::Create(ctx, "entry", function);
  auto *viaHook = llvm::BasicBlock::Create(ctx, "hook", function);
  auto *direct = llvm::BasicBlock::Create(ctx, "direct", function);
  llvm::IRBuilder<> b(entry);
  llvm::Value *hook = b.CreateLoad(ptr, slot);
  b.CreateCondBr(b.CreateIsNull(hook), direct, viaHook);
  llvm::Value *argument = function->getArg(0);
  llvm::FunctionType *type = function->getFunctionType();
  auto finish = [&](llvm::Value *result) {
    if (type->getReturnType()->isVoidTy())
      b.CreateRetVoid();
    else
      b.CreateRet(result);
  };
  b.SetInsertPoint(direct);
  finish(b.CreateCall(fallback, {argument}));
  b.SetInsertPoint(viaHook);
  auto *hookType = llvm::FunctionType::get(type->getReturnType(),
                                           {ptr, argument->getType()}, false);
  finish(b.CreateCall(hookType, hook, {b.CreateLoad(ptr, context), argument}));
}

void driver::addAllocatorHooks(llvm::Module &module) {
  llvm::LLVMContext &ctx = module.getContext();
  llvm::Type *ptr = llvm::PointerType::get(ctx, 0);
  llvm::Type *i64 = llvm::Type::getInt64Ty(ctx);
  auto slot = [&](StringRef name) {
    return new llvm::GlobalVariable(
        module, ptr, /*isConstant=*/false, llvm::GlobalValue::InternalLinkage,
        llvm::ConstantPointerNull::get(llvm::PointerType::get(ctx, 0)), name);
  };
  llvm::GlobalVariable *context = slot("atmoe.allocator.context");
  llvm::GlobalVariable *allocate = slot("atmoe.allocator.allocate");
  llvm::GlobalVariable *release = slot("atmoe.allocator.release");
  defineThroughHook(module, "_mlir_memref_to_llvm_alloc", allocate, context,
                    module.getOrInsertFunction("malloc", ptr, i64));
  defineThroughHook(
      module, "_mlir_memref_to_llvm_free", release, context,
      module.getOrInsertFunction("free", llvm::Type::getVoidTy(ctx), ptr));

  auto *setterType = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx),
                                             {ptr, ptr, ptr}, false);
  auto *setter = llvm::Function::Create(
      setterType, llvm::GlobalValue::ExternalLinkage,
      llvm::StringRef(atmoe_rt::kSetAllocatorSymbol), module);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", setter));
  b.CreateStore(setter->getArg(0), context);
  b.CreateStore(setter->getArg(1), allocate);
  b.CreateStore(setter->getArg(2), release);
  b.CreateRetVoid();
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
