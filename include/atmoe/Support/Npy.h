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

#ifndef ATMOE_SUPPORT_NPY_H
#define ATMOE_SUPPORT_NPY_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

namespace atmoe {

/// A dense f32 array in C (row-major) order.
struct NpyArray {
  llvm::SmallVector<int64_t> shape;
  std::vector<float> data;
};

/// Reads a .npy file (format versions 1.0, 2.0 and 3.0) holding '<f4', or
/// '<f8' which is rounded to f32, in C order. Errors start with the path.
llvm::Expected<NpyArray> readNpyF32(llvm::StringRef path);

/// Writes `data` with `shape` as a version 1.0 .npy file ('<f4', C order).
/// The product of `shape` must equal `data.size()`. The file is replaced
/// atomically (see writeFileAtomically): readers never see a partial file.
llvm::Error writeNpyF32(llvm::StringRef path, llvm::ArrayRef<int64_t> shape,
                        llvm::ArrayRef<float> data);

} // namespace atmoe

#endif // ATMOE_SUPPORT_NPY_H
