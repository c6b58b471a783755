//===- ImporterFuzzer.cpp - Fuzz the model package importer -----*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The input is a model.json, optionally followed by a line "#adapter" and an
// adapter_config.json. Both are written into a package directory that
// already holds real weights: on start-up the target generates every preset
// of test/helpers/model_package.py into <root>/<preset>/ and copies one PEFT
// adapter's tensors to <root>/fuzz_adapter/. The seeds (test/fuzz/importer)
// are the test suite's model.json files with their paths rewritten to point
// there ("demo/weights.safetensors", "peft/adapters/icd", "fuzz_adapter"), so
// mutations reach the consistency checks between model.json and the tensors
// (names, dtypes, shapes, ranks, PEFT targets), not only the JSON schema.
//
// A fuzzed model.json can name any file through "..": the target does not
// prevent that, the importer must cope.
//
// Oracles beyond "no crash": the importer's checks must catch every package
// that would give IR that does not verify (an internal fault), a package it
// rejects gets exactly one diagnostic, and an import that succeeds must print
// and parse back to a verified module.
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.h"
#include "atmoe/Importer/ModelImporter.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>

using namespace atmoe_fuzz;

namespace {

constexpr llvm::StringLiteral kAdapterMarker = "\n#adapter\n";

const char *const kPresets[] = {
    "demo",        "minimal",      "hetero",          "softmax",
    "sigmoid",     "cosine",       "grouped_softmax", "sequence",
    "shared_only", "layer_shared", "plain",           "peft"};

/// Generates the weights of every preset once; returns the package root.
const std::string &packageRoot() {
  static std::string root = [] {
    std::string dir = scratchPath("package");
    for (const char *preset : kPresets) {
      std::string out = dir + "/" + preset;
      llvm::StringRef args[] = {
          "/usr/bin/python3", ATMOE_SOURCE_DIR "/test/helpers/model_package.py",
          "--preset", preset, out};
      std::string message;
      if (llvm::sys::ExecuteAndWait(args[0], args, std::nullopt, {}, 0, 0,
                                    &message) != 0)
        fail("model_package.py --preset " + std::string(preset) + " failed " +
             message);
    }
    std::string adapter = dir + "/fuzz_adapter";
    if (llvm::sys::fs::create_directories(adapter) ||
        llvm::sys::fs::copy_file(
            dir + "/peft/adapters/icd/adapter_model.safetensors",
            adapter + "/adapter_model.safetensors"))
      fail("cannot set up " + adapter);
    return dir;
  }();
  return root;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  (void)packageRoot();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string &root = packageRoot();
  static const std::string modelPath = root + "/model.json";
  static const std::string configPath =
      root + "/fuzz_adapter/adapter_config.json";
  static const std::string defaultConfigPath =
      root + "/peft/adapters/icd/adapter_config.json";

  llvm::StringRef input(reinterpret_cast<const char *>(data), size);
  auto [modelJson, config] = input.split(kAdapterMarker);
  writeInput(modelPath, modelJson.bytes_begin(), modelJson.size());
  if (config.empty() && !input.contains(kAdapterMarker)) {
    llvm::sys::fs::remove(configPath);
    if (llvm::sys::fs::copy_file(defaultConfigPath, configPath))
      fail("cannot copy " + defaultConfigPath);
  } else {
    writeInput(configPath, config.bytes_begin(), config.size());
  }

  // A fresh context per input: uniqued attributes and types would otherwise
  // pile up over millions of runs.
  mlir::MLIRContext context(mlir::MLIRContext::Threading::DISABLED);
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &diag) {
    diagnostics += diag.str() + "\n";
    return mlir::success();
  });

  mlir::atmoe::FaultOr<mlir::OwningOpRef<mlir::ModuleOp>> module =
      mlir::atmoe::importModelFile(context, modelPath);
  if (!module) {
    // A package error is fine; IR that the importer emitted and that does
    // not verify means one of its checks is missing.
    if (module.getFault() != mlir::atmoe::Fault::Input)
      fail("the importer failed on its own: " + diagnostics);
    // One problem, one diagnostic.
    if (diagnostics.empty() || diagnostics.find('\n') != diagnostics.size() - 1)
      fail("a failed import emitted other than one diagnostic: " + diagnostics);
    return 0;
  }
  if (!diagnostics.empty())
    fail("a successful import emitted diagnostics: " + diagnostics);

  std::string text;
  llvm::raw_string_ostream os(text);
  (*module)->print(os);
  mlir::OwningOpRef<mlir::ModuleOp> reparsed =
      mlir::parseSourceString<mlir::ModuleOp>(text, &context);
  if (!reparsed || mlir::failed(mlir::verify(*reparsed)))
    fail("the imported module does not parse back: " + diagnostics + "\n" +
         text);
  return 0;
}
