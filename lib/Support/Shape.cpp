//===- Shape.cpp - Tensor shapes in messages ------------------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Support/Shape.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

std::string atmoe::formatShape(llvm::ArrayRef<int64_t> shape) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << '[';
  llvm::interleave(shape, os, ", ");
  os << ']';
  return text;
}
