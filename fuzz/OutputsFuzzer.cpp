//===- OutputsFuzzer.cpp - Fuzz how the tools write their outputs ---------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The input sets up a small directory tree in a fresh sandbox and names
// outputs in it (issue 14: names that are paths, special output files):
//
//   byte 0     what exists at the first name beforehand (see Setup)
//   byte 1     bit 0: the writer fails midway; bit 1: stage the names as
//              atmoe-run does (StagedOutputs) instead of one -o output;
//              bit 2: commit the staged outputs
//   the rest   names, one per line; the first line is also the payload
//
// writeFileAtomically (atmoe-compile -o, atmoe-quantize) must either write
// the payload to the file the name resolves to (a link is followed and
// kept) or fail and leave the tree exactly as it was: no temporary file, no
// changed entry. Staged outputs go to OUT/NAME.npy for each name that
// plainNameProblem accepts (the names atmoe-run would see); an accepted name
// must not contain a separator or be "." or "..". Committed, every one holds
// its payload; not committed, the tree is as it was, created directories
// included. Names with ".." components or leading '/' are skipped (a -o path
// is the user's choice; the sandbox must not be left).
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"

#include "atmoe_rt/support/Names.h"
#include "atmoe_rt/support/OutputFile.h"

#include "llvm/ADT/StringExtras.h"

#include <climits>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

using namespace atmoe_fuzz;

namespace {

/// What exists at the first name before the write.
enum class Setup : uint8_t {
  Nothing,
  RegularFile,
  LinkToFile,
  DanglingLink,
  Directory,
  LinkLoop,
  LinkToDirectory,
  Count
};

/// Every entry under a directory: relative path -> kind and contents (file
/// bytes, link target), without following links.
using Tree = std::map<std::string, std::string>;

std::string readAll(const std::string &path) {
  std::string contents;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0)
    fail("cannot read back " + path);
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof(buffer))) > 0;)
    contents.append(buffer, n);
  ::close(fd);
  return contents;
}

void snapshot(const std::string &root, const std::string &relative,
              Tree &tree) {
  std::string dir = relative.empty() ? root : root + "/" + relative;
  DIR *stream = ::opendir(dir.c_str());
  if (!stream)
    fail("cannot list " + dir);
  while (dirent *entry = ::readdir(stream)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..")
      continue;
    std::string child = relative.empty() ? name : relative + "/" + name;
    std::string path = root + "/" + child;
    struct stat status;
    if (::lstat(path.c_str(), &status) != 0)
      fail("cannot stat " + path);
    if (S_ISDIR(status.st_mode)) {
      tree[child] = "dir";
      snapshot(root, child, tree);
    } else if (S_ISLNK(status.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(path.c_str(), target, sizeof(target));
      tree[child] = "link:" + std::string(target, n > 0 ? n : 0);
    } else {
      tree[child] = "file:" + readAll(path);
    }
  }
  ::closedir(stream);
}

Tree snapshot(const std::string &root) {
  Tree tree;
  snapshot(root, "", tree);
  return tree;
}

/// A fresh, empty sandbox directory.
std::string freshSandbox() {
  static const std::string root = scratchPath("sandbox");
  llvm::sys::fs::remove_directories(root);
  if (llvm::sys::fs::create_directory(root))
    fail("cannot create " + root);
  return root;
}

/// Creates a file, if `path` can name one (setups are best effort: a name
/// may not be creatable, and the write must then fail cleanly).
void makeFile(const std::string &path, llvm::StringRef contents) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    return;
  (void)!::write(fd, contents.data(), contents.size());
  ::close(fd);
}

/// Creates what `setup` names at `path` (relative links stay in `root`).
void prepare(const std::string &root, const std::string &path, Setup setup) {
  switch (setup) {
  case Setup::RegularFile:
    return makeFile(path, "old contents");
  case Setup::LinkToFile:
    makeFile(root + "/real", "real contents");
    (void)::symlink((root + "/real").c_str(), path.c_str());
    return;
  case Setup::DanglingLink:
    (void)::symlink((root + "/missing").c_str(), path.c_str());
    return;
  case Setup::Directory:
    (void)::mkdir(path.c_str(), 0755);
    return;
  case Setup::LinkLoop:
    (void)::symlink(path.c_str(), (root + "/loop").c_str());
    (void)::symlink((root + "/loop").c_str(), path.c_str());
    return;
  case Setup::LinkToDirectory:
    (void)::mkdir((root + "/dir").c_str(), 0755);
    (void)::symlink((root + "/dir").c_str(), path.c_str());
    return;
  default:
    return;
  }
}

/// Writes `payload`, or half of it and then an error when `failMidway`.
std::function<atmoe_rt::Status(int)> writer(const std::string &payload,
                                            bool failMidway) {
  return [=](int fd) -> atmoe_rt::Status {
    size_t size = failMidway ? payload.size() / 2 : payload.size();
    if (atmoe_rt::Status written =
            atmoe_rt::writeAll(fd, payload.data(), size, "the output");
        !written)
      return written;
    if (failMidway)
      return atmoe_rt::fail("the writer failed on purpose");
    return atmoe_rt::Status::success();
  };
}

bool confined(llvm::StringRef name) {
  if (name.starts_with("/"))
    return false;
  llvm::SmallVector<llvm::StringRef> parts;
  name.split(parts, '/');
  return llvm::none_of(parts,
                       [](llvm::StringRef part) { return part == ".."; });
}

/// `path` with its directory's links and dots resolved (the file itself
/// need not exist).
std::string canonical(const std::string &path) {
  size_t slash = path.rfind('/');
  char resolved[PATH_MAX];
  if (!::realpath(path.substr(0, slash).c_str(), resolved))
    fail("cannot resolve the directory of " + path);
  return std::string(resolved) + path.substr(slash);
}

/// One -o output through writeFileAtomically.
void checkAtomicOutput(const std::string &name, Setup setup, bool failMidway) {
  if (!confined(name) || name.find('\0') != std::string::npos)
    return;
  std::string root = freshSandbox();
  std::string path = root + "/" + name;
  prepare(root, path, setup);
  Tree before = snapshot(root);
  atmoe_rt::Result<std::string> resolved = atmoe_rt::resolveOutputPath(path);
  atmoe_rt::Status written =
      atmoe_rt::writeFileAtomically(path, writer(name, failMidway));
  Tree after = snapshot(root);
  if (!written) {
    if (written.error().empty())
      fail("an output failed without a message");
    if (after != before)
      fail("a failed output changed the directory tree: " + path);
    return;
  }
  if (failMidway)
    fail("an output whose writer failed was accepted: " + path);
  if (!resolved)
    fail("an output was written to a path that does not resolve: " + path);
  if (readAll(*resolved) != name)
    fail("the output does not hold what was written: " + *resolved);
  std::string target = canonical(*resolved);
  for (const auto &[entry, contents] : before)
    if (canonical(root + "/" + entry) != target && after[entry] != contents)
      fail("an output changed another entry: " + entry);
  if (after.size() > before.size() + 1)
    fail("an output left more than its file behind: " + path);
}

/// Outputs staged into OUT/NAME.npy for each plain name, as atmoe-run does.
void checkStagedOutputs(const std::vector<std::string> &names, Setup setup,
                        bool failMidway, bool commit) {
  std::string root = freshSandbox();
  std::string out = root + "/out/layer";
  if (!names.empty() && atmoe_rt::plainNameProblem(names.front()).empty()) {
    (void)::mkdir((root + "/out").c_str(), 0755);
    (void)::mkdir(out.c_str(), 0755);
    prepare(root, out + "/" + names.front() + ".npy", setup);
  }
  Tree before = snapshot(root);
  std::map<std::string, std::string> expected;
  bool failed = false;
  {
    atmoe_rt::StagedOutputs outputs;
    failed = !outputs.createDirectories(out);
    for (const std::string &name : names) {
      if (failed || !atmoe_rt::plainNameProblem(name).empty())
        continue;
      if (name.find_first_of(std::string("/\0", 2)) != std::string::npos ||
          name == "." || name == "..")
        fail("plainNameProblem accepted a name that is a path: " +
             atmoe_rt::escapeName(name));
      std::string target = "out/layer/" + name + ".npy";
      if (expected.count(target))
        continue;
      failed = !outputs.stage(root + "/" + target, writer(name, failMidway));
      expected[target] = name;
    }
    if (!failed && commit)
      failed = !outputs.commit();
    if (!failed && commit) {
      for (const auto &[target, payload] : expected)
        if (readAll(root + "/" + target) != payload)
          fail("a committed output does not hold its payload: " + target);
      return;
    }
  }
  if (snapshot(root) != before)
    fail("outputs that were not committed changed the directory tree");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  auto setup = static_cast<Setup>(data[0] % static_cast<uint8_t>(Setup::Count));
  uint8_t flags = data[1];
  std::string text(reinterpret_cast<const char *>(data) + 2, size - 2);
  llvm::SmallVector<llvm::StringRef> lines;
  llvm::StringRef(text).split(lines, '\n');
  if (lines.size() > 8)
    lines.resize(8);
  std::vector<std::string> names(lines.begin(), lines.end());
  if (flags & 2)
    checkStagedOutputs(names, setup, flags & 1, flags & 4);
  else
    checkAtomicOutput(names.front(), setup, flags & 1);
  return 0;
}
