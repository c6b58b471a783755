//===- Names.h - Names that may become file names ---------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Projection, expert and group names come from model packages, which are
// untrusted input, and projection names become file names (atmoe-run writes
// DIR/{projection}.npy). A plain name cannot leave its directory, cannot
// collide with another as a path ("q" and "./q"), and prints on one line.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_NAMES_H
#define ATMOE_RT_SUPPORT_NAMES_H

#include <cstddef>
#include <string>
#include <string_view>

namespace atmoe_rt {

/// The longest plain name, in bytes.
constexpr size_t kMaxPlainNameLength = 128;

/// What makes `name` not a plain name, or "" if it is one: a plain name is 1
/// to kMaxPlainNameLength ASCII letters, digits, '_', '.' and '-', and is
/// not "." or "..".
std::string plainNameProblem(std::string_view name);

/// Whether `path` is a relative path (of a package's file): not empty, not
/// absolute, no control character.
bool isPackageRelative(std::string_view path);

/// `name` for a message: printable ASCII as is, other bytes as \xNN.
std::string escapeName(std::string_view name);

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_NAMES_H
