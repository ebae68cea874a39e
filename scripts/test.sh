#!/usr/bin/env bash
# Runs every test: installs the missing Debian packages (scripts/setup.sh:
# scripts/packages-demo.txt, scripts/packages.txt and a second locale) and
# the pinned onnxruntime-node of the ONNX export test (scripts/ort_setup.sh),
# configures and builds with warnings as errors, then runs the whole ctest
# suite.
#   scripts/test.sh            build in ./build
#   BUILD_DIR=dir scripts/test.sh
# Then the reliability checks of docs/RELIABILITY.md: static analysis
# (cppcheck, no build; clang-tidy, a configured build-tidy), then
# sanitizers, valgrind, ThreadSanitizer, fuzzing and ABI, each in its own
# build-* directory:
#   scripts/test.sh --quick    the build and ctest only
# The last line is the verdict: every stage passed and how long each took,
# or which stage failed (the exit status is then non-zero).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
  esac
done

# duration SECONDS: "42 s" or "14 min 50 s"
duration() {
  if [ "$1" -lt 60 ]; then echo "$1 s"; else echo "$(($1 / 60)) min $(($1 % 60)) s"; fi
}

passed=()   # "stage time" of each stage that passed, in order
current=""  # the stage running now
start=$SECONDS
verdict() {
  local status=$? list
  list=$(IFS=,; echo "${passed[*]:-}")
  list=${list//,/, }
  echo
  if [ "$status" -eq 0 ]; then
    local skipped=""
    [ "$quick" -eq 0 ] || skipped=" (--quick: reliability checks not run)"
    echo "test.sh: all ${#passed[@]} stages passed in $(duration $((SECONDS - start)))$skipped: $list"
  else
    echo "test.sh: FAILED in stage ${current:-?} (exit status $status) after $(duration $((SECONDS - start)))${list:+; passed before it: $list}"
  fi
}
trap verdict EXIT

# stage NAME CMD...: runs CMD as the stage NAME and records its time; under
# set -e a failure ends the script (the verdict names NAME).
stage() {
  current=$1
  shift
  local t=$SECONDS
  "$@"
  passed+=("$current $(duration $((SECONDS - t)))")
  current=""
}

build=${BUILD_DIR:-build}
configure_and_build() {
  # Tests on explicitly: scripts/demo.sh may have configured the same build
  # directory without them.
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DNNLIB_WERROR=ON \
    -DNNLIB_BUILD_TESTS=ON
  cmake --build "$build" -j "$(nproc)"
}

stage setup ./scripts/setup.sh
stage ort ./scripts/ort_setup.sh
stage build configure_and_build
stage ctest ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
if [ "$quick" -eq 0 ]; then
  for check in static tidy sanitizers valgrind tsan fuzz abi; do
    echo "== scripts/check_$check.sh"
    stage "$check" "./scripts/check_$check.sh"
  done
fi
