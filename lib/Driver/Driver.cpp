//===- Driver.cpp - the atmoe-compile driver ------------------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The order of the steps and whose fault each failure is. A step that fails
// has emitted its diagnostics; its FaultOr says what the tool's exit code is:
// the input's fault while reading and writing files, the command line's while
// choosing the target, the compiler's own in the pipelines on verified input
// (unless the user's --cpu-schedule drives code generation).
//
//===----------------------------------------------------------------------===//

#include "atmoe/Driver/Driver.h"

#include "DriverInternals.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.h"

#include "atmoe/Pipelines/Pipelines.h"
#include "atmoe/Target/Target.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/Module.h"
#include "llvm/Target/TargetMachine.h"

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::driver;

/// The --emit spelling of every stage.
static constexpr std::pair<EmitStage, llvm::StringLiteral> kEmitStageNames[] = {
    {EmitStage::Mlir, "mlir"},
    {EmitStage::Linalg, "linalg"},
    {EmitStage::LLVM, "llvm"},
    {EmitStage::Object, "obj"},
    {EmitStage::SharedLibrary, "so"}};

std::optional<EmitStage> mlir::atmoe::parseEmitStage(StringRef name) {
  for (auto [stage, spelling] : kEmitStageNames)
    if (spelling == name)
      return stage;
  return std::nullopt;
}

StringRef mlir::atmoe::emitStageName(EmitStage stage) {
  for (auto [known, spelling] : kEmitStageNames)
    if (known == stage)
      return spelling;
  llvm_unreachable("unknown emit stage");
}

namespace {

/// One run of the driver: the steps share the options, the module and the
/// manifest being built.
class Compilation {
public:
  Compilation(MLIRContext &context, const CompileOptions &options)
      : context(context), options(options),
        loc(FileLineColLoc::get(&context, options.input, 0, 0)) {}

  FaultOr<> run();

private:
  FaultOr<> checkOutput();
  FaultOr<> selectTarget();
  FaultOr<> lowerToLinalg();
  FaultOr<> generateCode();
  FaultOr<> emitLLVM();
  LogicalResult runPipeline(llvm::function_ref<void(OpPassManager &)> build);
  FaultOr<> writeIR(Fault fault = Fault::Input) {
    return FaultOr<>(
        writeText(loc, options.output,
                  [&](llvm::raw_ostream &os) { module->print(os); }),
        fault);
  }

  MLIRContext &context;
  const CompileOptions &options;
  Location loc;
  TargetSelection target;
  CodegenOptions codegen;
  OwningOpRef<ModuleOp> module;
  atmoe_rt::Manifest manifest;
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule;
  std::unique_ptr<llvm::TargetMachine> machine;
};

FaultOr<> Compilation::run() {
  if (FaultOr<> checked = checkOutput(); !checked)
    return checked;
  if (FaultOr<> selected = selectTarget(); !selected)
    return selected;
  FaultOr<OwningOpRef<ModuleOp>> loaded =
      loadInput(context, options.input, options.import);
  if (!loaded)
    return loaded.getFault();
  module = std::move(*loaded);
  if (failed(verify(*module)) || failed(checkDynamicRows(*module)))
    return Fault::Input;
  if (options.emit == EmitStage::Mlir)
    return writeIR();
  if (FaultOr<> lowered = lowerToLinalg(); !lowered)
    return lowered;
  if (options.emit == EmitStage::Linalg)
    return writeIR();
  if (FaultOr<> generated = generateCode(); !generated)
    return generated;
  if (FaultOr<> translated = emitLLVM(); !translated)
    return translated;
  // What fails from here on is writing the output, except the link.
  switch (options.emit) {
  case EmitStage::LLVM:
    return FaultOr<>(writeText(loc, options.output,
                               [&](llvm::raw_ostream &os) {
                                 llvmModule->print(os, nullptr);
                               }),
                     Fault::Input);
  case EmitStage::Object:
    return FaultOr<>(writeObject(loc, *llvmModule, *machine, options.output),
                     Fault::Input);
  default: {
    SmallVector<std::string> libraries = target.target->getLinkLibraries();
    // The MPI whose ABI the mpi dialect's lowering targets: MPICH.
    if (options.parallelRanks > 1)
      libraries.push_back("mpich");
    return linkSharedLibrary(loc, *llvmModule, *machine, options.output,
                             libraries);
  }
  }
}

/// -o names a file; stdout ('-') takes the text stages only.
FaultOr<> Compilation::checkOutput() {
  if (options.output.empty()) {
    emitError(loc) << "-o: expected an output file name, found ''";
    return Fault::Usage;
  }
  bool binary = options.emit == EmitStage::Object ||
                options.emit == EmitStage::SharedLibrary;
  if (options.output == "-" && binary) {
    emitError(loc) << "-o -: --emit=" << emitStageName(options.emit)
                   << " writes a binary file, which stdout does not take "
                      "(only --emit=mlir, linalg or llvm do)";
    return Fault::Usage;
  }
  return FaultOr<>::success();
}

/// --target and the options it must accept: the command line's fault.
FaultOr<> Compilation::selectTarget() {
  registerAllTargets();
  llvm::Expected<TargetSelection> selected = lookupTarget(options.target);
  if (!selected) {
    emitError(loc) << llvm::toString(selected.takeError());
    return Fault::Usage;
  }
  target = *selected;
  codegen.cpuSchedule = options.cpuSchedule;
  codegen.int8Activations = options.int8Activations;
  if (options.parallelRanks > 1 &&
      target.target->getDevice() != atmoe_rt::Device::CPU) {
    emitError(loc) << "--parallel: only CPU targets run split over "
                      "processes; --target="
                   << options.target << " is a GPU";
    return Fault::Usage;
  }
  if (options.parallelRanks > 1 &&
      options.sequenceMerge == SequenceMergePolicy::Merge) {
    emitError(loc) << "--sequence-merge=merge: a layer split over processes "
                      "runs sequence granularity unmerged (merging a "
                      "segment's experts into its slice of W is not "
                      "implemented)";
    return Fault::Usage;
  }
  if (llvm::Error error = target.target->checkOptions(target.chip, codegen)) {
    emitError(loc) << llvm::toString(std::move(error));
    return Fault::Usage;
  }
  return FaultOr<>::success();
}

LogicalResult
Compilation::runPipeline(llvm::function_ref<void(OpPassManager &)> build) {
  PassManager pm(&context);
  if (options.configurePassManager && failed(options.configurePassManager(pm)))
    return failure();
  build(pm);
  return pm.run(*module);
}

/// Fusion and conversion to linalg; then the layer ABI is final, and the
/// manifest is read off it before bufferization drops its attributes.
FaultOr<> Compilation::lowerToLinalg() {
  llvm::StringMap<SmallVector<std::string>> experts = collectExperts(*module);
  // The input verified: a pass that fails on it is the compiler's fault.
  if (failed(runPipeline([&](OpPassManager &pm) {
        LowerToLinalgOptions lower;
        // Split layers run sequence granularity unmerged: the merged path's
        // per-segment branches have no sharding.
        lower.sequenceMerge = options.parallelRanks > 1
                                  ? SequenceMergePolicy::Unmerged
                                  : options.sequenceMerge;
        lower.parallelRanks = options.parallelRanks;
        lower.parallelStrategy = options.parallelStrategy;
        // A split layer's replicated GPTQ base keeps the stored layout.
        if (options.parallelRanks == 1)
          lower.weightPanelWidth = target.target->getWeightPanelWidth(codegen);
        buildLowerToLinalgPipeline(pm, lower);
      })))
    // Splitting over processes refuses shapes the processes do not divide.
    return options.parallelRanks > 1 ? Fault::Input : Fault::Internal;
  if (options.emit == EmitStage::Linalg)
    return FaultOr<>::success();
  FailureOr<atmoe_rt::Manifest> layers = describeLayers(*module, experts);
  if (failed(layers))
    return Fault::Input;
  manifest = std::move(*layers);
  if (options.parallelStrategy == ParallelStrategy::Expert)
    manifest.parallelKind = "expert";
  return FaultOr<>::success();
}

/// The target's pipeline down to the LLVM dialect.
FaultOr<> Compilation::generateCode() {
  // Unless the user's own --cpu-schedule script drives the code generation.
  Fault fault = options.cpuSchedule.empty() ? Fault::Internal : Fault::Input;
  if (failed(runPipeline([&](OpPassManager &pm) {
        target.target->buildCodegenPipeline(pm, target.chip, codegen);
      })))
    return fault;
  if (failed(markHostArguments(*module, manifest)))
    return Fault::Internal;
  return FaultOr<>::success();
}

/// LLVM IR with entry points and the manifest, optimised for the host.
FaultOr<> Compilation::emitLLVM() {
  FailureOr<std::unique_ptr<llvm::TargetMachine>> created =
      createTargetMachine(loc, target.target->getHostCPU(target.chip));
  if (failed(created))
    return Fault::Internal;
  machine = std::move(*created);
  // The LLVM IR translations (GPU binaries included) are registered with
  // the dialects (registerAllDialects).
  llvmModule = translateModuleToLLVMIR(*module, llvmContext, "atmoe");
  if (!llvmModule) {
    emitError(loc) << "translation to LLVM IR failed";
    return Fault::Internal;
  }
  llvmModule->setTargetTriple(machine->getTargetTriple());
  llvmModule->setDataLayout(machine->createDataLayout());
  manifest.producer = "atmoe-compile " + std::string(atmoe_rt::atmoeVersion());
  manifest.target = machine->getTargetTriple().str();
  manifest.compiledFor = target.getSpelling();
  manifest.device = target.target->getDevice();
  if (auto name =
          (*module)->getAttrOfType<StringAttr>(AtmoeDialect::kModelAttrName))
    manifest.model = name.str();
  if (failed(recordSources(loc, *module, manifest)))
    return Fault::Input;
  // What the runtime will reject is the compiler's mistake.
  if (atmoe_rt::Status valid = atmoe_rt::validateManifest(manifest, "the "
                                                                    "model");
      !valid) {
    emitError(loc) << "internal error: " << valid.error();
    return Fault::Internal;
  }
  if (failed(addEntryPoints(loc, *llvmModule, manifest)))
    return Fault::Internal;
  addAllocatorHooks(*llvmModule);
  addManifest(*llvmModule, manifest);
  optimize(*llvmModule, *machine);
  return FaultOr<>::success();
}

} // namespace

FaultOr<> mlir::atmoe::compile(MLIRContext &context,
                               const CompileOptions &options) {
  return Compilation(context, options).run();
}
