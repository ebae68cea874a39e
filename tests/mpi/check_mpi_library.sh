#!/usr/bin/env bash
# libnnlib_mpi as a library: libnnlib itself needs no MPI; the companion
# exports nnlib_mpi_ functions only, each declared in include/nnlib_mpi.h and
# in its version node, SONAME libnnlib_mpi.so.<major>; the header compiles
# alone as C11 and C++11 without <mpi.h>; and an installed copy serves
# outside programs through pkg-config (nnlib_mpi.pc) and
# find_package(nnlib COMPONENTS mpi).
#   check_mpi_library.sh <build dir> <libnnlib.so> <libnnlib_mpi.so> <source dir>
#                        [sanitizers]
# With sanitizers the outside programs are skipped: built with a plain cc,
# they cannot link a sanitized library (as install_consumers is skipped).
set -euo pipefail
build=$1 core=$2 lib=$3 src=$4 sanitizers=${5:-}
header=$src/include/nnlib_mpi.h
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if objdump -p "$core" | grep -q 'NEEDED.*mpi'; then
  echo "libnnlib links MPI:"; objdump -p "$core" | grep NEEDED; exit 1
fi
major=$(sed -n 's/^#define NNLIB_VERSION_MAJOR \([0-9]*\).*/\1/p' "$src/include/nnlib.h")
objdump -p "$lib" | grep -q "SONAME *libnnlib_mpi.so.$major\$"

exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ {print $3}')
bad=$(echo "$exported" | sed 's/@.*//' | grep -v -E '^(nnlib_mpi_|NNLIB_MPI_[0-9_]+$)' || true)
[ -z "$bad" ] || { echo "exported outside nnlib_mpi_:"; echo "$bad"; exit 1; }
for sym in $(echo "$exported" | grep '^nnlib_mpi_'); do
  name=${sym%%@*}
  grep -q -E "\\b$name\\(" "$header" || { echo "not declared: $name"; exit 1; }
  [[ $sym == *@@NNLIB_MPI_$major.* ]] || { echo "unversioned: $sym"; exit 1; }
done

printf '#include <nnlib_mpi.h>\n' > "$work/alone.c"
for std in c11 c17; do
  cc -std=$std -Wall -Wextra -Wpedantic -Werror -Wstrict-prototypes \
     -I"$src/include" -fsyntax-only "$work/alone.c"
done
if command -v c++ >/dev/null; then
  c++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -Wold-style-cast -x c++ \
      -I"$src/include" -fsyntax-only "$work/alone.c"
fi

if [ -n "$sanitizers" ]; then
  echo "ok: libnnlib_mpi exports and header (consumers skipped: $sanitizers)"
  exit 0
fi
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib*/ | head -n 1)
libdir=${libdir%/}
test -f "$prefix/include/nnlib_mpi.h"
test -L "$libdir/libnnlib_mpi.so.$major"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Werror "$src/tests/mpi/install/app.c" -o "$work/app_pc" \
   $(pkg-config --cflags --libs nnlib_mpi)
LD_LIBRARY_PATH="$libdir" "$work/app_pc"
cmake -S "$src/tests/mpi/install" -B "$work/consumer" \
      -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/consumer/app"
echo "ok: libnnlib_mpi exports, header, pkg-config and find_package(nnlib COMPONENTS mpi)"
