#!/usr/bin/env bash
# ABI guard (docs/RELIABILITY.md, docs/ABI_POLICY.md). Builds the shared
# library with gcc -O2 -g in build-abi (debug paths made relative, so the
# baseline is the same from any checkout) and checks:
#   1. only nnlib_ symbols are exported, each declared in include/nnlib.h
#      (tests/check_symbols.sh), each in a version node NNLIB_<major>.<minor>
#      of cmake/nnlib.map, and the SONAME is libnnlib.so.<major>;
#   2. include/nnlib.h compiles alone as C11 and as C++11 with
#      -Wall -Wextra -Wpedantic -Werror (tests/check_header.sh);
#   3. abidiff --no-added-syms against the committed baseline abi/nnlib.abi,
#      private types (those not declared under include/) dropped: any
#      non-zero result fails, unless NNLIB_VERSION_MAJOR and the SONAME both
#      moved past the baseline's (then refresh the baseline).
# Exported functions missing from the baseline are listed as a warning:
# before 1.0.0 is released, refresh it with scripts/update_abi_baseline.sh.
#   scripts/check_abi.sh            check
#   scripts/check_abi.sh --update   rewrite abi/nnlib.abi (what
#                                   scripts/update_abi_baseline.sh runs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD_PREFIX:-build}-abi
baseline=abi/nnlib.abi
start=$SECONDS
for tool in abidw abidiff readelf g++; do
  command -v $tool >/dev/null || { echo "check_abi: $tool is missing (scripts/setup.sh installs abigail-tools and g++)"; exit 1; }
done

CC=gcc cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_C_FLAGS=-fdebug-prefix-map=$root=." -DNNLIB_WERROR=ON \
  -DNNLIB_BUILD_TESTS=OFF -DNNLIB_BUILD_EXAMPLES=OFF \
  -DNNLIB_BUILD_BENCHMARKS=OFF -DNNLIB_BUILD_TOOLS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target nnlib >/dev/null
lib=$(readlink -f "$build/libnnlib.so")
major=$(sed -n 's/^#define NNLIB_VERSION_MAJOR \([0-9]*\).*/\1/p' include/nnlib.h)
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')

abidw_baseline() {
  mkdir -p abi
  abidw --headers-dir "$root/include" --no-corpus-path --no-comp-dir-path \
    --out-file "$baseline" "$lib"
}

if [ "${1:-}" = "--update" ]; then
  abidw_baseline
  n=$(grep -c "<elf-symbol name='nnlib_" "$baseline")
  echo "wrote $baseline: $n nnlib_ functions, SONAME $soname"
  exit 0
fi

echo "== exported symbols"
tests/check_symbols.sh "$lib" include/nnlib.h
[ "$soname" = "libnnlib.so.$major" ] ||
  { echo "SONAME is $soname, expected libnnlib.so.$major"; exit 1; }
unversioned=$(readelf --dyn-syms -W "$lib" |
  awk '$5 == "GLOBAL" && $7 != "UND" && $8 ~ /^nnlib_/ {print $8}' |
  grep -v -E "@@?NNLIB_${major}\.[0-9]+$" || true)
if [ -n "$unversioned" ]; then
  echo "exported without a NNLIB_${major}.x version node (cmake/nnlib.map):"
  echo "$unversioned"
  exit 1
fi
echo "ok: SONAME $soname, every nnlib_ symbol in a NNLIB_${major}.x node"

echo "== header alone as C11 and C++11"
tests/check_header.sh gcc g++ include "$lib"

echo "== abidiff against $baseline"
[ -f "$baseline" ] || { echo "no baseline: run scripts/update_abi_baseline.sh"; exit 1; }
set +e
abidiff --no-added-syms --headers-dir2 "$root/include" "$baseline" "$lib" \
  >"$build/abidiff.txt" 2>&1
rc=$?
set -e
cat "$build/abidiff.txt"
if [ $rc -ne 0 ]; then
  base_soname=$(sed -n "s/.*soname='\([^']*\)'.*/\1/p" "$baseline" | head -n 1)
  if [ "$soname" != "$base_soname" ] && [ "$soname" = "libnnlib.so.$major" ]; then
    echo "abidiff: status $rc, but the major version moved ($base_soname ->"
    echo "$soname): incompatible changes are allowed; refresh the baseline"
    echo "with scripts/update_abi_baseline.sh in this change."
  else
    echo "abidiff: status $rc (4: ABI change, 8: incompatible change, 1/2:"
    echo "error). An incompatible change needs NNLIB_VERSION_MAJOR and the"
    echo "SONAME to move (docs/ABI_POLICY.md); an intended compatible one, a"
    echo "refreshed baseline (scripts/update_abi_baseline.sh)."
    exit 1
  fi
fi
missing=$(comm -13 \
  <(sed -n "s/.*<elf-symbol name='\(nnlib_[a-z0-9_]*\)'.*/\1/p" "$baseline" | sort -u) \
  <(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | grep '^nnlib_' | sort -u))
if [ -n "$missing" ]; then
  echo "warning: exported but not in $baseline yet (additions; refresh the"
  echo "baseline with scripts/update_abi_baseline.sh):" $missing
fi
echo "ok: ABI checks passed in $((SECONDS - start)) s"
