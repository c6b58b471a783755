//===- ModelImporter.cpp - model package to atmoe IR ----------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The entry points: parse and resolve model.json (ModelSchema.cpp, Peft.cpp,
// Resolve.cpp), emit each layer (Emit.cpp, Tensors.cpp), verify the module.
// Errors are reported one problem at a time, as diagnostics.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Importer/ModelImporter.h"

#include "ImporterInternals.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::importer;

FaultOr<OwningOpRef<ModuleOp>>
mlir::atmoe::importModelFile(MLIRContext &context, StringRef modelJsonPath,
                             const ImportOptions &options) {
  context.loadDialect<AtmoeDialect, func::FuncDialect>();
  ImportContext ctx(context, modelJsonPath);
  if (failed(parseModel(ctx)))
    return Fault::Input;

  OpBuilder builder(&context);
  OwningOpRef<ModuleOp> module = ModuleOp::create(ctx.modelLoc(""));
  llvm::SmallString<256> absolute(ctx.packageDir);
  (void)llvm::sys::fs::make_absolute(absolute);
  llvm::sys::path::remove_dots(absolute, /*remove_dot_dot=*/true);
  (*module)->setAttr(AtmoeDialect::kModelAttrName,
                     builder.getStringAttr(ctx.modelName));
  (*module)->setAttr(AtmoeDialect::kPackageAttrName,
                     builder.getStringAttr(absolute));
  SmallVector<NamedAttribute> sources;
  for (const auto &[path, text] : ctx.sources)
    sources.push_back(builder.getNamedAttr(path, builder.getStringAttr(text)));
  (*module)->setAttr(AtmoeDialect::kSourcesAttrName,
                     builder.getDictionaryAttr(sources));
  builder.setInsertionPointToEnd(module->getBody());
  for (LayerDef &layer : ctx.layers)
    if (failed(emitLayer(ctx, builder, layer)))
      return Fault::Input;
  if (failed(checkUnusedPeftTensors(ctx, options)))
    return Fault::Input;

  // The checks above should make this unreachable; if they missed a case,
  // the verifier's diagnostics still point at the JSON (the ops' locations).
  if (failed(verify(*module))) {
    emitError(ctx.modelLoc(""))
        << "internal error: the imported IR does not verify (a check of the "
           "package is missing in the importer)";
    return Fault::Internal;
  }
  return module;
}

FaultOr<OwningOpRef<ModuleOp>>
mlir::atmoe::importModelPackage(MLIRContext &context, StringRef modelDir,
                                const ImportOptions &options) {
  return importModelFile(context, joinPath(modelDir, "model.json"), options);
}
