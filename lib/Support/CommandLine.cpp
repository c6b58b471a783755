//===- CommandLine.cpp - Command-line helpers for the tools ---------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Support/CommandLine.h"

#include "llvm/ADT/StringMap.h"

namespace cl = llvm::cl;

void mlir::atmoe::hideUnrelatedOptions(cl::OptionCategory &category) {
  // HideUnrelatedOptions hides the MLIR options too: remember how visible
  // each of them was and restore it afterwards.
  llvm::StringMap<cl::OptionHidden> mlirOptions;
  for (auto &[name, option] : cl::getRegisteredOptions())
    if (name.starts_with("mlir-"))
      mlirOptions[name] = option->getOptionHiddenFlag();
  cl::HideUnrelatedOptions(category);
  for (auto &[name, option] : cl::getRegisteredOptions())
    if (auto it = mlirOptions.find(name); it != mlirOptions.end())
      option->setHiddenFlag(it->second);
}
