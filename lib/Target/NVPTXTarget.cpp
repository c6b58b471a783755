//===- NVPTXTarget.cpp - NVIDIA GPUs through the nvvm dialect -------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Target/Targets.h"

#include "atmoe/Pipelines/Pipelines.h"

using namespace mlir;
using namespace mlir::atmoe;

namespace {

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
    buildNVVMCodegenPipeline(pm, codegen);
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
