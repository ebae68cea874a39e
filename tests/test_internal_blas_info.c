/* The BLAS verdict (src/core/blas_info.c, cpu.c, nnlib_blas_get_info):
 * OpenBLAS kernel names map to the vector sets their kernels use, in both
 * spellings; the fallback verdict for every pair of kernels and CPU that
 * matters (Prescott kernels on an AVX-512 or AVX2 CPU are a fallback, the
 * environment's Haswell kernels on an AVX-512 CPU are not, unknown names
 * never are); the CPU's set against CPUID and XGETBV read here directly
 * (what the process's CPU offers: under valgrind, which emulates no
 * AVX-512, less than the machine) and at most what /proc/cpuinfo's flags
 * say of the machine; the public call against OpenBLAS's own answers; and
 * the output-struct rules (NULL, too small, a shorter or a longer
 * struct). */
#include "nnlib_internal.h"
#include "test_support.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS's own answers, declared here so that the test reads them
 * without nnlib in between. */
char *openblas_get_corename(void);
char *openblas_get_config(void);

static void test_kernel_names(void **state) {
  (void)state;
  assert_int_equal(nnlib__blas_kernels_simd("Prescott"), NNLIB_SIMD_SSE);
  assert_int_equal(nnlib__blas_kernels_simd("Nehalem"), NNLIB_SIMD_SSE);
  assert_int_equal(nnlib__blas_kernels_simd("Opteron_SSE3"), NNLIB_SIMD_SSE);
  assert_int_equal(nnlib__blas_kernels_simd("Sandybridge"), NNLIB_SIMD_AVX);
  assert_int_equal(nnlib__blas_kernels_simd("Haswell"), NNLIB_SIMD_AVX2);
  assert_int_equal(nnlib__blas_kernels_simd("Zen"), NNLIB_SIMD_AVX2);
  assert_int_equal(nnlib__blas_kernels_simd("SkylakeX"), NNLIB_SIMD_AVX512);
  assert_int_equal(nnlib__blas_kernels_simd("Cooperlake"), NNLIB_SIMD_AVX512);
  assert_int_equal(nnlib__blas_kernels_simd("SapphireRapids"),
                   NNLIB_SIMD_AVX512);
  /* a build for one CPU spells it in capitals */
  assert_int_equal(nnlib__blas_kernels_simd("HASWELL"), NNLIB_SIMD_AVX2);
  assert_int_equal(nnlib__blas_kernels_simd("PRESCOTT"), NNLIB_SIMD_SSE);
  /* not x86, not known, a prefix only, nothing */
  assert_int_equal(nnlib__blas_kernels_simd("armv8"), NNLIB_SIMD_UNKNOWN);
  assert_int_equal(nnlib__blas_kernels_simd("Bulldozer"), NNLIB_SIMD_UNKNOWN);
  assert_int_equal(nnlib__blas_kernels_simd("Has"), NNLIB_SIMD_UNKNOWN);
  assert_int_equal(nnlib__blas_kernels_simd("Haswellx"), NNLIB_SIMD_UNKNOWN);
  assert_int_equal(nnlib__blas_kernels_simd(""), NNLIB_SIMD_UNKNOWN);
  assert_int_equal(nnlib__blas_kernels_simd(NULL), NNLIB_SIMD_UNKNOWN);
}

typedef struct verdict_case {
  const char *kernels;
  nnlib_simd cpu;
  int fallback;
  const char *suggested; /* NULL: none */
  const char *config;    /* NULL: a DYNAMIC_ARCH build's */
} verdict_case;

#define DYNAMIC_CONFIG                                                         \
  "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Prescott "              \
  "MAX_THREADS=64"

static void test_verdicts(void **state) {
  (void)state;
  static const verdict_case cases[] = {
      /* OpenBLAS 0.3.21 on an Emerald Rapids */
      {"Prescott", NNLIB_SIMD_AVX512, 1, "SkylakeX", NULL},
      /* ... and on an AVX2 machine it does not know */
      {"Prescott", NNLIB_SIMD_AVX2, 1, "Haswell", NULL},
      {"Nehalem", NNLIB_SIMD_AVX2, 1, "Haswell", NULL},
      {"Sandybridge", NNLIB_SIMD_AVX512, 1, "SkylakeX", NULL},
      /* the environment's pin: narrower, on purpose, not a fallback */
      {"Haswell", NNLIB_SIMD_AVX512, 0, NULL, NULL},
      {"Haswell", NNLIB_SIMD_AVX2, 0, NULL, NULL},
      {"SkylakeX", NNLIB_SIMD_AVX512, 0, NULL, NULL},
      {"Cooperlake", NNLIB_SIMD_AVX512, 0, NULL, NULL},
      /* an old CPU on the kernels it has */
      {"Prescott", NNLIB_SIMD_SSE, 0, NULL, NULL},
      {"Sandybridge", NNLIB_SIMD_AVX, 0, NULL, NULL},
      /* nothing known: no verdict */
      {"armv8", NNLIB_SIMD_UNKNOWN, 0, NULL, NULL},
      {"Bulldozer", NNLIB_SIMD_AVX2, 0, NULL, NULL},
      {"Prescott", NNLIB_SIMD_UNKNOWN, 0, NULL, NULL},
      /* a build for one old CPU: a fallback, but OPENBLAS_CORETYPE has no
       * other kernels to pick */
      {"PRESCOTT", NNLIB_SIMD_AVX2, 1, NULL,
       "OpenBLAS 0.3.21 NO_AFFINITY PRESCOTT MAX_THREADS=64"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const verdict_case *c = &cases[i];
    nnlib_blas_info info;
    memset(&info, 0xAB, sizeof info);
    const char *config = c->config != NULL ? c->config : DYNAMIC_CONFIG;
    nnlib__blas_assess(&info, config, c->kernels, c->cpu);
    assert_int_equal(info.struct_size, sizeof info);
    assert_ptr_equal(info.config, config);
    assert_ptr_equal(info.kernels, c->kernels);
    assert_int_equal(info.kernels_simd, nnlib__blas_kernels_simd(c->kernels));
    assert_int_equal(info.cpu_simd, c->cpu);
    if (info.kernels_are_fallback != c->fallback)
      fail_msg("%s on cpu set %d: fallback %d, expected %d", c->kernels,
               (int)c->cpu, info.kernels_are_fallback, c->fallback);
    if (c->suggested == NULL)
      assert_null(info.suggested_kernels);
    else
      assert_string_equal(info.suggested_kernels, c->suggested);
  }
}

/* True when the flags line of /proc/cpuinfo has `flag` as a whole word. */
static bool has_flag(const char *flags, const char *flag) {
  size_t n = strlen(flag);
  for (const char *p = strstr(flags, flag); p != NULL; p = strstr(p + 1, flag))
    if ((p == flags || p[-1] == ' ' || p[-1] == '\t') &&
        (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
      return true;
  return false;
}

/* The CPU's set read from the kernel's flags (which, as the library's
 * answer, show AVX and AVX-512 only when the operating system saves their
 * registers). UNKNOWN when there is no /proc/cpuinfo or no flags line. */
static nnlib_simd simd_from_proc_cpuinfo(void) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f == NULL)
    return NNLIB_SIMD_UNKNOWN;
  static char line[8192];
  nnlib_simd simd = NNLIB_SIMD_UNKNOWN;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "flags", 5) != 0)
      continue;
    if (has_flag(line, "avx512f") && has_flag(line, "avx512bw") &&
        has_flag(line, "avx512dq") && has_flag(line, "avx512vl"))
      simd = NNLIB_SIMD_AVX512;
    else if (has_flag(line, "avx2") && has_flag(line, "fma"))
      simd = NNLIB_SIMD_AVX2;
    else if (has_flag(line, "avx"))
      simd = NNLIB_SIMD_AVX;
    else
      simd = NNLIB_SIMD_SSE;
    break;
  }
  fclose(f);
  return simd;
}

#if defined(__x86_64__) || defined(__i386__)
/* XCR0: which register states the operating system saves on a switch. */
static uint64_t xcr0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

/* The set from the CPUID bits (Intel SDM vol. 2A, CPUID leaves 1 and 7)
 * and XCR0: AVX needs the XMM and YMM states (bits 1, 2), AVX-512 also the
 * opmask and upper ZMM states (bits 5 to 7). */
static nnlib_simd simd_from_cpuid(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d))
    return NNLIB_SIMD_SSE;
  bool fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  if (!osxsave || !avx || (xcr0() & 0x6) != 0x6)
    return NNLIB_SIMD_SSE;
  unsigned b7 = 0;
  if (__get_cpuid_count(7, 0, &a, &b7, &c, &d) == 0)
    b7 = 0;
  bool avx2 = (b7 >> 5) & 1;
  bool avx512 = ((b7 >> 16) & 1) && ((b7 >> 17) & 1) && ((b7 >> 30) & 1) &&
                ((b7 >> 31) & 1) && (xcr0() & 0xe0) == 0xe0;
  if (avx512 && avx2 && fma)
    return NNLIB_SIMD_AVX512;
  return avx2 && fma ? NNLIB_SIMD_AVX2 : NNLIB_SIMD_AVX;
}
#else
static nnlib_simd simd_from_cpuid(void) { return NNLIB_SIMD_UNKNOWN; }
#endif

static void test_this_machine(void **state) {
  (void)state;
  nnlib_blas_info info;
  memset(&info, 0xAB, sizeof info);
  info.struct_size = sizeof info;
  assert_int_equal(nnlib_blas_get_info(&info), NNLIB_OK);
  assert_int_equal(info.struct_size, sizeof info);
  assert_string_equal(info.kernels, openblas_get_corename());
  assert_string_equal(info.config, openblas_get_config());
  /* nnlib's copy, not OpenBLAS's buffer, which each call rewrites */
  assert_ptr_not_equal(info.config, openblas_get_config());
  assert_int_equal(info.cpu_simd, simd_from_cpuid());
  nnlib_simd proc = simd_from_proc_cpuinfo();
  if (proc != NNLIB_SIMD_UNKNOWN)
    assert_true(info.cpu_simd <= proc);
  /* the environment's pin (OPENBLAS_CORETYPE=Haswell): AVX2 kernels,
   * never a fallback on the CPUs that can run them */
  const char *pin = getenv("OPENBLAS_CORETYPE");
  if (pin != NULL && strcmp(pin, "Haswell") == 0) {
    assert_string_equal(info.kernels, "Haswell");
    assert_int_equal(info.kernels_simd, NNLIB_SIMD_AVX2);
    assert_int_equal(info.kernels_are_fallback, 0);
    assert_null(info.suggested_kernels);
  }
  /* the same verdict as the rule applied to what was read */
  nnlib_blas_info again;
  nnlib__blas_assess(&again, info.config, info.kernels, info.cpu_simd);
  assert_int_equal(info.kernels_are_fallback, again.kernels_are_fallback);
}

static void test_struct_rules(void **state) {
  (void)state;
  assert_int_equal(nnlib_blas_get_info(NULL), NNLIB_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(nnlib_last_error_message(), "info is NULL"));

  nnlib_blas_info info;
  memset(&info, 0xAB, sizeof info);
  info.struct_size = 4;
  assert_int_equal(nnlib_blas_get_info(&info), NNLIB_ERR_STRUCT_SIZE);
  assert_non_null(strstr(nnlib_last_error_message(), "nnlib_blas_get_info"));

  /* an older caller's struct that ends after `kernels`: that prefix, and
   * not a byte after it */
  size_t prefix = offsetof(nnlib_blas_info, kernels) + sizeof(const char *);
  unsigned char bytes[sizeof(nnlib_blas_info) + 16];
  memset(bytes, 0xAB, sizeof bytes);
  memcpy(bytes, &prefix, sizeof prefix);
  assert_int_equal(nnlib_blas_get_info((nnlib_blas_info *)(void *)bytes),
                   NNLIB_OK);
  nnlib_blas_info got;
  memcpy(&got, bytes, prefix);
  assert_int_equal(got.struct_size, prefix);
  assert_string_equal(got.kernels, openblas_get_corename());
  for (size_t i = prefix; i < sizeof bytes; i++)
    assert_int_equal(bytes[i], 0xAB);

  /* a newer caller's longer struct: the fields this library lacks zeroed */
  size_t longer = sizeof(nnlib_blas_info) + 8;
  memset(bytes, 0xAB, sizeof bytes);
  memcpy(bytes, &longer, sizeof longer);
  assert_int_equal(nnlib_blas_get_info((nnlib_blas_info *)(void *)bytes),
                   NNLIB_OK);
  for (size_t i = sizeof(nnlib_blas_info); i < longer; i++)
    assert_int_equal(bytes[i], 0);
  for (size_t i = longer; i < sizeof bytes; i++)
    assert_int_equal(bytes[i], 0xAB);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kernel_names),
      cmocka_unit_test(test_verdicts),
      cmocka_unit_test(test_this_machine),
      cmocka_unit_test(test_struct_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
