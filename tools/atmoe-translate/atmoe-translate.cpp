//===- atmoe-translate.cpp - model packages to atmoe IR ---------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
//   atmoe-translate --import-atmoe-model PKG/model.json [-o OUT.mlir]
//
// (a package directory works too). Errors are MLIR diagnostics
// (`model.json:24:15: error: ...` with the line beneath); the exit code says
// whose fault the failure was (atmoe_rt/support/Fault.h).
//
// The tool has one translation, so it parses its own command line instead of
// going through mlirTranslateMain: that lets it keep usage errors apart from
// input errors, write -o atomically (a temporary file renamed onto it, so a
// failed or interrupted run leaves neither a partial nor an empty file, and an
// existing file stays as it was), and never read model.json itself (the
// importer does, with its limits on special files and sizes).
//
//===----------------------------------------------------------------------===//

#include "atmoe/Importer/ModelImporter.h"
#include "atmoe/Support/AtomicFile.h"
#include "atmoe/Support/CommandLine.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

using namespace mlir;
namespace cl = llvm::cl;
using atmoe::Fault;
using atmoe::FaultOr;

namespace {

cl::OptionCategory translateCategory("atmoe-translate options");

cl::opt<bool> importModel(
    "import-atmoe-model",
    cl::desc("Import an atmoe model package (its model.json) into the atmoe "
             "dialect"),
    cl::cat(translateCategory));
cl::opt<std::string> inputPath(cl::Positional,
                               cl::desc("<model.json or package directory>"),
                               cl::cat(translateCategory));
cl::opt<std::string> outputPath("o", cl::desc("Output file (default: stdout)"),
                                cl::value_desc("file"), cl::init("-"),
                                cl::cat(translateCategory));
cl::opt<bool> allowUnusedAdapterTensors(
    "allow-unused-adapter-tensors",
    cl::desc("Warn instead of failing when a PEFT adapter has tensors no "
             "projection of the model uses"),
    cl::cat(translateCategory));

int usageError(const llvm::Twine &message) {
  llvm::errs() << "atmoe-translate: error: " << message << "\n";
  return atmoe_rt::exitCode(Fault::Usage);
}

/// Writes the module to -o; a failure is one diagnostic.
FaultOr<> writeOutput(ModuleOp module) {
  auto print = [&](llvm::raw_ostream &os) {
    module->print(os);
    os << "\n";
  };
  if (outputPath == "-") {
    print(llvm::outs());
    llvm::outs().flush();
    return FaultOr<>::success();
  }
  if (llvm::Error err = atmoe::writeFileAtomically(
          outputPath, [&](llvm::raw_ostream &os) -> llvm::Error {
            print(os);
            return llvm::Error::success();
          })) {
    emitError(FileLineColLoc::get(module.getContext(), inputPath, 0, 0))
        << llvm::toString(std::move(err));
    return Fault::Input;
  }
  return FaultOr<>::success();
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  mlir::atmoe::setAtmoeBugReportMessage();
  // --mlir-print-debuginfo, --mlir-print-local-scope, ... for the output.
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  atmoe::hideUnrelatedOptions(translateCategory);
  // llvm::cl would exit(1) on a bad command line by itself.
  if (!cl::ParseCommandLineOptions(
          argc, argv,
          std::string("atmoe model package translator\n\n"
                      "  atmoe-translate --import-atmoe-model PKG/model.json "
                      "[-o OUT]\n\n") +
              atmoe_rt::kExitCodeHelp,
          &llvm::errs()))
    return atmoe_rt::exitCode(Fault::Usage);
  if (!importModel)
    return usageError("no translation selected: pass --import-atmoe-model");
  if (inputPath.empty() || inputPath == "-")
    return usageError(
        "--import-atmoe-model reads a model package: pass the path of its "
        "model.json (or its directory), not standard input");

  MLIRContext context;
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  atmoe::ImportOptions importOptions;
  importOptions.allowUnusedAdapterTensors = allowUnusedAdapterTensors;
  FaultOr<OwningOpRef<ModuleOp>> module =
      llvm::sys::fs::is_directory(inputPath)
          ? atmoe::importModelPackage(context, inputPath, importOptions)
          : atmoe::importModelFile(context, inputPath, importOptions);
  if (!module)
    return atmoe_rt::exitCode(module.getFault());
  FaultOr<> written = writeOutput(**module);
  return written ? atmoe_rt::kExitSuccess
                 : atmoe_rt::exitCode(written.getFault());
}
