//===- Output.cpp - Text and object files ---------------------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "DriverInternals.h"

#include "atmoe/Support/AtomicFile.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/Target/TargetMachine.h"

using namespace mlir;
using namespace mlir::atmoe;

LogicalResult
driver::writeText(Location loc, StringRef path,
                  llvm::function_ref<void(llvm::raw_ostream &)> print) {
  if (path == "-") {
    print(llvm::outs());
    return success();
  }
  llvm::Error error =
      writeFileAtomically(path, [&](llvm::raw_ostream &os) -> llvm::Error {
        print(os);
        return llvm::Error::success();
      });
  if (error)
    return emitError(loc) << llvm::toString(std::move(error));
  return success();
}

LogicalResult driver::writeObject(Location loc, llvm::Module &module,
                                  llvm::TargetMachine &machine,
                                  StringRef path) {
  llvm::Error error =
      writeFileAtomically(path, [&](llvm::raw_ostream &os) -> llvm::Error {
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
