//===- Input.cpp - What atmoe-compile is given ----------------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "DriverInternals.h"

#include "atmoe/Importer/ModelImporter.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace mlir::atmoe;

FaultOr<OwningOpRef<ModuleOp>> driver::loadInput(MLIRContext &context,
                                                 StringRef input,
                                                 const ImportOptions &options) {
  if (llvm::sys::fs::is_directory(input))
    return importModelPackage(context, input, options);
  if (llvm::sys::path::extension(input) == ".json")
    return importModelFile(context, input, options);
  if (!llvm::sys::fs::exists(input)) {
    emitError(FileLineColLoc::get(&context, input, 0, 0))
        << "no such file or model package directory";
    return Fault::Input;
  }
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(input, &context);
  if (!module)
    return Fault::Input;
  return module;
}
