#!/usr/bin/env bash
#===- scripts/test.sh - set up, build and run every test ------------------===#
#
# The README's test command. On a fresh Debian 12 machine it installs what is
# missing (scripts/setup.sh), configures and builds into build/ and runs the
# whole lit suite (check-atmoe), which includes the unit tests.
#
#===----------------------------------------------------------------------===#
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${ATMOE_BUILD_DIR:-"$root/build"}

bash "$root/scripts/setup.sh"
start=$(date +%s)
bash "$root/scripts/build.sh" "$build"
echo "build: $(( $(date +%s) - start )) s"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cmake --build "$build" --target check-atmoe 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# One closing line in the plain "N passed, N failed" form, for CI.
passed=$(grep -Eo '^ *Passed *: *[0-9]+' "$log" | grep -Eo '[0-9]+' | tail -1 || true)
failed=$(grep -Eo '^ *Failed *: *[0-9]+' "$log" | grep -Eo '[0-9]+' | tail -1 || true)
unsupported=$(grep -Eo '^ *Unsupported *: *[0-9]+' "$log" | grep -Eo '[0-9]+' | tail -1 || true)
echo "check-atmoe: ${passed:-0} passed, ${failed:-0} failed, ${unsupported:-0} skipped"
exit "$status"
