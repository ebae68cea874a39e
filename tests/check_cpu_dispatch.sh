#!/usr/bin/env bash
# The cloned loops on CPUs other than this one: runs test executables under
# qemu-x86_64's emulation of two AVX2 machines without AVX-512, an AMD Zen 3
# (EPYC-Milan-v1) and an Intel Haswell (Haswell-v1), so that the loader
# picks the clones those CPUs get (tests/test_internal_gate_math checks the
# pick against the emulated CPU's features) and their results are checked
# as the tests check them natively. The emulated CPU, not the build
# machine, decides which clones run, so a wrong choice for other CPUs
# shows here (an arch= clone, picked only on that one CPU model, ran the
# recurrent cells scalar on every other AVX2 machine).
#   check_cpu_dispatch.sh QEMU TEST_EXECUTABLE...
# Both models have AVX2 and FMA, which the OpenBLAS kernels the
# environment may force (OPENBLAS_CORETYPE=Haswell) need.
set -euo pipefail
qemu=$1
shift
status=0
for cpu in EPYC-Milan-v1 Haswell-v1; do
  for exe in "$@"; do
    # qemu warns about every CPUID feature its emulator lacks: not ours.
    # The verdict is CMocka's summary (a crash prints none).
    out=$("$qemu" -cpu "$cpu" "$exe" 2>&1 |
      grep -v "^qemu-x86_64: warning: TCG doesn't support" || true)
    if printf '%s\n' "$out" | grep -q '^\[  PASSED  \]' &&
       ! printf '%s\n' "$out" | grep -q '^\[  FAILED  \]'; then
      echo "$cpu $(basename "$exe"): passed"
    else
      echo "$cpu $(basename "$exe"): FAILED"
      printf '%s\n' "$out"
      status=1
    fi
  done
done
exit $status
