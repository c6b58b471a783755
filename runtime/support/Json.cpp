//===- Json.cpp - Strict JSON parsing for the runtime's formats -----------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe_rt/support/Json.h"

#include <cctype>
#include <limits>
#include <vector>

using namespace atmoe_rt;

namespace {

/// Builds the DOM from nlohmann's SAX events (as its own DOM parser does),
/// stopping at a repeated key or at nesting beyond kMaxJsonDepth.
class StrictDomBuilder {
public:
  Json root;
  std::string error;

  bool null() { return add(nullptr); }
  bool boolean(bool value) { return add(value); }
  bool number_integer(Json::number_integer_t value) { return add(value); }
  bool number_unsigned(Json::number_unsigned_t value) { return add(value); }
  bool number_float(Json::number_float_t value, const std::string &) {
    return add(value);
  }
  bool string(std::string &value) { return add(std::move(value)); }
  bool binary(Json::binary_t &) { return add(nullptr); }

  bool start_object(size_t) { return open(Json::value_t::object); }
  bool start_array(size_t) { return open(Json::value_t::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(std::string &key) {
    Json &object = *stack.back();
    if (object.contains(key)) {
      error = "duplicate key '" + key + "' in " + currentPath() +
              " (a key may appear once per object)";
      return false;
    }
    pendingKey = key;
    return true;
  }

  bool parse_error(size_t position, const std::string &,
                   const nlohmann::detail::exception &exception) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2:
    // syntax error ..." without the library's tag.
    std::string_view what = exception.what();
    if (size_t close = what.find("] "); close != std::string_view::npos)
      what.remove_prefix(close + 2);
    error = "byte " + std::to_string(position) + ": " + std::string(what);
    return false;
  }

private:
  /// Places `value` in the innermost open container (or as the root).
  Json *place(Json value) {
    if (stack.empty()) {
      root = std::move(value);
      return &root;
    }
    Json &parent = *stack.back();
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    Json &slot = parent[pendingKey];
    slot = std::move(value);
    return &slot;
  }
  bool add(Json value) {
    place(std::move(value));
    return true;
  }
  bool open(Json::value_t kind) {
    if (stack.size() >= kMaxJsonDepth) {
      error = "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
      return false;
    }
    std::string key = !stack.empty() && stack.back()->is_object()
                          ? pendingKey
                          : std::string();
    stack.push_back(place(Json(kind)));
    keys.push_back(std::move(key));
    return true;
  }
  bool close() {
    stack.pop_back();
    keys.pop_back();
    return true;
  }

  /// The JSON path of the innermost open container, for messages.
  std::string currentPath() const {
    std::string path;
    for (size_t i = 1; i < stack.size(); ++i)
      path = stack[i - 1]->is_array()
                 ? jsonElementPath(path, stack[i - 1]->size() - 1)
                 : jsonChildPath(path, keys[i]);
    return path.empty() ? "the top-level object" : path;
  }

  std::vector<Json *> stack;
  /// keys[i]: the key stack[i] has in its parent object ("" in an array).
  std::vector<std::string> keys;
  std::string pendingKey;
};

} // namespace

Result<Json> atmoe_rt::parseJson(std::string_view text) {
  // nlohmann::json takes a NUL byte for the end of the input; JSON allows
  // none (even inside strings it must be escaped).
  if (size_t nul = text.find('\0'); nul != std::string_view::npos)
    return fail("byte " + std::to_string(nul) + ": a NUL character");
  StrictDomBuilder builder;
  if (!Json::sax_parse(text, &builder))
    return fail(builder.error);
  return std::move(builder.root);
}

std::string atmoe_rt::describeJson(const Json &value, size_t maxLength) {
  std::string text = value.dump();
  if (text.size() <= maxLength)
    return text;
  return text.substr(0, maxLength - 3) + "...";
}

std::optional<int64_t> atmoe_rt::jsonInteger(const Json &value) {
  if (value.is_number_integer() && !value.is_number_unsigned())
    return value.get<int64_t>();
  if (value.is_number_unsigned() &&
      value.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()))
    return int64_t(value.get<uint64_t>());
  return std::nullopt;
}

std::string atmoe_rt::jsonChildPath(std::string_view parent,
                                    std::string_view key) {
  bool plain = !key.empty();
  for (char c : key)
    plain &=
        std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  std::string path(parent);
  if (plain) {
    if (!path.empty())
      path += '.';
    return path + std::string(key);
  }
  path += "[\"";
  for (char c : key) {
    if (c == '"' || c == '\\')
      path += '\\';
    path += c;
  }
  return path + "\"]";
}

std::string atmoe_rt::jsonElementPath(std::string_view parent, size_t index) {
  return std::string(parent) + "[" + std::to_string(index) + "]";
}

namespace {

std::string atPath(const std::string &path) {
  return path.empty() ? "(root)" : path;
}

std::string objectDifference(const Json &before, const Json &after,
                             const std::string &path) {
  for (const auto &[key, value] : before.items()) {
    std::string child = jsonChildPath(path, key);
    auto other = after.find(key);
    if (other == after.end())
      return child + " was " + describeJson(value) + ", is now absent";
    if (std::string difference = jsonDifference(value, *other, child);
        !difference.empty())
      return difference;
  }
  for (const auto &[key, value] : after.items())
    if (!before.contains(key))
      return jsonChildPath(path, key) + " is new (" + describeJson(value) + ")";
  return "";
}

std::string arrayDifference(const Json &before, const Json &after,
                            const std::string &path) {
  for (size_t i = 0; i < before.size() && i < after.size(); ++i)
    if (std::string difference =
            jsonDifference(before[i], after[i], jsonElementPath(path, i));
        !difference.empty())
      return difference;
  if (before.size() == after.size())
    return "";
  return atPath(path) + " had " + std::to_string(before.size()) +
         " elements, now has " + std::to_string(after.size());
}

} // namespace

std::string atmoe_rt::jsonDifference(const Json &before, const Json &after,
                                     const std::string &path) {
  if (before.is_object() && after.is_object())
    return objectDifference(before, after, path);
  if (before.is_array() && after.is_array())
    return arrayDifference(before, after, path);
  if (before == after)
    return "";
  return atPath(path) + " was " + describeJson(before) + ", is now " +
         describeJson(after);
}
