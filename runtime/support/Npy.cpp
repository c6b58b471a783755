//===- Npy.cpp - NumPy .npy reader and writer for f32 arrays --------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Format (numpy.lib.format): the magic "\x93NUMPY", a major and a minor
// version byte, the header length (u16 little-endian for 1.0, u32 for 2.0 and
// 3.0), then the header: a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// padded with spaces and ended by '\n', then the raw data.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/Npy.h"

#include "atmoe_rt/support/MappedFile.h"
#include "atmoe_rt/support/OutputFile.h"

#include <cctype>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

using namespace atmoe_rt;

namespace {

constexpr std::string_view kMagic("\x93NUMPY", 6);

/// A shape as numpy writes it: "(2, 3)", "(5,)", "()".
std::string formatTuple(const std::vector<int64_t> &shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1)
    text += ",";
  return text + ")";
}

/// The header dict of a .npy file.
struct NpyHeader {
  std::string descr;
  bool fortranOrder = false;
  std::vector<int64_t> shape;
};

/// A parser for the fixed, tiny subset of Python literals numpy writes:
/// a dict with string keys whose values are strings, True/False, or tuples
/// of non-negative integers.
class HeaderParser {
public:
  HeaderParser(const std::string &path, std::string_view text)
      : path(path), text(text) {}

  Result<NpyHeader> parse();

private:
  Error error(const std::string &message) const {
    return fail(path + ": header: " + message + " (at byte " +
                std::to_string(pos) + " of the header)");
  }
  void skipSpace() {
    while (pos < text.size() && std::isspace(uint8_t(text[pos])))
      ++pos;
  }
  bool consume(char c) {
    if (pos < text.size() && text[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  }
  bool consumeWord(std::string_view word);
  Status parseEntry(const std::string &key);
  Status parseString(std::string &result);
  Status parseShape(std::vector<int64_t> &shape);
  Status parseDimension(std::vector<int64_t> &shape);

  const std::string &path;
  std::string_view text;
  size_t pos = 0;
  NpyHeader header;
  bool seenDescr = false, seenOrder = false, seenShape = false;
};

Result<NpyHeader> HeaderParser::parse() {
  skipSpace();
  if (!consume('{'))
    return error("expected '{'");
  while (true) {
    skipSpace();
    if (consume('}'))
      break;
    std::string key;
    if (Status status = parseString(key); !status)
      return status.takeError();
    skipSpace();
    if (!consume(':'))
      return error("expected ':' after key '" + key + "'");
    skipSpace();
    if (Status status = parseEntry(key); !status)
      return status.takeError();
    skipSpace();
    if (consume(','))
      continue;
    skipSpace();
    if (consume('}'))
      break;
    return error("expected ',' or '}' after the value of key '" + key + "'");
  }
  skipSpace();
  if (pos != text.size())
    return error("unexpected text after the closing '}'");
  if (!seenDescr)
    return error("missing key 'descr'");
  if (!seenOrder)
    return error("missing key 'fortran_order'");
  if (!seenShape)
    return error("missing key 'shape'");
  return header;
}

Status HeaderParser::parseEntry(const std::string &key) {
  bool *seen = key == "descr"           ? &seenDescr
               : key == "fortran_order" ? &seenOrder
               : key == "shape"         ? &seenShape
                                        : nullptr;
  if (!seen)
    return error("unexpected key '" + key +
                 "' (expected 'descr', 'fortran_order' and 'shape')");
  if (*seen)
    return error("duplicate key '" + key + "'");
  *seen = true;
  if (key == "descr")
    return parseString(header.descr);
  if (key == "shape")
    return parseShape(header.shape);
  if (consumeWord("True"))
    header.fortranOrder = true;
  else if (consumeWord("False"))
    header.fortranOrder = false;
  else
    return error("key 'fortran_order': expected True or False");
  return Status::success();
}

bool HeaderParser::consumeWord(std::string_view word) {
  if (text.substr(pos, word.size()) != word)
    return false;
  size_t end = pos + word.size();
  if (end < text.size() &&
      (std::isalnum(uint8_t(text[end])) || text[end] == '_'))
    return false;
  pos = end;
  return true;
}

Status HeaderParser::parseString(std::string &result) {
  if (pos >= text.size() || (text[pos] != '\'' && text[pos] != '"'))
    return error("expected a quoted string");
  char quote = text[pos++];
  size_t start = pos;
  while (pos < text.size() && text[pos] != quote) {
    if (text[pos] == '\\')
      return error("escape sequences are not supported in strings");
    ++pos;
  }
  if (pos >= text.size())
    return error("unterminated string");
  result = std::string(text.substr(start, pos - start));
  ++pos;
  return Status::success();
}

Status HeaderParser::parseShape(std::vector<int64_t> &shape) {
  if (!consume('('))
    return error("key 'shape': expected a tuple of non-negative integers");
  while (true) {
    skipSpace();
    if (consume(')'))
      return Status::success();
    if (Status status = parseDimension(shape); !status)
      return status;
    skipSpace();
    if (consume(','))
      continue;
    skipSpace();
    if (consume(')'))
      return Status::success();
    return error("key 'shape': expected ',' or ')'");
  }
}

Status HeaderParser::parseDimension(std::vector<int64_t> &shape) {
  if (pos >= text.size() || !std::isdigit(uint8_t(text[pos])))
    return error("key 'shape': expected a non-negative integer");
  int64_t value = 0;
  while (pos < text.size() && std::isdigit(uint8_t(text[pos]))) {
    if (__builtin_mul_overflow(value, int64_t(10), &value) ||
        __builtin_add_overflow(value, int64_t(text[pos] - '0'), &value))
      return error("key 'shape': dimension does not fit in 64 bits");
    ++pos;
  }
  consume('L'); // Python 2 long literals, as old numpy wrote them.
  shape.push_back(value);
  return Status::success();
}

/// The number of elements of `shape`, or std::nullopt on overflow.
std::optional<uint64_t> numElements(const std::vector<int64_t> &shape) {
  for (int64_t dim : shape)
    if (dim == 0)
      return 0;
  uint64_t count = 1;
  for (int64_t dim : shape)
    if (dim < 0 || __builtin_mul_overflow(count, uint64_t(dim), &count))
      return std::nullopt;
  return count;
}

/// The header text and data section of a .npy file's contents.
Result<std::pair<std::string_view, std::string_view>>
splitFile(const std::string &path, std::string_view contents) {
  if (contents.substr(0, kMagic.size()) != kMagic)
    return fail(path + ": not a .npy file (expected the magic string "
                       "\"\\x93NUMPY\" at the start)");
  if (contents.size() < kMagic.size() + 2)
    return fail(path + ": truncated .npy preamble (file is " +
                std::to_string(contents.size()) + " bytes)");
  unsigned major = uint8_t(contents[6]), minor = uint8_t(contents[7]);
  if (major < 1 || major > 3 || minor != 0)
    return fail(path + ": unsupported .npy format version " +
                std::to_string(major) + "." + std::to_string(minor) +
                " (expected 1.0, 2.0 or 3.0)");
  size_t preamble = major == 1 ? 10 : 12;
  if (contents.size() < preamble)
    return fail(path + ": truncated .npy preamble (file is " +
                std::to_string(contents.size()) + " bytes, expected at least " +
                std::to_string(preamble) + ")");
  uint64_t headerSize = 0;
  std::memcpy(&headerSize, contents.data() + 8, major == 1 ? 2 : 4);
  if (headerSize > contents.size() - preamble)
    return fail(path + ": header length " + std::to_string(headerSize) +
                " runs past the end of the file (" +
                std::to_string(contents.size() - preamble) +
                " bytes follow the preamble)");
  return std::make_pair(contents.substr(preamble, headerSize),
                        contents.substr(preamble + headerSize));
}

/// The data size `header` implies, checked against the data section.
Result<uint64_t> checkDataSize(const std::string &path, const NpyHeader &header,
                               size_t itemSize, size_t dataSize) {
  std::optional<uint64_t> count = numElements(header.shape);
  uint64_t bytes = 0;
  if (!count || *count > std::numeric_limits<size_t>::max() / sizeof(double) ||
      __builtin_mul_overflow(*count, uint64_t(itemSize), &bytes))
    return fail(path + ": header: shape " + formatTuple(header.shape) +
                " is too large (its byte size overflows)");
  std::string what =
      "shape " + formatTuple(header.shape) + " of '" + header.descr + "'";
  if (dataSize < bytes)
    return fail(path + ": truncated data: " + what + " needs " +
                std::to_string(bytes) + " bytes, found " +
                std::to_string(dataSize));
  if (dataSize > bytes)
    return fail(path + ": data is " + std::to_string(dataSize) +
                " bytes, expected " + std::to_string(bytes) + " for " + what);
  return *count;
}

} // namespace

Result<NpyArray> atmoe_rt::readNpyF32(const std::string &path) {
  Result<std::unique_ptr<MappedFile>> file =
      MappedFile::open(path, "a .npy file", MappedFile::Pipes::Read);
  if (!file)
    return file.takeError();
  auto parts = splitFile(path, (*file)->contents());
  if (!parts)
    return parts.takeError();
  auto [headerText, data] = *parts;
  Result<NpyHeader> header = HeaderParser(path, headerText).parse();
  if (!header)
    return header.takeError();
  size_t itemSize = header->descr == "<f4" ? 4 : header->descr == "<f8" ? 8 : 0;
  if (!itemSize)
    return fail(path + ": header: unsupported descr '" + header->descr +
                "' (expected '<f4' or '<f8')");
  if (header->fortranOrder)
    return fail(path + ": header: fortran_order is True, expected False "
                       "(only C-order arrays are supported)");
  Result<uint64_t> count = checkDataSize(path, *header, itemSize, data.size());
  if (!count)
    return count.takeError();

  NpyArray array;
  array.shape = std::move(header->shape);
  array.data.resize(*count);
  if (itemSize == 4 && *count) {
    std::memcpy(array.data.data(), data.data(), *count * 4);
  } else if (itemSize == 8) {
    for (size_t i = 0; i < *count; ++i) {
      double value;
      std::memcpy(&value, data.data() + 8 * i, sizeof(value));
      array.data[i] = static_cast<float>(value);
    }
  }
  return array;
}

Status atmoe_rt::writeNpyF32To(int fd, const std::string &path,
                               const std::vector<int64_t> &shape,
                               const float *data, size_t size) {
  std::optional<uint64_t> count = numElements(shape);
  if (!count)
    return fail(path + ": cannot write shape " + formatTuple(shape) +
                ": dimensions must be non-negative and their product must fit "
                "in 64 bits");
  if (*count != size)
    return fail(path + ": cannot write shape " + formatTuple(shape) +
                ": it has " + std::to_string(*count) + " elements but " +
                std::to_string(size) + " values were given");

  // Pad with spaces so that the data starts at a multiple of 64 bytes, as
  // numpy does; the header ends with '\n'.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " +
                       formatTuple(shape) + ", }";
  size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  if (header.size() > std::numeric_limits<uint16_t>::max())
    return fail(path + ": cannot write shape " + formatTuple(shape) +
                ": the header does not fit in a version 1.0 .npy file");

  std::string preamble(kMagic);
  preamble += '\x01';
  preamble += '\x00';
  uint16_t headerSize = uint16_t(header.size());
  preamble.append(reinterpret_cast<const char *>(&headerSize), 2);
  std::string head = preamble + header;
  if (Status status = writeAll(fd, head.data(), head.size(), path); !status)
    return status;
  return writeAll(fd, data, size * sizeof(float), path);
}

Status atmoe_rt::writeNpyF32(const std::string &path,
                             const std::vector<int64_t> &shape,
                             const float *data, size_t size) {
  return writeFileAtomically(path, [&](int fd) -> Status {
    return writeNpyF32To(fd, path, shape, data, size);
  });
}
