//===- Shape.h - Tensor shapes in messages ----------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_SUPPORT_SHAPE_H
#define ATMOE_SUPPORT_SHAPE_H

#include "llvm/ADT/ArrayRef.h"

#include <cstdint>
#include <string>

namespace atmoe {

/// A shape for messages: "[4, 4096]".
std::string formatShape(llvm::ArrayRef<int64_t> shape);

} // namespace atmoe

#endif // ATMOE_SUPPORT_SHAPE_H
