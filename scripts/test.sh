#!/usr/bin/env bash
# Runs every test: installs missing Debian packages, configures and builds
# with warnings as errors, then runs the whole ctest suite.
#   scripts/test.sh            build in ./build
#   BUILD_DIR=dir scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DNNLIB_WERROR=ON
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
