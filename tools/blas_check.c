/* blas_check.c - one line about the BLAS underneath: printed by --version,
 * and a warning before any command that computes when OpenBLAS runs
 * kernels narrower than the CPU allows (nnlib_blas_get_info). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

static const char *simd_name(nnlib_simd simd) {
  switch (simd) {
  case NNLIB_SIMD_SSE:
    return "SSE";
  case NNLIB_SIMD_AVX:
    return "AVX";
  case NNLIB_SIMD_AVX2:
    return "AVX2";
  case NNLIB_SIMD_AVX512:
    return "AVX-512";
  default:
    return "unknown";
  }
}

static bool read_info(nnlib_blas_info *info) {
  info->struct_size = sizeof *info;
  return nnlib_blas_get_info(info) == NNLIB_OK;
}

const char *cli_blas_kernels(void) {
  nnlib_blas_info info;
  return read_info(&info) ? info.kernels : "unknown";
}

void cli_print_blas(FILE *out) {
  nnlib_blas_info info;
  if (!read_info(&info))
    return;
  fprintf(out, "%s\nkernels: %s (%s); CPU: %s\n", info.config, info.kernels,
          simd_name(info.kernels_simd), simd_name(info.cpu_simd));
}

void cli_warn_slow_blas(void) {
  nnlib_blas_info info;
  if (!read_info(&info) || !info.kernels_are_fallback)
    return;
  const char *pin = getenv("OPENBLAS_CORETYPE");
  const char *why =
      pin != NULL && pin[0] != '\0'    ? " (OPENBLAS_CORETYPE chose them)"
      : info.suggested_kernels != NULL ? ": it did not recognise this CPU"
                                       : ": it was built for an older CPU";
  fprintf(stderr,
          "nnlib: warning: OpenBLAS runs its %s kernels (%s) on a CPU with "
          "%s%s, and every matrix product runs several times slower than it "
          "could. ",
          info.kernels, simd_name(info.kernels_simd), simd_name(info.cpu_simd),
          why);
  if (info.suggested_kernels != NULL)
    fprintf(stderr,
            "Start nnlib with OPENBLAS_CORETYPE=%s in the environment.\n",
            info.suggested_kernels);
  else
    fprintf(stderr,
            "Install an OpenBLAS built for this CPU, or with DYNAMIC_ARCH.\n");
}
