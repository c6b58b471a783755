//===- DialectFuzzer.cpp - Fuzz the atmoe dialect's IR handling -*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The input is textual MLIR. It goes through what atmoe-opt --canonicalize
// does to it: parse (the atmoe custom assembly formats and attribute
// parsers), verify (every op, attribute and symbol verifier), canonicalize
// (folders and patterns) and print. Two oracles beyond "no crash":
//
//  - canonicalization of verified IR must succeed and leave verified IR
//    (the pass manager verifies after the pass);
//  - the printed result must parse back (custom printers and parsers agree).
//
// Only the dialects atmoe IR is made of are registered (atmoe, func, arith,
// tensor), so the fuzzer spends its time on atmoe's code rather than on the
// rest of upstream MLIR, which is not instrumented here anyway.
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"

#include "atmoe/Dialect/Atmoe/IR/AtmoeDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>

using namespace atmoe_fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::atmoe::AtmoeDialect, mlir::arith::ArithDialect,
                  mlir::func::FuncDialect, mlir::tensor::TensorDialect>();
  // A fresh context per input: uniqued attributes and types would otherwise
  // pile up over millions of runs.
  mlir::MLIRContext context(registry, mlir::MLIRContext::Threading::DISABLED);
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &diag) {
    diagnostics += diag.str() + "\n";
    return mlir::success();
  });

  // MLIR's lexer finds the end of its input by the null terminator that
  // MemoryBuffer provides (and parseSourceString assumes); libFuzzer's data
  // has none.
  std::string text(reinterpret_cast<const char *>(data), size);
  mlir::ParserConfig config(&context);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(text, config);
  if (!module || mlir::failed(mlir::verify(*module)))
    return 0;

  mlir::PassManager pm(&context);
  pm.addPass(mlir::createCanonicalizerPass());
  if (mlir::failed(pm.run(*module)))
    fail("canonicalize failed on verified IR: " + diagnostics);

  std::string printed;
  llvm::raw_string_ostream os(printed);
  (*module)->print(os);
  mlir::OwningOpRef<mlir::ModuleOp> reparsed =
      mlir::parseSourceString<mlir::ModuleOp>(printed, config);
  if (!reparsed || mlir::failed(mlir::verify(*reparsed)))
    fail("the canonicalized module does not parse back: " + diagnostics + "\n" +
         printed);
  return 0;
}
