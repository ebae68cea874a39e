#!/usr/bin/env bash
# Runs every test: installs missing Debian packages, configures and builds
# with warnings as errors, then runs the whole ctest suite.
#   scripts/test.sh            build in ./build
#   BUILD_DIR=dir scripts/test.sh
# Then the reliability checks of docs/RELIABILITY.md (sanitizers, valgrind,
# ThreadSanitizer, fuzzing, ABI), each in its own build-* directory:
#   scripts/test.sh --quick    the build and ctest only
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
  esac
done
./scripts/setup.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DNNLIB_WERROR=ON
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
if [ "$quick" -eq 0 ]; then
  for check in sanitizers valgrind tsan fuzz abi; do
    echo "== scripts/check_$check.sh"
    t=$SECONDS
    "./scripts/check_$check.sh"
    echo "== check_$check: $((SECONDS - t)) s"
  done
fi
