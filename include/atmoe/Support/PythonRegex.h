//===- PythonRegex.h - Regular expressions as Python's re reads them -*- C++
//-*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// PEFT matches module names with Python's `re` (target_modules,
// exclude_modules, rank_pattern, alpha_pattern, layers_pattern), so an
// adapter selects exactly the modules PEFT adapts only if atmoe reads those
// patterns as Python does: `\d`, `\w`, `\b`, `(?:...)`, lazy quantifiers,
// lookarounds and `{,n}` included. Matching is PCRE2's (Debian's libpcre2),
// in Unicode mode as Python's str patterns are; the pattern is first
// translated from Python's syntax, and a construct Python would reject, or
// whose Python meaning PCRE2 does not share, is an error naming it.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_SUPPORT_PYTHONREGEX_H
#define ATMOE_SUPPORT_PYTHONREGEX_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <optional>
#include <string>

namespace mlir::atmoe {

/// A compiled Python `re` pattern.
class PythonRegex {
public:
  /// Compiles `pattern`. The error says what is wrong and at which offset of
  /// `pattern` (counted as Python counts, in characters of the pattern).
  static llvm::Expected<PythonRegex> compile(llvm::StringRef pattern);

  /// `re.fullmatch(pattern, text) is not None`.
  llvm::Expected<bool> fullMatch(llvm::StringRef text) const;
  /// `re.match(pattern, text)`: a match anchored at the start of `text`.
  /// Returns nullopt without a match, else the text of capture group
  /// `group` (0 is the whole match; an unset group gives "").
  llvm::Expected<std::optional<std::string>>
  matchAtStart(llvm::StringRef text, unsigned group = 0) const;

  llvm::StringRef pattern() const { return source; }

private:
  struct Compiled;
  PythonRegex(std::string source, std::shared_ptr<const Compiled> compiled)
      : source(std::move(source)), compiled(std::move(compiled)) {}
  llvm::Expected<std::optional<std::string>>
  run(llvm::StringRef text, bool wholeText, unsigned group) const;

  std::string source;
  std::shared_ptr<const Compiled> compiled;
};

/// The PCRE2 pattern that means what the Python pattern means, or an error
/// naming the construct that has no exact equivalent (exposed for tests).
llvm::Expected<std::string> translatePythonRegex(llvm::StringRef pattern);

} // namespace mlir::atmoe

#endif // ATMOE_SUPPORT_PYTHONREGEX_H
