//===- SanitizerOptions.cpp - ASan defaults of the fuzzers ------*- C++ -*-===//
//
// Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
//
//===----------------------------------------------------------------------===//
//
// ASan reads these defaults at start-up (before main); ASAN_OPTIONS in the
// environment still overrides them.
//
// allow_user_poisoning=0: llvm::BumpPtrAllocator poisons a fresh slab and
// unpoisons each allocation, but only in code compiled with ASan. MLIR's
// uniquer allocates attribute and type storage from one allocator both in
// atmoe's (instrumented) dialect code and inside libMLIR.so (not
// instrumented), so a slab started by atmoe code and then filled by libMLIR
// stays poisoned, and reading it reports a use-after-poison that is not one.
// Heap, stack and global checks are unaffected.
//
//===----------------------------------------------------------------------===//

extern "C" const char *__asan_default_options() {
  return "allow_user_poisoning=0";
}
