/* test_support.h - helpers shared by the CMocka tests. */
#ifndef NNLIB_TEST_SUPPORT_H
#define NNLIB_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include <cmocka.h>
#include <nnlib.h>

/* Fails the test with the status text and the library's message. */
#define ASSERT_OK(call)                                                        \
  do {                                                                         \
    nnlib_status st_ = (call);                                                 \
    if (st_ != NNLIB_OK)                                                       \
      fail_msg("%s -> %s: %s", #call, nnlib_status_string(st_),                \
               nnlib_last_error_message());                                    \
  } while (0)

/* Expects exactly `want`, and a non-empty message. */
#define ASSERT_STATUS(want, call)                                              \
  do {                                                                         \
    nnlib_clear_error();                                                       \
    nnlib_status st_ = (call);                                                 \
    if (st_ != (want))                                                         \
      fail_msg("%s -> %s (%d), expected %s (%d): %s", #call,                   \
               nnlib_status_string(st_), (int)st_,                             \
               nnlib_status_string(want), (int)(want),                         \
               nnlib_last_error_message());                                    \
    assert_true(nnlib_last_error_message()[0] != '\0');                        \
  } while (0)

#define ASSERT_NEAR(a, b, tol)                                                 \
  do {                                                                         \
    double a_ = (double)(a), b_ = (double)(b);                                 \
    if (!(fabs(a_ - b_) <= (tol)))                                             \
      fail_msg("%s = %.9g, %s = %.9g, differ by more than %g", #a, a_, #b,     \
               b_, (double)(tol));                                             \
  } while (0)

/* Fails unless the calling thread's last error message contains needle. */
void ts_expect_message(const char *needle);

/* Each items[i][0] is a model description whose get_spec must print
 * items[i][1]; each bad[i][0] must fail with NNLIB_ERR_PARSE, a message
 * containing bad[i][1], and no layer added. */
void ts_check_spec_items(const char *const (*items)[2], size_t count);
void ts_check_spec_errors(const char *const (*bad)[2], size_t count);

/* A model from a list of layers (NULL-terminated), compiled with an input of
 * `in` features. Fails the test on error. */
nnlib_model *ts_model(int64_t in, int64_t max_batch, nnlib_loss loss,
                      nnlib_optimizer *opt, uint64_t seed, ...);
/* A chain of `count` layers compiled for per-sample `shape` (rank 3) at
 * `max_batch`, with plain SGD (rate 0.1) when `loss` is not NONE, seed 3.
 * Fails the test on error. */
nnlib_model *ts_chain3(nnlib_layer **layers, size_t count,
                       const int64_t shape[3], int64_t max_batch,
                       nnlib_loss loss);
nnlib_layer *ts_dense(int64_t in, int64_t out, int bias);
nnlib_layer *ts_act(nnlib_activation kind, float param);
/* conv2d of cout kh x kw kernels over cin channels; geom is {stride_h,
 * stride_w, padding_h, padding_w, dilation_h, dilation_w}. */
nnlib_layer *ts_conv(int cin, int cout, int kh, int kw, const int geom[6],
                     int bias);
nnlib_tensor *ts_tensor2(int64_t rows, int64_t cols, const float *values);
/* Every parameter of the first `layers` layers of a and b within tol. */
void ts_assert_params_near(nnlib_model *a, nnlib_model *b, size_t layers,
                           double tol);
/* Rank-1 parameters (biases, norm scales: scales in [0.5, 1.5), the rest
 * in [-0.3, 0.3)) and every layer buffer (running variances in [0.5, 1.5),
 * the rest in [-0.3, 0.3)) get values from *state, so that each one
 * shows in a model's outputs. */
void ts_randomise_state(nnlib_model *m, uint32_t *state);
/* A malloc'ed copy of v[0 .. n), for comparing passes bit for bit. */
float *ts_copy_floats(const float *v, int64_t n);
/* Uniform values in [lo, hi) from a simple LCG (independent of nnlib). */
void ts_fill_uniform(float *v, int64_t n, float lo, float hi, uint32_t *state);

/* Counting allocator installed through nnlib_set_allocator: counts calls and
 * live blocks, and fails the allocation numbered fail_at (1-based; 0 never). */
typedef struct ts_alloc_stats {
  long allocs, frees, live;
  long fail_at;
} ts_alloc_stats;
void ts_alloc_install(ts_alloc_stats *stats);
void ts_alloc_uninstall(void);
/* on = 1: once allocation fail_at has failed, every later one fails too
 * (SQLite's persistent mode); reset by ts_alloc_uninstall. */
void ts_alloc_fail_persistent(int on);

/* Whether a test may run many threads whose large GEMMs nnlib splits over
 * its pool: not under valgrind (it runs one thread at a time: minutes).
 * docs/RELIABILITY.md. */
bool ts_split_gemms_checkable(void);
/* Whether a test may start threads in a child forked from a process with
 * threads: not under ThreadSanitizer, which refuses to. */
bool ts_fork_with_threads_checkable(void);

/* Files the process writes are limited to `bytes` (RLIMIT_FSIZE, SIGXFSZ
 * ignored, so a write past it fails with EFBIG: a disk that fills up) while
 * start_save(model, path) runs; the limit and the signal's disposition are
 * restored after it. Returns what it returned. */
nnlib_status ts_save_with_file_limit(
    nnlib_status (*start_save)(const nnlib_model *, const char *),
    const nnlib_model *model, const char *path, long bytes);

/* |y - want| in units of the float spacing at want (2^-149 below the
 * normal range): the error of a float result against an exact one. */
double ts_ulp_error(float y, long double want);

#endif
