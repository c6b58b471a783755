#!/usr/bin/env bash
#===- scripts/demo.sh - set up, build and run the main job ----------------===#
#
# The README's main-job command. On a fresh Debian 12 machine it installs what
# is missing (scripts/setup.sh), builds atmoe into build/, then writes the
# example (a Hugging Face model directory and PEFT adapters), packages it with
# atmoe-package init, compiles it to a shared library, runs every layer
# through the Python API, checks the numbers against the float64 reference
# and prints the routing weights and timing (examples/demo/run_demo.py).
#
#===----------------------------------------------------------------------===#
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${ATMOE_BUILD_DIR:-"$root/build"}

bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh" "$build" >/dev/null

# Debian's numpy lives with /usr/bin/python3.
exec /usr/bin/python3 "$root/examples/demo/run_demo.py" "$build" "$build/demo"
