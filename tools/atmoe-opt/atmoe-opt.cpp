//===- atmoe-opt.cpp - the atmoe optimizer driver ---------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/InitAllDialects.h"
#include "atmoe/InitAllPasses.h"
#include "atmoe/Support/CommandLine.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::atmoe::setAtmoeBugReportMessage();
  mlir::DialectRegistry registry;
  mlir::atmoe::registerAllDialects(registry);
  mlir::atmoe::registerAllPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "atmoe optimizer driver\n", registry));
}
