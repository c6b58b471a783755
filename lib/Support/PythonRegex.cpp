//===- PythonRegex.cpp - Regular expressions as Python's re reads them ----===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The translation follows the grammar of CPython 3.11's sre_parse: what it
// accepts is rewritten to the PCRE2 spelling of the same meaning (`\Z` is
// PCRE2's `\z`, `{,n}` is `{0,n}`, a `[` inside a set is literal, `\v` is one
// character), and what it rejects is rejected with its wording.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Support/PythonRegex.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/ConvertUTF.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

using namespace mlir::atmoe;
using llvm::StringRef;

namespace {

/// Python's offsets count characters; PCRE2's and ours count bytes.
size_t characterOffset(StringRef text, size_t byteOffset) {
  size_t characters = 0;
  for (size_t i = 0; i < byteOffset && i < text.size(); ++i)
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80)
      ++characters;
  return characters;
}

/// Rewrites one Python pattern into PCRE2 syntax.
class Translator {
public:
  explicit Translator(StringRef pattern) : in(pattern) {}
  llvm::Expected<std::string> run();

private:
  llvm::Error fail(size_t at, const llvm::Twine &message) const {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   message + " at position " +
                                       llvm::Twine(characterOffset(in, at)));
  }
  bool atEnd() const { return pos >= in.size(); }
  char peek(size_t ahead = 0) const {
    return pos + ahead < in.size() ? in[pos + ahead] : '\0';
  }
  /// Copies one (possibly multi-byte) character to the output.
  void copyCharacter();
  void emitCodePoint(uint32_t value) {
    out += "\\x{" + llvm::utohexstr(value, /*LowerCase=*/true) + "}";
  }

  llvm::Error escape(bool inSet);
  llvm::Error numericEscape(size_t start, bool inSet);
  llvm::Error hexEscape(size_t start, char kind);
  llvm::Error set();
  llvm::Error group();
  llvm::Error flags(size_t start);
  llvm::Error brace();

  StringRef in;
  size_t pos = 0;
  std::string out;
  /// Whether only global flag groups were read so far: Python 3.11 accepts
  /// `(?i)` only at the start.
  bool atStart = true;
  /// Set by flags() when the item just read was a global flag group.
  bool readGlobalFlags = false;
};

llvm::Expected<std::string> Translator::run() {
  while (!atEnd()) {
    char c = peek();
    llvm::Error error = llvm::Error::success();
    if (c == '\\')
      error = escape(/*inSet=*/false);
    else if (c == '[')
      error = set();
    else if (c == '(')
      error = group();
    else if (c == '{')
      error = brace();
    else
      copyCharacter();
    if (error)
      return std::move(error);
    if (!readGlobalFlags)
      atStart = false;
    readGlobalFlags = false;
  }
  return out;
}

void Translator::copyCharacter() {
  size_t length = llvm::getNumBytesForUTF8(peek());
  out += in.substr(pos, std::max<size_t>(length, 1));
  pos += std::max<size_t>(length, 1);
}

llvm::Error Translator::escape(bool inSet) {
  size_t start = pos++;
  if (atEnd())
    return fail(start, "bad escape (end of pattern)");
  char c = peek();
  if (llvm::isDigit(c))
    return numericEscape(start, inSet);
  if (c == 'x' || c == 'u' || c == 'U')
    return hexEscape(start, c);
  static constexpr struct {
    char name;
    uint32_t value;
  } kControls[] = {{'a', 7},  {'f', 12}, {'n', 10},
                   {'r', 13}, {'t', 9},  {'v', 11}};
  for (auto control : kControls)
    if (c == control.name) {
      ++pos;
      emitCodePoint(control.value);
      return llvm::Error::success();
    }
  if (inSet && c == 'b') { // backspace inside a set
    ++pos;
    emitCodePoint(8);
    return llvm::Error::success();
  }
  StringRef classes = inSet ? "dDsSwW" : "dDsSwWAbBZ";
  if (classes.contains(c)) {
    ++pos;
    out += c == 'Z' ? "\\z" : (llvm::Twine("\\") + llvm::Twine(c)).str();
    return llvm::Error::success();
  }
  if (c == 'N')
    return fail(start, "named character escape \\N{...} is not supported");
  if (llvm::isAlpha(c))
    return fail(start, llvm::Twine("bad escape \\") + llvm::Twine(c));
  // Any other character stands for itself.
  if (static_cast<unsigned char>(c) < 0x80)
    out += '\\';
  copyCharacter();
  return llvm::Error::success();
}

/// `\0`, `\12`, `\141`: octal characters; `\1` .. `\99`: back references
/// (inside a set only octal is allowed).
llvm::Error Translator::numericEscape(size_t start, bool inSet) {
  auto isOctal = [](char c) { return c >= '0' && c <= '7'; };
  size_t digits = 0;
  while (digits < 3 && isOctal(peek(digits)))
    ++digits;
  bool octal = peek() == '0' || digits == 3 || (inSet && digits > 0);
  if (octal) {
    unsigned value = 0;
    for (size_t i = 0; i < digits; ++i)
      value = value * 8 + (peek(i) - '0');
    if (value > 0377)
      return fail(start, "octal escape value \\" + in.substr(pos, digits) +
                             " outside of range 0-0o377");
    pos += digits;
    emitCodePoint(value);
    return llvm::Error::success();
  }
  if (inSet)
    return fail(start, "bad escape \\" + in.substr(pos, 1));
  size_t length = llvm::isDigit(peek(1)) ? 2 : 1;
  out += ("\\g{" + in.substr(pos, length) + "}").str();
  pos += length;
  return llvm::Error::success();
}

/// `\xhh`, `\uhhhh`, `\Uhhhhhhhh`: exactly that many hex digits.
llvm::Error Translator::hexEscape(size_t start, char kind) {
  size_t digits = kind == 'x' ? 2 : kind == 'u' ? 4 : 8;
  StringRef hex = in.substr(pos + 1, digits);
  if (hex.size() != digits || !llvm::all_of(hex, llvm::isHexDigit))
    return fail(start,
                llvm::Twine("incomplete escape \\") + llvm::Twine(kind) + hex);
  uint32_t value = 0;
  hex.getAsInteger(16, value);
  if (value > 0x10FFFF)
    return fail(start, llvm::Twine("bad escape \\") + llvm::Twine(kind) + hex);
  pos += 1 + digits;
  emitCodePoint(value);
  return llvm::Error::success();
}

/// `[...]`: a `]` first is literal, and a `[` inside is literal (PCRE2
/// would read `[:alpha:]` as a POSIX class).
llvm::Error Translator::set() {
  size_t start = pos++;
  out += '[';
  if (peek() == '^') {
    out += '^';
    ++pos;
  }
  bool first = true;
  while (true) {
    if (atEnd())
      return fail(start, "unterminated character set");
    char c = peek();
    if (c == ']' && !first)
      break;
    first = false;
    if (c == '\\') {
      if (llvm::Error error = escape(/*inSet=*/true))
        return error;
    } else if (c == '[' || c == ']') {
      out += '\\';
      out += c;
      ++pos;
    } else {
      copyCharacter();
    }
  }
  ++pos;
  out += ']';
  return llvm::Error::success();
}

/// `(`, `(?:`, lookarounds, `(?P<name>`, `(?P=name)`, `(?#...)`,
/// conditionals and flags.
llvm::Error Translator::group() {
  size_t start = pos++;
  if (peek() == '*')
    return fail(pos, "nothing to repeat");
  if (peek() != '?') {
    out += '(';
    return llvm::Error::success();
  }
  ++pos;
  for (StringRef opener : {":", "=", "!", ">", "<=", "<!", "P<", "P=", "("}) {
    if (in.substr(pos).starts_with(opener)) {
      out += ("(?" + opener).str();
      pos += opener.size();
      return llvm::Error::success();
    }
  }
  if (peek() == '#') {
    size_t end = in.find(')', pos);
    if (end == StringRef::npos)
      return fail(start, "missing ), unterminated comment");
    pos = end + 1;
    return llvm::Error::success();
  }
  if (StringRef("aiLmsux-").contains(peek()))
    return flags(start);
  return fail(start, "unknown extension ?" + in.substr(pos, 1));
}

/// `(?imsx)`, `(?i:...)`, `(?-i:...)`: PCRE2 shares i, m and s; u is the
/// default here; a (ASCII classes), L (locale) and x (verbose) have no exact
/// equivalent and are refused.
llvm::Error Translator::flags(size_t start) {
  std::string kept;
  while (!atEnd() && peek() != ')' && peek() != ':') {
    char flag = peek();
    if (flag == 'a' || flag == 'L' || flag == 'x')
      return fail(start, llvm::Twine("the inline flag ") + llvm::Twine(flag) +
                             " is not supported");
    if (flag != 'u') {
      if (!StringRef("ims-").contains(flag))
        return fail(pos, "unknown flag");
      kept += flag;
    }
    ++pos;
  }
  if (atEnd())
    return fail(start, "missing -, : or )");
  bool scoped = peek() == ':';
  ++pos;
  if (!scoped && !atStart)
    return fail(start, "global flags not at the start of the expression");
  if (!scoped && StringRef(kept).contains('-'))
    return fail(start, "missing :");
  readGlobalFlags = !scoped;
  out += scoped ? "(?" + kept + ":" : (kept.empty() ? "" : "(?" + kept + ")");
  return llvm::Error::success();
}

/// `{m}`, `{m,}`, `{,n}`, `{m,n}`, `{,}` are repeats; any other `{` is a
/// literal.
llvm::Error Translator::brace() {
  size_t start = pos;
  size_t cursor = pos + 1;
  auto digitsAt = [&](size_t &at) {
    size_t from = at;
    while (at < in.size() && llvm::isDigit(in[at]))
      ++at;
    return in.slice(from, at);
  };
  StringRef low = digitsAt(cursor), high = low;
  bool comma = cursor < in.size() && in[cursor] == ',';
  if (comma) {
    ++cursor;
    high = digitsAt(cursor);
  }
  bool repeat =
      cursor < in.size() && in[cursor] == '}' && !(low.empty() && !comma);
  if (!repeat) {
    out += "\\{";
    ++pos;
    return llvm::Error::success();
  }
  uint64_t minimum = 0, maximum = 0;
  bool bounded = !high.empty();
  if ((!low.empty() && low.getAsInteger(10, minimum)) ||
      (bounded && high.getAsInteger(10, maximum)) || minimum > 65535 ||
      maximum > 65535)
    return fail(start, "repeat counts above 65535 are not supported");
  if (bounded && maximum < minimum)
    return fail(start + 1, "min repeat greater than max repeat");
  out += "{" + std::to_string(minimum);
  if (comma)
    out += "," + (bounded ? std::to_string(maximum) : std::string());
  out += "}";
  pos = cursor + 1;
  return llvm::Error::success();
}

} // namespace

llvm::Expected<std::string>
mlir::atmoe::translatePythonRegex(StringRef pattern) {
  return Translator(pattern).run();
}

//===----------------------------------------------------------------------===//
// PCRE2
//===----------------------------------------------------------------------===//

struct PythonRegex::Compiled {
  ~Compiled() {
    pcre2_code_free(code);
    pcre2_match_context_free(matchContext);
  }
  pcre2_code *code = nullptr;
  pcre2_match_context *matchContext = nullptr;
};

llvm::Expected<PythonRegex> PythonRegex::compile(StringRef pattern) {
  llvm::Expected<std::string> translated = translatePythonRegex(pattern);
  if (!translated)
    return translated.takeError();
  int errorCode = 0;
  PCRE2_SIZE errorOffset = 0;
  auto compiled = std::make_shared<Compiled>();
  compiled->code = pcre2_compile(
      reinterpret_cast<PCRE2_SPTR>(translated->data()), translated->size(),
      PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C, &errorCode, &errorOffset,
      /*ccontext=*/nullptr);
  if (!compiled->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(errorCode, message, sizeof(message));
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   reinterpret_cast<const char *>(message));
  }
  // Module names are short; a pattern that backtracks this much is an
  // error, never a silent non-match.
  compiled->matchContext = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(compiled->matchContext, 1000000);
  return PythonRegex(pattern.str(), std::move(compiled));
}

llvm::Expected<bool> PythonRegex::fullMatch(StringRef text) const {
  llvm::Expected<std::optional<std::string>> match =
      run(text, /*wholeText=*/true, 0);
  if (!match)
    return match.takeError();
  return match->has_value();
}

llvm::Expected<std::optional<std::string>>
PythonRegex::matchAtStart(StringRef text, unsigned group) const {
  return run(text, /*wholeText=*/false, group);
}

llvm::Expected<std::optional<std::string>>
PythonRegex::run(StringRef text, bool wholeText, unsigned group) const {
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data *)> data(
      pcre2_match_data_create_from_pattern(compiled->code, nullptr),
      pcre2_match_data_free);
  uint32_t options = PCRE2_ANCHORED | (wholeText ? PCRE2_ENDANCHORED : 0);
  int found =
      pcre2_match(compiled->code, reinterpret_cast<PCRE2_SPTR>(text.data()),
                  text.size(), 0, options, data.get(), compiled->matchContext);
  if (found == PCRE2_ERROR_NOMATCH)
    return std::nullopt;
  if (found < 0) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(found, message, sizeof(message));
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        llvm::Twine("matching '") + text +
            "' failed: " + reinterpret_cast<const char *>(message));
  }
  if (group >= pcre2_get_ovector_count(data.get()))
    return std::string();
  PCRE2_SIZE *ovector = pcre2_get_ovector_pointer(data.get());
  if (ovector[2 * group] == PCRE2_UNSET)
    return std::string();
  return text.slice(ovector[2 * group], ovector[2 * group + 1]).str();
}
