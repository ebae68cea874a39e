#!/usr/bin/env bash
# The main job: installs missing Debian packages (Fashion-MNIST among them),
# builds nnlib, trains the default MLP on Fashion-MNIST with `nnlib train`
# (a progress bar on a terminal, a line per epoch), then evaluates the saved
# model with `nnlib eval` (accuracy and confusion matrix).
# Extra arguments go to `nnlib train`, e.g. scripts/demo.sh --epochs 3
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)"
model="$build/fashion_mlp.nnl"
echo
echo "== nnlib train: dense:256,relu,dense:128,relu,dense:10 on Fashion-MNIST =="
"$build/tools/nnlib" train --out "$model" "$@"
echo
echo "== nnlib eval $model =="
"$build/tools/nnlib" eval "$model"
