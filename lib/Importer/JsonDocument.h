//===- JsonDocument.h - JSON files with source positions -------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The importer's view of a JSON file (model.json, adapter_config.json):
// llvm::json values plus, for every value, its JSON path and its position in
// the text, so that errors and op locations can say
// `model.json:12:5: layers[0].projections[1].experts.icd.rank`.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_LIB_IMPORTER_JSONDOCUMENT_H
#define ATMOE_LIB_IMPORTER_JSONDOCUMENT_H

#include "atmoe_rt/support/JsonPath.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mlir::atmoe::importer {

namespace json = llvm::json;

/// `parent.key`, or `parent["key"]` when the key is not a plain identifier, so
/// that a path always reads back unambiguously (the runtime's messages spell
/// JSON paths the same way).
inline std::string childPath(llvm::StringRef parent, llvm::StringRef key) {
  return atmoe_rt::jsonChildPath(parent, key);
}

/// `parent[index]`.
inline std::string elementPath(llvm::StringRef parent, size_t index) {
  return atmoe_rt::jsonElementPath(parent, index);
}

class JsonScanner;

/// A parsed JSON file that also knows where each value is in the text (for
/// line:column in errors and op locations), the source order of object keys
/// (llvm::json::Object is a hash map, but errors and the IR should follow the
/// file) and rejects duplicate keys (llvm::json silently keeps the last one).
class JsonDocument {
public:
  explicit JsonDocument(std::string displayPath)
      : displayPath(std::move(displayPath)) {}

  /// Reads and parses the file. A failure is one error diagnostic, at
  /// `file:line:col` where the text has a position, else naming the file.
  LogicalResult load(MLIRContext &context);

  llvm::StringRef path() const { return displayPath; }
  const json::Value &root() const { return rootValue; }

  /// Line and column (1-based) of the value at `jsonPath`; (0, 0) when
  /// unknown.
  std::pair<unsigned, unsigned> lineCol(llvm::StringRef jsonPath) const {
    auto it = spans.find(jsonPath);
    if (it == spans.end())
      return {0, 0};
    return lineColOf(it->second.first);
  }

  /// The text of the value at `jsonPath` as written (empty when unknown).
  llvm::StringRef sourceText(llvm::StringRef jsonPath) const {
    auto it = spans.find(jsonPath);
    if (it == spans.end())
      return {};
    return text.slice(it->second.first, it->second.second);
  }

  /// The keys of the object at `jsonPath`, in source order.
  std::vector<std::string> keys(llvm::StringRef jsonPath,
                                const json::Object &object) const {
    auto it = objectKeys.find(jsonPath);
    if (it != objectKeys.end())
      return it->second;
    // Not scanned (cannot happen for a file that parsed): sorted order keeps
    // the result deterministic.
    std::vector<std::string> result;
    for (const auto &entry : object)
      result.push_back(entry.first.str());
    llvm::sort(result);
    return result;
  }

private:
  friend class JsonScanner;

  LogicalResult readText(MLIRContext &context);
  LogicalResult parseText(MLIRContext &context);

  std::pair<unsigned, unsigned> lineColOf(size_t offset) const {
    auto next = llvm::upper_bound(lineStarts, offset);
    size_t line = static_cast<size_t>(next - lineStarts.begin());
    return {static_cast<unsigned>(line),
            static_cast<unsigned>(offset - lineStarts[line - 1] + 1)};
  }

  std::string displayPath;
  std::unique_ptr<llvm::MemoryBuffer> buffer;
  llvm::StringRef text;
  json::Value rootValue = nullptr;
  /// [begin, end) offsets of every value, by JSON path.
  llvm::StringMap<std::pair<size_t, size_t>> spans;
  llvm::StringMap<std::vector<std::string>> objectKeys;
  std::vector<size_t> lineStarts;
};

/// A value of a JSON document with its path.
struct JsonNode {
  const JsonDocument *doc = nullptr;
  const json::Value *value = nullptr;
  std::string path;

  bool isNull() const { return value->kind() == json::Value::Null; }
  JsonNode child(llvm::StringRef key, const json::Value &v) const {
    return {doc, &v, childPath(path, key)};
  }
  JsonNode element(size_t index, const json::Value &v) const {
    return {doc, &v, elementPath(path, index)};
  }
};

/// How a value looks in the file, for "found ..." in errors: its source text
/// for scalars (so `1e999` reads as written), "an array" or "an object".
std::string describe(const JsonNode &node);

} // namespace mlir::atmoe::importer

#endif // ATMOE_LIB_IMPORTER_JSONDOCUMENT_H
