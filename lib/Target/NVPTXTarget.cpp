//===- NVPTXTarget.cpp - NVIDIA GPUs through the nvvm dialect -------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

//
// What atmoe knows about NVIDIA hardware and tools: the chips, the PTX
// version each needs, where the CUDA toolkit is. The NVVM pipeline
// (lib/Pipelines) takes them as options; this target fills them in, for
// atmoe-compile and for atmoe-opt's --atmoe-nvvm-codegen-pipeline alike.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Target/Targets.h"

#include "atmoe/Pipelines/Pipelines.h"

#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/StringSwitch.h"

#include <cstdlib>

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// The PTX feature a chip needs at least (`+ptx78` for sm_90): the PTX ISA
/// version that introduced it (PTX ISA notes). LLVM's default PTX version is
/// too old for recent chips. CUDA 13 supports sm_75 and newer.
std::string defaultPTXFeatures(StringRef chip) {
  StringRef base = chip.take_while([](char c) { return c != 'a' && c != 'f'; });
  bool archSpecific = base.size() != chip.size();
  StringRef version = llvm::StringSwitch<StringRef>(base)
                          .Case("sm_75", "+ptx63")
                          .Case("sm_80", "+ptx70")
                          .Case("sm_86", "+ptx71")
                          .Case("sm_87", "+ptx74")
                          .Case("sm_89", "+ptx78")
                          .Case("sm_90", "+ptx78")
                          .Case("sm_100", "+ptx86")
                          .Case("sm_101", "+ptx86")
                          .Case("sm_103", "+ptx88")
                          .Case("sm_120", "+ptx87")
                          .Case("sm_121", "+ptx88")
                          .Default("+ptx80");
  // The architecture-specific variants (sm_90a, sm_100a, ...) came later.
  if (archSpecific && version < "+ptx80")
    return "+ptx80";
  return version.str();
}

/// CUDA_HOME, CUDA_ROOT or CUDA_PATH, as nvcc does, else the toolkit this
/// build was configured with.
std::string cudaToolkitPath() {
  for (const char *name : {"CUDA_HOME", "CUDA_ROOT", "CUDA_PATH"})
    if (const char *path = std::getenv(name); path && *path)
      return path;
  return ATMOE_CUDA_TOOLKIT_DIR;
}

/// The pipeline, with the chip's PTX features and the toolkit where the
/// options do not give them.
void buildWithDefaults(OpPassManager &pm, const NVVMCodegenOptions &given) {
  NVVMCodegenOptions options;
  options.copyOptionValuesFrom(given);
  if (options.features.empty())
    options.features = defaultPTXFeatures(options.chip);
  if (options.toolkit.empty())
    options.toolkit = cudaToolkitPath();
  buildNVVMCodegenPipeline(pm, options);
}

/// Kernels as a fatbin (cubin for the chip + PTX, which the driver compiles
/// for newer GPUs); host code calls the mgpu* functions of the runtime's CUDA
/// support (runtime/cuda).
class NVPTXTarget final : public Target {
public:
  StringRef getName() const override { return "nvptx"; }
  StringRef getDescription() const override {
    return "NVIDIA GPUs (CUDA driver API); ptxas from the CUDA toolkit builds "
           "the cubin";
  }
  ArrayRef<StringRef> getChips() const override { return chips; }
  atmoe_rt::Device getDevice() const override { return atmoe_rt::Device::CUDA; }
  void buildCodegenPipeline(OpPassManager &pm, StringRef chip,
                            const CodegenOptions &) const override {
    NVVMCodegenOptions codegen;
    codegen.chip = chip.str();
    buildWithDefaults(pm, codegen);
  }

private:
  // CUDA 13 supports sm_75 and newer. sm_80 first: the default chip, whose
  // PTX every later GPU can run.
  static constexpr StringRef chips[] = {"sm_80",   "sm_75",  "sm_86",  "sm_87",
                                        "sm_89",   "sm_90",  "sm_90a", "sm_100",
                                        "sm_100a", "sm_120", "sm_120a"};
};

} // namespace

void atmoe::registerNVPTXTarget() {
  registerTarget(std::make_unique<NVPTXTarget>());
}

void atmoe::registerNVPTXPipelines() {
  PassPipelineRegistration<NVVMCodegenOptions>(
      "atmoe-nvvm-codegen-pipeline",
      "Fused linalg to NVIDIA GPU kernels in a gpu.binary and host LLVM code",
      buildWithDefaults);
}
