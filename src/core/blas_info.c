/* blas_info.c - whether OpenBLAS's kernels suit this CPU. OpenBLAS built
 * with DYNAMIC_ARCH picks a kernel set from the CPU's model number when it
 * is loaded; a model newer than its table gets an old fallback: 0.3.21
 * (Debian 12's) runs an Emerald Rapids (family 6, model 207) on its
 * Prescott kernels, SSE3 without FMA: mlp-large's eight products at batch
 * 64 on one core ran at 30.5 GFLOP/s, against 78.2 on its Haswell kernels
 * and 130.4 on its SkylakeX ones (medians of 3, nnlib-bench --bench
 * gemm). Nothing in the process can change the choice after load, so
 * nnlib reports it (nnlib_blas_get_info) and the tool warns. */
#include "core/core.h"

#include <ctype.h>
#include <string.h>

typedef struct kernel_set {
  const char *name; /* as openblas_get_corename() spells it */
  nnlib_simd simd;
} kernel_set;

/* OpenBLAS's x86 kernel sets (the corename table of its dynamic.c). The
 * AMD Bulldozer family's sets are left out: how wide their kernels run was
 * not checked, so they get no verdict (UNKNOWN). */
static const kernel_set kernel_sets[] = {
    {"Katmai", NNLIB_SIMD_SSE},        {"Coppermine", NNLIB_SIMD_SSE},
    {"Northwood", NNLIB_SIMD_SSE},     {"Prescott", NNLIB_SIMD_SSE},
    {"Banias", NNLIB_SIMD_SSE},        {"Atom", NNLIB_SIMD_SSE},
    {"Core2", NNLIB_SIMD_SSE},         {"Penryn", NNLIB_SIMD_SSE},
    {"Dunnington", NNLIB_SIMD_SSE},    {"Nehalem", NNLIB_SIMD_SSE},
    {"Athlon", NNLIB_SIMD_SSE},        {"Opteron", NNLIB_SIMD_SSE},
    {"Opteron_SSE3", NNLIB_SIMD_SSE},  {"Barcelona", NNLIB_SIMD_SSE},
    {"Nano", NNLIB_SIMD_SSE},          {"Bobcat", NNLIB_SIMD_SSE},
    {"Sandybridge", NNLIB_SIMD_AVX},   {"Haswell", NNLIB_SIMD_AVX2},
    {"Zen", NNLIB_SIMD_AVX2},          {"SkylakeX", NNLIB_SIMD_AVX512},
    {"Cooperlake", NNLIB_SIMD_AVX512}, {"SapphireRapids", NNLIB_SIMD_AVX512},
};

static bool same_name(const char *a, const char *b) {
  for (; *a != '\0' && *b != '\0'; a++, b++)
    if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
      return false;
  return *a == *b;
}

nnlib_simd nnlib__blas_kernels_simd(const char *kernels) {
  if (kernels == NULL)
    return NNLIB_SIMD_UNKNOWN;
  for (size_t i = 0; i < sizeof kernel_sets / sizeof *kernel_sets; i++)
    if (same_name(kernels, kernel_sets[i].name))
      return kernel_sets[i].simd;
  return NNLIB_SIMD_UNKNOWN;
}

/* A fallback is kernels without the AVX2 and FMA the CPU has: on the
 * Emerald Rapids above they ran at 0.23x the AVX-512 kernels' rate. Haswell
 * kernels on an AVX-512 CPU are not one: that is the choice of
 * environments that pin OPENBLAS_CORETYPE=Haswell, and they ran at 0.60x
 * there (at the same rate on a Zen 4, whose AVX-512 is no faster). */
void nnlib__blas_assess(nnlib_blas_info *info, const char *config,
                        const char *kernels, nnlib_simd cpu) {
  memset(info, 0, sizeof *info);
  info->struct_size = sizeof *info;
  info->config = config;
  info->kernels = kernels;
  info->kernels_simd = nnlib__blas_kernels_simd(kernels);
  info->cpu_simd = cpu;
  info->kernels_are_fallback = info->kernels_simd != NNLIB_SIMD_UNKNOWN &&
                               info->kernels_simd < NNLIB_SIMD_AVX2 &&
                               cpu >= NNLIB_SIMD_AVX2;
  /* OPENBLAS_CORETYPE chooses among the kernel sets of a DYNAMIC_ARCH
   * build only; a build for one CPU has no other set to choose */
  bool dynamic = config != NULL && strstr(config, "DYNAMIC_ARCH") != NULL;
  if (info->kernels_are_fallback && dynamic)
    info->suggested_kernels = cpu >= NNLIB_SIMD_AVX512 ? "SkylakeX" : "Haswell";
}
