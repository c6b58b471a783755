//===- FileIdentity.h - Which file a path names, unchanged? -*- C++ -*-===//
//-*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The runtime maps files it was given by path (compiled models, weights) and
// keeps using them; the identity taken when a file was opened tells later
// whether the path still names that file, unchanged.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_FILEIDENTITY_H
#define ATMOE_RT_SUPPORT_FILEIDENTITY_H

#include <optional>
#include <string>
#include <sys/stat.h>

namespace atmoe_rt {

struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  struct timespec modified {};

  /// The same file (device and inode), possibly changed since.
  bool isSameFile(const FileIdentity &other) const {
    return device == other.device && inode == other.inode;
  }
  /// The same file with the same size and modification time.
  bool operator==(const FileIdentity &other) const {
    return isSameFile(other) && size == other.size &&
           modified.tv_sec == other.modified.tv_sec &&
           modified.tv_nsec == other.modified.tv_nsec;
  }

  /// What `path` names now; nullopt if it cannot be stat'ed.
  static std::optional<FileIdentity> of(const std::string &path) {
    struct stat status;
    if (::stat(path.c_str(), &status) != 0)
      return std::nullopt;
    return FileIdentity{status.st_dev, status.st_ino, status.st_size,
                        status.st_mtim};
  }
};

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_FILEIDENTITY_H
