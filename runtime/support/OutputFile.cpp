//===- OutputFile.cpp - Atomic outputs and interrupt cleanup --------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/OutputFile.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <mutex>
#include <pthread.h>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

using namespace atmoe_rt;

//===----------------------------------------------------------------------===//
// Removal on interrupt
//===----------------------------------------------------------------------===//

namespace {

/// The registered paths. Each slot owns its string (from strdup); whoever
/// takes the pointer out with an atomic exchange (the handler, or
/// keepOnInterrupt) is the one who uses it, so the handler never reads freed
/// memory.
constexpr size_t kMaxRegistered = 1024;
std::atomic<char *> registered[kMaxRegistered];

constexpr int kInterruptSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
struct sigaction previousActions[sizeof(kInterruptSignals) / sizeof(int)];

void onInterrupt(int signal) {
  // Newest first, so that files go before the directory that holds them; a
  // path unlink cannot remove is an (emptied) directory.
  for (size_t i = kMaxRegistered; i-- > 0;)
    if (char *path = registered[i].exchange(nullptr))
      if (::unlink(path) != 0)
        ::rmdir(path);
  // Pass the signal on to whoever handled it before (LLVM's handler in the
  // compiler tools, else the default action, which ends the process).
  for (size_t i = 0; i < std::size(kInterruptSignals); ++i)
    if (kInterruptSignals[i] == signal)
      ::sigaction(signal, &previousActions[i], nullptr);
  ::raise(signal);
}

void installHandlers() {
  for (size_t i = 0; i < std::size(kInterruptSignals); ++i) {
    int signal = kInterruptSignals[i];
    struct sigaction current;
    ::sigaction(signal, nullptr, &current);
    // An ignored signal (nohup, a background job) stays ignored.
    if (current.sa_handler == SIG_IGN)
      continue;
    struct sigaction action {};
    action.sa_handler = onInterrupt;
    sigemptyset(&action.sa_mask);
    ::sigaction(signal, &action, &previousActions[i]);
  }
}

} // namespace

void atmoe_rt::removeOnInterrupt(const std::string &path) {
  static std::once_flag once;
  std::call_once(once, installHandlers);
  char *copy = ::strdup(path.c_str());
  for (std::atomic<char *> &slot : registered) {
    char *expected = nullptr;
    if (slot.compare_exchange_strong(expected, copy))
      return;
  }
  std::free(copy); // Full: the file is still removed on failure, not on
                   // interrupt.
}

void atmoe_rt::keepOnInterrupt(const std::string &path) {
  for (std::atomic<char *> &slot : registered) {
    char *current = slot.load();
    if (!current || path != current)
      continue;
    if (slot.compare_exchange_strong(current, nullptr))
      std::free(current);
    return;
  }
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

Status atmoe_rt::writeAll(int fd, const void *data, size_t size,
                          const std::string &path) {
  const char *bytes = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, bytes, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail(path + ": cannot write: " + std::strerror(errno));
    bytes += n;
    size -= size_t(n);
  }
  return Status::success();
}

namespace {

/// Creates a new file at `prefix` + a unique tag + `suffix` with the
/// permissions of any new file (0666 less the umask, applied by the kernel:
/// mkstemp's 0600 would need a umask() call to correct, and umask is
/// process-wide, not thread-safe). Returns its path and descriptor, or the
/// reason it could not.
Result<std::pair<std::string, int>> createUnique(const std::string &prefix,
                                                 const std::string &suffix) {
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    unsigned long long tag =
        (static_cast<unsigned long long>(::getpid()) << 24) ^
        (static_cast<unsigned long long>(std::random_device()()) << 4) ^
        counter.fetch_add(1);
    char unique[16];
    std::snprintf(unique, sizeof(unique), "%012llx", tag & 0xffffffffffffULL);
    std::string path = prefix + unique + suffix;
    int fd =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0)
      return std::make_pair(path, fd);
    if (errno != EEXIST)
      return fail(std::strerror(errno));
  }
  return fail("no unused name");
}

/// "dir/.name.tmp-<tag>" beside `path`.
Result<std::pair<std::string, int>> createBeside(const std::string &path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  Result<std::pair<std::string, int>> created =
      createUnique(dir + "." + name + ".tmp-", "");
  if (!created)
    return fail(path + ": cannot create a temporary file beside it: " +
                created.error());
  return created;
}

} // namespace

namespace {

/// Writes straight into an existing file that is not a regular file (a
/// character or block device such as /dev/null, a FIFO): renaming a new file
/// onto it would replace the node itself. Such a write cannot be atomic.
Status writeThrough(const std::string &path,
                    const std::function<Status(int fd)> &write) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return fail(path + ": cannot open for writing: " + std::strerror(errno));
  Status written = write(fd);
  if (::close(fd) != 0 && written)
    written = fail(path + ": cannot write: " + std::strerror(errno));
  return written;
}

/// Creates a temporary file beside `path` (removed on interrupt until it is
/// kept) and fills it with `write`. `tempPath` is set as soon as the file
/// exists, so that the caller removes it whether or not writing succeeded.
Status writeBeside(const std::string &path,
                   const std::function<Status(int fd)> &write,
                   std::string &tempPath) {
  Result<std::pair<std::string, int>> temp = createBeside(path);
  if (!temp)
    return temp.takeError();
  int fd = temp->second;
  tempPath = temp->first;
  removeOnInterrupt(tempPath);
  Status written = write(fd);
  if (::close(fd) != 0 && written)
    written = fail(path + ": cannot write temporary file '" + tempPath +
                   "': " + std::strerror(errno));
  return written;
}

void removeTemporary(const std::string &tempPath) {
  ::unlink(tempPath.c_str());
  keepOnInterrupt(tempPath);
}

/// Renames a new file, filled by `write`, onto `path`.
Status replaceAtomically(const std::string &path,
                         const std::function<Status(int fd)> &write) {
  std::string tempPath;
  Status written = writeBeside(path, write, tempPath);
  if (written && ::rename(tempPath.c_str(), path.c_str()) != 0)
    written = fail(path + ": cannot rename temporary file '" + tempPath +
                   "' onto it: " + std::strerror(errno));
  if (!written) {
    if (!tempPath.empty())
      removeTemporary(tempPath);
    return written;
  }
  keepOnInterrupt(tempPath);
  return Status::success();
}

} // namespace

Result<std::string> atmoe_rt::resolveOutputPath(const std::string &path) {
  if (path.empty())
    return fail("expected an output file name, found ''");
  struct stat link;
  if (::lstat(path.c_str(), &link) != 0 || !S_ISLNK(link.st_mode))
    return path;
  // A symbolic link is followed: its target is replaced and the link kept,
  // as a shell redirection would.
  char *target = ::realpath(path.c_str(), nullptr);
  if (!target)
    return fail(path + ": a symbolic link whose target cannot be resolved: " +
                std::strerror(errno));
  std::string resolved = target;
  std::free(target);
  return resolved;
}

Status
atmoe_rt::writeFileAtomically(const std::string &requested,
                              const std::function<Status(int fd)> &write) {
  Result<std::string> path = resolveOutputPath(requested);
  if (!path)
    return path.takeError();
  struct stat existing;
  if (::stat(path->c_str(), &existing) != 0)
    return replaceAtomically(*path, write);
  if (S_ISDIR(existing.st_mode))
    return fail(requested + ": is a directory, expected a file");
  if (S_ISSOCK(existing.st_mode))
    return fail(requested + ": is a socket, expected a file");
  if (!S_ISREG(existing.st_mode))
    return writeThrough(*path, write);
  return replaceAtomically(*path, write);
}

//===----------------------------------------------------------------------===//
// StagedOutputs
//===----------------------------------------------------------------------===//

namespace {

/// Holds back the interrupt signals for its lifetime, so that a group of
/// renames is not cut in half.
class InterruptsHeld {
public:
  InterruptsHeld() {
    sigset_t held;
    sigemptyset(&held);
    for (int signal : kInterruptSignals)
      sigaddset(&held, signal);
    ::pthread_sigmask(SIG_BLOCK, &held, &previous);
  }
  ~InterruptsHeld() { ::pthread_sigmask(SIG_SETMASK, &previous, nullptr); }

private:
  sigset_t previous;
};

} // namespace

Status atmoe_rt::writeDirectoryAtomically(
    const std::string &requested, const std::string &tool,
    const std::function<Status(const std::string &inside)> &fill) {
  std::string dir = requested;
  while (dir.size() > 1 && dir.back() == '/')
    dir.pop_back();
  struct stat info;
  if (::lstat(dir.c_str(), &info) == 0)
    return fail(dir + ": already exists (" + tool + " writes a new directory)");
  std::string temp = dir + ".tmp-XXXXXX";
  if (!::mkdtemp(temp.data()))
    return fail(
        dir + ": cannot create a directory beside it: " + std::strerror(errno));
  removeOnInterrupt(temp);
  Status status = fill(temp);
  if (status && ::rename(temp.c_str(), dir.c_str()) != 0)
    status = fail(dir + ": cannot rename the finished directory into place: " +
                  std::strerror(errno));
  if (!status) {
    std::error_code ignored;
    std::filesystem::remove_all(temp, ignored);
  }
  keepOnInterrupt(temp);
  return status;
}

StagedOutputs::~StagedOutputs() {
  if (!committed)
    discard();
}

void StagedOutputs::discard() {
  for (const auto &[temp, target] : staged)
    removeTemporary(temp);
  staged.clear();
  for (auto dir = createdDirectories.rbegin(); dir != createdDirectories.rend();
       ++dir) {
    ::rmdir(dir->c_str());
    keepOnInterrupt(*dir);
  }
  createdDirectories.clear();
}

Status StagedOutputs::createDirectories(const std::string &dir) {
  std::string prefix = "cannot create the output directory: ";
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    std::string part = dir.substr(0, slash);
    if (::mkdir(part.c_str(), 0777) == 0) {
      createdDirectories.push_back(part);
      removeOnInterrupt(part);
    } else if (errno != EEXIST) {
      return fail(dir + ": " + prefix + std::strerror(errno));
    }
    if (slash == std::string::npos)
      break;
  }
  struct stat status;
  if (::stat(dir.c_str(), &status) != 0 || !S_ISDIR(status.st_mode))
    return fail(dir + ": " + prefix + "a file of that name exists");
  return Status::success();
}

Status StagedOutputs::stage(const std::string &requested,
                            const std::function<Status(int fd)> &write) {
  Result<std::string> path = resolveOutputPath(requested);
  if (!path)
    return path.takeError();
  struct stat existing;
  if (::stat(path->c_str(), &existing) == 0 && !S_ISREG(existing.st_mode))
    return fail(requested + ": exists and is not a regular file");
  std::string tempPath;
  Status written = writeBeside(*path, write, tempPath);
  if (!tempPath.empty())
    staged.emplace_back(tempPath, *path);
  return written;
}

Status StagedOutputs::commit() {
  InterruptsHeld held;
  for (const auto &[temp, target] : staged)
    if (::rename(temp.c_str(), target.c_str()) != 0)
      return fail(target + ": cannot rename temporary file '" + temp +
                  "' onto it: " + std::strerror(errno));
  for (const auto &[temp, target] : staged)
    keepOnInterrupt(temp);
  for (const std::string &dir : createdDirectories)
    keepOnInterrupt(dir);
  committed = true;
  return Status::success();
}

//===----------------------------------------------------------------------===//
// TemporaryFile
//===----------------------------------------------------------------------===//

Result<TemporaryFile> TemporaryFile::create(const std::string &prefix,
                                            const std::string &suffix) {
  const char *dir = std::getenv("TMPDIR");
  bool fromEnvironment = dir && *dir;
  std::string base = fromEnvironment ? dir : "/tmp";
  std::string stem = base + "/" + prefix;
  Result<std::pair<std::string, int>> created =
      createUnique(stem + "-", suffix);
  if (!created)
    return fail(
        "cannot create a temporary file " + stem + "-*" + suffix + " in " +
        (fromEnvironment ? "TMPDIR=" : "") + base + ": " + created.error() +
        (fromEnvironment ? " (set TMPDIR to a writable directory)" : ""));
  ::close(created->second);
  removeOnInterrupt(created->first);
  return TemporaryFile(created->first);
}

TemporaryFile::TemporaryFile(TemporaryFile &&other) noexcept
    : filePath(std::move(other.filePath)) {
  other.filePath.clear();
}

TemporaryFile::~TemporaryFile() {
  if (filePath.empty())
    return;
  ::unlink(filePath.c_str());
  keepOnInterrupt(filePath);
}
