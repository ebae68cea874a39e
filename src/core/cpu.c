/* cpu.c - which vector instructions this CPU and its operating system
 * allow, for judging the BLAS kernels (blas_info.c). */
#include "core/core.h"

nnlib_simd nnlib__cpu_simd(void) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  /* libgcc's answers include the operating system's part: AVX and AVX-512
   * count only when XGETBV says their registers are saved on a switch. */
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return NNLIB_SIMD_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return NNLIB_SIMD_AVX2;
  if (__builtin_cpu_supports("avx"))
    return NNLIB_SIMD_AVX;
  return NNLIB_SIMD_SSE;
#else
  return NNLIB_SIMD_UNKNOWN;
#endif
}
