#!/usr/bin/env bash
# include/nnlib.h is self-contained and warning-free as C11 and as C++11,
# and a C++ program links against libnnlib through it (extern "C").
#   check_header.sh <cc> <c++> <include-dir> <library> [extra flags...]
# Extra flags (sanitizers) go to the C++ link so that it matches the build.
set -euo pipefail
cc=$1 cxx=$2 include=$3 lib=$4
shift 4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
warn=(-Wall -Wextra -Wpedantic -Werror)

# 1. alone, first and only include, as C11 (C17 too) and C++11 (and 17)
printf '#include <nnlib.h>\n' > "$work/alone.c"
for std in c11 c17; do
  "$cc" -std=$std "${warn[@]}" -Wstrict-prototypes -Wmissing-prototypes \
    -I"$include" -fsyntax-only "$work/alone.c"
done
for std in c++11 c++17; do
  "$cxx" -std=$std "${warn[@]}" -Wold-style-cast -x c++ -I"$include" \
    -fsyntax-only "$work/alone.c"
done

# 2. included twice (guard) and used from C++ with the C names
cat > "$work/use.cpp" <<'CPP'
#include <nnlib.h>
#include <nnlib.h>
#include <cstdio>

int main() {
  static_assert(NNLIB_VERSION_AT_LEAST(1, 0, 0), "version macros");
  nnlib_model *m = nullptr;
  if (nnlib_model_create(&m) != NNLIB_OK) return 1;
  nnlib_model_free(m);
  nnlib_optimizer_options o;
  if (nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM) != NNLIB_OK) return 1;
  std::printf("%s %u %s\n", nnlib_version_string(), nnlib_version(),
              nnlib_status_string(NNLIB_ERR_SHAPE_MISMATCH));
  return nnlib_version() / 10000 == NNLIB_VERSION_MAJOR ? 0 : 1;
}
CPP
"$cxx" -std=c++11 "${warn[@]}" -I"$include" "$@" "$work/use.cpp" "$lib" \
  -Wl,-rpath,"$(dirname "$lib")" -o "$work/use"
"$work/use"
echo "ok: nnlib.h compiles alone as C11/C17 and C++11/C++17, links from C++"
