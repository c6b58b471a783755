//===- Text.h - Values in messages ------------------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// How shapes and lists read in every message of the compiler and the runtime
// ("expected shape [4, 4096], found [4096, 4]").
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_TEXT_H
#define ATMOE_RT_SUPPORT_TEXT_H

#include <string>

namespace atmoe_rt {

/// "a, b, c" of the elements of `range`, each converted by `toString`.
template <typename Range, typename ToString>
std::string joinComma(const Range &range, ToString toString) {
  std::string text;
  bool first = true;
  for (const auto &element : range) {
    if (!first)
      text += ", ";
    first = false;
    text += toString(element);
  }
  return text;
}

/// A shape for messages: "[4, 4096]"; any range of integers.
template <typename Range>
std::string formatShape(const Range &shape) {
  return "[" +
         joinComma(shape, [](const auto &dim) { return std::to_string(dim); }) +
         "]";
}

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_TEXT_H
