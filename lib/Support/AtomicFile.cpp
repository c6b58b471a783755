//===- AtomicFile.cpp - Write a file atomically ---------------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Support/AtomicFile.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Signals.h"

using namespace llvm;

namespace atmoe {

static Error makeError(StringRef path, const Twine &what, std::error_code ec) {
  return createStringError(ec, Twine(path) + ": " + what + ": " + ec.message());
}

Error writeFileAtomically(StringRef path,
                          function_ref<Error(raw_ostream &)> write) {
  // The temporary file lives beside the target so that the final rename does
  // not cross file systems.
  SmallString<256> model(sys::path::parent_path(path));
  sys::path::append(model, "." + sys::path::filename(path) + ".tmp-%%%%%%%%");

  int fd = -1;
  SmallString<256> tempPath;
  if (std::error_code ec = sys::fs::createUniqueFile(model, fd, tempPath))
    return makeError(path, "cannot create a temporary file beside it", ec);
  sys::RemoveFileOnSignal(tempPath);

  auto discard = [&]() {
    sys::fs::remove(tempPath);
    sys::DontRemoveFileOnSignal(tempPath);
  };

  Error writeErr = Error::success();
  std::error_code streamEc;
  {
    raw_fd_ostream os(fd, /*shouldClose=*/true);
    writeErr = write(os);
    os.close();
    streamEc = os.error();
    // Checked above; clear it so that the destructor does not abort.
    os.clear_error();
  }
  if (writeErr) {
    discard();
    return writeErr;
  }
  if (streamEc) {
    discard();
    return makeError(path, "cannot write temporary file '" + tempPath + "'",
                     streamEc);
  }
  if (std::error_code ec = sys::fs::rename(tempPath, path)) {
    discard();
    return makeError(
        path, "cannot rename temporary file '" + tempPath + "' onto it", ec);
  }
  sys::DontRemoveFileOnSignal(tempPath);
  return Error::success();
}

} // namespace atmoe
