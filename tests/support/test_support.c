#include "test_support.h"
#include <math.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TS_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef TS_ON_VALGRIND
#define TS_ON_VALGRIND() 0
#endif
#if defined(__SANITIZE_THREAD__)
#define TS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TS_TSAN 1
#endif
#endif
#ifndef TS_TSAN
#define TS_TSAN 0
#endif

nnlib_layer *ts_dense(int64_t in, int64_t out, int bias) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_dense_create(&l, in, out, bias));
  return l;
}

nnlib_layer *ts_act(nnlib_activation kind, float param) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_activation_create(&l, kind, param));
  return l;
}

nnlib_model *ts_model(int64_t in, int64_t max_batch, nnlib_loss loss,
                      nnlib_optimizer *opt, uint64_t seed, ...) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  va_list ap;
  va_start(ap, seed);
  for (nnlib_layer *l = va_arg(ap, nnlib_layer *); l != NULL;
       l = va_arg(ap, nnlib_layer *))
    ASSERT_OK(nnlib_model_add(m, l));
  va_end(ap);
  ASSERT_OK(nnlib_model_compile(m, &in, 1, max_batch, loss, opt, seed));
  return m;
}

nnlib_model *ts_chain3(nnlib_layer **layers, size_t count,
                       const int64_t shape[3], int64_t max_batch,
                       nnlib_loss loss) {
  nnlib_model *m = NULL;
  nnlib_optimizer *opt = NULL;
  if (loss != NNLIB_LOSS_NONE)
    ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  ASSERT_OK(nnlib_model_create(&m));
  for (size_t i = 0; i < count; i++)
    ASSERT_OK(nnlib_model_add(m, layers[i]));
  ASSERT_OK(nnlib_model_compile(m, shape, 3, max_batch, loss, opt, 3));
  return m;
}

static void randomise_params(nnlib_layer *l, uint32_t *state) {
  for (size_t p = 0; p < nnlib_layer_get_param_tensor_count(l); p++) {
    nnlib_tensor *t;
    ASSERT_OK(nnlib_layer_get_param(l, p, &t, NULL));
    if (nnlib_tensor_get_rank(t) != 1)
      continue;
    bool scale = strcmp(nnlib_layer_get_param_name(l, p), "weight") == 0;
    ts_fill_uniform(nnlib_tensor_get_data(t), nnlib_tensor_get_size(t),
                    scale ? 0.5f : -0.3f, scale ? 1.5f : 0.3f, state);
  }
}

static void randomise_buffers(nnlib_layer *l, uint32_t *state) {
  for (size_t b = 0; b < nnlib_layer_get_buffer_count(l); b++) {
    nnlib_tensor *t;
    ASSERT_OK(nnlib_layer_get_buffer(l, b, &t));
    bool var = strcmp(nnlib_layer_get_buffer_name(l, b), "running_var") == 0;
    ts_fill_uniform(nnlib_tensor_get_data(t), nnlib_tensor_get_size(t),
                    var ? 0.5f : -0.3f, var ? 1.5f : 0.3f, state);
  }
}

void ts_randomise_state(nnlib_model *m, uint32_t *state) {
  for (size_t i = 0; i < nnlib_model_get_layer_count(m); i++) {
    randomise_params(nnlib_model_get_layer(m, i), state);
    randomise_buffers(nnlib_model_get_layer(m, i), state);
  }
}

void ts_assert_params_near(nnlib_model *a, nnlib_model *b, size_t layers,
                           double tol) {
  for (size_t li = 0; li < layers; li++) {
    nnlib_layer *la = nnlib_model_get_layer(a, li);
    nnlib_layer *lb = nnlib_model_get_layer(b, li);
    for (size_t p = 0; p < nnlib_layer_get_param_tensor_count(la); p++) {
      nnlib_tensor *va, *vb;
      ASSERT_OK(nnlib_layer_get_param(la, p, &va, NULL));
      ASSERT_OK(nnlib_layer_get_param(lb, p, &vb, NULL));
      for (int64_t k = 0; k < nnlib_tensor_get_size(va); k++)
        ASSERT_NEAR(nnlib_tensor_get_data(va)[k], nnlib_tensor_get_data(vb)[k],
                    tol);
    }
  }
}

nnlib_tensor *ts_tensor2(int64_t rows, int64_t cols, const float *values) {
  nnlib_tensor *t = NULL;
  int64_t shape[2] = {rows, cols};
  ASSERT_OK(nnlib_tensor_create(&t, shape, 2));
  if (values != NULL)
    memcpy(nnlib_tensor_get_data(t), values,
           (size_t)(rows * cols) * sizeof(float));
  return t;
}

void ts_fill_uniform(float *v, int64_t n, float lo, float hi,
                     uint32_t *state) {
  for (int64_t i = 0; i < n; i++) {
    *state = *state * 1664525u + 1013904223u;
    v[i] = lo + (hi - lo) * (float)(*state >> 8) / 16777216.0f;
  }
}

static ts_alloc_stats *stats_now;
static int fail_persistent; /* ts_alloc_fail_persistent */

static void *counting_alloc(size_t size, size_t alignment, void *user) {
  ts_alloc_stats *s = user;
  s->allocs++;
  if (s->fail_at != 0 && (s->allocs == s->fail_at ||
                          (fail_persistent && s->allocs > s->fail_at)))
    return NULL;
  size_t rounded = (size + alignment - 1) / alignment * alignment;
  void *p = aligned_alloc(alignment, rounded);
  if (p != NULL)
    s->live++;
  return p;
}

static void counting_free(void *ptr, void *user) {
  ts_alloc_stats *s = user;
  if (ptr == NULL)
    return;
  s->frees++;
  s->live--;
  free(ptr);
}

void ts_alloc_install(ts_alloc_stats *stats) {
  memset(stats, 0, sizeof *stats - sizeof stats->fail_at);
  stats_now = stats;
  nnlib_allocator a = {sizeof a, counting_alloc, counting_free, stats};
  ASSERT_OK(nnlib_set_allocator(&a));
}

void ts_alloc_fail_persistent(int on) { fail_persistent = on; }

void ts_alloc_uninstall(void) {
  stats_now = NULL;
  fail_persistent = 0;
  nnlib_set_allocator(NULL);
}

void ts_expect_message(const char *needle) {
  const char *msg = nnlib_last_error_message();
  if (strstr(msg, needle) == NULL)
    fail_msg("message \"%s\" does not mention \"%s\"", msg, needle);
}

void ts_check_spec_items(const char *const (*items)[2], size_t count) {
  for (size_t i = 0; i < count; i++) {
    nnlib_model *m = NULL;
    char buf[512];
    ASSERT_OK(nnlib_model_create(&m));
    ASSERT_OK(nnlib_model_add_spec(m, items[i][0]));
    ASSERT_OK(nnlib_model_get_spec(m, buf, sizeof buf, NULL));
    assert_string_equal(buf, items[i][1]);
    nnlib_model_free(m);
  }
}

void ts_check_spec_errors(const char *const (*bad)[2], size_t count) {
  for (size_t i = 0; i < count; i++) {
    nnlib_model *m = NULL;
    ASSERT_OK(nnlib_model_create(&m));
    ASSERT_STATUS(NNLIB_ERR_PARSE, nnlib_model_add_spec(m, bad[i][0]));
    ts_expect_message(bad[i][1]);
    assert_int_equal(nnlib_model_get_layer_count(m), 0); /* nothing added */
    nnlib_model_free(m);
  }
}

bool ts_split_gemms_checkable(void) { return !TS_ON_VALGRIND(); }

bool ts_fork_with_threads_checkable(void) { return !TS_TSAN; }

nnlib_layer *ts_conv(int cin, int cout, int kh, int kw, const int geom[6],
                     int bias) {
  nnlib_conv2d_options o;
  ASSERT_OK(nnlib_conv2d_options_init(&o));
  o.in_channels = cin;
  o.stride_h = geom[0];
  o.stride_w = geom[1];
  o.padding_h = geom[2];
  o.padding_w = geom[3];
  o.dilation_h = geom[4];
  o.dilation_w = geom[5];
  o.with_bias = bias;
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_conv2d_create(&l, cout, kh, kw, &o));
  return l;
}

double ts_ulp_error(float y, long double want) {
  long double a = fabsl(want);
  int e;
  frexpl(a, &e); /* a = f 2^e, f in [0.5, 1) */
  long double ulp = a < 0x1p-126L ? 0x1p-149L : ldexpl(1.0L, e - 24);
  return (double)(fabsl((long double)y - want) / ulp);
}

float *ts_copy_floats(const float *v, int64_t n) {
  float *c = malloc((size_t)n * sizeof *c);
  assert_non_null(c);
  memcpy(c, v, (size_t)n * sizeof *c);
  return c;
}

nnlib_status ts_save_with_file_limit(
    nnlib_status (*start_save)(const nnlib_model *, const char *),
    const nnlib_model *model, const char *path, long bytes) {
  struct rlimit saved, small;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
  small = saved;
  small.rlim_cur = (rlim_t)bytes;
  void (*previous)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  nnlib_status st = start_save(model, path);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
  signal(SIGXFSZ, previous);
  return st;
}
