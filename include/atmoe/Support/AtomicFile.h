//===- AtomicFile.h - Write a file atomically from LLVM streams -*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The compiler's view of atmoe_rt::writeFileAtomically (runtime/support): the
// same temporary-beside-and-rename protocol and interrupt cleanup, fed from an
// llvm::raw_ostream, which is what MLIR and LLVM print to.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_SUPPORT_ATOMICFILE_H
#define ATMOE_SUPPORT_ATOMICFILE_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::atmoe {

/// Writes `path` atomically: `write` fills a uniquely named temporary file in
/// the directory of `path`, which is then renamed onto `path`. If `write`
/// returns an error, or writing, closing or renaming fails, the temporary file
/// is removed, `path` is left as it was, and the error is returned (errors of
/// `write` unchanged, the others starting with `path`).
llvm::Error
writeFileAtomically(llvm::StringRef path,
                    llvm::function_ref<llvm::Error(llvm::raw_ostream &)> write);

} // namespace mlir::atmoe

#endif // ATMOE_SUPPORT_ATOMICFILE_H
