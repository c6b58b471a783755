//===- atmoe-translate.cpp - model packages to atmoe IR ---------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// MLIR's translate driver with one translation:
//
//   atmoe-translate --import-atmoe-model PKG/model.json [-o OUT.mlir]
//
// (a package directory works too). Every failure is reported as exactly one
// line `error: <message>` on stderr with a non-zero exit status, and the -o
// file is only created when the import succeeds (mlirTranslateMain keeps its
// ToolOutputFile only on success).
//
//===----------------------------------------------------------------------===//

#include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.h"
#include "atmoe/Importer/ModelImporter.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

using namespace mlir;

/// Joins a message onto one line: tools and tests read errors line by line.
static std::string oneLine(llvm::StringRef message) {
  std::string line = message.trim().str();
  for (char &c : line)
    if (c == '\n' || c == '\r')
      c = ' ';
  return line;
}

static OwningOpRef<Operation *> importModel(llvm::SourceMgr &sourceMgr,
                                            MLIRContext *context) {
  llvm::StringRef path = sourceMgr.getMemoryBuffer(sourceMgr.getMainFileID())
                             ->getBufferIdentifier();
  // Errors go straight to stderr: an MLIR diagnostic without a location
  // would be printed as "<unknown>:0: error: ...", and the message already
  // carries file:line:col.
  if (path == "<stdin>" || path == "-") {
    llvm::errs() << "error: --import-atmoe-model reads a model package: pass "
                    "the path of its model.json (or its directory), not "
                    "standard input\n";
    return {};
  }
  llvm::Expected<OwningOpRef<ModuleOp>> module =
      atmoe::importModelFile(*context, path);
  if (!module) {
    llvm::errs() << "error: " << oneLine(llvm::toString(module.takeError()))
                 << "\n";
    return {};
  }
  return OwningOpRef<Operation *>(module->release());
}

/// Checks the input file before mlirTranslateMain, which would report a
/// missing file without the `error: ` prefix, and turns a package directory
/// into its model.json. Only the usual driver options with a separate value
/// (-o, --output-split-marker) are recognised; others must use `--opt=value`.
static int findInputArgument(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef arg = argv[i];
    if (arg == "-o" || arg == "--o" || arg == "-output-split-marker" ||
        arg == "--output-split-marker") {
      ++i;
      continue;
    }
    if (arg == "--")
      return i + 1 < argc ? i + 1 : -1;
    if (arg.starts_with("-") && arg != "-")
      continue;
    return i;
  }
  return -1;
}

int main(int argc, char **argv) {
  static TranslateToMLIRRegistration importRegistration(
      "import-atmoe-model",
      "import an atmoe model package (its model.json) into the atmoe dialect",
      importModel, [](DialectRegistry &registry) {
        registry.insert<atmoe::AtmoeDialect, func::FuncDialect>();
      });

  std::string rewritten;
  std::vector<char *> args(argv, argv + argc);
  int input = findInputArgument(argc, argv);
  if (input > 0) {
    llvm::StringRef path = argv[input];
    if (path != "-") {
      if (llvm::sys::fs::is_directory(path)) {
        llvm::SmallString<256> json(path);
        llvm::sys::path::append(json, "model.json");
        rewritten = std::string(json);
        args[input] = rewritten.data();
        path = rewritten;
      }
      auto buffer =
          llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                      /*RequiresNullTerminator=*/false);
      if (!buffer) {
        llvm::errs() << "error: " << path << ": cannot read the file: "
                     << buffer.getError().message() << "\n";
        return 1;
      }
    }
  }
  return failed(mlirTranslateMain(static_cast<int>(args.size()), args.data(),
                                  "atmoe model package translator"))
             ? 1
             : 0;
}
