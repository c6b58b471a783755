//===- CommandLine.h - Command-line helpers for the tools -------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_SUPPORT_COMMANDLINE_H
#define ATMOE_SUPPORT_COMMANDLINE_H

#include "llvm/Support/CommandLine.h"

namespace mlir::atmoe {

/// Leaves in --help only the options of `category` and MLIR's own (--mlir-*,
/// e.g. --mlir-timing): the tools link every LLVM backend, whose hundreds of
/// options would bury theirs. The hidden options keep working.
void hideUnrelatedOptions(llvm::cl::OptionCategory &category);

/// Makes a crash ask the user to report it to atmoe, with the command line
/// and inputs, instead of to LLVM (whose message LLVM's handler would print).
void setAtmoeBugReportMessage();

} // namespace mlir::atmoe

#endif // ATMOE_SUPPORT_COMMANDLINE_H
