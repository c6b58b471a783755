//===- atmoe-translate.cpp - model packages to atmoe IR ---------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
//   atmoe-translate --import-atmoe-model PKG/model.json [-o OUT.mlir]
//
// (a package directory works too). Every failure is reported as exactly one
// line `error: <message>` on stderr. Exit codes: 0 success, 1 a missing or
// malformed input (or an output that cannot be written), 2 a wrong command
// line, 3 an internal error (the importer emitted IR that does not verify).
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
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

using namespace mlir;
namespace cl = llvm::cl;

namespace {

enum ExitCode : int {
  ExitSuccess = 0,
  ExitInputError = 1,
  ExitUsageError = 2,
  ExitInternalError = 3,
};

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

/// Joins a message onto one line: tools and tests read errors line by line.
std::string oneLine(llvm::StringRef message) {
  std::string line = message.trim().str();
  for (char &c : line)
    if (c == '\n' || c == '\r')
      c = ' ';
  return line;
}

int report(ExitCode code, llvm::StringRef message) {
  llvm::errs() << "error: " << oneLine(message) << "\n";
  return code;
}

/// The first line of llvm::cl's diagnostics, without its "prog: " prefix.
std::string firstLine(llvm::StringRef text, llvm::StringRef programName) {
  llvm::StringRef line = text.split('\n').first.trim();
  if (line.consume_front(programName))
    line.consume_front(":");
  return line.trim().str();
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // --mlir-print-debuginfo, --mlir-print-local-scope, ... for the output.
  registerAsmPrinterCLOptions();
  registerMLIRContextCLOptions();
  ::atmoe::hideUnrelatedOptions(translateCategory);

  std::string parseErrors;
  llvm::raw_string_ostream parseStream(parseErrors);
  if (!cl::ParseCommandLineOptions(
          argc, argv,
          "atmoe model package translator\n\n"
          "  atmoe-translate --import-atmoe-model PKG/model.json [-o OUT]\n\n"
          "Exit codes: 0 success, 1 bad input, 2 bad command line, 3 "
          "internal error.\n",
          &parseStream))
    return report(ExitUsageError,
                  firstLine(parseErrors, llvm::sys::path::filename(argv[0])));
  if (!importModel)
    return report(ExitUsageError, "no translation selected: pass "
                                  "--import-atmoe-model");
  if (inputPath.empty() || inputPath == "-")
    return report(ExitUsageError,
                  "--import-atmoe-model reads a model package: pass the path "
                  "of its model.json (or its directory), not standard input");

  std::string path = inputPath;
  if (llvm::sys::fs::is_directory(path)) {
    llvm::SmallString<256> json(path);
    llvm::sys::path::append(json, "model.json");
    path = std::string(json);
  }

  MLIRContext context;
  llvm::Expected<OwningOpRef<ModuleOp>> module =
      mlir::atmoe::importModelFile(context, path);
  if (!module) {
    ExitCode code = ExitInputError;
    std::string message;
    llvm::handleAllErrors(module.takeError(),
                          [&](const llvm::ErrorInfoBase &error) {
                            if (error.convertToErrorCode() ==
                                mlir::atmoe::importerInternalErrorCode())
                              code = ExitInternalError;
                            message = error.message();
                          });
    return report(code, message);
  }

  auto print = [&](llvm::raw_ostream &os) {
    (*module)->print(os);
    os << "\n";
  };
  if (outputPath == "-") {
    print(llvm::outs());
    llvm::outs().flush();
    return ExitSuccess;
  }
  if (llvm::Error err = ::atmoe::writeFileAtomically(
          outputPath, [&](llvm::raw_ostream &os) -> llvm::Error {
            print(os);
            return llvm::Error::success();
          }))
    return report(ExitInputError, llvm::toString(std::move(err)));
  return ExitSuccess;
}
