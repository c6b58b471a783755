//===- DriverInternals.h - the driver's steps -------------------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// One file per concern of atmoe-compile (Driver.cpp orders them):
//   Input.cpp          what the input is (package, model.json, .mlir)
//   ModelABI.cpp       the compiled model's manifest, read off the layer ABI
//   EntryPoints.cpp    the fixed-signature entry points and the manifest
//   LLVMIRPasses.cpp   the host target machine and LLVM's O3 pipeline
//   Output.cpp         text and object files
//   Linker.cpp         the shared library
//
//===----------------------------------------------------------------------===//

#ifndef ATMOE_LIB_DRIVER_DRIVERINTERNALS_H
#define ATMOE_LIB_DRIVER_DRIVERINTERNALS_H

#include "atmoe/Importer/ModelImporter.h"
#include "atmoe/Support/FaultOr.h"
#include "atmoe/Target/Target.h"

#include "atmoe_rt/support/Manifest.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringMap.h"

#include <memory>
#include <string>

namespace llvm {
class Module;
class TargetMachine;
class raw_ostream;
} // namespace llvm

namespace mlir::atmoe::driver {

//===- Input.cpp ----------------------------------------------------------===//

/// Imports a package directory or model.json, or parses an .mlir file. A
/// failure is the input's fault, or the importer's (IR that does not
/// verify).
FaultOr<OwningOpRef<ModuleOp>> loadInput(MLIRContext &context, StringRef input,
                                         const ImportOptions &options);

//===- ModelABI.cpp -------------------------------------------------------===//

/// Checks, before any pass runs, that every input and output of a layer
/// function has a dynamic leading (token or sequence) dimension: the ABI
/// takes any T, and static extents are not supported end to end.
LogicalResult checkDynamicRows(ModuleOp module);

/// Copies the module's atmoe.sources (the package's JSON files) into the
/// manifest.
LogicalResult recordSources(Location loc, ModuleOp module,
                            atmoe_rt::Manifest &manifest);

/// The routed experts (routing columns) of each layer function, read while
/// the layer structure still exists.
llvm::StringMap<SmallVector<std::string>> collectExperts(ModuleOp module);

/// The manifest's layers, read off the fused layer functions' signatures and
/// ABI attributes (weights stacked at bind time included).
FailureOr<atmoe_rt::Manifest>
describeLayers(ModuleOp module,
               const llvm::StringMap<SmallVector<std::string>> &experts);

/// Marks the arguments the GPU pipeline found the host code to read
/// (atmoe.host_arguments on the lowered functions).
LogicalResult markHostArguments(ModuleOp module, atmoe_rt::Manifest &manifest);

//===- EntryPoints.cpp ----------------------------------------------------===//

/// Adds `void atmoe_entry_<fn>(void **args)` for every layer and makes the
/// layer functions internal.
LogicalResult addEntryPoints(Location loc, llvm::Module &module,
                             const atmoe_rt::Manifest &manifest);

/// Defines the heap functions the lowered code calls
/// (_mlir_memref_to_llvm_alloc/free) to go through the allocator the runtime
/// installs with the exported atmoe_model_set_allocator (malloc and free
/// until then).
void addAllocatorHooks(llvm::Module &module);

/// Embeds the manifest (its own section, and the exported symbol).
void addManifest(llvm::Module &module, const atmoe_rt::Manifest &manifest);

//===- LLVMIRPasses.cpp ---------------------------------------------------===//

/// The machine the host code is compiled for.
FailureOr<std::unique_ptr<llvm::TargetMachine>>
createTargetMachine(Location loc, const HostCPU &cpu);

/// LLVM's O3 pipeline, after merging identical functions.
void optimize(llvm::Module &module, llvm::TargetMachine &machine);

//===- Output.cpp ---------------------------------------------------------===//

/// Writes text to `path` atomically ("-" is stdout).
LogicalResult writeText(Location loc, StringRef path,
                        llvm::function_ref<void(llvm::raw_ostream &)> print);

/// Writes the module's object code to `path` atomically.
LogicalResult writeObject(Location loc, llvm::Module &module,
                          llvm::TargetMachine &machine, StringRef path);

//===- Linker.cpp ---------------------------------------------------------===//

/// Links `module` into the shared library `output`: a failing link is the
/// compiler's fault, an output that cannot be written the input's.
FaultOr<> linkSharedLibrary(Location loc, llvm::Module &module,
                            llvm::TargetMachine &machine, StringRef output,
                            ArrayRef<std::string> libraries);

} // namespace mlir::atmoe::driver

#endif // ATMOE_LIB_DRIVER_DRIVERINTERNALS_H
