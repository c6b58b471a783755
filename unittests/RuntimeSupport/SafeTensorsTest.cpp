//===- SafeTensorsTest.cpp - Tests for the safetensors reader -------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/SafeTensors.h"
#include "TemporaryDirectoryTest.h"

#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/APInt.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

using namespace llvm;
using atmoe_test::TemporaryDirectoryTest;
using namespace atmoe_rt;

namespace {

/// The raw bytes of `values`, as stored on this (little-endian) host.
template <typename T>
std::string bytesOf(const std::vector<T> &values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  if (!values.empty())
    std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

/// A tensor to put into a test file.
struct TestTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

/// A safetensors file: the length prefix, `header`, `data`.
std::string rawFile(StringRef header, StringRef data) {
  std::string file(8, '\0');
  support::endian::write64le(file.data(), header.size());
  return file + header.str() + data.str();
}

/// A well-formed safetensors file holding `tensors` back to back; the header
/// is padded with spaces to `align` bytes (plus `extraPad` more).
std::string buildFile(const std::vector<TestTensor> &tensors,
                      StringRef metadata = "", size_t align = 8,
                      size_t extraPad = 0) {
  std::string header = "{";
  std::string data;
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":" + metadata.str();
    first = false;
  }
  for (const TestTensor &tensor : tensors) {
    if (!first)
      header += ",";
    first = false;
    header += "\"" + tensor.name + "\":{\"dtype\":\"" + tensor.dtype +
              "\",\"shape\":[";
    for (size_t i = 0; i < tensor.shape.size(); ++i)
      header += (i ? "," : "") + std::to_string(tensor.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + tensor.bytes.size()) + "]}";
    data += tensor.bytes;
  }
  header += "}";
  while ((8 + header.size()) % align)
    header += ' ';
  header.append(extraPad, ' ');
  return rawFile(header, data);
}

class SafeTensorsTest : public TemporaryDirectoryTest {
protected:
  std::string writeFile(StringRef contents,
                        StringRef name = "weights.safetensors") {
    return writeFileNamed(name, contents);
  }

  std::unique_ptr<SafeTensorsFile> openOk(StringRef contents) {
    std::string path = writeFile(contents);
    Result<std::unique_ptr<SafeTensorsFile>> file = SafeTensorsFile::open(path);
    if (!file) {
      ADD_FAILURE() << file.error();
      return nullptr;
    }
    return std::move(*file);
  }

  /// Opens `contents` expecting an error that starts with the file path and
  /// contains `expected`; returns the message.
  std::string openError(StringRef contents, StringRef expected) {
    std::string path = writeFile(contents);
    return expectOpenError(path, expected);
  }

  std::string expectOpenError(StringRef path, StringRef expected) {
    Result<std::unique_ptr<SafeTensorsFile>> file =
        SafeTensorsFile::open(path.str());
    if (file) {
      ADD_FAILURE() << "expected an error containing '" << expected.str()
                    << "'";
      return "";
    }
    std::string message = file.error();
    EXPECT_TRUE(StringRef(message).starts_with((path + ": ").str())) << message;
    EXPECT_NE(message.find(expected.str()), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }

  /// A file with one tensor entry `entry` (JSON) and `dataSize` data bytes.
  std::string oneEntry(StringRef entry, size_t dataSize = 24) {
    return rawFile(("{\"t\":" + entry + "}").str(), std::string(dataSize, 'x'));
  }
};

//===----------------------------------------------------------------------===//
// Valid files
//===----------------------------------------------------------------------===//

TEST_F(SafeTensorsTest, DTypeNamesAndSizes) {
  EXPECT_EQ(dtypeName(DType::F32), "F32");
  EXPECT_EQ(dtypeName(DType::BF16), "BF16");
  EXPECT_EQ(dtypeName(DType::Bool), "BOOL");
  EXPECT_EQ(dtypeSize(DType::F64), 8u);
  EXPECT_EQ(dtypeSize(DType::I64), 8u);
  EXPECT_EQ(dtypeSize(DType::F32), 4u);
  EXPECT_EQ(dtypeSize(DType::F16), 2u);
  EXPECT_EQ(dtypeSize(DType::BF16), 2u);
  EXPECT_EQ(dtypeSize(DType::U8), 1u);
  EXPECT_EQ(dtypeSize(DType::Bool), 1u);
  EXPECT_EQ(parseDType("I16"), DType::I16);
  EXPECT_EQ(parseDType("f32"), std::nullopt);
}

TEST_F(SafeTensorsTest, FloatTypesRoundTrip) {
  std::vector<float> f32 = {1.0f, -2.0f, 0.5f, 3.25f, -0.0f, 1e-30f};
  std::vector<uint16_t> f16 = {0x3C00, 0xC100, 0x7BFF, 0x0001, 0x8000, 0x7C00};
  std::vector<uint16_t> bf16 = {0x3F80, 0xC049};
  std::vector<double> f64 = {1.0 / 3.0, 0.1, -1e10};
  std::string contents =
      buildFile({{"layers.0.q_proj.weight", "F32", {2, 3}, bytesOf(f32)},
                 {"half", "F16", {6}, bytesOf(f16)},
                 {"brain", "BF16", {1, 2}, bytesOf(bf16)},
                 {"double", "F64", {3}, bytesOf(f64)}},
                R"({"format":"pt","note":"x"})");
  std::unique_ptr<SafeTensorsFile> file = openOk(contents);
  ASSERT_TRUE(file);

  EXPECT_EQ(file->path(), pathOf("weights.safetensors"));
  ASSERT_EQ(file->tensors().size(), 4u);
  // In data order.
  EXPECT_EQ(file->tensors()[0].name, "layers.0.q_proj.weight");
  EXPECT_EQ(file->tensors()[1].name, "half");
  EXPECT_EQ(file->tensors()[2].name, "brain");
  EXPECT_EQ(file->tensors()[3].name, "double");
  EXPECT_EQ(file->metadata().size(), 2u);
  EXPECT_EQ(file->metadata().at("format"), "pt");

  const TensorInfo *w = file->lookup("layers.0.q_proj.weight");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->dtype, DType::F32);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w->numElements(), 6);
  EXPECT_EQ(w->begin, 0u);
  EXPECT_EQ(w->end, 24u);
  EXPECT_TRUE(file->isDirectlyUsableF32(*w));
  EXPECT_EQ(std::memcmp(w->data, f32.data(), 24), 0);
  Result<std::vector<float>> wData = file->readAsF32(*w);
  ASSERT_TRUE(bool(wData)) << wData.error();
  EXPECT_EQ(*wData, f32);

  const TensorInfo *half = file->lookup("half");
  ASSERT_TRUE(half);
  EXPECT_EQ(half->dtype, DType::F16);
  EXPECT_EQ(half->begin, 24u);
  EXPECT_FALSE(file->isDirectlyUsableF32(*half));
  Result<std::vector<float>> halfData = file->readAsF32(*half);
  ASSERT_TRUE(bool(halfData)) << halfData.error();
  EXPECT_EQ(*halfData,
            (std::vector<float>{1.0f, -2.5f, 65504.0f, std::ldexp(1.0f, -24),
                                -0.0f, INFINITY}));
  EXPECT_TRUE(std::signbit((*halfData)[4]));

  Result<std::vector<float>> bf16Data = file->readAsF32(*file->lookup("brain"));
  ASSERT_TRUE(bool(bf16Data)) << bf16Data.error();
  EXPECT_EQ(*bf16Data, (std::vector<float>{1.0f, -3.140625f}));

  Result<std::vector<float>> f64Data = file->readAsF32(*file->lookup("double"));
  ASSERT_TRUE(bool(f64Data)) << f64Data.error();
  EXPECT_EQ(*f64Data,
            (std::vector<float>{float(1.0 / 3.0), float(0.1), float(-1e10)}));

  EXPECT_EQ(file->lookup("missing"), nullptr);
}

TEST_F(SafeTensorsTest, AllHalfValuesConvertExactly) {
  std::vector<uint16_t> all(1 << 16);
  for (size_t i = 0; i < all.size(); ++i)
    all[i] = uint16_t(i);
  std::unique_ptr<SafeTensorsFile> file =
      openOk(buildFile({{"h", "F16", {256, 256}, bytesOf(all)}}));
  ASSERT_TRUE(file);
  Result<std::vector<float>> values = file->readAsF32(file->tensors()[0]);
  ASSERT_TRUE(bool(values)) << values.error();
  ASSERT_EQ(values->size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    APFloat expected(APFloat::IEEEhalf(), APInt(16, i));
    bool losesInfo = false;
    expected.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven,
                     &losesInfo);
    float got = (*values)[i];
    if (expected.isNaN()) {
      EXPECT_TRUE(std::isnan(got)) << "bits 0x" << std::hex << i;
      continue;
    }
    uint32_t gotBits, expectedBits;
    float expectedValue = expected.convertToFloat();
    std::memcpy(&gotBits, &got, 4);
    std::memcpy(&expectedBits, &expectedValue, 4);
    ASSERT_EQ(gotBits, expectedBits) << "bits 0x" << std::hex << i;
  }
}

TEST_F(SafeTensorsTest, MisalignedF32IsCopied) {
  std::vector<float> values = {1.5f, -7.0f};
  // 8 + header size is odd: the data section is not 4-byte aligned.
  std::string contents =
      buildFile({{"w", "F32", {2}, bytesOf(values)}}, "", 8, 1);
  std::unique_ptr<SafeTensorsFile> file = openOk(contents);
  ASSERT_TRUE(file);
  const TensorInfo *w = file->lookup("w");
  ASSERT_TRUE(w);
  EXPECT_FALSE(file->isDirectlyUsableF32(*w));
  Result<std::vector<float>> data = file->readAsF32(*w);
  ASSERT_TRUE(bool(data)) << data.error();
  EXPECT_EQ(*data, values);
}

TEST_F(SafeTensorsTest, ScalarsEmptyTensorsAndIntegers) {
  std::vector<float> scalar = {42.0f};
  std::vector<int32_t> ints = {1, 2, 3};
  std::string contents = buildFile({{"scalar", "F32", {}, bytesOf(scalar)},
                                    {"empty", "F32", {0, 5}, ""},
                                    {"ints", "I32", {3}, bytesOf(ints)},
                                    {"flags", "BOOL", {2}, std::string(2, 1)}});
  std::unique_ptr<SafeTensorsFile> file = openOk(contents);
  ASSERT_TRUE(file);
  ASSERT_EQ(file->tensors().size(), 4u);

  const TensorInfo *s = file->lookup("scalar");
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(s->numElements(), 1);
  Result<std::vector<float>> sData = file->readAsF32(*s);
  ASSERT_TRUE(bool(sData));
  EXPECT_EQ(*sData, scalar);

  const TensorInfo *e = file->lookup("empty");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->numElements(), 0);
  Result<std::vector<float>> eData = file->readAsF32(*e);
  ASSERT_TRUE(bool(eData));
  EXPECT_TRUE(eData->empty());

  const TensorInfo *i = file->lookup("ints");
  ASSERT_TRUE(i);
  EXPECT_EQ(i->dtype, DType::I32);
  EXPECT_FALSE(file->isDirectlyUsableF32(*i));
  Result<std::vector<float>> iData = file->readAsF32(*i);
  ASSERT_FALSE(bool(iData));
  std::string message = iData.error();
  EXPECT_EQ(message, pathOf("weights.safetensors") +
                         ": tensor 'ints': dtype I32 cannot be read as F32 "
                         "(expected F32, F16, BF16 or F64)");
  EXPECT_EQ(file->lookup("flags")->dtype, DType::Bool);
}

TEST_F(SafeTensorsTest, EmptyHeaderAndTrailingBytes) {
  // "{}" is the smallest header; bytes not covered by any tensor are allowed.
  std::unique_ptr<SafeTensorsFile> file = openOk(rawFile("{}", "junk"));
  ASSERT_TRUE(file);
  EXPECT_TRUE(file->tensors().empty());
}

TEST_F(SafeTensorsTest, ZeroSizeTensorInsideAnotherIsNotAnOverlap) {
  std::string contents =
      rawFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
              std::string(8, '\0'));
  ASSERT_TRUE(openOk(contents));
}

TEST_F(SafeTensorsTest, LargeFile) {
  std::vector<float> big(1 << 16);
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = float(i) * 0.25f;
  std::unique_ptr<SafeTensorsFile> file =
      openOk(buildFile({{"big", "F32", {256, 256}, bytesOf(big)}}));
  ASSERT_TRUE(file);
  const TensorInfo *t = file->lookup("big");
  ASSERT_TRUE(t);
  ASSERT_TRUE(file->isDirectlyUsableF32(*t));
  const float *inPlace = reinterpret_cast<const float *>(t->data);
  EXPECT_EQ(inPlace[12345], 12345 * 0.25f);
}

//===----------------------------------------------------------------------===//
// Malformed files
//===----------------------------------------------------------------------===//

TEST_F(SafeTensorsTest, MissingFile) {
  expectOpenError(pathOf("absent.safetensors"), "cannot open");
}

TEST_F(SafeTensorsTest, Directory) { expectOpenError(dir, "is a directory"); }

TEST_F(SafeTensorsTest, ShorterThanLengthPrefix) {
  openError("", "file is 0 bytes, shorter than the 8-byte header length");
  openError("abcde", "file is 5 bytes, shorter than the 8-byte header length");
}

TEST_F(SafeTensorsTest, HeaderLengthTooSmall) {
  std::string file(8, '\0');
  openError(file, "header length 0 is too small");
  file[0] = 1;
  openError(file + "{", "header length 1 is too small");
}

TEST_F(SafeTensorsTest, HeaderLengthAbsurd) {
  std::string file(16, ' ');
  support::endian::write64le(file.data(), uint64_t(1) << 62);
  openError(file, "header length 4611686018427387904 exceeds the limit of "
                  "100000000 bytes");
  support::endian::write64le(file.data(), ~uint64_t(0));
  openError(file, "exceeds the limit");
}

TEST_F(SafeTensorsTest, HeaderLengthPastEndOfFile) {
  std::string file = rawFile("{}", "");
  support::endian::write64le(file.data(), 100);
  openError(file, "header length 100 runs past the end of the file (2 bytes "
                  "follow the 8-byte length)");
}

TEST_F(SafeTensorsTest, InvalidJson) {
  openError(rawFile("{\"a\":", ""), "header is not valid JSON");
  openError(rawFile("{\"a\":1,}", ""), "header is not valid JSON");
  openError(rawFile(StringRef("{}\0\0", 4), ""), "header is not valid JSON");
  openError(rawFile("\xff\xfe", ""), "header is not valid JSON");
}

TEST_F(SafeTensorsTest, HeaderNotAnObject) {
  openError(rawFile("[1, 2]", ""),
            "header: expected a JSON object, found [1,2]");
  openError(rawFile("42", ""), "header: expected a JSON object, found 42");
}

TEST_F(SafeTensorsTest, NestingDepth) {
  // 65 levels: the top-level object plus 64 arrays.
  std::string deep =
      "{\"__x\":" + std::string(64, '[') + std::string(64, ']') + "}";
  openError(rawFile(deep, ""),
            "header is not valid JSON: nested deeper than 64 levels");
  std::string veryDeep(100000, '[');
  openError(rawFile(veryDeep, ""),
            "header is not valid JSON: nested deeper than 64 levels");
  // Brackets inside strings do not count.
  std::string quoted = R"({"t":{"dtype":"F32","shape":[],"data_offsets":[0,4],)"
                       R"("note":")" +
                       std::string(100, '[') + "\"}}";
  ASSERT_TRUE(openOk(rawFile(quoted, "abcd")));
  // 64 levels are accepted (unknown keys in an entry are ignored).
  std::string limit = R"({"t":{"dtype":"F32","shape":[],"data_offsets":[0,4],)"
                      R"("x":)" +
                      std::string(62, '[') + std::string(62, ']') + "}}";
  ASSERT_TRUE(openOk(rawFile(limit, "abcd")));
}

TEST_F(SafeTensorsTest, BadMetadata) {
  openError(rawFile(R"({"__metadata__":[1]})", ""),
            "header key '__metadata__': expected an object of strings, found "
            "[1]");
  openError(rawFile(R"({"__metadata__":{"a":"x","b":3}})", ""),
            "header key '__metadata__': entry 'b' is 3, expected a string");
}

TEST_F(SafeTensorsTest, EntryNotAnObject) {
  openError(oneEntry("[1]"), "tensor 't': expected an object with 'dtype', "
                             "'shape' and 'data_offsets', found [1]");
}

TEST_F(SafeTensorsTest, MissingKeys) {
  openError(oneEntry(R"({"shape":[6],"data_offsets":[0,24]})"),
            "tensor 't': missing key 'dtype'");
  openError(oneEntry(R"({"dtype":"F32","data_offsets":[0,24]})"),
            "tensor 't': missing key 'shape'");
  openError(oneEntry(R"({"dtype":"F32","shape":[6]})"),
            "tensor 't': missing key 'data_offsets'");
}

TEST_F(SafeTensorsTest, BadDType) {
  openError(oneEntry(R"({"dtype":7,"shape":[6],"data_offsets":[0,24]})"),
            "tensor 't': key 'dtype': expected a string, found 7");
  openError(oneEntry(R"({"dtype":"Q4","shape":[6],"data_offsets":[0,24]})"),
            "tensor 't': key 'dtype': unsupported dtype 'Q4' (expected one of");
  openError(oneEntry(R"({"dtype":"f32","shape":[6],"data_offsets":[0,24]})"),
            "unsupported dtype 'f32'");
}

TEST_F(SafeTensorsTest, BadShape) {
  openError(oneEntry(R"({"dtype":"F32","shape":6,"data_offsets":[0,24]})"),
            "tensor 't': key 'shape': expected an array of non-negative "
            "integers, found 6");
  openError(oneEntry(R"({"dtype":"F32","shape":[2,-3],"data_offsets":[0,24]})"),
            "tensor 't': key 'shape': element 1 is -3, expected a "
            "non-negative integer");
  openError(oneEntry(R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,24]})"),
            "key 'shape': element 0 is 2.5, expected a non-negative integer");
  openError(oneEntry(R"({"dtype":"F32","shape":["6"],"data_offsets":[0,24]})"),
            "key 'shape': element 0 is \"6\"");
  openError(oneEntry(R"({"dtype":"F32","shape":[1e30],"data_offsets":[0,24]})"),
            "key 'shape': element 0 is");
}

TEST_F(SafeTensorsTest, BadDataOffsets) {
  openError(oneEntry(R"({"dtype":"F32","shape":[6],"data_offsets":[0]})"),
            "tensor 't': key 'data_offsets': expected [begin, end] with two "
            "non-negative integers, found [0]");
  openError(oneEntry(R"({"dtype":"F32","shape":[6],"data_offsets":[-1,23]})"),
            "key 'data_offsets': expected [begin, end]");
  openError(oneEntry(R"({"dtype":"F32","shape":[6],"data_offsets":"0,24"})"),
            "key 'data_offsets': expected [begin, end]");
  openError(oneEntry(R"({"dtype":"F32","shape":[6],"data_offsets":[0,24,48]})"),
            "key 'data_offsets': expected [begin, end]");
  openError(oneEntry(R"({"dtype":"F32","shape":[0],"data_offsets":[8,4]})"),
            "tensor 't': data_offsets [8, 4]: begin is greater than end");
}

TEST_F(SafeTensorsTest, SizeMismatch) {
  openError(oneEntry(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,20]})"),
            "tensor 't': shape [2, 3] x F32 (4 bytes) needs 24 bytes, but "
            "data_offsets [0, 20] span 20 bytes");
  openError(oneEntry(R"({"dtype":"F16","shape":[3],"data_offsets":[0,12]})"),
            "shape [3] x F16 (2 bytes) needs 6 bytes");
}

TEST_F(SafeTensorsTest, SizeOverflow) {
  openError(
      oneEntry(
          R"({"dtype":"F32","shape":[4611686018427387904,4611686018427387904],)"
          R"("data_offsets":[0,0]})"),
      "tensor 't': shape [4611686018427387904, 4611686018427387904] x F32: "
      "byte size overflows 64 bits");
  // 2^62 elements of 4 bytes overflow too.
  openError(oneEntry(R"({"dtype":"F32","shape":[4611686018427387904],)"
                     R"("data_offsets":[0,0]})"),
            "byte size overflows 64 bits");
  // A zero dimension makes the product 0 whatever the others are.
  ASSERT_TRUE(openOk(oneEntry(
      R"({"dtype":"F32","shape":[4611686018427387904,0,4611686018427387904],)"
      R"("data_offsets":[0,0]})")));
}

TEST_F(SafeTensorsTest, OffsetsPastEndOfData) {
  std::string contents =
      rawFile(R"({"layers.0.q_proj.weight":{"dtype":"F32","shape":[32,32],)"
              R"("data_offsets":[0,4096]}})",
              std::string(2048, '\0'));
  std::string message = openError(contents, "");
  EXPECT_EQ(message, pathOf("weights.safetensors") +
                         ": tensor 'layers.0.q_proj.weight': data_offsets [0, "
                         "4096] run past the end of the data section (2048 "
                         "bytes)");
}

TEST_F(SafeTensorsTest, Overlap) {
  std::string contents =
      rawFile(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
              R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
              std::string(24, '\0'));
  openError(contents, "tensor 'b': data_offsets [8, 24] overlap those of "
                      "tensor 'a' [0, 16]");
  // Listed in the other order, and identical ranges.
  contents =
      rawFile(R"({"b":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
              R"("a":{"dtype":"I32","shape":[4],"data_offsets":[0,16]}})",
              std::string(16, '\0'));
  openError(contents, "tensor 'b': data_offsets [0, 16] overlap those of "
                      "tensor 'a' [0, 16]");
}

TEST_F(SafeTensorsTest, DuplicateNames) {
  std::string entry = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  std::string entry2 = R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})";
  openError(rawFile("{\"w\":" + entry + ",\"w\":" + entry2 + "}",
                    std::string(8, '\0')),
            "duplicate key 'w' in the top-level object");
  // The same name spelled with an escape.
  openError(rawFile("{\"w\":" + entry + ",\"\\u0077\":" + entry2 + "}",
                    std::string(8, '\0')),
            "duplicate key 'w' in the top-level object");
  openError(rawFile(R"({"__metadata__":{},"__metadata__":{}})", ""),
            "duplicate key '__metadata__' in the top-level object");
}

TEST_F(SafeTensorsTest, DuplicateKeysInsideEntries) {
  openError(
      oneEntry(
          R"({"dtype":"F32","dtype":"F16","shape":[6],"data_offsets":[0,24]})"),
      "duplicate key 'dtype' in t (a key may appear once per object)");
  openError(rawFile(R"({"__metadata__":{"a":"1","a":"2"}})", ""),
            "duplicate key 'a' in __metadata__");
  // Same keys in different objects are fine.
  std::string contents =
      rawFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
              std::string(8, '\0'));
  ASSERT_TRUE(openOk(contents));
}

} // namespace
