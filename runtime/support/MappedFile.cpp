//===- MappedFile.cpp - A regular file mapped into memory -----------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/MappedFile.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace atmoe_rt;

namespace {

/// Closes a file descriptor when it goes out of scope.
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0)
      ::close(fd);
  }
};

Error openError(const std::string &path, int error) {
  return fail(path + ": cannot open: " + std::strerror(error));
}

/// Reads `fd` to its end into `buffer`.
Status readAll(int fd, std::vector<char> &buffer, const std::string &path) {
  size_t done = 0;
  while (true) {
    if (done == buffer.size())
      buffer.resize(buffer.empty() ? 65536 : 2 * buffer.size());
    ssize_t n = ::read(fd, buffer.data() + done, buffer.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail(path + ": cannot read: " + std::strerror(errno));
    if (n == 0)
      break;
    done += size_t(n);
  }
  buffer.resize(done);
  return Status::success();
}

} // namespace

Result<std::unique_ptr<MappedFile>> MappedFile::open(const std::string &path,
                                                     std::string_view expected,
                                                     Pipes pipes) {
  struct stat status;
  if (::stat(path.c_str(), &status) != 0)
    return openError(path, errno);
  if (S_ISDIR(status.st_mode))
    return fail(path + ": is a directory, expected " + std::string(expected));
  bool pipe = pipes == Pipes::Read && S_ISFIFO(status.st_mode);
  if (!S_ISREG(status.st_mode) && !pipe)
    return fail(path +
                (pipes == Pipes::Read ? ": not a regular file or pipe"
                                      : ": not a regular file") +
                ", expected " + std::string(expected));
  FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0)
    return openError(path, errno);
  // The size of the file now open (it may have changed since the stat).
  if (::fstat(file.fd, &status) != 0)
    return openError(path, errno);

  std::unique_ptr<MappedFile> result(new MappedFile());
  size_t size = size_t(status.st_size);
  if (!pipe && size > 0) {
    void *mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, file.fd, 0);
    if (mapping != MAP_FAILED) {
      result->mapping = mapping;
      result->mappedSize = size;
      result->text = std::string_view(static_cast<const char *>(mapping), size);
      return result;
    }
  }
  if (Status read = readAll(file.fd, result->copy, path); !read)
    return read.takeError();
  result->text = std::string_view(result->copy.data(), result->copy.size());
  return result;
}

MappedFile::~MappedFile() {
  if (mapping)
    ::munmap(mapping, mappedSize);
}

void MappedFile::release(const void *data, size_t size) const {
  if (!mapping)
    return;
  uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  uintptr_t begin = (uintptr_t(data) + page - 1) / page * page;
  uintptr_t end = (uintptr_t(data) + size) / page * page;
  if (begin < end)
    (void)::madvise(reinterpret_cast<void *>(begin), end - begin,
                    MADV_DONTNEED);
}
