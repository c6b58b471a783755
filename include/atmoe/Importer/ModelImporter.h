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
// `atmoe.file` / `atmoe.source` attributes say where the runtime finds them,
// and the runtime converts f16/bf16 storage to f32 when it binds them.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_IMPORTER_MODELIMPORTER_H
#define ATMOE_IMPORTER_MODELIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

namespace mlir {
class MLIRContext;

namespace atmoe {

/// Reads MODEL_DIR/model.json and its weight files and returns the module of
/// docs/ModelABI.md. Loads the atmoe and func dialects into `context`.
///
/// On failure the error is one line: the file (with line:column for JSON
/// files), the JSON path (e.g. `layers[0].projections[1].experts.icd.rank`)
/// or the tensor name, and what was expected versus what was found.
llvm::Expected<OwningOpRef<ModuleOp>>
importModelPackage(MLIRContext &context, llvm::StringRef modelDir);

/// As importModelPackage, for a model description at `modelJsonPath` (which
/// need not be called model.json); the package directory is its parent.
llvm::Expected<OwningOpRef<ModuleOp>>
importModelFile(MLIRContext &context, llvm::StringRef modelJsonPath);

/// The error code (convertToErrorCode) of an import error that is the
/// importer's own fault: the IR it emitted does not verify, so one of its
/// checks of the package is missing. Every other error is the package's
/// fault; tools exit with their internal-error code for this one.
std::error_code importerInternalErrorCode();

} // namespace atmoe
} // namespace mlir

#endif // ATMOE_IMPORTER_MODELIMPORTER_H
