#!/usr/bin/env bash
#===- scripts/setup.sh - install the build dependencies from Debian -------===#
#
# Idempotent: installs only the packages that are missing. Needs root (or sudo)
# only when something is actually missing.
#
#===----------------------------------------------------------------------===#
set -euo pipefail

packages=(
  # LLVM/MLIR 22: libMLIR.so, TableGen, lit/FileCheck, the compiler and linker.
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22 lld-22
  libomp-22-dev
  # clang's sanitizer and libFuzzer runtimes: the ASan + UBSan run of
  # scripts/test.sh, the TSan build and the fuzzers (docs/Testing.md).
  libclang-rt-22-dev
  # Build tooling.
  cmake ninja-build ccache
  # Libraries used by the importer, unit tests and benchmarks.
  nlohmann-json3-dev libgtest-dev libopenblas-dev
  # PEFT's module patterns matched as Python's re does (PCRE2), found by
  # pkg-config.
  libpcre2-dev pkgconf
  # lit and the end-to-end reference scripts; PyTorch for the Python API's
  # example (examples/python/torch_swap.py) and the benchmarks.
  python3 python3-numpy python3-torch
  # MPI for --parallel=tensor:N|expert:N (docs/Distributed.md): Debian's
  # MPICH, whose ABI the mpi dialect's lowering targets by default.
  libmpich-dev mpich
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
