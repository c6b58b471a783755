//===- CommandLine.cpp - Command-line helpers for the tools ---------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Support/CommandLine.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/PrettyStackTrace.h"

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

void mlir::atmoe::setAtmoeBugReportMessage() {
  llvm::setBugReportMsg(
      "PLEASE report this crash of an atmoe tool to the atmoe project (see "
      "README.md, \"Reporting problems\"), with the command line below, its "
      "input files and the stack dump.\n");
}
