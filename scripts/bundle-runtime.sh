#!/usr/bin/env bash
#===- scripts/bundle-runtime.sh - the files a deployment ships -----------===#
#
# Usage: scripts/bundle-runtime.sh OUT_DIR [BUILD_DIR]
# Copies what a machine without the build toolchain needs to run compiled
# models (docs/Deployment.md) into OUT_DIR:
#   bin/atmoe-run  lib/libatmoe_runtime.so  lib/libatmoe_rt_cuda.so (if built)
#   lib/libomp.so.5 (compiled CPU models need it; place it beside a model or
#   on LD_LIBRARY_PATH)  include/atmoe_rt/atmoe_rt.h
# and prints each file with its size. Binaries are stripped of debug info.
#
#===----------------------------------------------------------------------===#
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: bundle-runtime.sh OUT_DIR [BUILD_DIR]}
build=${2:-"$root/build"}

mkdir -p "$out/bin" "$out/lib" "$out/include/atmoe_rt"
install -m 755 "$build/bin/atmoe-run" "$out/bin/"
install -m 755 "$build/lib/libatmoe_runtime.so" "$out/lib/"
if [ -f "$build/lib/libatmoe_rt_cuda.so" ]; then
  install -m 755 "$build/lib/libatmoe_rt_cuda.so" "$out/lib/"
fi
install -m 755 "$(readlink -f /usr/lib/llvm-22/lib/libomp.so.5)" \
  "$out/lib/libomp.so.5"
install -m 644 "$root/runtime/include/atmoe_rt/atmoe_rt.h" \
  "$out/include/atmoe_rt/"
# The Python API (docs/Python.md), which finds lib/ beside python/.
mkdir -p "$out/python/atmoe"
install -m 644 "$root"/python/atmoe/*.py "$out/python/atmoe/"
for binary in "$out"/bin/* "$out"/lib/*; do
  strip --strip-debug "$binary"
done
(cd "$out" && find . -type f | sort | xargs ls -l | awk '{printf "%9d  %s\n", $5, $9}')
