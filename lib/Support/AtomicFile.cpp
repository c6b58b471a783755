//===- AtomicFile.cpp - Write a file atomically from LLVM streams ---------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Support/AtomicFile.h"

#include "atmoe_rt/support/OutputFile.h"

using namespace mlir;

llvm::Error atmoe::writeFileAtomically(
    llvm::StringRef path,
    llvm::function_ref<llvm::Error(llvm::raw_ostream &)> write) {
  std::string writeMessage;
  atmoe_rt::Status status = atmoe_rt::writeFileAtomically(
      path.str(), [&](int fd) -> atmoe_rt::Status {
        llvm::raw_fd_ostream os(fd, /*shouldClose=*/false);
        if (llvm::Error error = write(os)) {
          writeMessage = llvm::toString(std::move(error));
          return atmoe_rt::fail(writeMessage);
        }
        os.flush();
        std::error_code ec = os.error();
        // Checked here; cleared so that the destructor does not abort.
        os.clear_error();
        if (ec)
          return atmoe_rt::fail(path.str() + ": cannot write: " + ec.message());
        return atmoe_rt::Status::success();
      });
  if (status)
    return llvm::Error::success();
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 status.error());
}
