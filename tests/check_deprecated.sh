#!/usr/bin/env bash
# The names 1.3.0 deprecated warn where they are used, and the warning names
# the replacement; NNLIB_NO_DEPRECATION_WARNINGS silences them; the
# replacements compile clean. As C11, and as C++11 when a C++ compiler is
# given.
#   check_deprecated.sh <cc> <include-dir> [<c++>]
set -euo pipefail
cc=$1 include=$2 cxx=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
warn=(-Wall -Wextra -Wpedantic)

cat > "$work/old.c" <<'C'
#include <nnlib.h>
int use_old(nnlib_model *m, nnlib_layer *l, nnlib_tensor **x, nnlib_tensor **y,
            void **data, size_t *size) {
  int bad = nnlib_optimizer_step(m) != NNLIB_OK;
  bad += nnlib_layer_get_param_count(l) == 0;
  bad += nnlib_model_save_buffer(m, 0, data, size) != NNLIB_OK;
  bad += nnlib_dataset_load(NULL, NNLIB_SPLIT_TEST, 0, 0, x, y) != NNLIB_OK;
  return bad;
}
C
cat > "$work/new.c" <<'C'
#include <nnlib.h>
int use_new(nnlib_model *m, nnlib_layer *l, nnlib_tensor **x, nnlib_tensor **y,
            void **data, size_t *size) {
  int bad = nnlib_model_apply_gradients(m) != NNLIB_OK;
  bad += nnlib_layer_get_param_tensor_count(l) == 0;
  bad += nnlib_model_save_to_buffer(data, size, m, 0) != NNLIB_OK;
  bad += nnlib_dataset_load_split(x, y, NULL, NNLIB_SPLIT_TEST, 0, 0) != NNLIB_OK;
  return bad;
}
C

check() { # <compiler> <language flags...>
  local compiler=$1
  shift
  "$compiler" "$@" "${warn[@]}" -I"$include" -fsyntax-only "$work/old.c" \
    2> "$work/warnings" || { cat "$work/warnings"; exit 1; }
  for replacement in nnlib_model_apply_gradients \
      nnlib_layer_get_param_tensor_count nnlib_model_save_to_buffer \
      nnlib_dataset_load_split; do
    if ! grep -q "deprecated.*use $replacement" "$work/warnings"; then
      echo "$compiler $*: no deprecation warning naming $replacement:"
      cat "$work/warnings"
      exit 1
    fi
  done
  "$compiler" "$@" "${warn[@]}" -Werror -DNNLIB_NO_DEPRECATION_WARNINGS \
    -I"$include" -fsyntax-only "$work/old.c"
  "$compiler" "$@" "${warn[@]}" -Werror -I"$include" -fsyntax-only \
    "$work/new.c"
}

check "$cc" -std=c11
if [ -n "$cxx" ]; then
  check "$cxx" -std=c++11 -x c++
fi
echo "ok: the deprecated names warn with their replacement, the macro" \
  "silences them, the replacements compile clean"
