//===- SafeTensors.cpp - Read-only, validating safetensors reader ---------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/SafeTensors.h"

#include "atmoe_rt/support/Json.h"
#include "atmoe_rt/support/OutputFile.h"
#include "atmoe_rt/support/Text.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

using namespace atmoe_rt;

// The format is little-endian, and so is every host atmoe runs on; the
// readers below copy bytes as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "atmoe's file readers assume a little-endian host");

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

namespace {
struct DTypeEntry {
  DType dtype;
  std::string_view name;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::F32, "F32", 4},  {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::F64, "F64", 8},  {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},  {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::Bool, "BOOL", 1}};

const DTypeEntry &entryOf(DType dtype) {
  return kDTypes[static_cast<size_t>(dtype)];
}
} // namespace

std::string_view atmoe_rt::dtypeName(DType dtype) {
  return entryOf(dtype).name;
}

size_t atmoe_rt::dtypeSize(DType dtype) { return entryOf(dtype).size; }

std::optional<DType> atmoe_rt::parseDType(std::string_view name) {
  for (const DTypeEntry &entry : kDTypes)
    if (entry.name == name)
      return entry.dtype;
  return std::nullopt;
}

int64_t TensorInfo::numElements() const {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end())
    return 0;
  int64_t n = 1;
  for (int64_t dim : shape)
    n *= dim; // Cannot overflow: validated against the byte size on open.
  return n;
}

//===----------------------------------------------------------------------===//
// Header validation
//===----------------------------------------------------------------------===//

namespace {

/// The longest header accepted (the limit of the reference implementation).
constexpr uint64_t kMaxHeaderSize = 100'000'000;
constexpr std::string_view kMetadataKey = "__metadata__";

/// A short description of `value` for "found ..." in messages: the value
/// itself when short, otherwise its kind.
std::string describe(const Json &value) {
  std::string text = value.dump();
  if (text.size() <= 40)
    return text;
  switch (value.type()) {
  case Json::value_t::string:
    return "a long string";
  case Json::value_t::array:
    return "an array";
  case Json::value_t::object:
    return "an object";
  default:
    return "a number";
  }
}

std::string formatOffsets(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

std::optional<uint64_t> asUnsigned(const Json &value) {
  if (value.is_number_unsigned())
    return value.get<uint64_t>();
  return std::nullopt;
}

/// The tensor's dtype and shape.
Status parseDTypeAndShape(const std::string &prefix, const Json &entry,
                          TensorInfo &info) {
  auto dtype = entry.find("dtype");
  if (dtype == entry.end())
    return fail(prefix + "missing key 'dtype'");
  if (!dtype->is_string())
    return fail(prefix + "key 'dtype': expected a string, found " +
                describe(*dtype));
  std::optional<DType> parsed =
      parseDType(dtype->get_ref<const std::string &>());
  if (!parsed)
    return fail(prefix + "key 'dtype': unsupported dtype '" +
                dtype->get<std::string>() +
                "' (expected one of F32, F16, BF16, F64, I64, I32, I16, I8, "
                "U8, BOOL)");
  info.dtype = *parsed;

  auto shape = entry.find("shape");
  if (shape == entry.end())
    return fail(prefix + "missing key 'shape'");
  if (!shape->is_array())
    return fail(prefix +
                "key 'shape': expected an array of non-negative integers, "
                "found " +
                describe(*shape));
  for (size_t i = 0; i < shape->size(); ++i) {
    std::optional<uint64_t> dim = asUnsigned((*shape)[i]);
    if (!dim || *dim > uint64_t(std::numeric_limits<int64_t>::max()))
      return fail(prefix + "key 'shape': element " + std::to_string(i) +
                  " is " + describe((*shape)[i]) +
                  ", expected a non-negative integer");
    info.shape.push_back(int64_t(*dim));
  }
  return Status::success();
}

/// The tensor's data_offsets, checked against its size and the data section.
Status parseOffsets(const std::string &prefix, const Json &entry,
                    uint64_t dataSize, TensorInfo &info) {
  auto offsets = entry.find("data_offsets");
  if (offsets == entry.end())
    return fail(prefix + "missing key 'data_offsets'");
  std::optional<uint64_t> begin, end;
  if (offsets->is_array() && offsets->size() == 2) {
    begin = asUnsigned((*offsets)[0]);
    end = asUnsigned((*offsets)[1]);
  }
  if (!begin || !end)
    return fail(prefix +
                "key 'data_offsets': expected [begin, end] with two "
                "non-negative integers, found " +
                describe(*offsets));
  if (*begin > *end)
    return fail(prefix + "data_offsets " + formatOffsets(*begin, *end) +
                ": begin is greater than end");
  info.begin = *begin;
  info.end = *end;

  bool empty =
      std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end();
  uint64_t bytes = empty ? 0 : dtypeSize(info.dtype);
  for (int64_t dim : info.shape)
    if (bytes && __builtin_mul_overflow(bytes, uint64_t(dim), &bytes))
      return fail(prefix + "shape " + formatShape(info.shape) + " x " +
                  std::string(dtypeName(info.dtype)) +
                  ": byte size overflows 64 bits");
  if (bytes != info.end - info.begin)
    return fail(prefix + "shape " + formatShape(info.shape) + " x " +
                std::string(dtypeName(info.dtype)) + " (" +
                std::to_string(dtypeSize(info.dtype)) + " bytes) needs " +
                std::to_string(bytes) + " bytes, but data_offsets " +
                formatOffsets(info.begin, info.end) + " span " +
                std::to_string(info.end - info.begin) + " bytes");
  if (info.end > dataSize)
    return fail(prefix + "data_offsets " + formatOffsets(info.begin, info.end) +
                " run past the end of the data section (" +
                std::to_string(dataSize) + " bytes)");
  return Status::success();
}

/// Validates one tensor entry of the header (everything but overlaps).
Result<TensorInfo> parseTensor(const std::string &path, const std::string &name,
                               const Json &value, uint64_t dataSize) {
  std::string prefix = path + ": tensor '" + name + "': ";
  if (!value.is_object())
    return fail(prefix +
                "expected an object with 'dtype', 'shape' and "
                "'data_offsets', found " +
                describe(value));
  TensorInfo info;
  info.name = name;
  info.data = nullptr;
  if (Status status = parseDTypeAndShape(prefix, value, info); !status)
    return status.takeError();
  if (Status status = parseOffsets(prefix, value, dataSize, info); !status)
    return status.takeError();
  return info;
}

/// With tensors sorted by offset, each one must start at or after the end of
/// the previous one. Empty tensors occupy no bytes.
Status checkOverlaps(const std::string &path,
                     const std::vector<TensorInfo> &tensors) {
  const TensorInfo *previous = nullptr;
  for (const TensorInfo &info : tensors) {
    if (info.begin == info.end)
      continue;
    if (previous && info.begin < previous->end)
      return fail(path + ": tensor '" + info.name + "': data_offsets " +
                  formatOffsets(info.begin, info.end) +
                  " overlap those of tensor '" + previous->name + "' " +
                  formatOffsets(previous->begin, previous->end));
    previous = &info;
  }
  return Status::success();
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

/// Converts `count` elements of type `Stored` at `data` with `convert`
/// into `out`.
template <typename Stored, typename Convert>
void convertAll(const uint8_t *data, size_t count, float *out,
                Convert convert) {
  for (size_t i = 0; i < count; ++i) {
    Stored stored;
    std::memcpy(&stored, data + i * sizeof(Stored), sizeof(Stored));
    out[i] = convert(stored);
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// SafeTensorsFile
//===----------------------------------------------------------------------===//

Result<std::unique_ptr<SafeTensorsFile>>
SafeTensorsFile::open(const std::string &path) {
  Result<std::unique_ptr<MappedFile>> mapped =
      MappedFile::open(path, "a safetensors file");
  if (!mapped)
    return mapped.takeError();
  std::unique_ptr<SafeTensorsFile> file(new SafeTensorsFile());
  file->filePath = path;
  file->file = std::move(*mapped);
  std::string_view contents = file->file->contents();

  // The header length, checked before anything is allocated for the header.
  if (contents.size() < 8)
    return fail(path + ": file is " + std::to_string(contents.size()) +
                " bytes, shorter than the 8-byte header length");
  uint64_t headerSize;
  std::memcpy(&headerSize, contents.data(), sizeof(headerSize));
  uint64_t available = contents.size() - 8;
  if (headerSize < 2)
    return fail(path + ": header length " + std::to_string(headerSize) +
                " is too small (at least 2 bytes, '{}')");
  if (headerSize > kMaxHeaderSize)
    return fail(path + ": header length " + std::to_string(headerSize) +
                " exceeds the limit of " + std::to_string(kMaxHeaderSize) +
                " bytes");
  if (headerSize > available)
    return fail(path + ": header length " + std::to_string(headerSize) +
                " runs past the end of the file (" + std::to_string(available) +
                " bytes follow the 8-byte length)");
  if (Status status = file->parseHeader(contents.substr(8, headerSize),
                                        contents.substr(8 + headerSize));
      !status)
    return status.takeError();
  return file;
}

Status SafeTensorsFile::parseHeader(std::string_view headerText,
                                    std::string_view data) {
  const std::string &path = filePath;
  Result<Json> header = parseJson(headerText);
  if (!header)
    return fail(path + ": header is not valid JSON: " + header.error());
  if (!header->is_object())
    return fail(path + ": header: expected a JSON object, found " +
                describe(*header));
  for (const auto &[key, value] : header->items()) {
    if (key == kMetadataKey) {
      if (!value.is_object())
        return fail(path + ": header key '" + std::string(kMetadataKey) +
                    "': expected an object of strings, found " +
                    describe(value));
      for (const auto &[name, entry] : value.items()) {
        if (!entry.is_string())
          return fail(path + ": header key '" + std::string(kMetadataKey) +
                      "': entry '" + name + "' is " + describe(entry) +
                      ", expected a string");
        metadataMap[name] = entry.get<std::string>();
      }
      continue;
    }
    Result<TensorInfo> info = parseTensor(path, key, value, data.size());
    if (!info)
      return info.takeError();
    info->data = reinterpret_cast<const uint8_t *>(data.data()) + info->begin;
    tensorList.push_back(std::move(*info));
  }
  std::sort(tensorList.begin(), tensorList.end(),
            [](const TensorInfo &a, const TensorInfo &b) {
              return std::tie(a.begin, a.end, a.name) <
                     std::tie(b.begin, b.end, b.name);
            });
  if (Status status = checkOverlaps(path, tensorList); !status)
    return status;
  for (size_t i = 0; i < tensorList.size(); ++i)
    index[tensorList[i].name] = i;
  return Status::success();
}

const TensorInfo *SafeTensorsFile::lookup(std::string_view name) const {
  auto it = index.find(std::string(name));
  return it == index.end() ? nullptr : &tensorList[it->second];
}

bool SafeTensorsFile::isDirectlyUsableF32(const TensorInfo &info) const {
  return info.dtype == DType::F32 &&
         reinterpret_cast<uintptr_t>(info.data) % alignof(float) == 0;
}

Status SafeTensorsFile::readAsF32(const TensorInfo &info, float *out) const {
  size_t count = info.numBytes() / dtypeSize(info.dtype);
  switch (info.dtype) {
  case DType::F32:
    if (count)
      std::memcpy(out, info.data, count * sizeof(float));
    return Status::success();
  case DType::F16:
    convertAll<uint16_t>(info.data, count, out, halfToFloat);
    return Status::success();
  case DType::BF16:
    convertAll<uint16_t>(info.data, count, out, bfloat16ToFloat);
    return Status::success();
  case DType::F64:
    convertAll<double>(info.data, count, out,
                       [](double x) { return static_cast<float>(x); });
    return Status::success();
  default:
    return fail(filePath + ": tensor '" + info.name + "': dtype " +
                std::string(dtypeName(info.dtype)) +
                " cannot be read as F32 (expected F32, F16, BF16 or F64)");
  }
}

Result<std::vector<float>>
SafeTensorsFile::readAsF32(const TensorInfo &info) const {
  std::vector<float> values(info.numBytes() / dtypeSize(info.dtype));
  if (Status status = readAsF32(info, values.data()); !status)
    return status.takeError();
  return values;
}

Status atmoe_rt::writeSafeTensors(int fd, const std::string &path,
                                  const std::vector<TensorBytes> &tensors) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const TensorBytes &tensor : tensors) {
    header[tensor.name] = {
        {"dtype", std::string(dtypeName(tensor.dtype))},
        {"shape", tensor.shape},
        {"data_offsets", {offset, offset + tensor.data.size()}}};
    offset += tensor.data.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t length = text.size();
  uint8_t prefix[8];
  for (int i = 0; i < 8; ++i)
    prefix[i] = uint8_t(length >> (8 * i));
  if (Status status = writeAll(fd, prefix, sizeof(prefix), path); !status)
    return status;
  if (Status status = writeAll(fd, text.data(), text.size(), path); !status)
    return status;
  for (const TensorBytes &tensor : tensors)
    if (Status status =
            writeAll(fd, tensor.data.data(), tensor.data.size(), path);
        !status)
      return status;
  return Status::success();
}
