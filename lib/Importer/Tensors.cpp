//===- Tensors.cpp - Tensors in the package's safetensors files -----------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Every tensor the IR names must exist in exactly one of the package's
// weight files, with a float dtype and exactly the shape model.json implies.
// Errors are located at the model.json value that needs the tensor and name
// the file and the tensor.
//
//===----------------------------------------------------------------------===//

#include "ImporterInternals.h"

#include "atmoe_rt/support/Text.h"

using namespace mlir;
using namespace mlir::atmoe;
using namespace mlir::atmoe::importer;
using atmoe_rt::DType;
using atmoe_rt::formatShape;

LogicalResult
importer::checkTensor(ImportContext &ctx, Location loc, const WeightFile &file,
                      const atmoe_rt::TensorInfo &info, ArrayRef<int64_t> shape,
                      StringRef shapeWhat, ArrayRef<DType> dtypes) {
  if (!llvm::is_contained(dtypes, info.dtype)) {
    std::vector<std::string> names;
    for (DType dtype : dtypes)
      names.emplace_back(atmoe_rt::dtypeName(dtype));
    std::string expected = names.back();
    if (names.size() > 1)
      expected =
          llvm::join(ArrayRef(names).drop_back(), ", ") + " or " + expected;
    return ctx.fail(loc, file.display + ": tensor " + quoted(info.name) +
                             ": expected dtype " + expected + ", found " +
                             std::string(atmoe_rt::dtypeName(info.dtype)));
  }
  if (ArrayRef<int64_t>(info.shape) != shape)
    return ctx.fail(loc, file.display + ": tensor " + quoted(info.name) +
                             ": expected shape " + formatShape(shape) + " (" +
                             shapeWhat + "), found " + formatShape(info.shape));
  return success();
}

LogicalResult importer::findTensor(ImportContext &ctx, StringRef name,
                                   StringRef userPath, ArrayRef<int64_t> shape,
                                   StringRef shapeWhat, TensorArg &arg,
                                   bool optional, bool *found,
                                   ArrayRef<DType> dtypes) {
  const WeightFile *owner = nullptr;
  const atmoe_rt::TensorInfo *info = nullptr;
  for (const WeightFile &file : ctx.weightFiles) {
    const atmoe_rt::TensorInfo *candidate = file.file->lookup(name);
    if (!candidate)
      continue;
    if (owner)
      return ctx.failAtModel(userPath, "tensor " + quoted(name) +
                                           " is in both " + owner->relative +
                                           " and " + file.relative);
    owner = &file;
    info = candidate;
  }
  if (found)
    *found = owner != nullptr;
  if (!owner) {
    if (optional)
      return success();
    std::string files = atmoe_rt::joinComma(
        ctx.weightFiles, [](const WeightFile &file) { return file.relative; });
    return ctx.failAtModel(userPath,
                           "tensor " + quoted(name) + " not found in " + files);
  }
  if (failed(checkTensor(ctx, ctx.modelLoc(userPath), *owner, *info, shape,
                         shapeWhat, dtypes)))
    return failure();
  arg = {name.str(), owner->relative, name.str(),
         SmallVector<int64_t, 2>(shape), info->dtype};
  return success();
}
