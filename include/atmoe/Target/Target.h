//===- Target.h - compilation targets and their registry --------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A target is everything atmoe-compile needs to know about one kind of
// hardware after the target-independent part (import, fusion, fused linalg on
// tensors): the pipeline down to the LLVM dialect, the CPU the host code runs
// on, what the produced shared object links against and which device the
// runtime must drive. `--target=NAME[:CHIP]` is looked up in one registry;
// docs/targets.md walks through adding one.
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_TARGET_TARGET_H
#define ATMOE_TARGET_TARGET_H

#include "atmoe_rt/support/Manifest.h"

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>

namespace mlir {
class OpPassManager;
} // namespace mlir

namespace mlir::atmoe {

/// Code generation settings that come from the command line rather than
/// from the target.
struct CodegenOptions {
  /// A transform script replacing the built-in CPU schedule ("" = built-in).
  std::string cpuSchedule;
  /// GPTQ products of few tokens on int8-rounded activations with VNNI dot
  /// products (--int8-activations; CPU targets with VNNI only).
  bool int8Activations = false;
};

/// The CPU the host code is compiled for: LLVM's CPU name and features.
struct HostCPU {
  std::string name;
  std::string features;
};

class Target {
public:
  virtual ~Target();

  /// NAME in `--target=NAME[:CHIP]`.
  virtual llvm::StringRef getName() const = 0;
  /// One line for --help and docs.
  virtual llvm::StringRef getDescription() const = 0;
  /// The chips CHIP may name; the first is the default. Empty when the target
  /// takes no chip.
  virtual llvm::ArrayRef<llvm::StringRef> getChips() const = 0;
  /// Spellings that select this target with one of its chips without a
  /// NAME: (`--target=x86-64-v3`). Each must also be a chip.
  virtual llvm::ArrayRef<llvm::StringRef> getAliases() const { return {}; }
  /// What executes the kernels: the manifest's "device", by which the
  /// runtime picks its device support.
  virtual atmoe_rt::Device getDevice() const = 0;

  /// Rejects options the target cannot honour with `chip` (a usage error).
  virtual llvm::Error checkOptions(llvm::StringRef chip,
                                   const CodegenOptions &options) const;
  /// Adds the passes from fused linalg on tensors (the output of
  /// --atmoe-lower-to-linalg-pipeline) to the LLVM dialect: host functions
  /// with the layer ABI, device code (if any) embedded as gpu.binary.
  virtual void buildCodegenPipeline(OpPassManager &pm, llvm::StringRef chip,
                                    const CodegenOptions &options) const = 0;
  /// Output features per panel in which GPTQ qweights are repacked at bind
  /// time for this target's kernels (atmoe-pack-weight-panels); 0: the
  /// kernels read the stored layout.
  virtual int64_t getWeightPanelWidth(const CodegenOptions &) const {
    return 0;
  }
  /// The CPU the host code targets; the machine compiling by default.
  virtual HostCPU getHostCPU(llvm::StringRef chip) const;
  /// Libraries (-l names) the shared object links against.
  virtual llvm::SmallVector<std::string> getLinkLibraries() const {
    return {"m"};
  }
};

/// A target with the chip `--target` chose.
struct TargetSelection {
  const Target *target = nullptr;
  std::string chip;
  /// NAME[:CHIP] as the manifest and messages spell it.
  std::string getSpelling() const;
};

/// Adds a target; its name and aliases must be new. Not thread-safe: call it
/// at start-up (registerAllTargets does).
void registerTarget(std::unique_ptr<Target> target);

/// Registers the targets this build has: cpu, nvptx, amdgpu.
void registerAllTargets();

/// Parses `NAME[:CHIP]` or an alias. The error lists what is accepted.
llvm::Expected<TargetSelection> lookupTarget(llvm::StringRef spec);

/// Every registered target, in registration order.
llvm::SmallVector<const Target *> getRegisteredTargets();

/// "host, x86-64, ..., nvptx:sm_90, ..." for --help.
std::string describeTargets();

} // namespace mlir::atmoe

#endif // ATMOE_TARGET_TARGET_H
