//===- JsonDocument.cpp - JSON files with source positions ----------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "JsonDocument.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"

#include <optional>

using namespace mlir;
using namespace mlir::atmoe::importer;

/// llvm::json's parser recurses once per nesting level and has no limit, so a
/// hostile file of nested brackets would overflow the stack. Real model.json
/// files nest about six levels deep.
static constexpr unsigned kMaxJsonDepth = 64;
/// Parsing costs about a hundred bytes per JSON value (the llvm::json value
/// plus the span and path recorded for it), so a few megabytes of "0," would
/// take gigabytes. A model.json has one value per setting: thousands for a
/// large model.
static constexpr size_t kMaxJsonValues = 1'000'000;
/// Checked before the file is read.
static constexpr uint64_t kMaxJsonFileSize = 64 << 20;
/// The scanner stores the JSON path of every value, and a path repeats the
/// keys of all its parents: a 300 KB file with one 100 KB key over 100,000
/// array elements would need 10 GB of paths.
static constexpr size_t kMaxJsonPathBytes = 128 << 20;

namespace mlir::atmoe::importer {

/// Walks JSON text that llvm::json has already accepted, recording value
/// spans and key order and stopping at the first duplicate key.
class JsonScanner {
public:
  explicit JsonScanner(JsonDocument &doc) : doc(doc), text(doc.text) {}

  /// False at a duplicate key (see duplicatePath/duplicateOffset) or, should
  /// the text not be JSON after all, at the first surprise.
  bool scanValue(const std::string &path) {
    skipSpace();
    if (pos >= text.size())
      return false;
    pathBytes += path.size();
    if (pathBytes > kMaxJsonPathBytes) {
      pathLimitOffset = pos;
      return false;
    }
    size_t begin = pos;
    char c = text[pos];
    if (c == '{') {
      if (!scanObject(path))
        return false;
    } else if (c == '[') {
      ++pos;
      skipSpace();
      if (peek() == ']') {
        ++pos;
      } else {
        for (size_t index = 0;; ++index) {
          if (!scanValue(elementPath(path, index)))
            return false;
          skipSpace();
          if (peek() == ',') {
            ++pos;
            continue;
          }
          if (peek() != ']')
            return false;
          ++pos;
          break;
        }
      }
    } else if (c == '"') {
      std::string ignored;
      if (!scanString(ignored))
        return false;
    } else {
      while (pos < text.size() &&
             !llvm::StringRef(",}] \t\r\n").contains(text[pos]))
        ++pos;
    }
    doc.spans[path] = {begin, pos};
    return true;
  }

  std::string duplicatePath;
  std::string duplicateKey;
  size_t duplicateOffset = 0;
  /// Where the paths stored so far outgrew kMaxJsonPathBytes, if they did.
  std::optional<size_t> pathLimitOffset;

private:
  char peek() const { return pos < text.size() ? text[pos] : '\0'; }

  void skipSpace() {
    while (pos < text.size() && llvm::StringRef(" \t\r\n").contains(text[pos]))
      ++pos;
  }

  bool scanObject(const std::string &path) {
    ++pos;
    std::vector<std::string> keys;
    llvm::StringSet<> seen;
    skipSpace();
    if (peek() == '}') {
      ++pos;
      doc.objectKeys[path] = std::move(keys);
      return true;
    }
    while (true) {
      skipSpace();
      size_t keyOffset = pos;
      std::string key;
      if (!scanString(key))
        return false;
      std::string child = childPath(path, key);
      if (!seen.insert(key).second) {
        duplicatePath = child;
        duplicateKey = key;
        duplicateOffset = keyOffset;
        return false;
      }
      keys.push_back(key);
      skipSpace();
      if (peek() != ':')
        return false;
      ++pos;
      if (!scanValue(child))
        return false;
      skipSpace();
      if (peek() == ',') {
        ++pos;
        continue;
      }
      if (peek() != '}')
        return false;
      ++pos;
      break;
    }
    doc.objectKeys[path] = std::move(keys);
    return true;
  }

  /// Decodes a string literal the way llvm::json does, so that paths built
  /// from scanned keys match the parsed objects' keys.
  bool scanString(std::string &out) {
    if (peek() != '"')
      return false;
    ++pos;
    while (pos < text.size()) {
      char c = text[pos++];
      if (c == '"')
        return true;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos >= text.size())
        return false;
      char escape = text[pos++];
      switch (escape) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        std::optional<uint32_t> codePoint = scanHex4();
        if (!codePoint)
          return false;
        uint32_t cp = *codePoint;
        if (cp >= 0xD800 && cp < 0xDC00 &&
            text.substr(pos).starts_with("\\u")) {
          size_t save = pos;
          pos += 2;
          std::optional<uint32_t> low = scanHex4();
          if (low && *low >= 0xDC00 && *low < 0xE000)
            cp = 0x10000 + ((cp - 0xD800) << 10) + (*low - 0xDC00);
          else
            pos = save;
        }
        if (cp >= 0xD800 && cp < 0xE000)
          cp = 0xFFFD; // A lone surrogate, as llvm::json replaces it.
        appendUtf8(out, cp);
        break;
      }
      default:
        out += escape;
        break;
      }
    }
    return false;
  }

  std::optional<uint32_t> scanHex4() {
    if (pos + 4 > text.size())
      return std::nullopt;
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      unsigned digit = llvm::hexDigitValue(text[pos + i]);
      if (digit == ~0U)
        return std::nullopt;
      value = value * 16 + digit;
    }
    pos += 4;
    return value;
  }

  static void appendUtf8(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  JsonDocument &doc;
  llvm::StringRef text;
  size_t pos = 0;
  size_t pathBytes = 0;
};

} // namespace mlir::atmoe::importer

/// The offset at which `text` nests deeper than kMaxJsonDepth, if it does.
static std::optional<size_t> findExcessiveNesting(llvm::StringRef text) {
  unsigned depth = 0;
  bool inString = false;
  for (size_t i = 0, e = text.size(); i < e; ++i) {
    char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"') {
      inString = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth)
        return i;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

/// The offset of the value that makes `text` hold more than kMaxJsonValues
/// values, if it does. Counts the root, every member value (after ':') and
/// every array element (the first after '[', the others after ','); runs
/// after findExcessiveNesting, so the depth fits the bitmask.
static std::optional<size_t> findExcessiveValues(llvm::StringRef text) {
  static_assert(kMaxJsonDepth <= 64, "one bit per nesting level");
  uint64_t isArray = 0; // Bit d - 1: the container at depth d is an array.
  unsigned depth = 0;
  size_t values = 1;
  bool inString = false;
  for (size_t i = 0, e = text.size(); i < e; ++i) {
    char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
      continue;
    }
    bool startsValue = false;
    if (c == '"') {
      inString = true;
    } else if ((c == '{' || c == '[') && depth < kMaxJsonDepth) {
      uint64_t bit = uint64_t(1) << depth++;
      isArray = c == '[' ? isArray | bit : isArray & ~bit;
      size_t next = text.find_first_not_of(" \t\r\n", i + 1);
      startsValue =
          c == '[' && next != llvm::StringRef::npos && text[next] != ']';
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    } else if (c == ':') {
      startsValue = true;
    } else if (c == ',') {
      startsValue = depth > 0 && (isArray >> (depth - 1) & 1);
    }
    if (startsValue && ++values > kMaxJsonValues)
      return i;
  }
  return std::nullopt;
}

/// Reads the file, which must be a regular file of at most kMaxJsonFileSize
/// bytes: reading a device such as /dev/zero never ends, and opening a FIFO
/// blocks until someone writes to it.
LogicalResult JsonDocument::readText(MLIRContext &context) {
  // The file as a whole: no line or column.
  Location file = FileLineColLoc::get(&context, displayPath, 0, 0);
  llvm::sys::fs::file_status status;
  if (std::error_code ec = llvm::sys::fs::status(displayPath, status))
    return emitError(file) << "cannot read the file: " << ec.message();
  if (status.type() != llvm::sys::fs::file_type::regular_file)
    return emitError(file) << "not a regular file";
  if (status.getSize() > kMaxJsonFileSize)
    return emitError(file) << "file is " << status.getSize()
                           << " bytes, more than the limit of "
                           << kMaxJsonFileSize << " bytes for a JSON file";
  auto fileOrErr =
      llvm::MemoryBuffer::getFile(displayPath, /*IsText=*/false,
                                  /*RequiresNullTerminator=*/false);
  if (!fileOrErr)
    return emitError(file) << "cannot read the file: "
                           << fileOrErr.getError().message();
  buffer = std::move(*fileOrErr);
  text = buffer->getBuffer();
  lineStarts.push_back(0);
  for (size_t i = 0, e = text.size(); i < e; ++i)
    if (text[i] == '\n')
      lineStarts.push_back(i + 1);
  return success();
}

/// Parses the text read, within the resource bounds, and records spans and
/// key order.
LogicalResult JsonDocument::parseText(MLIRContext &context) {
  auto at = [&](size_t offset) {
    auto [line, col] = lineColOf(offset);
    return emitError(FileLineColLoc::get(&context, displayPath, line, col));
  };
  if (std::optional<size_t> offset = findExcessiveNesting(text))
    return at(*offset) << "invalid JSON: nested deeper than " << kMaxJsonDepth
                       << " levels";
  if (std::optional<size_t> offset = findExcessiveValues(text))
    return at(*offset) << "invalid JSON: more than " << kMaxJsonValues
                       << " values";
  llvm::Expected<json::Value> parsed = json::parse(text);
  if (!parsed) {
    // llvm::json reports "[line:col, byte=N]: message".
    std::string raw = llvm::toString(parsed.takeError());
    llvm::StringRef message(raw), position;
    unsigned line = 0, col = 0;
    if (message.starts_with("[") && message.contains("]: ")) {
      position = message.slice(1, message.find(',')).trim();
      message = message.substr(message.find("]: ") + 3);
      auto [lineText, colText] = position.split(':');
      if (lineText.getAsInteger(10, line) || colText.getAsInteger(10, col))
        line = col = 0;
    }
    return emitError(FileLineColLoc::get(&context, displayPath, line, col))
           << "invalid JSON: " << message;
  }
  rootValue = std::move(*parsed);

  JsonScanner scanner(*this);
  bool scanned = scanner.scanValue("");
  if (!scanned && scanner.pathLimitOffset)
    return at(*scanner.pathLimitOffset)
           << "invalid JSON: the paths of its values exceed "
           << kMaxJsonPathBytes << " bytes (keys too long for so many values)";
  if (!scanned && !scanner.duplicatePath.empty())
    return at(scanner.duplicateOffset)
           << scanner.duplicatePath << ": duplicate key '"
           << scanner.duplicateKey << "' (a key may appear once per object)";
  return success();
}

LogicalResult JsonDocument::load(MLIRContext &context) {
  if (failed(readText(context)))
    return failure();
  return parseText(context);
}

/// How a value looks in the file, for "found ..." in errors.
std::string mlir::atmoe::importer::describe(const JsonNode &node) {
  switch (node.value->kind()) {
  case json::Value::Array:
    return "an array";
  case json::Value::Object:
    return "an object";
  default:
    break;
  }
  llvm::StringRef text = node.doc->sourceText(node.path);
  if (text.empty()) {
    std::string printed;
    llvm::raw_string_ostream os(printed);
    os << *node.value;
    return printed;
  }
  if (text.size() > 48)
    return (text.take_front(45) + "...").str();
  return text.str();
}
