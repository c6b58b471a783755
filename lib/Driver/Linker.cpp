//===- Linker.cpp - The deployable shared library -------------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The object code is written to a temporary file and linked by the clang of
// the LLVM atmoe is built against into another temporary file, which is then
// copied into place with writeFileAtomically (a temporary file beside the
// output, renamed onto it). The temporaries are removed on failure and on
// SIGINT/SIGTERM; a linker that outlives an interrupted atmoe-compile can only
// leave a file in the temporary directory, never beside the output.
//
//===----------------------------------------------------------------------===//

#include "DriverInternals.h"

#include "atmoe/Support/AtomicFile.h"

#include "atmoe_rt/support/OutputFile.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// Runs clang to link `object` into the shared library `linked`.
LogicalResult runLinker(Location loc, StringRef object, StringRef linked,
                        StringRef output, ArrayRef<std::string> libraries) {
  std::string clang = ATMOE_CLANG_PATH;
  // The rpath finds libomp beside the model (a deployment,
  // docs/Deployment.md), else in the LLVM the code was compiled against.
  std::string rpath = "-Wl,-rpath,$ORIGIN:" ATMOE_LLVM_LIBRARY_DIR;
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
  return success();
}

/// Copies the linked library onto `output`, keeping its permissions
/// (executable, like any shared library).
LogicalResult copyIntoPlace(Location loc, StringRef linked, StringRef output) {
  auto library = llvm::MemoryBuffer::getFile(linked, /*IsText=*/false,
                                             /*RequiresNullTerminator=*/false);
  if (!library)
    return emitError(loc) << "cannot read the linked library " << linked << ": "
                          << library.getError().message();
  llvm::Error error =
      writeFileAtomically(output, [&](llvm::raw_ostream &os) -> llvm::Error {
        os << (*library)->getBuffer();
        return llvm::Error::success();
      });
  if (error)
    return emitError(loc) << llvm::toString(std::move(error));
  if (llvm::ErrorOr<llvm::sys::fs::perms> perms =
          llvm::sys::fs::getPermissions(linked))
    (void)llvm::sys::fs::setPermissions(output, *perms);
  return success();
}

} // namespace

FaultOr<> driver::linkSharedLibrary(Location loc, llvm::Module &module,
                                    llvm::TargetMachine &machine,
                                    StringRef output,
                                    ArrayRef<std::string> libraries) {
  atmoe_rt::Result<atmoe_rt::TemporaryFile> object =
      atmoe_rt::TemporaryFile::create("atmoe", ".o");
  atmoe_rt::Result<atmoe_rt::TemporaryFile> linked =
      atmoe_rt::TemporaryFile::create("atmoe", ".so");
  // An unusable temporary directory is the environment's fault, not ours.
  for (auto *file : {&object, &linked})
    if (!*file) {
      emitError(loc) << file->error();
      return Fault::Input;
    }
  if (failed(writeObject(loc, module, machine, object->path())) ||
      failed(runLinker(loc, object->path(), linked->path(), output, libraries)))
    return Fault::Internal;
  return FaultOr<>(copyIntoPlace(loc, linked->path(), output), Fault::Input);
}
