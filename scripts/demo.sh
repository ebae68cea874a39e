#!/usr/bin/env bash
# The main job: installs missing Debian packages, builds nnlib, and runs the
# perceptron and XOR examples.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)"
echo; echo "== perceptron: a single step unit =="
"$build/examples/perceptron"
echo; echo "== xor: one hidden layer =="
"$build/examples/xor"
