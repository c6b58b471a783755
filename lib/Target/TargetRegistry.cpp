//===- TargetRegistry.cpp - the one registry of compilation targets -------===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//

#include "atmoe/Target/Targets.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/ManagedStatic.h"
#include "llvm/TargetParser/Host.h"

#include <vector>

using namespace mlir;
using namespace mlir::atmoe;

Target::~Target() = default;

llvm::Error Target::checkOptions(StringRef,
                                 const CodegenOptions &options) const {
  if (!options.cpuSchedule.empty())
    return llvm::createStringError(
        "--cpu-schedule applies to CPU targets only, not to '" + getName() +
        "'");
  if (options.int8Activations)
    return llvm::createStringError(
        "--int8-activations applies to CPU targets only, not to '" + getName() +
        "'");
  return llvm::Error::success();
}

HostCPU Target::getHostCPU(StringRef) const {
  return {llvm::sys::getHostCPUName().str(), ""};
}

std::string TargetSelection::getSpelling() const {
  if (chip.empty() || target->getChips().empty())
    return target->getName().str();
  return (target->getName() + ":" + chip).str();
}

namespace {
std::vector<std::unique_ptr<Target>> &registry() {
  static std::vector<std::unique_ptr<Target>> targets;
  return targets;
}
} // namespace

void atmoe::registerTarget(std::unique_ptr<Target> target) {
  for (const std::unique_ptr<Target> &existing : registry()) {
    if (existing->getName() == target->getName())
      llvm::report_fatal_error("atmoe target '" + target->getName() +
                               "' registered twice");
  }
  registry().push_back(std::move(target));
}

SmallVector<const Target *> atmoe::getRegisteredTargets() {
  SmallVector<const Target *> targets;
  for (const std::unique_ptr<Target> &target : registry())
    targets.push_back(target.get());
  return targets;
}

std::string atmoe::describeTargets() {
  SmallVector<std::string> spellings;
  for (const Target *target : getRegisteredTargets()) {
    for (StringRef alias : target->getAliases())
      spellings.push_back(alias.str());
    for (StringRef chip : target->getChips())
      if (!llvm::is_contained(target->getAliases(), chip))
        spellings.push_back((target->getName() + ":" + chip).str());
    if (target->getChips().empty())
      spellings.push_back(target->getName().str());
  }
  return llvm::join(spellings, ", ");
}

llvm::Expected<TargetSelection> atmoe::lookupTarget(StringRef spec) {
  auto [name, chip] = spec.split(':');
  bool hasChip = spec.contains(':');
  for (const Target *target : getRegisteredTargets()) {
    if (!hasChip && llvm::is_contained(target->getAliases(), name))
      return TargetSelection{target, name.str()};
    if (target->getName() != name)
      continue;
    ArrayRef<StringRef> chips = target->getChips();
    if (!hasChip)
      return TargetSelection{target, chips.empty() ? "" : chips.front().str()};
    if (llvm::is_contained(chips, chip))
      return TargetSelection{target, chip.str()};
    return llvm::createStringError(
        "unknown chip '" + chip + "' for target '" + name + "' (expected " +
        (chips.empty() ? std::string("no chip")
                       : llvm::join(chips.begin(), chips.end(), ", ")) +
        ")");
  }
  return llvm::createStringError("unknown target '" + spec + "' (expected " +
                                 describeTargets() + ")");
}

void atmoe::registerAllTargets() {
  // Idempotent: tools and tests may both call it.
  static bool registered = [] {
    registerCPUTarget();
    registerNVPTXTarget();
    registerAMDGPUTarget();
    return true;
  }();
  (void)registered;
}

void atmoe::registerTargetPipelines() {
  registerNVPTXPipelines();
  registerAMDGPUPipelines();
}
