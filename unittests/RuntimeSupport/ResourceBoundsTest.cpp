//===- ResourceBoundsTest.cpp - Readers bound what they allocate ----------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The safetensors and .npy readers take files from the internet: whatever a
// file claims (a header length, a shape, data offsets), the reader must not
// allocate more than the file holds, and must not read forever. These tests
// give each reader claims far beyond the file and special files that never
// end (/dev/zero) or never start (a FIFO nobody writes); a regression shows
// up as a crash, an out-of-memory abort or a hang rather than as an error.
//
//===----------------------------------------------------------------------===//

#include "TemporaryDirectoryTest.h"
#include "atmoe_rt/support/Npy.h"
#include "atmoe_rt/support/SafeTensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace llvm;
using atmoe_test::TemporaryDirectoryTest;
using namespace atmoe_rt;

namespace {

class ResourceBoundsTest : public TemporaryDirectoryTest {
protected:
  std::string writeFile(StringRef name, StringRef contents) {
    return writeFileNamed(name, contents);
  }

  std::string makeFifo(StringRef name) {
    std::string path = pathOf(name);
    EXPECT_EQ(::mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
    return path;
  }
};

/// A safetensors file: the length prefix, `header`, `data`.
std::string safetensors(StringRef header, StringRef data) {
  std::string file(8, '\0');
  support::endian::write64le(file.data(), header.size());
  return file + header.str() + data.str();
}

template <typename T>
std::string errorOf(Result<T> value) {
  if (value)
    return "<no error>";
  return value.error();
}

//===----------------------------------------------------------------------===//
// safetensors
//===----------------------------------------------------------------------===//

TEST_F(ResourceBoundsTest, SafeTensorsHeaderLengthBeyondFile) {
  // A length that fits the 100 MB limit but not the 2 bytes that follow: the
  // header must not be read (or allocated) at that length.
  std::string file = safetensors("{}", "");
  support::endian::write64le(file.data(), 99'999'999);
  std::string path = writeFile("a.safetensors", file);
  EXPECT_NE(errorOf(SafeTensorsFile::open(path))
                .find("header length 99999999 runs past the end of the file"),
            std::string::npos);
}

TEST_F(ResourceBoundsTest, SafeTensorsTensorBeyondFile) {
  // 2^30 x 2^30 F32 is 4 EiB: consistent with its data_offsets, which the
  // 16-byte data section cannot hold. readAsF32 would allocate that much.
  std::string path = writeFile(
      "b.safetensors",
      safetensors(R"({"w":{"dtype":"F32","shape":[1073741824,1073741824],)"
                  R"("data_offsets":[0,4611686018427387904]}})",
                  std::string(16, '\0')));
  EXPECT_NE(errorOf(SafeTensorsFile::open(path))
                .find("run past the end of the data section (16 bytes)"),
            std::string::npos);
}

TEST_F(ResourceBoundsTest, SafeTensorsShapeTimesDTypeOverflow) {
  // 2^61 x BF16 wraps to 2^62 in 63 bits' arithmetic, 2^62 x F64 to 0 mod
  // 2^64: both must be caught, not compared after wrapping.
  std::string bf16 = writeFile(
      "c.safetensors",
      safetensors(R"({"w":{"dtype":"BF16","shape":[2,4611686018427387904],)"
                  R"("data_offsets":[0,0]}})",
                  ""));
  EXPECT_NE(
      errorOf(SafeTensorsFile::open(bf16)).find("byte size overflows 64 bits"),
      std::string::npos);
  std::string f64 = writeFile(
      "d.safetensors",
      safetensors(R"({"w":{"dtype":"F64","shape":[4611686018427387904],)"
                  R"("data_offsets":[0,0]}})",
                  ""));
  EXPECT_NE(
      errorOf(SafeTensorsFile::open(f64)).find("byte size overflows 64 bits"),
      std::string::npos);
}

TEST_F(ResourceBoundsTest, SafeTensorsEndlessDevice) {
  // Reading /dev/zero "until the end" never ends and never stops allocating.
  std::string message = errorOf(SafeTensorsFile::open("/dev/zero"));
  EXPECT_NE(message.find("/dev/zero: not a regular file"), std::string::npos)
      << message;
  // The same through a symbolic link inside a package.
  std::string link = pathOf("weights.safetensors");
  ASSERT_FALSE(sys::fs::create_link("/dev/zero", link));
  message = errorOf(SafeTensorsFile::open(link));
  EXPECT_NE(message.find("not a regular file"), std::string::npos) << message;
}

TEST_F(ResourceBoundsTest, SafeTensorsFifo) {
  // Opening a FIFO blocks until someone writes to it: a package that ships
  // one must be rejected before it is opened.
  std::string fifo = makeFifo("fifo.safetensors");
  auto start = std::chrono::steady_clock::now();
  std::string message = errorOf(SafeTensorsFile::open(fifo));
  EXPECT_NE(message.find("not a regular file"), std::string::npos) << message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

//===----------------------------------------------------------------------===//
// .npy
//===----------------------------------------------------------------------===//

/// A version 1.0 .npy file with header dict `dict` and `data`.
std::string npy(StringRef dict, StringRef data) {
  std::string header = dict.str();
  while ((10 + header.size() + 1) % 64)
    header += ' ';
  header += '\n';
  std::string file = "\x93NUMPY\x01";
  file += '\0';
  char length[2];
  support::endian::write16le(length, uint16_t(header.size()));
  file.append(length, 2);
  return file + header + data.str();
}

TEST_F(ResourceBoundsTest, NpyShapeBeyondFile) {
  // 2^40 x 2^10 floats claimed, 8 bytes present: rejected before the 4 PiB
  // array is allocated.
  std::string path = writeFile(
      "big.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': "
                     "(1099511627776, 1024), }",
                     std::string(8, '\0')));
  std::string message = errorOf(readNpyF32(path));
  EXPECT_NE(message.find("truncated data"), std::string::npos) << message;
}

TEST_F(ResourceBoundsTest, NpyShapeTimesItemSizeOverflow) {
  // 2^61 elements of '<f8' wrap to 0 bytes mod 2^64, which an empty data
  // section would match.
  std::string path = writeFile(
      "wrap.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': "
                      "(2305843009213693952,), }",
                      ""));
  std::string message = errorOf(readNpyF32(path));
  EXPECT_NE(message.find("is too large"), std::string::npos) << message;
}

TEST_F(ResourceBoundsTest, NpyEndlessDevice) {
  std::string message = errorOf(readNpyF32("/dev/zero"));
  EXPECT_NE(message.find("/dev/zero: not a regular file or pipe"),
            std::string::npos)
      << message;
}

TEST_F(ResourceBoundsTest, NpyFromPipe) {
  // A pipe is how a shell passes generated input (`--x <(...)`): it ends when
  // its writer closes it, so it stays supported.
  std::string fifo = makeFifo("x.npy");
  std::string contents =
      npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
          StringRef("\0\0\x80\x3f\0\0\0\x40", 8));
  std::thread writer([&] {
    // Non-blocking open fails until the reader has opened its end; give up
    // after a few seconds so that a reader that never opens cannot hang us.
    for (int attempt = 0; attempt < 500; ++attempt) {
      int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd < 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      ::fcntl(fd, F_SETFL, 0);
      EXPECT_EQ(::write(fd, contents.data(), contents.size()),
                ssize_t(contents.size()));
      ::close(fd);
      return;
    }
  });
  Result<NpyArray> array = readNpyF32(fifo);
  writer.join();
  ASSERT_TRUE(bool(array)) << array.error();
  EXPECT_EQ(array->data, (std::vector<float>{1.0f, 2.0f}));
}

} // namespace
