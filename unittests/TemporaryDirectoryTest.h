//===- TemporaryDirectoryTest.h - a fixture with a scratch directory ------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_UNITTESTS_TEMPORARYDIRECTORYTEST_H
#define ATMOE_UNITTESTS_TEMPORARYDIRECTORYTEST_H

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <string>

namespace atmoe_test {

/// A test fixture owning a fresh directory, removed after each test, and the
/// file helpers the reader tests share.
class TemporaryDirectoryTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("atmoe-test", dir));
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  std::string pathOf(llvm::StringRef name) const {
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, name);
    return std::string(path);
  }

  /// Writes `contents` to `name` in the directory; returns its path.
  std::string writeFileNamed(llvm::StringRef name, llvm::StringRef contents) {
    std::string path = pathOf(name);
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    EXPECT_FALSE(ec) << ec.message();
    os << contents;
    return path;
  }

  /// The bytes of `path`, or "<unreadable>".
  std::string readBytes(llvm::StringRef path) const {
    llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
        llvm::MemoryBuffer::getFile(path);
    return buffer ? (*buffer)->getBuffer().str() : "<unreadable>";
  }

  llvm::SmallString<256> dir;
};

} // namespace atmoe_test

#endif // ATMOE_UNITTESTS_TEMPORARYDIRECTORYTEST_H
