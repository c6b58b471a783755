#!/usr/bin/env bash
#===- scripts/demo.sh - set up, build and run the main job ----------------===#
#
# The README's main-job command. On a fresh Debian 12 machine it installs what
# is missing (scripts/setup.sh), builds atmoe into build/ and runs the bundled
# example model (examples/demo) through atmoe-opt's canonicalisation.
#
#===----------------------------------------------------------------------===#
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${ATMOE_BUILD_DIR:-"$root/build"}

bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh" "$build" >/dev/null

echo "== atmoe-opt --canonicalize examples/demo/demo.mlir" >&2
"$build/bin/atmoe-opt" --canonicalize "$root/examples/demo/demo.mlir"
