#!/usr/bin/env bash
#===- scripts/test.sh - set up, build and run every test ------------------===#
#
# The README's test command. On a fresh Debian 12 machine it installs what is
# missing (scripts/setup.sh), configures and builds into build/ and runs the
# whole lit suite (check-atmoe), which includes the unit tests. Then it builds
# the same sources with AddressSanitizer and UndefinedBehaviorSanitizer into
# build-asan/ and runs the suite there too (ATMOE_SANITIZERS=0 skips that).
#
#===----------------------------------------------------------------------===#
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${ATMOE_BUILD_DIR:-"$root/build"}
asan_build=${ATMOE_ASAN_BUILD_DIR:-"$root/build-asan"}
sanitizers=${ATMOE_SANITIZERS:-1}

bash "$root/scripts/setup.sh"
start=$(date +%s)
bash "$root/scripts/build.sh" "$build"
echo "build: $(( $(date +%s) - start )) s"

log=$(mktemp)
asan_log=$(mktemp)
trap 'rm -f "$log" "$asan_log"' EXIT
set +e
cmake --build "$build" --target check-atmoe 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# lit's closing counts of one run: "passed failed skipped".
counts() {
  local n
  for what in Passed Failed Unsupported; do
    n=$(grep -Eo "^ *$what *: *[0-9]+" "$1" | grep -Eo '[0-9]+' | tail -1 || true)
    printf '%s ' "${n:-0}"
  done
}
read -r passed failed skipped <<<"$(counts "$log")"

# The sanitizer run: same tests, instrumented libraries, runtime and tools
# (test/lit.cfg.py makes every sanitizer report abort). A build that fails
# counts as one failed test.
if [ "$sanitizers" != 0 ]; then
  echo "check-atmoe (build): $passed passed, $failed failed, $skipped skipped"
  start=$(date +%s)
  set +e
  bash "$root/scripts/build.sh" "$asan_build" -DATMOE_ENABLE_SANITIZERS=ON \
    2>&1 | tee "$asan_log"
  asan_status=${PIPESTATUS[0]}
  if [ "$asan_status" -eq 0 ]; then
    cmake --build "$asan_build" --target check-atmoe 2>&1 | tee "$asan_log"
    asan_status=${PIPESTATUS[0]}
    read -r asan_passed asan_failed asan_skipped <<<"$(counts "$asan_log")"
  else
    asan_passed=0 asan_failed=1 asan_skipped=0
    echo "check-atmoe (build-asan): the ASan + UBSan build failed"
  fi
  set -e
  echo "check-atmoe (build-asan, ASan + UBSan, $(( $(date +%s) - start )) s):" \
       "$asan_passed passed, $asan_failed failed, $asan_skipped skipped"
  passed=$(( passed + asan_passed ))
  failed=$(( failed + asan_failed ))
  skipped=$(( skipped + asan_skipped ))
  if [ "$status" -eq 0 ]; then status=$asan_status; fi
fi

# One closing line in the plain "N passed, N failed" form, for CI: both runs
# together when the sanitizer run took place (the lines above split them).
echo "check-atmoe: $passed passed, $failed failed, $skipped skipped"
exit "$status"
