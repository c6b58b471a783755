//===- MappedFile.cpp - A regular file mapped into memory -----------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/MappedFile.h"

#include <cerrno>
#include <cstdlib>
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

/// Reads `fd` to its end into `buffer` (grown with realloc); returns the
/// number of bytes read.
template <typename Buffer>
Result<size_t> readAll(int fd, Buffer &buffer, const std::string &path) {
  size_t done = 0, capacity = 0;
  while (true) {
    if (done == capacity) {
      size_t grown = capacity ? 2 * capacity : 65536;
      char *data = static_cast<char *>(std::realloc(buffer.get(), grown));
      if (!data)
        return fail(path + ": cannot allocate " + std::to_string(grown) +
                    " bytes to read it into");
      (void)buffer.release();
      buffer.reset(data);
      capacity = grown;
    }
    ssize_t n = ::read(fd, buffer.get() + done, capacity - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail(path + ": cannot read: " + std::strerror(errno));
    if (n == 0)
      return done;
    done += size_t(n);
  }
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
    // Out of address space: a copy would not fit either.
    if (errno == ENOMEM)
      return fail(path + ": cannot map its " + std::to_string(size) +
                  " bytes: " + std::strerror(errno));
  }
  Result<size_t> read = readAll(file.fd, result->copy, path);
  if (!read)
    return read.takeError();
  result->text = std::string_view(result->copy.get(), *read);
  return result;
}

void MappedFile::FreeDeleter::operator()(char *data) const { std::free(data); }

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
