//===- Driver.cpp - the atmoe-compile driver --------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Driver/Driver.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeOps.h"
#include "atmoe/Importer/ModelImporter.h"
#include "atmoe/Pipelines/Pipelines.h"
#include "atmoe/Support/AtomicFile.h"
#include "atmoe/Target/Target.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/Transforms/IPO/MergeFunctions.h"

using namespace mlir;
using namespace mlir::atmoe;

std::optional<EmitStage> mlir::atmoe::parseEmitStage(StringRef name) {
  return llvm::StringSwitch<std::optional<EmitStage>>(name)
      .Case("mlir", EmitStage::Mlir)
      .Case("linalg", EmitStage::Linalg)
      .Case("llvm", EmitStage::LLVM)
      .Case("obj", EmitStage::Object)
      .Case("so", EmitStage::SharedLibrary)
      .Default(std::nullopt);
}

namespace {

/// Names the entry point of a layer function in the shared library.
std::string entryName(StringRef function) {
  return ("atmoe_entry_" + function).str();
}

//===----------------------------------------------------------------------===//
// Input
//===----------------------------------------------------------------------===//

FailureOr<OwningOpRef<ModuleOp>>
loadInput(MLIRContext &context, StringRef input, CompileFailure &kind) {
  Location loc = FileLineColLoc::get(&context, input, 0, 0);
  bool isPackage = llvm::sys::fs::is_directory(input) ||
                   llvm::sys::path::extension(input) == ".json";
  if (!isPackage) {
    if (!llvm::sys::fs::exists(input))
      return emitError(loc) << "no such file or model package directory";
    OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(input, &context);
    if (!module)
      return failure();
    return module;
  }
  llvm::Expected<OwningOpRef<ModuleOp>> module =
      llvm::sys::fs::is_directory(input) ? importModelPackage(context, input)
                                         : importModelFile(context, input);
  if (!module) {
    llvm::handleAllErrors(
        module.takeError(), [&](const llvm::ErrorInfoBase &error) {
          if (error.convertToErrorCode() == importerInternalErrorCode())
            kind = CompileFailure::Internal;
          emitError(loc) << error.message();
        });
    return failure();
  }
  return std::move(*module);
}

//===----------------------------------------------------------------------===//
// Manifest
//===----------------------------------------------------------------------===//

struct ArgumentInfo {
  std::string role; // input, weight, output
  std::string name; // input/output name, or the weight's canonical name
  std::string file, source;
  std::string dtype;
  SmallVector<int64_t> shape;
  /// On a GPU target, whether the host code reads it (so the runtime passes
  /// it in host memory).
  bool inHostMemory = false;
  /// A weight stacked at bind time (atmoe-hoist-weight-concat): its parts,
  /// concatenated along `concatDim`.
  std::vector<ArgumentInfo> parts;
  int64_t concatDim = -1;
};

struct LayerInfo {
  int64_t index = 0;
  std::string function;
  std::string granularity = "token";
  SmallVector<std::string> experts;
  std::vector<ArgumentInfo> arguments;
};

FailureOr<ArgumentInfo> describe(Location loc, Type type, DictionaryAttr attrs,
                                 StringRef what) {
  ArgumentInfo info;
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !(tensor.getElementType().isF32() ||
                   tensor.getElementType().isInteger(64)))
    return emitError(loc) << what << " must be a ranked f32 or i64 tensor";
  info.dtype = tensor.getElementType().isF32() ? "f32" : "i64";
  for (int64_t extent : tensor.getShape())
    info.shape.push_back(ShapedType::isDynamic(extent) ? -1 : extent);
  auto str = [&](StringRef key) -> std::string {
    if (auto value = attrs ? attrs.getAs<StringAttr>(key) : StringAttr())
      return value.str();
    return "";
  };
  if (std::string name = str("atmoe.input"); !name.empty()) {
    info.role = "input";
    info.name = name;
  } else if (std::string name = str("atmoe.output"); !name.empty()) {
    info.role = "output";
    info.name = name;
  } else if (std::string name = str("atmoe.tensor"); !name.empty()) {
    info.role = "weight";
    info.name = name;
    if (auto parts = attrs.getAs<ArrayAttr>("atmoe.parts")) {
      auto dim = attrs.getAs<IntegerAttr>("atmoe.concat_dim");
      if (!dim)
        return emitError(loc) << what << " (" << name
                              << ") has atmoe.parts but no atmoe.concat_dim";
      info.concatDim = dim.getInt();
      for (Attribute part : parts) {
        auto dict = dyn_cast<DictionaryAttr>(part);
        auto partShape =
            dict ? dict.getAs<DenseI64ArrayAttr>("shape") : DenseI64ArrayAttr();
        auto partName = dict ? dict.getAs<StringAttr>("tensor") : StringAttr();
        auto partFile = dict ? dict.getAs<StringAttr>("file") : StringAttr();
        auto partSource =
            dict ? dict.getAs<StringAttr>("source") : StringAttr();
        if (!partShape || !partName || !partFile || !partSource)
          return emitError(loc)
                 << what << " (" << name
                 << "): each of atmoe.parts needs tensor, file, source, shape";
        ArgumentInfo piece;
        piece.role = "weight";
        piece.dtype = "f32";
        piece.name = partName.str();
        piece.file = partFile.str();
        piece.source = partSource.str();
        llvm::append_range(piece.shape, partShape.asArrayRef());
        info.parts.push_back(std::move(piece));
      }
      return info;
    }
    info.file = str("atmoe.file");
    info.source = str("atmoe.source");
    if (info.file.empty() || info.source.empty())
      return emitError(loc)
             << what << " (" << name << ") needs atmoe.file and atmoe.source";
  } else {
    return emitError(loc)
           << what
           << " has no atmoe.input, atmoe.tensor or atmoe.output attribute "
              "(see docs/ModelABI.md)";
  }
  return info;
}

/// The routed experts (routing columns) of each layer function, read while
/// the layer structure still exists.
llvm::StringMap<SmallVector<std::string>> collectExperts(ModuleOp module) {
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

/// Describes the layer functions' arguments and results, after the fusion
/// passes have fixed the ABI (weights stacked at bind time included).
FailureOr<std::vector<LayerInfo>>
collectLayers(ModuleOp module,
              const llvm::StringMap<SmallVector<std::string>> &experts) {
  std::vector<LayerInfo> layers;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isPrivate() || func.isExternal())
      continue;
    LayerInfo layer;
    layer.function = func.getSymName().str();
    layer.index = static_cast<int64_t>(layers.size());
    StringRef digits = func.getSymName();
    if (digits.consume_front("layer") && digits.consume_back("_forward"))
      digits.getAsInteger(10, layer.index);
    if (auto index = func->getAttrOfType<IntegerAttr>("atmoe.layer_index"))
      layer.index = index.getInt();

    auto it = experts.find(layer.function);
    if (it != experts.end())
      layer.experts = it->second;

    FunctionType type = func.getFunctionType();
    for (unsigned i = 0; i < type.getNumInputs(); ++i) {
      FailureOr<ArgumentInfo> info =
          describe(func.getLoc(), type.getInput(i), func.getArgAttrDict(i),
                   "argument #" + std::to_string(i) + " of @" + layer.function);
      if (failed(info))
        return failure();
      if (info->role == "output")
        return emitError(func.getLoc())
               << "argument #" << i << " of @" << layer.function
               << " is marked as an output";
      if (info->role == "input" && info->name == "segments")
        layer.granularity = "sequence";
      layer.arguments.push_back(std::move(*info));
    }
    for (unsigned i = 0; i < type.getNumResults(); ++i) {
      FailureOr<ArgumentInfo> info =
          describe(func.getLoc(), type.getResult(i), func.getResultAttrDict(i),
                   "result #" + std::to_string(i) + " of @" + layer.function);
      if (failed(info))
        return failure();
      if (info->role != "output")
        return emitError(func.getLoc())
               << "result #" << i << " of @" << layer.function
               << " must be marked with atmoe.output";
      layer.arguments.push_back(std::move(*info));
    }
    layers.push_back(std::move(layer));
  }
  if (layers.empty())
    return emitError(module.getLoc()) << "the input has no layer function";
  return layers;
}

/// Marks the arguments the GPU pipeline found the host code to read
/// (atmoe.host_arguments, GPUHostArgumentsPass).
LogicalResult markHostArguments(ModuleOp module,
                                MutableArrayRef<LayerInfo> layers) {
  for (LayerInfo &layer : layers) {
    auto func = module.lookupSymbol<LLVM::LLVMFuncOp>(layer.function);
    if (!func)
      return emitError(module.getLoc())
             << "lowered module lacks @" << layer.function;
    auto hostArguments =
        func->getAttrOfType<DenseI64ArrayAttr>("atmoe.host_arguments");
    if (!hostArguments)
      continue;
    for (int64_t position : hostArguments.asArrayRef()) {
      if (position < 0 ||
          position >= static_cast<int64_t>(layer.arguments.size()))
        return emitError(func.getLoc())
               << "internal error: atmoe.host_arguments names argument #"
               << position << " of " << layer.arguments.size();
      layer.arguments[position].inHostMemory = true;
    }
  }
  return success();
}

std::string manifestJson(ModuleOp module, ArrayRef<LayerInfo> layers,
                         StringRef triple, const TargetSelection &target) {
  llvm::json::Array layerArray;
  for (const LayerInfo &layer : layers) {
    llvm::json::Array arguments;
    for (const ArgumentInfo &arg : layer.arguments) {
      llvm::json::Object object{{"role", arg.role},
                                {"dtype", arg.dtype},
                                {"shape", llvm::json::Array(arg.shape)}};
      if (arg.role == "weight" && !arg.parts.empty()) {
        object["tensor"] = arg.name;
        object["concat_dim"] = arg.concatDim;
        llvm::json::Array parts;
        for (const ArgumentInfo &part : arg.parts)
          parts.push_back(
              llvm::json::Object{{"tensor", part.name},
                                 {"file", part.file},
                                 {"source", part.source},
                                 {"shape", llvm::json::Array(part.shape)}});
        object["parts"] = std::move(parts);
      } else if (arg.role == "weight") {
        object["tensor"] = arg.name;
        object["file"] = arg.file;
        object["source"] = arg.source;
      } else {
        object["name"] = arg.name;
      }
      if (target.target->getDevice() != DeviceKind::CPU)
        object["memory"] = arg.inHostMemory ? "host" : "device";
      arguments.push_back(std::move(object));
    }
    llvm::json::Array experts;
    for (const std::string &expert : layer.experts)
      experts.push_back(expert);
    layerArray.push_back(
        llvm::json::Object{{"index", layer.index},
                           {"function", layer.function},
                           {"entry", entryName(layer.function)},
                           {"granularity", layer.granularity},
                           {"experts", std::move(experts)},
                           {"arguments", std::move(arguments)}});
  }
  std::string model = "model";
  if (auto name = module->getAttrOfType<StringAttr>("atmoe.model"))
    model = name.str();
  llvm::json::Object manifest{
      {"format", "atmoe-compiled/1"},
      {"model", model},
      {"target", triple.str()},
      {"device", stringifyDeviceKind(target.target->getDevice())},
      {"compiled_for", target.getSpelling()},
      {"layers", std::move(layerArray)}};
  std::string text;
  llvm::raw_string_ostream os(text);
  os << llvm::json::Value(std::move(manifest));
  return text;
}

//===----------------------------------------------------------------------===//
// LLVM IR: entry points, manifest, optimisation, object code
//===----------------------------------------------------------------------===//

/// Adds `void atmoe_entry_<fn>(void **args)` that unpacks one memref
/// descriptor per argument into the expanded signature MLIR lowers memrefs
/// to (allocated, aligned, offset, sizes..., strides...). A fixed C signature
/// lets the runtime call any layer without generating code itself.
LogicalResult addEntryPoint(Location loc, llvm::Module &module,
                            const LayerInfo &layer) {
  llvm::Function *callee = module.getFunction(layer.function);
  if (!callee)
    return emitError(loc) << "lowered module lacks @" << layer.function;
  llvm::LLVMContext &ctx = module.getContext();
  llvm::Type *ptr = llvm::PointerType::get(ctx, 0);
  llvm::Type *i64 = llvm::Type::getInt64Ty(ctx);
  auto *type =
      llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptr}, false);
  auto *entry = llvm::Function::Create(type, llvm::GlobalValue::ExternalLinkage,
                                       entryName(layer.function), module);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", entry));
  SmallVector<llvm::Value *> operands;
  for (auto [i, arg] : llvm::enumerate(layer.arguments)) {
    unsigned rank = arg.shape.size();
    auto *array = llvm::ArrayType::get(i64, rank);
    auto *descriptorType =
        llvm::StructType::get(ctx, {ptr, ptr, i64, array, array});
    llvm::Value *slot = b.CreateConstInBoundsGEP1_64(ptr, entry->getArg(0), i);
    llvm::Value *descriptor = b.CreateLoad(ptr, slot);
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

void addManifest(llvm::Module &module, StringRef json) {
  llvm::Constant *text =
      llvm::ConstantDataArray::getString(module.getContext(), json, true);
  auto *global = new llvm::GlobalVariable(
      module, text->getType(), /*isConstant=*/true,
      llvm::GlobalValue::ExternalLinkage, text, "atmoe_manifest");
  global->setAlignment(llvm::Align(1));
}

/// The machine the host code is compiled for.
FailureOr<std::unique_ptr<llvm::TargetMachine>>
createTargetMachine(Location loc, const HostCPU &cpu) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  std::string error;
  const llvm::Target *llvmTarget =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!llvmTarget)
    return emitError(loc) << "no LLVM target for " << triple.str() << ": "
                          << error;
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> machine(llvmTarget->createTargetMachine(
      triple, cpu.name, cpu.features, options, llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    return emitError(loc) << "cannot create a target machine for " << cpu.name;
  return machine;
}

void optimize(llvm::Module &module, llvm::TargetMachine &machine) {
  llvm::LoopAnalysisManager loops;
  llvm::FunctionAnalysisManager functions;
  llvm::CGSCCAnalysisManager sccs;
  llvm::ModuleAnalysisManager modules;
  llvm::PassBuilder builder(&machine);
  builder.registerModuleAnalyses(modules);
  builder.registerCGSCCAnalyses(sccs);
  builder.registerFunctionAnalyses(functions);
  builder.registerLoopAnalyses(loops);
  builder.crossRegisterProxies(loops, functions, sccs, modules);
  // Layers of one shape lower to identical kernels (OpenMP bodies, host
  // functions) that differ only in the buffers they are passed: merging them
  // before O3 optimises and emits each shape once, not once per layer.
  llvm::ModulePassManager passes;
  passes.addPass(llvm::MergeFunctionsPass());
  passes.addPass(
      builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3));
  passes.run(module, modules);
}

LogicalResult writeObject(Location loc, llvm::Module &module,
                          llvm::TargetMachine &machine, StringRef path) {
  llvm::Error error = ::atmoe::writeFileAtomically(
      path, [&](llvm::raw_ostream &os) -> llvm::Error {
        SmallString<0> buffer;
        llvm::raw_svector_ostream stream(buffer);
        llvm::legacy::PassManager passes;
        if (machine.addPassesToEmitFile(passes, stream, nullptr,
                                        llvm::CodeGenFileType::ObjectFile))
          return llvm::createStringError("the target cannot emit object files");
        passes.run(module);
        os << buffer;
        return llvm::Error::success();
      });
  if (error)
    return emitError(loc) << llvm::toString(std::move(error));
  return success();
}

/// Links `object` into the shared library `output` with clang. The linker
/// writes into the system's temporary directory, and the result is then
/// copied into place with writeFileAtomically (a temporary file beside
/// `output`, renamed onto it). Both temporaries are removed on failure and on
/// SIGINT/SIGTERM; a linker that outlives an interrupted atmoe-compile can
/// only leave a file in the temporary directory, never beside the output.
LogicalResult linkSharedLibrary(Location loc, StringRef object,
                                StringRef output,
                                ArrayRef<std::string> libraries,
                                CompileFailure &kind) {
  kind = CompileFailure::Internal;
  SmallString<128> linked;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("atmoe", "so", linked))
    return emitError(loc) << "cannot create a temporary file to link into: "
                          << ec.message();
  llvm::sys::RemoveFileOnSignal(linked);
  llvm::FileRemover removeLinked(linked);

  std::string clang = ATMOE_CLANG_PATH;
  // The rpath finds the libraries (libomp) of the LLVM the code was compiled
  // against.
  std::string rpath = "-Wl,-rpath," ATMOE_LLVM_LIBRARY_DIR;
  SmallVector<std::string> libraryFlags;
  for (const std::string &library : libraries)
    libraryFlags.push_back("-l" + library);
  SmallVector<StringRef> args = {clang,
                                 "-shared",
                                 "-fuse-ld=lld",
                                 "-o",
                                 linked,
                                 object,
                                 "-L" ATMOE_LLVM_LIBRARY_DIR,
                                 rpath};
  llvm::append_range(args, libraryFlags);
  std::string message;
  int status =
      llvm::sys::ExecuteAndWait(clang, args, std::nullopt, {}, 0, 0, &message);
  if (status != 0)
    return emitError(loc) << "linking " << output << " with " << clang
                          << " failed"
                          << (message.empty() ? "" : ": " + message);
  auto library = llvm::MemoryBuffer::getFile(linked, /*IsText=*/false,
                                             /*RequiresNullTerminator=*/false);
  if (!library)
    return emitError(loc) << "cannot read the linked library " << linked << ": "
                          << library.getError().message();

  kind = CompileFailure::Input;
  llvm::Error error = ::atmoe::writeFileAtomically(
      output, [&](llvm::raw_ostream &os) -> llvm::Error {
        os << (*library)->getBuffer();
        return llvm::Error::success();
      });
  if (error)
    return emitError(loc) << llvm::toString(std::move(error));
  // As the linker made it (executable, like any shared library).
  if (llvm::ErrorOr<llvm::sys::fs::perms> perms =
          llvm::sys::fs::getPermissions(linked))
    (void)llvm::sys::fs::setPermissions(output, *perms);
  return success();
}

LogicalResult writeText(Location loc, StringRef path,
                        llvm::function_ref<void(llvm::raw_ostream &)> print) {
  if (path == "-") {
    print(llvm::outs());
    return success();
  }
  llvm::Error error = ::atmoe::writeFileAtomically(
      path, [&](llvm::raw_ostream &os) -> llvm::Error {
        print(os);
        return llvm::Error::success();
      });
  if (error)
    return emitError(loc) << llvm::toString(std::move(error));
  return success();
}

LogicalResult runPipeline(MLIRContext &context, ModuleOp module,
                          const CompileOptions &options,
                          llvm::function_ref<void(OpPassManager &)> build) {
  PassManager pm(&context);
  if (options.configurePassManager && failed(options.configurePassManager(pm)))
    return failure();
  build(pm);
  return pm.run(module);
}

} // namespace

/// The compilation; `kind` is kept at the fault class of the step running,
/// so that a failing step's `return failure()` is classified by it.
static LogicalResult compileImpl(MLIRContext &context,
                                 const CompileOptions &options,
                                 CompileFailure &kind) {
  Location loc = FileLineColLoc::get(&context, options.input, 0, 0);
  kind = CompileFailure::Usage;
  registerAllTargets();
  llvm::Expected<TargetSelection> target = lookupTarget(options.target);
  if (!target)
    return emitError(loc) << llvm::toString(target.takeError());
  CodegenOptions codegen;
  codegen.cpuSchedule = options.cpuSchedule;
  if (llvm::Error error = target->target->checkOptions(codegen))
    return emitError(loc) << llvm::toString(std::move(error));
  kind = CompileFailure::Input;
  FailureOr<OwningOpRef<ModuleOp>> loaded =
      loadInput(context, options.input, kind);
  if (failed(loaded))
    return failure();
  ModuleOp module = loaded->get();
  if (failed(verify(module)))
    return failure();

  if (options.emit == EmitStage::Mlir)
    return writeText(loc, options.output,
                     [&](llvm::raw_ostream &os) { module.print(os); });

  llvm::StringMap<SmallVector<std::string>> experts = collectExperts(module);
  // The input verified: a pass that fails on it is the compiler's fault.
  kind = CompileFailure::Internal;
  if (failed(runPipeline(context, module, options, [&](OpPassManager &pm) {
        LowerToLinalgOptions lower;
        lower.sequenceMerge = options.sequenceMerge;
        buildLowerToLinalgPipeline(pm, lower);
      })))
    return failure();
  kind = CompileFailure::Input;
  if (options.emit == EmitStage::Linalg)
    return writeText(loc, options.output,
                     [&](llvm::raw_ostream &os) { module.print(os); });
  // The fused signatures are the ABI: describe them before bufferization
  // drops their attributes.
  FailureOr<std::vector<LayerInfo>> layers = collectLayers(module, experts);
  if (failed(layers))
    return failure();

  // Unless the user's own --cpu-schedule script drives the code generation.
  kind = options.cpuSchedule.empty() ? CompileFailure::Internal
                                     : CompileFailure::Input;
  if (failed(runPipeline(context, module, options, [&](OpPassManager &pm) {
        target->target->buildCodegenPipeline(pm, target->chip, codegen);
      })))
    return failure();

  kind = CompileFailure::Internal;
  if (failed(markHostArguments(module, *layers)))
    return failure();
  FailureOr<std::unique_ptr<llvm::TargetMachine>> machine =
      createTargetMachine(loc, target->target->getHostCPU(target->chip));
  if (failed(machine))
    return failure();
  // The LLVM IR translations (GPU binaries included) are registered with
  // the dialects (registerAllDialects).
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext, "atmoe");
  if (!llvmModule)
    return emitError(loc) << "translation to LLVM IR failed";
  llvmModule->setTargetTriple((*machine)->getTargetTriple());
  llvmModule->setDataLayout((*machine)->createDataLayout());
  for (const LayerInfo &layer : *layers)
    if (failed(addEntryPoint(loc, *llvmModule, layer)))
      return failure();
  addManifest(*llvmModule,
              manifestJson(module, *layers, (*machine)->getTargetTriple().str(),
                           *target));
  optimize(*llvmModule, **machine);

  // What fails from here on is writing the output.
  kind = CompileFailure::Input;
  if (options.emit == EmitStage::LLVM)
    return writeText(loc, options.output, [&](llvm::raw_ostream &os) {
      llvmModule->print(os, nullptr);
    });
  if (options.emit == EmitStage::Object)
    return writeObject(loc, *llvmModule, **machine, options.output);

  kind = CompileFailure::Internal;
  SmallString<128> object;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("atmoe", "o", object))
    return emitError(loc) << "cannot create a temporary object file: "
                          << ec.message();
  llvm::sys::RemoveFileOnSignal(object);
  llvm::FileRemover removeObject(object);
  if (failed(writeObject(loc, *llvmModule, **machine, object)))
    return failure();
  return linkSharedLibrary(loc, object, options.output,
                           target->target->getLinkLibraries(), kind);
}

LogicalResult mlir::atmoe::compile(MLIRContext &context,
                                   const CompileOptions &options,
                                   CompileFailure *failureKind) {
  CompileFailure kind = CompileFailure::Internal;
  LogicalResult result = compileImpl(context, options, kind);
  if (failed(result) && failureKind)
    *failureKind = kind;
  return result;
}
