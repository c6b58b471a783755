//===- CPUTarget.cpp - the host CPU and x86-64 levels ---------------------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Target/Targets.h"

#include "atmoe/Pipelines/Pipelines.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"

using namespace mlir;
using namespace mlir::atmoe;

namespace {

/// Everything runs on the CPU: OpenMP threads, LLVM's vectoriser.
class CPUTarget final : public Target {
public:
  StringRef getName() const override { return "cpu"; }
  StringRef getDescription() const override {
    return "the CPU: host (this machine, with its features) or an x86-64 "
           "micro-architecture level";
  }
  ArrayRef<StringRef> getChips() const override { return chips; }
  ArrayRef<StringRef> getAliases() const override { return chips; }
  atmoe_rt::Device getDevice() const override { return atmoe_rt::Device::CPU; }
  llvm::Error checkOptions(StringRef chip,
                           const CodegenOptions &options) const override {
    if (options.int8Activations && !hasVNNI(chip))
      return llvm::createStringError(
          "--int8-activations: --target=" + chip.str() +
          " has no VNNI dot products for its vectors (AVX512-VNNI on an "
          "AVX-512 CPU, AVX-VNNI on an AVX2 one; named x86-64 levels have "
          "none: compile with --target=host on such a CPU)");
    return llvm::Error::success();
  }
  /// The built-in schedule's tile of output features, so that each thread's
  /// tile reads one panel as one stream; a custom schedule may tile
  /// differently and reads the stored layout.
  int64_t getWeightPanelWidth(const CodegenOptions &options) const override {
    return options.cpuSchedule.empty() ? kScheduleTileWidth : 0;
  }
  void buildCodegenPipeline(OpPassManager &pm, StringRef chip,
                            const CodegenOptions &options) const override {
    CPUCodegenOptions codegen;
    codegen.transformSchedule = options.cpuSchedule;
    codegen.vectorWidth = vectorWidth(chip);
    codegen.int8Activations = options.int8Activations;
    buildCPUCodegenPipeline(pm, codegen);
  }
  HostCPU getHostCPU(StringRef chip) const override {
    if (chip != "host")
      return {chip.str(), ""};
    llvm::SubtargetFeatures features;
    for (const auto &feature : llvm::sys::getHostCPUFeatures())
      features.AddFeature(feature.first(), feature.second);
    return {llvm::sys::getHostCPUName().str(), features.getString()};
  }
  SmallVector<std::string> getLinkLibraries() const override {
    // The feature blocks run on libomp's threads.
    return {"omp", "m"};
  }

private:
  /// `tile_sizes [0, 64]` of the projections and up-projections in
  /// lib/Codegen/CPU/CPUSchedule.mlir.
  static constexpr int64_t kScheduleTileWidth = 64;

  /// f32 lanes of the widest vector registers `chip` has: the kernels'
  /// vectors are one register wide.
  static int64_t vectorWidth(StringRef chip) {
    if (chip == "x86-64-v4")
      return 16;
    if (chip == "x86-64-v3")
      return 8;
    if (chip != "host")
      return 4;
    llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
    if (features.lookup("avx512f"))
      return 16;
    return features.lookup("avx2") || features.lookup("avx") ? 8 : 4;
  }

  /// Whether the kernels' vectors (vectorWidth) have VPDPBUSD: named
  /// x86-64 levels do not include VNNI.
  static bool hasVNNI(StringRef chip) {
    if (chip != "host")
      return false;
    llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
    return vectorWidth(chip) == 16
               ? features.lookup("avx512vnni")
               : vectorWidth(chip) == 8 && features.lookup("avxvnni");
  }

  static constexpr StringRef chips[] = {"host", "x86-64", "x86-64-v2",
                                        "x86-64-v3", "x86-64-v4"};
};

} // namespace

void atmoe::registerCPUTarget() {
  registerTarget(std::make_unique<CPUTarget>());
}
