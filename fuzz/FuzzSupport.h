//===- FuzzSupport.h - Shared helpers of the fuzz targets -------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The readers under test take paths, not buffers (they mmap their input), so
// every target writes its input into a private scratch directory first.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_FUZZ_FUZZSUPPORT_H
#define ATMOE_FUZZ_FUZZSUPPORT_H

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace atmoe_fuzz {

/// Stops the run with a message. Used for broken invariants, which libFuzzer
/// then reports as a crash with the input that caused it.
[[noreturn]] inline void fail(llvm::StringRef message) {
  llvm::errs() << "atmoe fuzz: " << message << "\n";
  llvm::errs().flush();
  std::abort();
}

/// A directory under the system temporary directory that lives as long as
/// the process (removed at exit), created on first use.
inline llvm::StringRef scratchDir() {
  static std::string dir = [] {
    llvm::SmallString<256> path;
    if (llvm::sys::fs::createUniqueDirectory("atmoe-fuzz", path))
      fail("cannot create a scratch directory");
    std::string result(path);
    static std::string removeAtExit = result;
    std::atexit([] { llvm::sys::fs::remove_directories(removeAtExit); });
    return result;
  }();
  return dir;
}

/// `scratchDir()/name`.
inline std::string scratchPath(llvm::StringRef name) {
  llvm::SmallString<256> path(scratchDir());
  llvm::sys::path::append(path, name);
  return std::string(path);
}

/// Replaces the file at `path` with `data`.
inline void writeInput(llvm::StringRef path, const uint8_t *data, size_t size) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    fail(("cannot write " + path + ": " + ec.message()).str());
  os.write(reinterpret_cast<const char *>(data), size);
  os.close();
  if (os.has_error())
    fail(("cannot write " + path).str());
}

} // namespace atmoe_fuzz

#endif // ATMOE_FUZZ_FUZZSUPPORT_H
