#===- AtmoeSanitizers.cmake - sanitizer and fuzzer builds ------*- cmake -*-===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
#===----------------------------------------------------------------------===#
#
# Maps the atmoe options onto LLVM_USE_SANITIZER / LLVM_USE_SANITIZE_COVERAGE,
# which HandleLLVMOptions (included after this file) turns into compile flags
# for every target. Going through LLVM's variables rather than adding flags
# here matters for one detail: with a sanitizer HandleLLVMOptions leaves out
# -Wl,-z,defs, because a sanitized shared library (libatmoe_runtime.so) takes
# the sanitizer runtime's symbols from the executable that loads it.
#
#   ATMOE_ENABLE_SANITIZERS  AddressSanitizer + UndefinedBehaviorSanitizer
#   ATMOE_ENABLE_TSAN        ThreadSanitizer
#   ATMOE_ENABLE_FUZZERS     ASan + UBSan + libFuzzer coverage; builds fuzz/
#
# Only the code built here is instrumented; libMLIR.so and the models that
# atmoe-compile produces are not.
#
#===----------------------------------------------------------------------===#

if(ATMOE_ENABLE_TSAN AND (ATMOE_ENABLE_SANITIZERS OR ATMOE_ENABLE_FUZZERS))
  message(FATAL_ERROR "ATMOE_ENABLE_TSAN cannot be combined with "
                      "ATMOE_ENABLE_SANITIZERS or ATMOE_ENABLE_FUZZERS")
endif()

if(ATMOE_ENABLE_SANITIZERS OR ATMOE_ENABLE_FUZZERS OR ATMOE_ENABLE_TSAN)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "sanitizer and fuzzer builds need clang "
                        "(scripts/build.sh uses /usr/lib/llvm-22/bin/clang++)")
  endif()
  # libclang_rt.{asan,ubsan,tsan,fuzzer} of clang 22 come from Debian's
  # libclang-rt-22-dev (scripts/setup.sh installs it).
  execute_process(
    COMMAND ${CMAKE_CXX_COMPILER} -print-runtime-dir
    OUTPUT_VARIABLE ATMOE_CLANG_RUNTIME_DIR
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT EXISTS "${ATMOE_CLANG_RUNTIME_DIR}")
    message(FATAL_ERROR "no sanitizer runtimes in '${ATMOE_CLANG_RUNTIME_DIR}'"
                        " (install libclang-rt-22-dev)")
  endif()
endif()

if(ATMOE_ENABLE_SANITIZERS OR ATMOE_ENABLE_FUZZERS)
  set(LLVM_USE_SANITIZER "Address;Undefined")
  # An out-of-tree build has no LLVM_UBSAN_FLAGS of its own. Every UBSan
  # report aborts so that a test that triggers one fails. vptr stays on:
  # atmoe builds with RTTI.
  set(LLVM_UBSAN_FLAGS "-fsanitize=undefined -fno-sanitize-recover=all")
elseif(ATMOE_ENABLE_TSAN)
  set(LLVM_USE_SANITIZER "Thread")
endif()

if(ATMOE_ENABLE_FUZZERS)
  # Coverage for every library; only fuzz/ links libFuzzer's main.
  set(LLVM_USE_SANITIZE_COVERAGE ON)
endif()
