//===- SafeTensors.cpp - Read-only, validating safetensors reader ---------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Support/SafeTensors.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/SwapByteOrder.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

using namespace llvm;

namespace atmoe {

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

StringRef dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "F32";
  case DType::F16:
    return "F16";
  case DType::BF16:
    return "BF16";
  case DType::F64:
    return "F64";
  case DType::I64:
    return "I64";
  case DType::I32:
    return "I32";
  case DType::I16:
    return "I16";
  case DType::I8:
    return "I8";
  case DType::U8:
    return "U8";
  case DType::Bool:
    return "BOOL";
  }
  llvm_unreachable("unknown DType");
}

std::optional<DType> parseDType(StringRef name) {
  for (DType dtype :
       {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64, DType::I32,
        DType::I16, DType::I8, DType::U8, DType::Bool})
    if (name == dtypeName(dtype))
      return dtype;
  return std::nullopt;
}

size_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
  case DType::I16:
    return 2;
  case DType::I8:
  case DType::U8:
  case DType::Bool:
    return 1;
  }
  llvm_unreachable("unknown DType");
}

int64_t TensorInfo::numElements() const {
  int64_t n = 1;
  for (int64_t dim : shape) {
    if (dim == 0)
      return 0;
  }
  for (int64_t dim : shape)
    n *= dim; // Cannot overflow: validated against the byte size on open.
  return n;
}

//===----------------------------------------------------------------------===//
// Header validation helpers
//===----------------------------------------------------------------------===//

namespace {

/// The longest header accepted (the limit of the reference implementation).
constexpr uint64_t kMaxHeaderSize = 100'000'000;
/// The deepest JSON nesting accepted in a header.
constexpr unsigned kMaxHeaderDepth = 64;
constexpr StringLiteral kMetadataKey = "__metadata__";

Error makeError(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}

/// A short description of `value` for "found ..." in messages: the value
/// itself when short, otherwise its kind.
std::string describe(const json::Value &value) {
  std::string text;
  raw_string_ostream os(text);
  os << value;
  if (text.size() <= 40)
    return text;
  switch (value.kind()) {
  case json::Value::Null:
    return "null";
  case json::Value::Boolean:
    return "a boolean";
  case json::Value::Number:
    return "a number";
  case json::Value::String:
    return "a long string";
  case json::Value::Array:
    return "an array";
  case json::Value::Object:
    return "an object";
  }
  llvm_unreachable("unknown JSON kind");
}

std::string formatShape(ArrayRef<int64_t> shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

std::string formatOffsets(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

/// Finds the end of the JSON string starting at `text[pos] == '"'`; returns
/// the index just past the closing quote, or `text.size()` if unterminated.
size_t skipString(StringRef text, size_t pos) {
  for (++pos; pos < text.size(); ++pos) {
    if (text[pos] == '\\')
      ++pos;
    else if (text[pos] == '"')
      return pos + 1;
  }
  return text.size();
}

/// Rejects nesting deeper than kMaxHeaderDepth without recursion, before the
/// (recursive) JSON parser sees the text.
Error checkDepth(StringRef path, StringRef text) {
  unsigned depth = 0;
  for (size_t pos = 0; pos < text.size();) {
    char c = text[pos];
    if (c == '"') {
      pos = skipString(text, pos);
      continue;
    }
    if (c == '{' || c == '[') {
      if (++depth > kMaxHeaderDepth)
        return makeError(path + ": header: JSON nesting deeper than " +
                         Twine(kMaxHeaderDepth) + " levels at byte " +
                         Twine(pos) + " of the header");
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
    ++pos;
  }
  return Error::success();
}

/// Scans a header that json::parse accepted as an object for keys repeated
/// within one object (json::Object keeps only the last of them), and returns
/// the top-level keys in file order.
Expected<std::vector<std::string>> scanKeys(StringRef path, StringRef text) {
  struct Frame {
    bool isObject;
    bool expectKey;
    std::string lastKey;
    StringSet<> keys;
  };
  SmallVector<Frame, 8> frames;
  std::vector<std::string> topKeys;
  for (size_t pos = 0; pos < text.size();) {
    char c = text[pos];
    if (c == '{' || c == '[') {
      frames.push_back({c == '{', c == '{', "", {}});
    } else if (c == '}' || c == ']') {
      if (!frames.empty())
        frames.pop_back();
    } else if (c == ',') {
      if (!frames.empty() && frames.back().isObject)
        frames.back().expectKey = true;
    } else if (c == '"') {
      size_t end = skipString(text, pos);
      if (!frames.empty() && frames.back().isObject &&
          frames.back().expectKey) {
        Frame &frame = frames.back();
        StringRef raw = text.slice(pos, end);
        std::string key = raw.drop_front().drop_back().str();
        if (raw.contains('\\')) {
          // Decode escapes the same way as the real parse did.
          Expected<json::Value> decoded = json::parse(raw);
          if (!decoded)
            return decoded.takeError();
          key = decoded->getAsString().value_or("").str();
        }
        frame.expectKey = false;
        if (!frame.keys.insert(key).second) {
          if (frames.size() == 1)
            return makeError(
                path + ": " +
                (key == kMetadataKey ? "header key '" : "tensor '") + key +
                "': appears more than once in the header");
          StringRef owner = frames[0].lastKey;
          return makeError(
              path + ": " +
              (owner == kMetadataKey ? "header key '" : "tensor '") + owner +
              "': duplicate key '" + key + "'");
        }
        frame.lastKey = key;
        if (frames.size() == 1)
          topKeys.push_back(key);
      }
      pos = end;
      continue;
    }
    ++pos;
  }
  return topKeys;
}

/// Validates one tensor entry of the header (everything but overlaps).
Expected<TensorInfo> parseTensor(StringRef path, StringRef name,
                                 const json::Value &value, uint64_t dataSize) {
  std::string prefix = (path + ": tensor '" + name + "': ").str();
  const json::Object *entry = value.getAsObject();
  if (!entry)
    return makeError(Twine(prefix) +
                     "expected an object with 'dtype', 'shape' and "
                     "'data_offsets', found " +
                     describe(value));

  TensorInfo info;
  info.name = name.str();
  info.data = nullptr;

  // dtype
  const json::Value *dtypeValue = entry->get("dtype");
  if (!dtypeValue)
    return makeError(Twine(prefix) + "missing key 'dtype'");
  std::optional<StringRef> dtypeString = dtypeValue->getAsString();
  if (!dtypeString)
    return makeError(Twine(prefix) + "key 'dtype': expected a string, found " +
                     describe(*dtypeValue));
  std::optional<DType> dtype = parseDType(*dtypeString);
  if (!dtype)
    return makeError(Twine(prefix) + "key 'dtype': unsupported dtype '" +
                     *dtypeString +
                     "' (expected one of F32, F16, BF16, F64, I64, I32, I16, "
                     "I8, U8, BOOL)");
  info.dtype = *dtype;

  // shape
  const json::Value *shapeValue = entry->get("shape");
  if (!shapeValue)
    return makeError(Twine(prefix) + "missing key 'shape'");
  const json::Array *shapeArray = shapeValue->getAsArray();
  if (!shapeArray)
    return makeError(Twine(prefix) +
                     "key 'shape': expected an array of non-negative "
                     "integers, found " +
                     describe(*shapeValue));
  bool hasZeroDim = false;
  for (size_t i = 0; i < shapeArray->size(); ++i) {
    std::optional<uint64_t> dim = (*shapeArray)[i].getAsUINT64();
    if (!dim || *dim > uint64_t(std::numeric_limits<int64_t>::max()))
      return makeError(Twine(prefix) + "key 'shape': element " + Twine(i) +
                       " is " + describe((*shapeArray)[i]) +
                       ", expected a non-negative integer");
    info.shape.push_back(int64_t(*dim));
    hasZeroDim |= *dim == 0;
  }

  // data_offsets
  const json::Value *offsetsValue = entry->get("data_offsets");
  if (!offsetsValue)
    return makeError(Twine(prefix) + "missing key 'data_offsets'");
  const json::Array *offsets = offsetsValue->getAsArray();
  std::optional<uint64_t> begin, end;
  if (offsets && offsets->size() == 2) {
    begin = (*offsets)[0].getAsUINT64();
    end = (*offsets)[1].getAsUINT64();
  }
  if (!begin || !end)
    return makeError(Twine(prefix) +
                     "key 'data_offsets': expected [begin, end] with two "
                     "non-negative integers, found " +
                     describe(*offsetsValue));
  if (*begin > *end)
    return makeError(Twine(prefix) + "data_offsets " +
                     formatOffsets(*begin, *end) +
                     ": begin is greater than end");
  info.begin = *begin;
  info.end = *end;

  // Size consistency, overflow checked.
  uint64_t bytes = dtypeSize(info.dtype);
  if (hasZeroDim) {
    bytes = 0;
  } else {
    for (int64_t dim : info.shape) {
      if (__builtin_mul_overflow(bytes, uint64_t(dim), &bytes))
        return makeError(Twine(prefix) + "shape " + formatShape(info.shape) +
                         " x " + dtypeName(info.dtype) +
                         ": byte size overflows 64 bits");
    }
  }
  if (bytes != info.end - info.begin)
    return makeError(Twine(prefix) + "shape " + formatShape(info.shape) +
                     " x " + dtypeName(info.dtype) + " (" +
                     Twine(dtypeSize(info.dtype)) + " bytes) needs " +
                     Twine(bytes) + " bytes, but data_offsets " +
                     formatOffsets(info.begin, info.end) + " span " +
                     Twine(info.end - info.begin) + " bytes");
  if (info.end > dataSize)
    return makeError(Twine(prefix) + "data_offsets " +
                     formatOffsets(info.begin, info.end) +
                     " run past the end of the data section (" +
                     Twine(dataSize) + " bytes)");
  return info;
}

/// Exact IEEE binary16 to binary32 conversion.
float halfToFloat(uint16_t half) {
  uint32_t sign = uint32_t(half & 0x8000u) << 16;
  uint32_t exponent = (half >> 10) & 0x1fu;
  uint32_t mantissa = half & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13); // Inf or NaN.
  } else if (exponent != 0) {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign; // Signed zero.
  } else {
    // Subnormal: normalise the mantissa.
    exponent = 127 - 15 + 1;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float result;
  std::memcpy(&result, &bits, sizeof(result));
  return result;
}

float bfloat16ToFloat(uint16_t value) {
  uint32_t bits = uint32_t(value) << 16;
  float result;
  std::memcpy(&result, &bits, sizeof(result));
  return result;
}

} // namespace

//===----------------------------------------------------------------------===//
// SafeTensorsFile
//===----------------------------------------------------------------------===//

Expected<std::unique_ptr<SafeTensorsFile>>
SafeTensorsFile::open(StringRef path) {
  std::unique_ptr<SafeTensorsFile> file(new SafeTensorsFile());
  file->filePath = path.str();

  // Map the file; one that cannot be mapped is read into memory instead.
  // Only regular files: reading a device such as /dev/zero never ends, and
  // opening a FIFO blocks until someone writes to it.
  sys::fs::file_status status;
  if (std::error_code ec = sys::fs::status(path, status))
    return makeError(path + ": cannot open: " + ec.message());
  if (status.type() == sys::fs::file_type::directory_file)
    return makeError(path + ": is a directory, expected a safetensors file");
  if (status.type() != sys::fs::file_type::regular_file)
    return makeError(path + ": not a regular file, expected a safetensors "
                            "file");
  if (status.getSize() >= 8) {
    Expected<sys::fs::file_t> fd = sys::fs::openNativeFileForRead(path);
    if (!fd)
      return makeError(path + ": cannot open: " + toString(fd.takeError()));
    std::error_code ec;
    file->region = sys::fs::mapped_file_region(
        *fd, sys::fs::mapped_file_region::readonly, status.getSize(), 0, ec);
    sys::fs::closeFile(*fd);
    if (!ec)
      file->contents =
          StringRef(file->region.const_data(), file->region.size());
  }
  if (!file->region) {
    ErrorOr<std::unique_ptr<MemoryBuffer>> buffer = MemoryBuffer::getFile(
        path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
    if (!buffer)
      return makeError(path + ": cannot open: " + buffer.getError().message());
    file->buffer = std::move(*buffer);
    file->contents = file->buffer->getBuffer();
  }
  StringRef contents = file->contents;

  // The header length, checked before anything is allocated for the header.
  if (contents.size() < 8)
    return makeError(path + ": file is " + Twine(contents.size()) +
                     " bytes, shorter than the 8-byte header length");
  uint64_t headerSize = support::endian::read64le(contents.data());
  uint64_t available = contents.size() - 8;
  if (headerSize < 2)
    return makeError(path + ": header length " + Twine(headerSize) +
                     " is too small (at least 2 bytes, '{}')");
  if (headerSize > kMaxHeaderSize)
    return makeError(path + ": header length " + Twine(headerSize) +
                     " exceeds the limit of " + Twine(kMaxHeaderSize) +
                     " bytes");
  if (headerSize > available)
    return makeError(path + ": header length " + Twine(headerSize) +
                     " runs past the end of the file (" + Twine(available) +
                     " bytes follow the 8-byte length)");
  StringRef headerText = contents.substr(8, headerSize);
  StringRef dataSection = contents.drop_front(8 + headerSize);

  // The JSON itself.
  if (Error err = checkDepth(path, headerText))
    return std::move(err);
  Expected<json::Value> header = json::parse(headerText);
  if (!header)
    return makeError(
        path + ": header is not valid JSON: " + toString(header.takeError()));
  const json::Object *root = header->getAsObject();
  if (!root)
    return makeError(path + ": header: expected a JSON object, found " +
                     describe(*header));
  Expected<std::vector<std::string>> keys = scanKeys(path, headerText);
  if (!keys)
    return keys.takeError();

  // Entries, in file order.
  for (const std::string &key : *keys) {
    const json::Value *value = root->get(key);
    if (!value) // Cannot happen: the scan follows the parser's key decoding.
      return makeError(path + ": header key '" + key +
                       "': not found in the parsed header");
    if (key == kMetadataKey) {
      const json::Object *metadata = value->getAsObject();
      if (!metadata)
        return makeError(path + ": header key '" + kMetadataKey +
                         "': expected an object of strings, found " +
                         describe(*value));
      for (const auto &[name, entry] : *metadata) {
        std::optional<StringRef> text = entry.getAsString();
        if (!text)
          return makeError(path + ": header key '" + kMetadataKey +
                           "': entry '" + StringRef(name) + "' is " +
                           describe(entry) + ", expected a string");
        file->metadataMap[name] = text->str();
      }
      continue;
    }
    Expected<TensorInfo> info =
        parseTensor(path, key, *value, dataSection.size());
    if (!info)
      return info.takeError();
    info->data =
        reinterpret_cast<const uint8_t *>(dataSection.data()) + info->begin;
    file->tensorList.push_back(std::move(*info));
  }

  // Overlaps: with tensors sorted by offset, each one must start at or after
  // the end of the previous one. Empty tensors occupy no bytes.
  std::vector<TensorInfo> &tensors = file->tensorList;
  llvm::sort(tensors, [](const TensorInfo &a, const TensorInfo &b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  const TensorInfo *previous = nullptr;
  for (const TensorInfo &info : tensors) {
    if (info.begin == info.end)
      continue;
    if (previous && info.begin < previous->end)
      return makeError(path + ": tensor '" + info.name + "': data_offsets " +
                       formatOffsets(info.begin, info.end) +
                       " overlap those of tensor '" + previous->name + "' " +
                       formatOffsets(previous->begin, previous->end));
    previous = &info;
  }
  for (size_t i = 0; i < tensors.size(); ++i)
    file->index[tensors[i].name] = i;
  return std::move(file);
}

const TensorInfo *SafeTensorsFile::lookup(StringRef name) const {
  auto it = index.find(name);
  return it == index.end() ? nullptr : &tensorList[it->second];
}

bool SafeTensorsFile::isDirectlyUsableF32(const TensorInfo &info) const {
  return info.dtype == DType::F32 && sys::IsLittleEndianHost &&
         reinterpret_cast<uintptr_t>(info.data) % alignof(float) == 0;
}

Expected<std::vector<float>>
SafeTensorsFile::readAsF32(const TensorInfo &info) const {
  size_t count = info.numBytes() / dtypeSize(info.dtype);
  const uint8_t *data = info.data;
  std::vector<float> result;
  switch (info.dtype) {
  case DType::F32:
    result.resize(count);
    if (sys::IsLittleEndianHost) {
      if (count)
        std::memcpy(result.data(), data, count * sizeof(float));
    } else {
      for (size_t i = 0; i < count; ++i) {
        uint32_t bits = support::endian::read32le(data + 4 * i);
        std::memcpy(&result[i], &bits, sizeof(float));
      }
    }
    return result;
  case DType::F16:
    result.resize(count);
    for (size_t i = 0; i < count; ++i)
      result[i] = halfToFloat(support::endian::read16le(data + 2 * i));
    return result;
  case DType::BF16:
    result.resize(count);
    for (size_t i = 0; i < count; ++i)
      result[i] = bfloat16ToFloat(support::endian::read16le(data + 2 * i));
    return result;
  case DType::F64:
    result.resize(count);
    for (size_t i = 0; i < count; ++i) {
      uint64_t bits = support::endian::read64le(data + 8 * i);
      double value;
      std::memcpy(&value, &bits, sizeof(value));
      result[i] = static_cast<float>(value);
    }
    return result;
  case DType::I64:
  case DType::I32:
  case DType::I16:
  case DType::I8:
  case DType::U8:
  case DType::Bool:
    break;
  }
  return makeError(Twine(filePath) + ": tensor '" + info.name + "': dtype " +
                   dtypeName(info.dtype) +
                   " cannot be read as F32 (expected F32, F16, BF16 or F64)");
}

} // namespace atmoe
