//===- atmoe-compile.cpp - model package to binary --------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// atmoe-compile MODEL_DIR [--target=...] [--emit=mlir|linalg|llvm|obj|so]
//               -o OUT
// The logic lives in lib/Driver; this file only parses the command line.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Driver/Driver.h"
#include "atmoe/InitAllDialects.h"
#include "atmoe/InitAllPasses.h"

#include "atmoe/Support/CommandLine.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"

#include "mlir/IR/Diagnostics.h"

namespace cl = llvm::cl;

static cl::OptionCategory compileCategory("atmoe-compile options");

static cl::opt<std::string> input(cl::Positional, cl::Required,
                                  cl::desc("<model package directory, "
                                           "model.json or .mlir file>"),
                                  cl::cat(compileCategory));
static cl::opt<std::string> output("o", cl::Required, cl::cat(compileCategory),
                                   cl::desc("Output file ('-' for stdout, "
                                            "text stages only)"),
                                   cl::value_desc("file"));
static cl::opt<std::string>
    emit("emit", cl::init("so"),
         cl::desc("Stage to stop at: mlir, linalg, llvm, obj or so"),
         cl::cat(compileCategory));
static cl::opt<std::string>
    target("target", cl::init("host"),
           cl::desc("NAME[:CHIP] of a registered target: host, x86-64, "
                    "x86-64-v2..v4, nvptx:sm_80, nvptx:sm_90, ..., "
                    "amdgpu:gfx942, ... (docs/targets.md; an unknown one "
                    "lists them all)"),
           cl::cat(compileCategory));
static cl::opt<std::string> cpuSchedule(
    "cpu-schedule", cl::init(""),
    cl::desc("Transform script (entry @__transform_main) to tile the "
             "matmuls with instead of the built-in CPU schedule"),
    cl::value_desc("file"), cl::cat(compileCategory));
static cl::opt<bool> int8Activations(
    "int8-activations", cl::init(false),
    cl::desc("GPTQ bases: with fewer than 8 tokens, round each block of "
             "activations to int8 and multiply with VNNI integer dot "
             "products (opt-in, not exact: error bound in docs/Numerics.md; "
             "the CPU must have VNNI)"),
    cl::cat(compileCategory));
static cl::opt<mlir::atmoe::SequenceMergePolicy> sequenceMerge(
    "sequence-merge", cl::init(mlir::atmoe::SequenceMergePolicy::Auto),
    cl::desc("Sequence granularity: when to merge a segment's experts into "
             "the base weight"),
    cl::values(clEnumValN(mlir::atmoe::SequenceMergePolicy::Auto, "auto",
                          "the cost model decides (default)"),
               clEnumValN(mlir::atmoe::SequenceMergePolicy::Merge, "merge",
                          "every non-empty segment"),
               clEnumValN(mlir::atmoe::SequenceMergePolicy::Unmerged,
                          "unmerged", "never")),
    cl::cat(compileCategory));

static cl::opt<std::string>
    parallel("parallel", cl::init("none"),
             cl::desc("Split every layer over MPI processes: none (default), "
                      "tensor:N or expert:N (docs/Distributed.md); run with "
                      "mpiexec -n N"),
             cl::value_desc("none|tensor:N|expert:N"),
             cl::cat(compileCategory));

struct ParallelChoice {
  int64_t ranks = 1;
  mlir::atmoe::ParallelStrategy strategy =
      mlir::atmoe::ParallelStrategy::Tensor;
};

/// What --parallel asks for, or nothing if it is malformed.
static std::optional<ParallelChoice> parseParallel(llvm::StringRef spelling) {
  ParallelChoice choice;
  if (spelling == "none")
    return choice;
  if (spelling.consume_front("expert:"))
    choice.strategy = mlir::atmoe::ParallelStrategy::Expert;
  else if (!spelling.consume_front("tensor:"))
    return std::nullopt;
  if (spelling.getAsInteger(10, choice.ranks) || choice.ranks < 2)
    return std::nullopt;
  return choice;
}

static cl::opt<bool> allowUnusedAdapterTensors(
    "allow-unused-adapter-tensors",
    cl::desc("Warn instead of failing when a PEFT adapter has tensors no "
             "projection of the model uses"),
    cl::cat(compileCategory));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  mlir::atmoe::setAtmoeBugReportMessage();
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerPassManagerCLOptions();
  mlir::registerDefaultTimingManagerCLOptions();
  mlir::atmoe::hideUnrelatedOptions(compileCategory);
  // llvm::cl would exit(1) on a bad command line by itself.
  if (!cl::ParseCommandLineOptions(
          argc, argv,
          std::string("atmoe compiler: model package to binary\n\n") +
              atmoe_rt::kExitCodeHelp,
          &llvm::errs()))
    return atmoe_rt::exitCode(atmoe_rt::Fault::Usage);

  std::optional<mlir::atmoe::EmitStage> stage =
      mlir::atmoe::parseEmitStage(emit);
  if (!stage) {
    llvm::errs() << "atmoe-compile: error: unknown --emit=" << emit
                 << " (expected mlir, linalg, llvm, obj or so)\n";
    return atmoe_rt::exitCode(atmoe_rt::Fault::Usage);
  }

  std::optional<ParallelChoice> split = parseParallel(parallel);
  if (!split) {
    llvm::errs() << "atmoe-compile: error: --parallel=" << parallel
                 << ": expected none, tensor:N or expert:N with N >= 2\n";
    return atmoe_rt::exitCode(atmoe_rt::Fault::Usage);
  }

  mlir::DialectRegistry registry;
  mlir::atmoe::registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  context.loadAllAvailableDialects();
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);

  mlir::atmoe::CompileOptions options;
  options.input = input;
  options.output = output;
  options.emit = *stage;
  options.target = target;
  options.cpuSchedule = cpuSchedule;
  options.int8Activations = int8Activations;
  options.sequenceMerge = sequenceMerge;
  options.parallelRanks = split->ranks;
  options.parallelStrategy = split->strategy;
  options.import.allowUnusedAdapterTensors = allowUnusedAdapterTensors;
  options.configurePassManager = [](mlir::PassManager &pm) {
    if (mlir::failed(mlir::applyPassManagerCLOptions(pm)))
      return mlir::failure();
    mlir::applyDefaultTimingPassManagerCLOptions(pm);
    return mlir::success();
  };
  mlir::atmoe::FaultOr<> result = mlir::atmoe::compile(context, options);
  return result ? atmoe_rt::kExitSuccess
                : atmoe_rt::exitCode(result.getFault());
}
