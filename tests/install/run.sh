#!/usr/bin/env bash
# Installs the built nnlib into a temporary prefix and builds an outside
# program against it both ways: pkg-config and find_package(nnlib 1).
set -euo pipefail
build=$1 here=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib*/ | head -n 1)
libdir=${libdir%/}
test -f "$prefix/include/nnlib.h"
test -L "$libdir/libnnlib.so.1"
objdump -p "$libdir/libnnlib.so" | grep -q 'SONAME *libnnlib.so.1$'

# 1. pkg-config
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# the prefix given to `cmake --install`, written plainly; OpenBLAS and zlib
# only for static linking
expect_flags() {  # OPTIONS EXPECTED: pkg-config OPTIONS nnlib prints EXPECTED
  local got
  got=$(echo $(pkg-config $1 nnlib))
  [[ $got == $2 ]] ||
    { echo "FAIL: pkg-config $1 nnlib printed '$got', expected '$2'" >&2; exit 1; }
}
expect_flags --cflags "-I$prefix/include"
expect_flags --libs "-L$libdir -lnnlib"
expect_flags "--static --libs" "-L$libdir -lnnlib *-lopenblas* -lz -lm -pthread"
cc -std=c11 -Wall -Werror "$here/app.c" -o "$prefix/app_pc" $(pkg-config --cflags --libs nnlib)
LD_LIBRARY_PATH="$libdir" "$prefix/app_pc"

# 2. find_package(nnlib 1 REQUIRED) + nnlib::nnlib
cmake -S "$here" -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$prefix/consumer/app"
# 3. the complete program printed in the README
readme=$(dirname "$here")/../README.md
awk '/^```c$/{on=1; next} /^```$/{on=0} on' "$readme" > "$prefix/readme_xor.c"
cc -std=c11 -Wall -Werror "$prefix/readme_xor.c" -o "$prefix/readme_xor" $(pkg-config --cflags --libs nnlib)
LD_LIBRARY_PATH="$libdir" "$prefix/readme_xor" | tee "$prefix/readme_out"
[ "$(wc -l < "$prefix/readme_xor.c")" -le 30 ]
awk '{ if ($2 != "xor") exit 1 } END { if (NR != 4) exit 1 }' "$prefix/readme_out"
grep -q '^0 xor 1 = 0\.9' "$prefix/readme_out"
grep -q '^1 xor 1 = 0\.0' "$prefix/readme_out"
echo "ok: pkg-config and find_package consumers and the README program built and ran"
