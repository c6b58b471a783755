//===- AMDGPUTarget.cpp - AMD GPUs through the rocdl dialect --------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The worked example of docs/targets.md: a second accelerator from the same
// GPU kernels as nvptx, differing only in the dialect the kernels are lowered
// through and the binary format. Compile-only: the runtime has no HIP
// support yet and says so when such a model is opened.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Target/Targets.h"

#include "atmoe/Pipelines/Pipelines.h"

#include "mlir/Pass/PassRegistry.h"

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// gpu-module-to-binary links code objects with <toolkit>/llvm/bin/ld.lld;
/// without ROCm, a directory of the build tree points that at LLVM's own lld.
void buildWithDefaults(OpPassManager &pm, const ROCDLCodegenOptions &given) {
  ROCDLCodegenOptions options;
  options.copyOptionValuesFrom(given);
  if (options.toolkit.empty())
    options.toolkit = ATMOE_ROCM_TOOLKIT_DIR;
  buildROCDLCodegenPipeline(pm, options);
}

class AMDGPUTarget final : public Target {
public:
  StringRef getName() const override { return "amdgpu"; }
  StringRef getDescription() const override {
    return "AMD GPUs (HSA code objects, linked with LLVM's lld); compile only";
  }
  ArrayRef<StringRef> getChips() const override { return chips; }
  atmoe_rt::Device getDevice() const override { return atmoe_rt::Device::HIP; }
  void buildCodegenPipeline(OpPassManager &pm, StringRef chip,
                            const CodegenOptions &) const override {
    ROCDLCodegenOptions codegen;
    codegen.chip = chip.str();
    buildWithDefaults(pm, codegen);
  }

private:
  static constexpr StringRef chips[] = {"gfx942", "gfx90a", "gfx950", "gfx1100",
                                        "gfx1200"};
};

} // namespace

void atmoe::registerAMDGPUTarget() {
  registerTarget(std::make_unique<AMDGPUTarget>());
}

void atmoe::registerAMDGPUPipelines() {
  PassPipelineRegistration<ROCDLCodegenOptions>(
      "atmoe-rocdl-codegen-pipeline",
      "Fused linalg to AMD GPU kernels in a gpu.binary and host LLVM code",
      buildWithDefaults);
}
