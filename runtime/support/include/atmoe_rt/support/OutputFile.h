//===- OutputFile.h - Atomic outputs and interrupt cleanup ------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Every file an atmoe tool writes appears whole or not at all: it is written
// to a temporary file beside its target and renamed onto it, and temporary
// files are removed when the tool fails or is interrupted (SIGINT, SIGTERM,
// SIGHUP). atmoe-run and the compiler's driver both write through here.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_OUTPUTFILE_H
#define ATMOE_RT_SUPPORT_OUTPUTFILE_H

#include "atmoe_rt/support/Result.h"

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace atmoe_rt {

/// Removes `path` if the process is interrupted before keepOnInterrupt(path):
/// a file, or a directory registered before the files written into it (they
/// are removed first, newest first).
/// The first call installs the handlers; a signal the process ignores stays
/// ignored, and the handler passes each signal on to the one it replaced.
/// Safe to call from any thread.
void removeOnInterrupt(const std::string &path);

/// Undoes removeOnInterrupt(path).
void keepOnInterrupt(const std::string &path);

/// Writes `size` bytes to `fd`; errors name `path`.
Status writeAll(int fd, const void *data, size_t size, const std::string &path);

/// The file an output named `path` goes to: `path` itself, or the target of
/// the symbolic link `path` (links are followed and kept). An empty name or
/// a link that cannot be resolved is an error.
Result<std::string> resolveOutputPath(const std::string &path);

/// Writes `path` atomically: `write` fills a uniquely named temporary file in
/// the directory of `path` (it gets the open descriptor), which is then
/// renamed onto `path`. If `write` fails, or writing, closing or renaming
/// fails, the temporary file is removed, `path` is left as it was, and the
/// error is returned (errors of `write` unchanged, the others starting with
/// `path`). A symbolic link is followed (resolveOutputPath); an existing
/// device node or FIFO is written through, never replaced (not atomic: there
/// is no file to rename); a directory or socket is an error.
Status writeFileAtomically(const std::string &path,
                           const std::function<Status(int fd)> &write);

/// Writes a new directory `dir` atomically: `fill` writes its contents into
/// a uniquely named directory beside it, which is then renamed to `dir`. An
/// existing `dir` is an error (`tool` names who refuses, for the message);
/// if `fill` or the rename fails, or the process is interrupted, the
/// directory beside is removed and `dir` does not appear. Files `fill`
/// writes should go through writeFileAtomically (so each is whole).
Status writeDirectoryAtomically(
    const std::string &dir, const std::string &tool,
    const std::function<Status(const std::string &inside)> &fill);

/// Outputs that appear together or not at all, in directories created for
/// them: each file is written to a temporary file beside its target, and
/// commit() renames them all into place with the interrupt signals held
/// back. Until then the targets are left as they were; on destruction
/// without a commit (a failure), or on an interrupt, the temporary files and
/// the directories this object created are removed.
class StagedOutputs {
public:
  StagedOutputs() = default;
  StagedOutputs(const StagedOutputs &) = delete;
  StagedOutputs &operator=(const StagedOutputs &) = delete;
  ~StagedOutputs();

  /// Creates `dir` and its missing parents, like `mkdir -p`.
  Status createDirectories(const std::string &dir);

  /// Writes what will become `path`; `write` gets the open descriptor.
  Status stage(const std::string &path,
               const std::function<Status(int fd)> &write);

  /// Renames every staged file onto its target.
  Status commit();

private:
  void discard();

  /// (temporary file, target) of every staged file.
  std::vector<std::pair<std::string, std::string>> staged;
  std::vector<std::string> createdDirectories;
  bool committed = false;
};

/// A file in the system's temporary directory that exists for the lifetime
/// of this object (removed on destruction and on interrupts).
class TemporaryFile {
public:
  /// Creates "<TMPDIR>/<prefix>-XXXXXX<suffix>".
  static Result<TemporaryFile> create(const std::string &prefix,
                                      const std::string &suffix);

  TemporaryFile(TemporaryFile &&other) noexcept;
  TemporaryFile &operator=(TemporaryFile &&) = delete;
  ~TemporaryFile();

  const std::string &path() const { return filePath; }

private:
  explicit TemporaryFile(std::string path) : filePath(std::move(path)) {}
  std::string filePath;
};

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_OUTPUTFILE_H
