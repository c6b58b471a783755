//===- PythonRegexFuzzer.cpp - Fuzz the Python regex translation -*- C++
//-*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The input is a pattern, a NUL byte, then module names separated by
// newlines, as adapter_config.json patterns are matched against a model's
// module names (atmoe::PythonRegex: the translation from Python's syntax,
// then PCRE2). Nothing may crash or trip a sanitizer, and matching a pattern
// that compiled may fail only for a name that is not UTF-8 or a pattern
// that exceeds the match limit (both errors the importer reports).
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"

#include "atmoe/Support/PythonRegex.h"

#include "llvm/ADT/SmallVector.h"

#include <cstdint>
#include <string>

using mlir::atmoe::PythonRegex;
using namespace atmoe_fuzz;

static void expectReportable(llvm::Error error) {
  if (!error)
    return;
  std::string message = llvm::toString(std::move(error));
  if (message.find("UTF-8") == std::string::npos &&
      message.find("limit") == std::string::npos)
    fail("matching failed: " + message);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef input(reinterpret_cast<const char *>(data), size);
  auto [pattern, rest] = input.split('\0');
  llvm::Expected<PythonRegex> regex = PythonRegex::compile(pattern);
  if (!regex) {
    llvm::consumeError(regex.takeError());
    return 0;
  }
  llvm::SmallVector<llvm::StringRef> names;
  rest.split(names, '\n');
  for (llvm::StringRef name : names) {
    llvm::Expected<bool> whole = regex->fullMatch(name);
    if (!whole)
      expectReportable(whole.takeError());
    llvm::Expected<std::optional<std::string>> start =
        regex->matchAtStart(name, 1);
    if (!start)
      expectReportable(start.takeError());
  }
  return 0;
}
