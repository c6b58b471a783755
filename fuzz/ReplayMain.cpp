//===- ReplayMain.cpp - Run fuzz targets without libFuzzer ------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// In the ASan + UBSan build (ATMOE_ENABLE_SANITIZERS) the fuzz targets are
// linked with this main instead of libFuzzer's, so that CI replays the
// checked-in corpora (seeds and every past finding, test/fuzz/) without
// needing a fuzzing run: `atmoe-fuzz-X FILE_OR_DIR...` runs each file once
// and prints how many it ran. A failing input aborts, as under libFuzzer.
//
//===----------------------------------------------------------------------===//

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int *argc,
                                                          char ***argv);

int main(int argc, char **argv) {
  if (argc < 2) {
    llvm::errs() << "usage: " << argv[0] << " FILE_OR_DIRECTORY...\n";
    return 2;
  }
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);

  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (!llvm::sys::fs::is_directory(argv[i])) {
      files.push_back(argv[i]);
      continue;
    }
    std::error_code ec;
    for (llvm::sys::fs::recursive_directory_iterator it(argv[i], ec), end;
         it != end && !ec; it.increment(ec))
      if (llvm::sys::fs::is_regular_file(it->path()))
        files.push_back(it->path());
    if (ec) {
      llvm::errs() << argv[i] << ": " << ec.message() << "\n";
      return 1;
    }
  }
  // A stable order makes a failure reproducible from the log.
  std::sort(files.begin(), files.end());

  for (const std::string &file : files) {
    auto buffer = llvm::MemoryBuffer::getFile(file, /*IsText=*/false,
                                              /*RequiresNullTerminator=*/false);
    if (!buffer) {
      llvm::errs() << file << ": " << buffer.getError().message() << "\n";
      return 1;
    }
    // A copy of exactly the input's size, so that ASan sees reads past it.
    std::vector<uint8_t> bytes((*buffer)->getBufferSize());
    std::copy_n((*buffer)->getBufferStart(), bytes.size(), bytes.begin());
    llvm::errs() << "running " << file << "\n";
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  llvm::outs() << "ran " << files.size() << " inputs\n";
  return 0;
}
