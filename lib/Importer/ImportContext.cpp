//===- ImportContext.cpp - Locations, errors and typed JSON access --------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "ImporterInternals.h"

#include "atmoe_rt/support/Names.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::importer;

std::string importer::joinPath(StringRef dir, StringRef relative) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, relative);
  return std::string(path);
}

std::string importer::quoted(StringRef text) {
  return ("'" + text + "'").str();
}

ImportContext::ImportContext(MLIRContext &context, StringRef modelJsonPath)
    : context(context), modelJsonPath(modelJsonPath.str()),
      packageDir(llvm::sys::path::parent_path(modelJsonPath).str()) {}

//===----------------------------------------------------------------------===//
// Locations and errors
//===----------------------------------------------------------------------===//

Location ImportContext::locOf(const JsonDocument &doc, StringRef path) {
  auto [line, col] = doc.lineCol(path);
  Location fileLoc = FileLineColLoc::get(&context, doc.path(), line, col);
  return NameLoc::get(StringAttr::get(&context, path.empty() ? "model" : path),
                      fileLoc);
}

LogicalResult ImportContext::failAt(const JsonDocument &doc, StringRef path,
                                    const Twine &message) {
  InFlightDiagnostic diag = emitError(locOf(doc, path));
  if (!path.empty())
    diag << path << ": ";
  diag << message;
  return failure();
}

LogicalResult ImportContext::openWeightFile(const JsonNode &node,
                                            std::string relative,
                                            WeightFile &file) {
  file.relative = std::move(relative);
  file.display = joinPath(packageDir, file.relative);
  auto opened = atmoe_rt::SafeTensorsFile::open(file.display);
  if (!opened)
    return fail(locOf(node), opened.error());
  file.file = std::move(*opened);
  return success();
}

//===----------------------------------------------------------------------===//
// Typed JSON access
//===----------------------------------------------------------------------===//

FailureOr<const json::Object *> ImportContext::asObject(const JsonNode &node) {
  if (const json::Object *object = node.value->getAsObject())
    return object;
  return failAt(node, "expected an object, found " + describe(node));
}

FailureOr<const json::Array *> ImportContext::asArray(const JsonNode &node) {
  if (const json::Array *array = node.value->getAsArray())
    return array;
  return failAt(node, "expected an array, found " + describe(node));
}

FailureOr<std::string> ImportContext::asString(const JsonNode &node) {
  std::optional<StringRef> text = node.value->getAsString();
  if (!text)
    return failAt(node, "expected a string, found " + describe(node));
  return text->str();
}

FailureOr<std::string> ImportContext::asName(const JsonNode &node) {
  FailureOr<std::string> text = asString(node);
  if (succeeded(text) && text->empty())
    return failAt(node, "expected a non-empty name, found \"\"");
  return text;
}

void ImportContext::recordSource(StringRef relativePath,
                                 const JsonDocument &doc) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << doc.root();
  llvm::SmallString<128> path(relativePath);
  llvm::sys::path::remove_dots(path, /*remove_dot_dot=*/false);
  sources[path.str().str()] = std::move(text);
}

FailureOr<std::string> ImportContext::asPlainName(const JsonNode &node,
                                                  StringRef what) {
  FailureOr<std::string> text = asString(node);
  if (failed(text) || failed(checkPlainName(node, what, *text)))
    return failure();
  return text;
}

LogicalResult ImportContext::checkPlainName(const JsonNode &node,
                                            StringRef what, StringRef name) {
  std::string problem = atmoe_rt::plainNameProblem(name);
  if (problem.empty())
    return success();
  return failAt(node, what + " " + quoted(atmoe_rt::escapeName(name)) + " " +
                          problem);
}

FailureOr<bool> ImportContext::asBool(const JsonNode &node) {
  if (std::optional<bool> flag = node.value->getAsBoolean())
    return *flag;
  return failAt(node, "expected true or false, found " + describe(node));
}

FailureOr<int64_t> ImportContext::asInteger(const JsonNode &node,
                                            int64_t minimum,
                                            StringRef expected) {
  std::optional<int64_t> number = node.value->getAsInteger();
  if (!number || *number < minimum)
    return failAt(node, "expected " + expected + ", found " + describe(node));
  return *number;
}

FailureOr<double> ImportContext::asFinite(const JsonNode &node) {
  std::optional<double> number = node.value->getAsNumber();
  if (!number || !std::isfinite(*number))
    return failAt(node, "expected a finite number, found " + describe(node));
  return *number;
}

FailureOr<double> ImportContext::asTemperature(const JsonNode &node) {
  FailureOr<double> tau = asFinite(node);
  if (succeeded(tau) && !(*tau > 0.0))
    return failAt(node, "expected a temperature > 0, found " + describe(node));
  return tau;
}

FailureOr<double> ImportContext::asLambda(const JsonNode &node) {
  FailureOr<double> lambda = asFinite(node);
  if (succeeded(lambda) && !(*lambda >= 0.0 && *lambda <= 1.0))
    return failAt(node, "expected lambda in [0, 1], found " + describe(node));
  return lambda;
}

FailureOr<std::string> ImportContext::asRelativePath(const JsonNode &node,
                                                     StringRef expected) {
  FailureOr<std::string> path = asName(node);
  if (failed(path))
    return failure();
  // Package files are named relative to the package so that a package can
  // be moved.
  if (llvm::sys::path::is_absolute(*path))
    return failAt(node, "expected " + expected +
                            " relative to the package, "
                            "found " +
                            describe(node));
  return path;
}

std::optional<JsonNode> ImportContext::member(const JsonNode &object,
                                              StringRef key) {
  const json::Value *value = object.value->getAsObject()->get(key);
  if (!value)
    return std::nullopt;
  return object.child(key, *value);
}

FailureOr<JsonNode> ImportContext::required(const JsonNode &object,
                                            StringRef key, StringRef why) {
  if (std::optional<JsonNode> node = member(object, key))
    return *node;
  return failAt(object, "missing required key " + quoted(key) + why);
}

FailureOr<JsonNode> ImportContext::requiredArray(const JsonNode &object,
                                                 StringRef key,
                                                 StringRef element) {
  FailureOr<JsonNode> node = required(object, key);
  if (failed(node) || failed(asArray(*node)))
    return failure();
  if (node->value->getAsArray()->empty())
    return failAt(*node, "expected at least " + element + ", found []");
  return node;
}

LogicalResult ImportContext::checkKeys(const JsonNode &object,
                                       ArrayRef<StringRef> allowed) {
  const json::Object &map = *object.value->getAsObject();
  for (const std::string &key : object.doc->keys(object.path, map)) {
    if (llvm::is_contained(allowed, key))
      continue;
    std::string list;
    llvm::raw_string_ostream os(list);
    llvm::interleave(
        allowed, os, [&](StringRef k) { os << k; }, ", ");
    return failAt(*object.doc, childPath(object.path, key),
                  "unknown key; expected one of " + list);
  }
  return success();
}

std::vector<std::pair<std::string, JsonNode>>
ImportContext::members(const JsonNode &object) {
  const json::Object &map = *object.value->getAsObject();
  std::vector<std::pair<std::string, JsonNode>> result;
  for (const std::string &key : object.doc->keys(object.path, map))
    if (const json::Value *value = map.get(key))
      result.emplace_back(key, object.child(key, *value));
  return result;
}
