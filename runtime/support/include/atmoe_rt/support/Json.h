//===- Json.h - Strict JSON parsing for the runtime's formats ---*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The JSON the runtime reads (the compiled-model manifest, safetensors
// headers) goes through nlohmann::json with two rules added: a key may appear
// once per object (the library would keep the last one silently) and nesting
// is bounded (a hostile file of brackets must not exhaust memory). Callers
// read values through the checked accessors only (is_*() before get<>()):
// the code is built without exceptions, where nlohmann::json aborts instead
// of throwing.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_RT_SUPPORT_JSON_H
#define ATMOE_RT_SUPPORT_JSON_H

#include "atmoe_rt/support/JsonPath.h"
#include "atmoe_rt/support/Result.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace atmoe_rt {

using Json = nlohmann::json;

/// Nesting deeper than this is rejected before it is built.
constexpr unsigned kMaxJsonDepth = 64;

/// Parses `text` as one JSON value. Errors are one line saying what is wrong
/// and where: the byte offset of a syntax error, the JSON path of a repeated
/// key ("duplicate key 'a' in layers[0] ...") or of too deep a nesting.
Result<Json> parseJson(std::string_view text);

/// `value` as written in messages, cut to about `maxLength` characters.
std::string describeJson(const Json &value, size_t maxLength = 40);

/// `value` as an int64_t when it is an integer that fits.
std::optional<int64_t> jsonInteger(const Json &value);

/// Where `before` and `after` first differ ("router.temperature was 0.5, is
/// now 2"; a key or element only one has), or "" if they are equal
/// as JSON values (object keys in any order, 1 equal to 1.0). `path` is the
/// JSON path of the two values.
std::string jsonDifference(const Json &before, const Json &after,
                           const std::string &path = "");

} // namespace atmoe_rt

#endif // ATMOE_RT_SUPPORT_JSON_H
