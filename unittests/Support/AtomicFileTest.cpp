//===- AtomicFileTest.cpp - Tests for writeFileAtomically -----------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Support/AtomicFile.h"
#include "TemporaryDirectoryTest.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "gtest/gtest.h"

#include <string>
#include <vector>

using namespace llvm;
using atmoe_test::TemporaryDirectoryTest;
using mlir::atmoe::writeFileAtomically;

namespace {

class AtomicFileTest : public TemporaryDirectoryTest {
protected:
  /// Names of the entries of the test directory, sorted.
  std::vector<std::string> listDir() const {
    std::vector<std::string> names;
    std::error_code ec;
    for (sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
         it.increment(ec))
      names.push_back(sys::path::filename(it->path()).str());
    EXPECT_FALSE(ec);
    llvm::sort(names);
    return names;
  }

  std::string readFile(StringRef path) const { return readBytes(path); }
};

TEST_F(AtomicFileTest, WritesContents) {
  std::string path = pathOf("out.bin");
  Error err = writeFileAtomically(path, [](raw_ostream &os) {
    os << "hello";
    return Error::success();
  });
  ASSERT_FALSE(err) << toString(std::move(err));
  EXPECT_EQ(readFile(path), "hello");
  EXPECT_EQ(listDir(), std::vector<std::string>{"out.bin"});
}

TEST_F(AtomicFileTest, ReplacesExistingFile) {
  std::string path = pathOf("out.bin");
  ASSERT_FALSE(writeFileAtomically(path, [](raw_ostream &os) {
    os << "old contents";
    return Error::success();
  }));
  ASSERT_FALSE(writeFileAtomically(path, [](raw_ostream &os) {
    os << "new";
    return Error::success();
  }));
  EXPECT_EQ(readFile(path), "new");
  EXPECT_EQ(listDir(), std::vector<std::string>{"out.bin"});
}

TEST_F(AtomicFileTest, CallbackErrorLeavesNothingBehind) {
  std::string path = pathOf("out.bin");
  Error err = writeFileAtomically(path, [](raw_ostream &os) {
    os << "partial output";
    return createStringError(inconvertibleErrorCode(), "callback failed");
  });
  ASSERT_TRUE(bool(err));
  EXPECT_EQ(toString(std::move(err)), "callback failed");
  EXPECT_FALSE(sys::fs::exists(path));
  EXPECT_TRUE(listDir().empty());
}

TEST_F(AtomicFileTest, CallbackErrorKeepsOldFile) {
  std::string path = pathOf("out.bin");
  ASSERT_FALSE(writeFileAtomically(path, [](raw_ostream &os) {
    os << "old contents";
    return Error::success();
  }));
  Error err = writeFileAtomically(path, [](raw_ostream &os) {
    os << "partial";
    return createStringError(inconvertibleErrorCode(), "callback failed");
  });
  ASSERT_TRUE(bool(err));
  consumeError(std::move(err));
  EXPECT_EQ(readFile(path), "old contents");
  EXPECT_EQ(listDir(), std::vector<std::string>{"out.bin"});
}

TEST_F(AtomicFileTest, MissingDirectory) {
  std::string path = pathOf("no-such-dir/out.bin");
  bool called = false;
  Error err = writeFileAtomically(path, [&](raw_ostream &) {
    called = true;
    return Error::success();
  });
  ASSERT_TRUE(bool(err));
  std::string message = toString(std::move(err));
  EXPECT_EQ(message.find(path + ": "), 0u) << message;
  EXPECT_NE(message.find("cannot create a temporary file"), std::string::npos)
      << message;
  EXPECT_FALSE(called);
  EXPECT_TRUE(listDir().empty());
}

TEST_F(AtomicFileTest, DirectoryInTheWay) {
  // A directory is refused before anything is written (renaming a file onto
  // it would fail), and no temporary file is left.
  std::string path = pathOf("target");
  ASSERT_FALSE(sys::fs::create_directory(path));
  ASSERT_FALSE(writeFileAtomically(pathOf("target/inner"), [](raw_ostream &os) {
    os << "x";
    return Error::success();
  }));
  Error err = writeFileAtomically(path, [](raw_ostream &os) {
    os << "data";
    return Error::success();
  });
  ASSERT_TRUE(bool(err));
  std::string message = toString(std::move(err));
  EXPECT_EQ(message.find(path + ": is a directory, expected a file"), 0u)
      << message;
  EXPECT_EQ(listDir(), std::vector<std::string>{"target"});
}

} // namespace
