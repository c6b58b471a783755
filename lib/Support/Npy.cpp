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

#include "atmoe/Support/Npy.h"
#include "atmoe/Support/AtomicFile.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SwapByteOrder.h"

#include <cstring>
#include <limits>
#include <optional>

using namespace llvm;

namespace atmoe {

namespace {

constexpr StringLiteral kMagic("\x93NUMPY");

Error makeError(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

std::string formatShape(ArrayRef<int64_t> shape) {
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
  SmallVector<int64_t> shape;
};

/// A parser for the fixed, tiny subset of Python literals numpy writes:
/// a dict with string keys whose values are strings, True/False, or tuples
/// of non-negative integers.
class HeaderParser {
public:
  HeaderParser(StringRef path, StringRef text) : path(path), text(text) {}

  Expected<NpyHeader> parse() {
    NpyHeader header;
    bool seenDescr = false, seenOrder = false, seenShape = false;
    skipSpace();
    if (!consume('{'))
      return error("expected '{'");
    while (true) {
      skipSpace();
      if (consume('}'))
        break;
      std::string key;
      if (Error err = parseString(key))
        return std::move(err);
      skipSpace();
      if (!consume(':'))
        return error("expected ':' after key '" + key + "'");
      skipSpace();
      if (key == "descr") {
        if (seenDescr)
          return error("duplicate key 'descr'");
        seenDescr = true;
        if (Error err = parseString(header.descr))
          return std::move(err);
      } else if (key == "fortran_order") {
        if (seenOrder)
          return error("duplicate key 'fortran_order'");
        seenOrder = true;
        if (consumeWord("True"))
          header.fortranOrder = true;
        else if (consumeWord("False"))
          header.fortranOrder = false;
        else
          return error("key 'fortran_order': expected True or False");
      } else if (key == "shape") {
        if (seenShape)
          return error("duplicate key 'shape'");
        seenShape = true;
        if (Error err = parseShape(header.shape))
          return std::move(err);
      } else {
        return error("unexpected key '" + key +
                     "' (expected 'descr', 'fortran_order' and 'shape')");
      }
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

private:
  Error error(const Twine &message) {
    return makeError(path + ": header: " + message + " (at byte " + Twine(pos) +
                     " of the header)");
  }

  void skipSpace() {
    while (pos < text.size() && isSpace(text[pos]))
      ++pos;
  }

  bool consume(char c) {
    if (pos < text.size() && text[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  }

  bool consumeWord(StringRef word) {
    if (!text.substr(pos).starts_with(word))
      return false;
    size_t end = pos + word.size();
    if (end < text.size() && (isAlnum(text[end]) || text[end] == '_'))
      return false;
    pos = end;
    return true;
  }

  Error parseString(std::string &result) {
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
    result = text.slice(start, pos).str();
    ++pos;
    return Error::success();
  }

  Error parseShape(SmallVectorImpl<int64_t> &shape) {
    if (!consume('('))
      return error("key 'shape': expected a tuple of non-negative integers");
    while (true) {
      skipSpace();
      if (consume(')'))
        return Error::success();
      if (pos >= text.size() || !isDigit(text[pos]))
        return error("key 'shape': expected a non-negative integer");
      int64_t value = 0;
      while (pos < text.size() && isDigit(text[pos])) {
        if (__builtin_mul_overflow(value, int64_t(10), &value) ||
            __builtin_add_overflow(value, int64_t(text[pos] - '0'), &value))
          return error("key 'shape': dimension does not fit in 64 bits");
        ++pos;
      }
      consume('L'); // Python 2 long literals, as old numpy wrote them.
      shape.push_back(value);
      skipSpace();
      if (consume(','))
        continue;
      skipSpace();
      if (consume(')'))
        return Error::success();
      return error("key 'shape': expected ',' or ')'");
    }
  }

  StringRef path;
  StringRef text;
  size_t pos = 0;
};

/// The number of elements of `shape`, or std::nullopt on overflow.
std::optional<uint64_t> numElements(ArrayRef<int64_t> shape) {
  uint64_t count = 1;
  for (int64_t dim : shape)
    if (dim == 0)
      return 0;
  for (int64_t dim : shape)
    if (dim < 0 || __builtin_mul_overflow(count, uint64_t(dim), &count))
      return std::nullopt;
  return count;
}

} // namespace

Expected<NpyArray> readNpyF32(StringRef path) {
  // A pipe ends when its writer closes it (`--x <(...)` in a shell), but
  // reading a device such as /dev/zero to its end never stops allocating.
  sys::fs::file_status status;
  if (std::error_code ec = sys::fs::status(path, status))
    return makeError(path + ": cannot open: " + ec.message());
  if (status.type() != sys::fs::file_type::regular_file &&
      status.type() != sys::fs::file_type::fifo_file)
    return makeError(path + ": not a regular file or pipe, expected a .npy "
                            "file");
  ErrorOr<std::unique_ptr<MemoryBuffer>> buffer = MemoryBuffer::getFile(
      path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer)
    return makeError(path + ": cannot open: " + buffer.getError().message());
  StringRef contents = (*buffer)->getBuffer();

  if (!contents.starts_with(kMagic))
    return makeError(path + ": not a .npy file (expected the magic string "
                            "\"\\x93NUMPY\" at the start)");
  if (contents.size() < kMagic.size() + 2)
    return makeError(path + ": truncated .npy preamble (file is " +
                     Twine(contents.size()) + " bytes)");
  unsigned major = uint8_t(contents[6]), minor = uint8_t(contents[7]);
  if (major < 1 || major > 3 || minor != 0)
    return makeError(path + ": unsupported .npy format version " +
                     Twine(major) + "." + Twine(minor) +
                     " (expected 1.0, 2.0 or 3.0)");
  size_t preamble = major == 1 ? 10 : 12;
  if (contents.size() < preamble)
    return makeError(path + ": truncated .npy preamble (file is " +
                     Twine(contents.size()) + " bytes, expected at least " +
                     Twine(preamble) + ")");
  uint64_t headerSize = major == 1
                            ? support::endian::read16le(contents.data() + 8)
                            : support::endian::read32le(contents.data() + 8);
  if (headerSize > contents.size() - preamble)
    return makeError(path + ": header length " + Twine(headerSize) +
                     " runs past the end of the file (" +
                     Twine(contents.size() - preamble) +
                     " bytes follow the preamble)");
  StringRef headerText = contents.substr(preamble, headerSize);
  StringRef data = contents.drop_front(preamble + headerSize);

  Expected<NpyHeader> header = HeaderParser(path, headerText).parse();
  if (!header)
    return header.takeError();

  size_t itemSize;
  if (header->descr == "<f4")
    itemSize = 4;
  else if (header->descr == "<f8")
    itemSize = 8;
  else
    return makeError(path + ": header: unsupported descr '" + header->descr +
                     "' (expected '<f4' or '<f8')");
  if (header->fortranOrder)
    return makeError(path + ": header: fortran_order is True, expected False "
                            "(only C-order arrays are supported)");

  std::optional<uint64_t> count = numElements(header->shape);
  uint64_t bytes = 0;
  if (!count || *count > std::numeric_limits<size_t>::max() / sizeof(double) ||
      __builtin_mul_overflow(*count, uint64_t(itemSize), &bytes))
    return makeError(path + ": header: shape " + formatShape(header->shape) +
                     " is too large (its byte size overflows)");
  if (data.size() < bytes)
    return makeError(path + ": truncated data: shape " +
                     formatShape(header->shape) + " of '" + header->descr +
                     "' needs " + Twine(bytes) + " bytes, found " +
                     Twine(data.size()));
  if (data.size() > bytes)
    return makeError(path + ": data is " + Twine(data.size()) +
                     " bytes, expected " + Twine(bytes) + " for shape " +
                     formatShape(header->shape) + " of '" + header->descr +
                     "'");

  NpyArray array;
  array.shape = std::move(header->shape);
  array.data.resize(*count);
  const char *bytesIn = data.data();
  if (itemSize == 4) {
    if (sys::IsLittleEndianHost) {
      if (bytes)
        std::memcpy(array.data.data(), bytesIn, bytes);
    } else {
      for (size_t i = 0; i < *count; ++i) {
        uint32_t bits = support::endian::read32le(bytesIn + 4 * i);
        std::memcpy(&array.data[i], &bits, sizeof(float));
      }
    }
  } else {
    for (size_t i = 0; i < *count; ++i) {
      uint64_t bits = support::endian::read64le(bytesIn + 8 * i);
      double value;
      std::memcpy(&value, &bits, sizeof(value));
      array.data[i] = static_cast<float>(value);
    }
  }
  return array;
}

Error writeNpyF32(StringRef path, ArrayRef<int64_t> shape,
                  ArrayRef<float> data) {
  std::optional<uint64_t> count = numElements(shape);
  if (!count)
    return makeError(path + ": cannot write shape " + formatShape(shape) +
                     ": dimensions must be non-negative and their product "
                     "must fit in 64 bits");
  if (*count != data.size())
    return makeError(path + ": cannot write shape " + formatShape(shape) +
                     ": it has " + Twine(*count) + " elements but " +
                     Twine(data.size()) + " values were given");

  // Pad with spaces so that the data starts at a multiple of 64 bytes, as
  // numpy does; the header ends with '\n'.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " +
                       formatShape(shape) + ", }";
  size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  if (header.size() > std::numeric_limits<uint16_t>::max())
    return makeError(path + ": cannot write shape " + formatShape(shape) +
                     ": the header does not fit in a version 1.0 .npy file");

  return writeFileAtomically(path, [&](raw_ostream &os) {
    char preamble[10];
    std::memcpy(preamble, kMagic.data(), kMagic.size());
    preamble[6] = 1;
    preamble[7] = 0;
    support::endian::write16le(preamble + 8, uint16_t(header.size()));
    os.write(preamble, sizeof(preamble));
    os << header;
    if (sys::IsLittleEndianHost) {
      os.write(reinterpret_cast<const char *>(data.data()),
               data.size() * sizeof(float));
    } else {
      for (float value : data) {
        uint32_t bits;
        std::memcpy(&bits, &value, sizeof(bits));
        char out[4];
        support::endian::write32le(out, bits);
        os.write(out, sizeof(out));
      }
    }
    return Error::success();
  });
}

} // namespace atmoe
