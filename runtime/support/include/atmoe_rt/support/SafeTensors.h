//===- SafeTensors.h - Read-only, validating safetensors reader -*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A reader for the safetensors format: an 8-byte little-endian header length
// N, N bytes of JSON header, then the raw data section. The file is mapped
// into memory and the header is validated completely when the file is opened;
// every error is one message that starts with the file path, then names the
// tensor or header key, then says what was expected and what was found. The
// importer (which checks what a package holds) and the runtime (which binds
// it) read packages with this one reader.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_SAFETENSORS_H
#define ATMOE_RT_SUPPORT_SAFETENSORS_H

#include "atmoe_rt/support/MappedFile.h"
#include "atmoe_rt/support/Result.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace atmoe_rt {

/// Element types of a safetensors file that atmoe understands.
enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool };

/// The safetensors spelling of `dtype`: "F32", "F16", "BF16", "F64", "I64",
/// "I32", "I16", "I8", "U8", "BOOL".
std::string_view dtypeName(DType dtype);

/// Parses a safetensors dtype string; std::nullopt when unknown.
std::optional<DType> parseDType(std::string_view name);

/// Size in bytes of one element of `dtype`.
size_t dtypeSize(DType dtype);

/// One tensor of a safetensors file.
struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  /// Byte offsets into the data section (the bytes after the header).
  uint64_t begin, end;
  /// The first byte of the tensor; points into the file mapping.
  const uint8_t *data;

  /// Product of `shape` (1 for a scalar).
  int64_t numElements() const;
  /// Size of the tensor data in bytes (`end - begin`).
  uint64_t numBytes() const { return end - begin; }
};

/// A validated, memory-mapped safetensors file.
class SafeTensorsFile {
public:
  /// Maps `path`, which must be a regular file, and validates the header:
  /// its length, JSON syntax (nesting at most kMaxJsonDepth levels), unique
  /// keys, `__metadata__` (optional object of strings), and for every tensor
  /// a known `dtype`, a `shape` of non-negative integers and `data_offsets`
  /// [begin, end] whose length is shape product x dtype size, within the data
  /// section, not overlapping any other tensor.
  static Result<std::unique_ptr<SafeTensorsFile>> open(const std::string &path);

  /// The tensor called `name`, or nullptr if there is none.
  const TensorInfo *lookup(std::string_view name) const;

  /// All tensors, ordered by their data offsets (ties by name).
  const std::vector<TensorInfo> &tensors() const { return tensorList; }

  /// The `__metadata__` entries of the header.
  const std::map<std::string, std::string> &metadata() const {
    return metadataMap;
  }

  /// The path the file was opened with.
  const std::string &path() const { return filePath; }

  /// Copies a tensor into f32: F32 as is, F16 and BF16 converted exactly, F64
  /// rounded to nearest. Any other dtype is an error naming file and tensor.
  Result<std::vector<float>> readAsF32(const TensorInfo &info) const;
  /// The same into `out`, which holds numElements() floats.
  Status readAsF32(const TensorInfo &info, float *out) const;

  /// Drops the tensor's pages from memory once it has been read (copied or
  /// converted); it stays readable (MappedFile::release).
  void release(const TensorInfo &info) const {
    file->release(info.data, info.numBytes());
  }
  /// The same for `size` bytes at `data` of one of its tensors.
  void release(const void *data, size_t size) const {
    file->release(data, size);
  }

  /// True when the tensor is F32 and its data is 4-byte aligned, so callers
  /// may read `data` as `const float *` in place (hosts are little-endian).
  bool isDirectlyUsableF32(const TensorInfo &info) const;

  SafeTensorsFile(const SafeTensorsFile &) = delete;
  SafeTensorsFile &operator=(const SafeTensorsFile &) = delete;

private:
  SafeTensorsFile() = default;
  Status parseHeader(std::string_view header, std::string_view data);

  std::string filePath;
  std::unique_ptr<MappedFile> file;
  std::vector<TensorInfo> tensorList;
  std::unordered_map<std::string, size_t> index;
  std::map<std::string, std::string> metadataMap;
};

/// A tensor to write: name, dtype, shape and its little-endian bytes.
struct TensorBytes {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

/// Writes a safetensors file to `fd`: the header (`__metadata__` "format":
/// "pt", tensors in the given order, padded with spaces to 8 bytes) and the
/// data. Errors name `path`.
Status writeSafeTensors(int fd, const std::string &path,
                        const std::vector<TensorBytes> &tensors);

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_SAFETENSORS_H
