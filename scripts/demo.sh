#!/usr/bin/env bash
# The main job: installs the missing Debian packages it needs
# (scripts/packages-demo.txt: compiler, CMake, OpenBLAS, zlib, pkg-config,
# Fashion-MNIST), builds the library and the `nnlib` tool, trains the default
# MLP on Fashion-MNIST with `nnlib train` (a progress bar on a terminal, a
# line per epoch), then evaluates the saved model with `nnlib eval` (accuracy
# and confusion matrix). Idempotent; runs as root or with sudo available.
# Extra arguments go to `nnlib train`, e.g. scripts/demo.sh --epochs 3
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --demo
build=${BUILD_DIR:-build}
# The test suite needs CMocka, which the demo does not install: where it is
# missing the build leaves the tests out (scripts/test.sh turns them on).
tests=ON
pkg-config --exists cmocka 2>/dev/null || tests=OFF
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DNNLIB_BUILD_TESTS=$tests \
  >/dev/null
cmake --build "$build" -j "$(nproc)" --target nnlib_cli
model="$build/fashion_mlp.nnl"
echo
echo "== nnlib train: dense:256,relu,dense:128,relu,dense:10 on Fashion-MNIST =="
"$build/tools/nnlib" train --out "$model" "$@"
echo
echo "== nnlib eval $model =="
"$build/tools/nnlib" eval "$model"
