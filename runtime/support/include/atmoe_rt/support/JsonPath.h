//===- JsonPath.h - How messages name a JSON value --------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Every message about a JSON value (a manifest's, a model.json's) names it by
// its path, spelled one way in the runtime and the compiler:
// `layers[0].projections[1].experts.icd.rank`, `experts["my expert"]`.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_JSONPATH_H
#define ATMOE_RT_SUPPORT_JSONPATH_H

#include <cstddef>
#include <string>
#include <string_view>

namespace atmoe_rt {

/// `parent.key`, or `parent["key"]` when the key is not a plain identifier,
/// so that a path reads back unambiguously.
std::string jsonChildPath(std::string_view parent, std::string_view key);

/// `parent[index]`.
std::string jsonElementPath(std::string_view parent, size_t index);

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_JSONPATH_H
