//===- MappedFile.h - A regular file mapped into memory ---------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_MAPPEDFILE_H
#define ATMOE_RT_SUPPORT_MAPPEDFILE_H

#include "atmoe_rt/support/Result.h"

#include <memory>
#include <string>
#include <string_view>

namespace atmoe_rt {

/// The contents of a regular file, mapped read-only (or read into memory when
/// the file cannot be mapped, e.g. when it is empty).
class MappedFile {
public:
  /// Whether a named pipe is read (to its end) or rejected.
  enum class Pipes { Reject, Read };

  /// Opens `path`, which must be a regular file or, with Pipes::Read, a
  /// named pipe (`--x <(...)` in a shell): reading a device such as
  /// /dev/zero never ends, and opening a FIFO blocks until someone writes to
  /// it. `expected` names what the file should be, for messages ("a
  /// safetensors file"): "PATH: is a directory, expected a safetensors file".
  static Result<std::unique_ptr<MappedFile>> open(const std::string &path,
                                                  std::string_view expected,
                                                  Pipes pipes = Pipes::Reject);

  std::string_view contents() const { return text; }

  /// Lets the kernel drop the whole pages of [data, data + size), a range of
  /// contents() that was read and is no longer needed (it stays readable: a
  /// later read loads it again). Keeps resident memory at what is in use.
  void release(const void *data, size_t size) const;

  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile();

private:
  MappedFile() = default;

  /// Frees what malloc gave: a failed allocation is a status, and the
  /// runtime has no exceptions to report one with.
  struct FreeDeleter {
    void operator()(char *data) const;
  };

  void *mapping = nullptr;
  size_t mappedSize = 0;
  std::unique_ptr<char, FreeDeleter> copy;
  std::string_view text;
};

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_MAPPEDFILE_H
