//===- Npy.h - NumPy .npy reader and writer for f32 arrays ------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The NumPy array file format (.npy), restricted to what atmoe exchanges:
// little-endian float arrays in C order.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_NPY_H
#define ATMOE_RT_SUPPORT_NPY_H

#include "atmoe_rt/support/Result.h"

#include <cstdint>
#include <string>
#include <vector>

namespace atmoe_rt {

/// A dense f32 array in C (row-major) order.
struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

/// Reads a .npy file or named pipe (format versions 1.0, 2.0 and 3.0)
/// holding '<f4', or '<f8' which is rounded to f32, in C order. Errors start
/// with the path.
Result<NpyArray> readNpyF32(const std::string &path);

/// Writes `size` values at `data` with `shape` as a version 1.0 .npy file
/// ('<f4', C order). The product of `shape` must equal `size`. The file is
/// replaced atomically (writeFileAtomically): readers never see a partial
/// file.
Status writeNpyF32(const std::string &path, const std::vector<int64_t> &shape,
                   const float *data, size_t size);

/// Writes the same .npy file to the open descriptor `fd`; errors name
/// `path`.
Status writeNpyF32To(int fd, const std::string &path,
                     const std::vector<int64_t> &shape, const float *data,
                     size_t size);

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_NPY_H
