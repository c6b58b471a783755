//===- ModelImporter.h - model package to atmoe IR --------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Turns a model package (SPEC section 3: model.json, safetensors weights and
// PEFT adapter directories) into the module described in docs/ModelABI.md.
//
// The importer validates the whole package before it returns a module: every
// JSON value it reads, every tensor the IR names (existence, float dtype and
// exactly the shape model.json implies) and the emitted IR (mlir::verify).
// Weights are never read into the IR: functions take them as arguments whose
// `atmoe.file` / `atmoe.source` attributes say where the runtime finds them.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_IMPORTER_MODELIMPORTER_H
#define ATMOE_IMPORTER_MODELIMPORTER_H

#include "atmoe/Support/FaultOr.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"

namespace mlir {
class MLIRContext;

namespace atmoe {

/// What the importer may let through with a warning instead of an error.
struct ImportOptions {
  /// Tensors of a PEFT adapter that no projection of the model uses (an
  /// adapter trained on more modules than the package compiles).
  bool allowUnusedAdapterTensors = false;
};

/// Reads MODEL_DIR/model.json and its weight files and returns the module of
/// docs/ModelABI.md. Loads the atmoe and func dialects into `context`.
///
/// A problem with the package is one error diagnostic, located at the JSON
/// value it is about (`model.json:24:15`, or in an adapter_config.json) and
/// saying the JSON path (e.g. `layers[0].projections[1].experts.icd.rank`),
/// the file and tensor, and what was expected versus what was found; the
/// failure is then the input's fault. IR that does not verify is the
/// importer's own fault (a check of the package is missing).
FaultOr<OwningOpRef<ModuleOp>>
importModelPackage(MLIRContext &context, llvm::StringRef modelDir,
                   const ImportOptions &options = {});

/// As importModelPackage, for a model description at `modelJsonPath` (which
/// need not be called model.json); the package directory is its parent.
FaultOr<OwningOpRef<ModuleOp>>
importModelFile(MLIRContext &context, llvm::StringRef modelJsonPath,
                const ImportOptions &options = {});

} // namespace atmoe
} // namespace mlir

#endif // ATMOE_IMPORTER_MODELIMPORTER_H
