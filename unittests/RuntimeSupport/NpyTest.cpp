//===- NpyTest.cpp - Tests for the .npy reader and writer -----------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/Npy.h"
#include "TemporaryDirectoryTest.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cstring>
#include <string>
#include <vector>

using namespace llvm;
using atmoe_test::TemporaryDirectoryTest;
using namespace atmoe_rt;

namespace {

/// A .npy file with format version `major`.0, header dict `dict` (padded
/// with spaces and ended by '\n'), and `data`.
std::string npyFile(StringRef dict, StringRef data, unsigned major = 1) {
  std::string header = dict.str();
  size_t preamble = major == 1 ? 10 : 12;
  while ((preamble + header.size() + 1) % 64)
    header += ' ';
  header += '\n';
  std::string file = "\x93NUMPY";
  file += char(major);
  file += char(0);
  char length[4];
  if (major == 1) {
    support::endian::write16le(length, uint16_t(header.size()));
    file.append(length, 2);
  } else {
    support::endian::write32le(length, uint32_t(header.size()));
    file.append(length, 4);
  }
  return file + header + data.str();
}

template <typename T>
std::string bytesOf(const std::vector<T> &values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  if (!values.empty())
    std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

/// writeNpyF32 of a vector.
Status writeNpy(const std::string &path, const std::vector<int64_t> &shape,
                const std::vector<float> &data) {
  return writeNpyF32(path, shape, data.data(), data.size());
}

class NpyTest : public TemporaryDirectoryTest {
protected:
  std::string writeFile(StringRef contents, StringRef name = "x.npy") {
    return writeFileNamed(name, contents);
  }

  void roundTrip(ArrayRef<int64_t> shape, const std::vector<float> &data) {
    std::string path = pathOf("round.npy");
    Status written = writeNpy(path, shape.vec(), data);
    ASSERT_TRUE(bool(written)) << written.error();
    Result<NpyArray> array = readNpyF32(path);
    ASSERT_TRUE(bool(array)) << array.error();
    EXPECT_EQ(ArrayRef<int64_t>(array->shape), shape);
    EXPECT_EQ(array->data, data);
    // The data starts 64-byte aligned, as with numpy.
    std::string bytes = readBytes(path);
    EXPECT_EQ((bytes.size() - data.size() * 4) % 64, 0u);
  }

  std::string readError(StringRef contents, StringRef expected) {
    std::string path = writeFile(contents);
    Result<NpyArray> array = readNpyF32(path);
    if (array) {
      ADD_FAILURE() << "expected an error containing '" << expected.str()
                    << "'";
      return "";
    }
    std::string message = array.error();
    EXPECT_TRUE(StringRef(message).starts_with(path + ": ")) << message;
    EXPECT_NE(message.find(expected.str()), std::string::npos) << message;
    return message;
  }
};

constexpr const char *kF4 = "{'descr': '<f4', 'fortran_order': False, ";

TEST_F(NpyTest, RoundTrip1D) { roundTrip({5}, {1, 2, 3, 4.5f, -0.25f}); }

TEST_F(NpyTest, RoundTrip2D) { roundTrip({2, 3}, {1, 2, 3, 4, 5, 6}); }

TEST_F(NpyTest, RoundTripEmpty) {
  roundTrip({0}, {});
  roundTrip({2, 0}, {});
}

TEST_F(NpyTest, RoundTripScalar) { roundTrip({}, {7.0f}); }

TEST_F(NpyTest, WrittenHeaderMatchesNumpy) {
  std::string path = pathOf("a.npy");
  ASSERT_TRUE(writeNpy(path, {3}, {1, 2, 3}));
  std::string bytes = readBytes(path);
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  // What numpy 1.x/2.x writes for np.array([1, 2, 3], dtype='<f4').
  std::string expected = npyFile(dict, bytesOf(std::vector<float>{1, 2, 3}));
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(bytes.size(), 128u + 12u);
  // The preamble and header numpy writes for this array, byte for byte.
  std::string numpyHeader = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                            dict + std::string(60, ' ') + "\n";
  EXPECT_EQ(bytes.substr(0, 128), numpyHeader);
}

TEST_F(NpyTest, OverwritesAtomically) {
  std::string path = pathOf("a.npy");
  ASSERT_TRUE(writeNpy(path, {2}, {1, 2}));
  ASSERT_TRUE(writeNpy(path, {1, 1}, {9}));
  Result<NpyArray> array = readNpyF32(path);
  ASSERT_TRUE(bool(array)) << array.error();
  EXPECT_EQ(array->data, std::vector<float>{9});
}

TEST_F(NpyTest, WriteErrors) {
  std::string path = pathOf("bad.npy");
  Status err = writeNpy(path, {2, 3}, {1, 2, 3, 4, 5});
  ASSERT_FALSE(bool(err));
  EXPECT_EQ(err.error(),
            path + ": cannot write shape (2, 3): it has 6 elements but 5 "
                   "values were given");
  err = writeNpy(path, {-1}, {});
  ASSERT_FALSE(bool(err));
  EXPECT_NE(err.error().find("dimensions must be non-negative"),
            std::string::npos);
  EXPECT_FALSE(sys::fs::exists(path));
  err = writeNpy(pathOf("no-such-dir/x.npy"), {1}, {1});
  ASSERT_FALSE(bool(err));
}

TEST_F(NpyTest, ReadsOtherVersionsAndSpellings) {
  std::vector<float> values = {1.5f, -2, 3};
  for (unsigned major : {1u, 2u, 3u}) {
    std::string path = writeFile(
        npyFile(std::string(kF4) + "'shape': (3,), }", bytesOf(values), major));
    Result<NpyArray> array = readNpyF32(path);
    ASSERT_TRUE(bool(array)) << array.error();
    EXPECT_EQ(array->data, values);
  }
  // Double quotes, other key order, no trailing comma, Python 2 longs.
  std::string path = writeFile(
      npyFile("{\"shape\": (1L, 3L), \"fortran_order\": False, \"descr\": "
              "\"<f4\"}",
              bytesOf(values)));
  Result<NpyArray> array = readNpyF32(path);
  ASSERT_TRUE(bool(array)) << array.error();
  EXPECT_EQ(array->shape, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(array->data, values);
}

TEST_F(NpyTest, ReadsF8) {
  std::vector<double> values = {1.0 / 3.0, -0.1, 1e300};
  std::string path = writeFile(
      npyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
              bytesOf(values)));
  Result<NpyArray> array = readNpyF32(path);
  ASSERT_TRUE(bool(array)) << array.error();
  EXPECT_EQ(array->data,
            (std::vector<float>{float(1.0 / 3.0), float(-0.1), float(1e300)}));
}

TEST_F(NpyTest, MissingFile) {
  std::string path = pathOf("absent.npy");
  Result<NpyArray> array = readNpyF32(path);
  ASSERT_FALSE(bool(array));
  std::string message = array.error();
  EXPECT_EQ(message.find(path + ": cannot open"), 0u) << message;
}

TEST_F(NpyTest, BadMagic) {
  readError("", "not a .npy file");
  readError("\x93NUMP", "not a .npy file");
  readError("PK\x03\x04 zip", "not a .npy file");
}

TEST_F(NpyTest, BadVersion) {
  std::string file = npyFile(std::string(kF4) + "'shape': (1,), }", "abcd");
  file[6] = 4;
  readError(file, "unsupported .npy format version 4.0 (expected 1.0, 2.0 "
                  "or 3.0)");
  file[6] = 1;
  file[7] = 1;
  readError(file, "unsupported .npy format version 1.1");
}

TEST_F(NpyTest, TruncatedPreamble) {
  readError(StringRef("\x93NUMPY\x01", 7), "truncated .npy preamble");
  readError(StringRef("\x93NUMPY\x01\x00\x10", 9), "truncated .npy preamble");
  readError(StringRef("\x93NUMPY\x02\x00\x10\x00", 10),
            "truncated .npy preamble");
}

TEST_F(NpyTest, HeaderLengthPastEnd) {
  std::string file = npyFile(std::string(kF4) + "'shape': (1,), }", "");
  support::endian::write16le(file.data() + 8, 1000);
  readError(file, "header length 1000 runs past the end of the file (118 "
                  "bytes follow the preamble)");
}

TEST_F(NpyTest, FortranOrder) {
  readError(npyFile("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
                    "abcd"),
            "fortran_order is True, expected False");
}

TEST_F(NpyTest, UnsupportedDescr) {
  readError(npyFile("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                    "abcd"),
            "header: unsupported descr '>f4' (expected '<f4' or '<f8')");
  readError(npyFile("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }",
                    "abcd"),
            "unsupported descr '<i4'");
  readError(npyFile("{'descr': [('a', '<f4')], 'fortran_order': False, "
                    "'shape': (1,), }",
                    "abcd"),
            "header: expected a quoted string");
}

TEST_F(NpyTest, DataSizeMismatch) {
  readError(
      npyFile(std::string(kF4) + "'shape': (2, 3), }", std::string(20, 0)),
      "truncated data: shape (2, 3) of '<f4' needs 24 bytes, found 20");
  readError(
      npyFile(std::string(kF4) + "'shape': (2, 3), }", std::string(28, 0)),
      "data is 28 bytes, expected 24 for shape (2, 3) of '<f4'");
  readError(npyFile(std::string(kF4) + "'shape': (), }", ""),
            "truncated data: shape () of '<f4' needs 4 bytes, found 0");
}

TEST_F(NpyTest, ShapeOverflow) {
  readError(
      npyFile(std::string(kF4) + "'shape': (4294967296, 4294967296, 4), }", ""),
      "header: shape (4294967296, 4294967296, 4) is too large");
  readError(
      npyFile(std::string(kF4) + "'shape': (99999999999999999999,), }", ""),
      "key 'shape': dimension does not fit in 64 bits");
}

TEST_F(NpyTest, MalformedHeaders) {
  readError(npyFile("{'descr': '<f4', 'fortran_order': False}", ""),
            "header: missing key 'shape'");
  readError(npyFile("{'fortran_order': False, 'shape': (1,)}", "abcd"),
            "header: missing key 'descr'");
  readError(npyFile("{'descr': '<f4', 'shape': (1,)}", "abcd"),
            "header: missing key 'fortran_order'");
  readError(npyFile(std::string(kF4) + "'shape': (1,), 'extra': 1}", "abcd"),
            "header: unexpected key 'extra'");
  readError(npyFile(std::string(kF4) + "'shape': (-1,), }", ""),
            "key 'shape': expected a non-negative integer");
  readError(npyFile(std::string(kF4) + "'shape': [1], }", "abcd"),
            "key 'shape': expected a tuple");
  readError(npyFile(std::string(kF4) + "'shape': (1 2), }", "abcd"),
            "key 'shape': expected ',' or ')'");
  readError(
      npyFile("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", "abcd"),
      "key 'fortran_order': expected True or False");
  readError(npyFile("{'descr': '<f4', 'fortran_order': Falsey, 'shape': (1,)}",
                    "abcd"),
            "key 'fortran_order': expected True or False");
  readError(npyFile(std::string(kF4) + "'shape': (1,), 'shape': (1,)}", "abcd"),
            "header: duplicate key 'shape'");
  readError(npyFile("{'descr' '<f4'}", ""), "header: expected ':' after key");
  readError(npyFile("{'descr': '<f4", ""), "header: unterminated string");
  readError(npyFile("'descr'", ""), "header: expected '{'");
  readError(npyFile(std::string(kF4) + "'shape': (1,)} trailing", "abcd"),
            "unexpected text after the closing '}'");
  readError(npyFile(std::string(kF4) + "'shape': (1,) 'x'", "abcd"),
            "expected ',' or '}' after the value of key 'shape'");
}

} // namespace
