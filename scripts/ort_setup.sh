#!/usr/bin/env bash
# Installs onnxruntime-node, the ONNX runtime that test_onnx_export runs the
# exported models with, into build-ort/ of this checkout (ignored by git, like
# every build* directory):
#   scripts/ort_setup.sh            install if build-ort/ lacks the pinned version
#   NNLIB_ORT_DIR=dir scripts/ort_setup.sh   another directory
# The version is pinned; ONNXRUNTIME_NODE_INSTALL=skip keeps the package's
# install script from downloading anything beyond the npm registry (its CPU
# libonnxruntime.so ships inside the package). Needs node and npm: installs
# Debian's nodejs and npm when `npm` is missing (as root, or through sudo).
# Idempotent: a directory that already holds the pinned version is left as it is.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=1.30.0
dir=${NNLIB_ORT_DIR:-$here/../build-ort}

if ! command -v npm >/dev/null 2>&1; then
  echo "ort_setup: installing nodejs and npm"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends nodejs npm
fi

installed=$(node -p "require('$dir/node_modules/onnxruntime-node/package.json').version" \
            2>/dev/null || true)
if [ "$installed" = "$version" ]; then
  echo "ort_setup: onnxruntime-node $version present in $dir"
  exit 0
fi
echo "ort_setup: npm install onnxruntime-node@$version into $dir"
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name": "nnlib-ort", "private": true}' > "$dir/package.json"
ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$dir" --no-audit --no-fund \
  --save-exact "onnxruntime-node@$version"
node -e "require('$dir/node_modules/onnxruntime-node'); console.log('ort_setup: onnxruntime-node loads')"
