/* Option structs grow at their end in minor releases, and older callers keep
 * working (issue 15, item 9; docs/ABI_POLICY.md). A caller compiled against
 * an older header declares a shorter struct: the old_* layouts below are
 * prefixes of today's structs, as such a header would have declared them.
 * Each lives in a wrapper followed by a guard region of 0xA5 bytes, so
 *   - *_options_init_size with the caller's sizeof writes the defaults of
 *     the fields the caller has and not one byte past its struct;
 *   - the calls that read options use the defaults for the fields the
 *     caller lacks (every guard byte read as a field would be refused: a
 *     negative epsilon, dilation or min_delta, an unknown schedule, an
 *     inference flag of 0xA5A5A5A5, or a pointer that crashes), and the
 *     result equals that of today's struct with those defaults;
 * and a newer caller's longer struct gets its unknown fields zeroed and
 * refused once set. The 1.0 entry points (the functions behind the macros)
 * fill the layout they have always filled. */
#include "test_support.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

enum { GUARD = 64, POISON = 0xA5 };

/* The caller's struct, then the bytes nothing may touch. */
#define GUARDED(type)                                                          \
  struct {                                                                     \
    type o;                                                                    \
    unsigned char guard[GUARD];                                                \
  }

static void expect_guard(const unsigned char *guard) {
  for (int i = 0; i < GUARD; i++)
    if (guard[i] != POISON)
      fail_msg("guard byte %d past the caller's struct is 0x%02x", i,
               guard[i]);
}

/* ------------------------------------------- the older callers' layouts */

typedef struct old_fit_options { /* before progress, user, epoch_losses */
  size_t struct_size;
  int64_t epochs;
  int64_t batch_size;
  int shuffle;
} old_fit_options;
_Static_assert(sizeof(old_fit_options) ==
                   offsetof(nnlib_fit_options, progress),
               "old_fit_options is a prefix of nnlib_fit_options");

typedef struct old_optimizer_options { /* before epsilon and the schedules */
  size_t struct_size;
  nnlib_optimizer_kind kind;
  float learning_rate, momentum;
  int nesterov;
  float weight_decay, beta1, beta2, alpha;
} old_optimizer_options;
_Static_assert(sizeof(old_optimizer_options) ==
                   offsetof(nnlib_optimizer_options, epsilon),
               "old_optimizer_options is a prefix");

typedef struct old_conv2d_options { /* before dilation and with_bias */
  size_t struct_size;
  int64_t in_channels;
  int64_t stride_h, stride_w;
  int64_t padding_h, padding_w;
} old_conv2d_options;
_Static_assert(sizeof(old_conv2d_options) ==
                   offsetof(nnlib_conv2d_options, dilation_h),
               "old_conv2d_options is a prefix");

typedef struct old_pool2d_options { /* before padding */
  size_t struct_size;
  int64_t stride_h, stride_w;
} old_pool2d_options;
_Static_assert(sizeof(old_pool2d_options) ==
                   offsetof(nnlib_pool2d_options, padding_h),
               "old_pool2d_options is a prefix");

typedef struct pool2d_options_1_4 { /* before padding_bottom (1.5.0) */
  size_t struct_size;
  int64_t stride_h, stride_w;
  int64_t padding_h, padding_w;
} pool2d_options_1_4;
_Static_assert(sizeof(pool2d_options_1_4) ==
                   offsetof(nnlib_pool2d_options, padding_bottom),
               "pool2d_options_1_4 is a prefix");

typedef struct old_gradcheck_options { /* before inference */
  size_t struct_size;
  float step;
  int random_direction;
  uint64_t seed;
} old_gradcheck_options;
_Static_assert(sizeof(old_gradcheck_options) ==
                   offsetof(nnlib_gradcheck_options, inference),
               "old_gradcheck_options is a prefix");

typedef struct old_validation_options { /* before min_delta */
  size_t struct_size;
  const nnlib_tensor *x, *target;
  float *losses;
  int64_t patience;
} old_validation_options;
_Static_assert(sizeof(old_validation_options) ==
                   offsetof(nnlib_validation_options, min_delta),
               "old_validation_options is a prefix");

/* --------------------------------------------------------------- data */

enum { IN = 3, OUT = 2, SAMPLES = 12, BATCH = 4 };

static nnlib_model *make_model(void) {
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0.0f, 0, 0.0f));
  return ts_model(IN, BATCH, NNLIB_LOSS_MSE, opt, 7, ts_dense(IN, 4, 1),
                  ts_act(NNLIB_ACT_TANH, 0), ts_dense(4, OUT, 1), NULL);
}

typedef struct data {
  nnlib_tensor *x, *t;
} data;

static data make_data(void) {
  data d = {ts_tensor2(SAMPLES, IN, NULL), ts_tensor2(SAMPLES, OUT, NULL)};
  uint32_t state = 11;
  ts_fill_uniform(nnlib_tensor_get_data(d.x), SAMPLES * IN, -1, 1, &state);
  ts_fill_uniform(nnlib_tensor_get_data(d.t), SAMPLES * OUT, -1, 1, &state);
  return d;
}

static void free_data(data d) {
  nnlib_tensor_free(d.x);
  nnlib_tensor_free(d.t);
}

static void expect_same_params(nnlib_model *a, nnlib_model *b) {
  float *pa, *pb;
  int64_t na, nb;
  ASSERT_OK(nnlib_model_get_flat_params(a, &pa, NULL, &na));
  ASSERT_OK(nnlib_model_get_flat_params(b, &pb, NULL, &nb));
  assert_int_equal(na, nb);
  assert_memory_equal(pa, pb, (size_t)na * sizeof(float));
}

/* ------------------------------------------------------------- tests */

static void test_fit_older_caller(void **s) {
  (void)s;
  GUARDED(old_fit_options) w;
  memset(&w, POISON, sizeof w);
  ASSERT_OK(nnlib_fit_options_init_size((nnlib_fit_options *)&w.o,
                                        sizeof w.o));
  expect_guard(w.guard);
  assert_int_equal(w.o.struct_size, sizeof w.o);
  assert_int_equal(w.o.epochs, 1);
  assert_int_equal(w.o.batch_size, 0);
  assert_int_equal(w.o.shuffle, 1);
  w.o.epochs = 3;

  /* the same training as today's struct with its defaults (no progress
   * callback, no epoch_losses: read from the guard they would crash) */
  data d = make_data();
  nnlib_model *older = make_model(), *today = make_model();
  ASSERT_OK(nnlib_model_fit(older, d.x, d.t, (nnlib_fit_options *)&w.o));
  nnlib_fit_options full;
  ASSERT_OK(nnlib_fit_options_init(&full));
  full.epochs = 3;
  ASSERT_OK(nnlib_model_fit(today, d.x, d.t, &full));
  expect_same_params(older, today);
  expect_guard(w.guard);
  assert_int_equal(nnlib_optimizer_get_step_count(
                       nnlib_model_get_optimizer(older)),
                   3 * SAMPLES / BATCH);
  nnlib_model_free(older);
  nnlib_model_free(today);
  free_data(d);
}

static void test_optimizer_older_caller(void **s) {
  (void)s;
  GUARDED(old_optimizer_options) w;
  memset(&w, POISON, sizeof w);
  ASSERT_OK(nnlib_optimizer_options_init_size(
      (nnlib_optimizer_options *)&w.o, NNLIB_OPT_ADAM, sizeof w.o));
  expect_guard(w.guard);
  assert_int_equal(w.o.struct_size, sizeof w.o);
  assert_int_equal(w.o.kind, NNLIB_OPT_ADAM);
  assert_true(w.o.learning_rate == 1e-3f);
  assert_true(w.o.beta1 == 0.9f && w.o.beta2 == 0.999f);
  assert_true(w.o.alpha == 0.99f && w.o.momentum == 0.0f);
  w.o.learning_rate = 0.005f;

  /* the guard read as epsilon would be negative, as schedule unknown */
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_create(&opt, (nnlib_optimizer_options *)&w.o));
  nnlib_optimizer_options got;
  memset(&got, 0xFF, sizeof got);
  got.struct_size = sizeof got;
  ASSERT_OK(nnlib_optimizer_get_options(opt, &got));
  assert_int_equal(got.kind, NNLIB_OPT_ADAM);
  assert_true(got.learning_rate == 0.005f);
  assert_true(got.epsilon == 1e-8f);
  assert_int_equal(got.schedule, NNLIB_SCHEDULE_CONSTANT);
  assert_true(got.gamma == 0.1f && got.min_learning_rate == 0.0f);
  assert_true(got.clip_norm == 0.0f);
  assert_int_equal(got.step_size, 0);
  assert_int_equal(got.total_steps, 0);

  /* reading back into the older struct writes only what it has */
  memset(&w, POISON, sizeof w);
  w.o.struct_size = sizeof w.o;
  ASSERT_OK(nnlib_optimizer_get_options(opt, (nnlib_optimizer_options *)&w.o));
  expect_guard(w.guard);
  assert_int_equal(w.o.struct_size, sizeof w.o);
  assert_true(w.o.learning_rate == 0.005f && w.o.beta2 == 0.999f);
  nnlib_optimizer_free(opt);
}

/* The layer's description names every option that is not its default. */
static void expect_spec(nnlib_layer *layer, const int64_t *shape,
                        size_t rank, const char *spec) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, layer));
  ASSERT_OK(nnlib_model_compile(m, shape, rank, 2, NNLIB_LOSS_NONE, NULL, 1));
  char text[64];
  ASSERT_OK(nnlib_model_get_spec(m, text, sizeof text, NULL));
  assert_string_equal(text, spec);
  nnlib_model_free(m);
}

static void test_conv2d_older_caller(void **s) {
  (void)s;
  GUARDED(old_conv2d_options) w;
  memset(&w, POISON, sizeof w);
  ASSERT_OK(nnlib_conv2d_options_init_size((nnlib_conv2d_options *)&w.o,
                                           sizeof w.o));
  expect_guard(w.guard);
  assert_int_equal(w.o.struct_size, sizeof w.o);
  assert_int_equal(w.o.in_channels, 0);
  assert_int_equal(w.o.stride_h, 1);
  assert_int_equal(w.o.stride_w, 1);
  assert_int_equal(w.o.padding_h, 0);
  assert_int_equal(w.o.padding_w, 0);
  w.o.padding_h = w.o.padding_w = 1;

  /* dilation 1 and a bias, the defaults the caller does not have (else
   * the description would say :dN or :nobias) */
  nnlib_layer *conv = NULL;
  ASSERT_OK(nnlib_conv2d_create(&conv, 2, 3, 3, (nnlib_conv2d_options *)&w.o));
  const int64_t image[3] = {1, 5, 5};
  expect_spec(conv, image, 3, "conv:2x3x3:p1");
  expect_guard(w.guard);
}

static void test_pool2d_older_caller(void **s) {
  (void)s;
  GUARDED(old_pool2d_options) w;
  memset(&w, POISON, sizeof w);
  ASSERT_OK(nnlib_pool2d_options_init_size((nnlib_pool2d_options *)&w.o,
                                           sizeof w.o));
  expect_guard(w.guard);
  assert_int_equal(w.o.struct_size, sizeof w.o);
  assert_int_equal(w.o.stride_h, 0);
  assert_int_equal(w.o.stride_w, 0);
  w.o.stride_h = w.o.stride_w = 1;

  nnlib_layer *pool = NULL;
  ASSERT_OK(nnlib_pool2d_create(&pool, NNLIB_LAYER_MAXPOOL2D, 2, 2,
                                (nnlib_pool2d_options *)&w.o));
  const int64_t image[3] = {1, 4, 4};
  expect_spec(pool, image, 3, "maxpool:2:s1"); /* padding 0 */
  expect_guard(w.guard);
}

/* A 1.4 caller sets padding; the fields added in 1.5 take their defaults:
 * the bottom and right padding follow it, no dilation, floor mode, and an
 * average that counts the padding, so the pool is what 1.4 made. */
static void test_pool2d_1_4_caller(void **s) {
  (void)s;
  GUARDED(pool2d_options_1_4) w;
  memset(&w, POISON, sizeof w);
  ASSERT_OK(nnlib_pool2d_options_init_size((nnlib_pool2d_options *)&w.o,
                                           sizeof w.o));
  expect_guard(w.guard);
  assert_int_equal(w.o.struct_size, sizeof w.o);
  w.o.stride_h = w.o.stride_w = 2;
  w.o.padding_h = w.o.padding_w = 1;
  nnlib_layer *pool = NULL;
  ASSERT_OK(nnlib_pool2d_create(&pool, NNLIB_LAYER_AVGPOOL2D, 3, 3,
                                (nnlib_pool2d_options *)&w.o));
  const int64_t image[3] = {1, 5, 5};
  expect_spec(pool, image, 3, "avgpool:3:s2:p1");
  expect_guard(w.guard);
}

static void test_gradcheck_older_caller(void **s) {
  (void)s;
  GUARDED(old_gradcheck_options) w;
  memset(&w, POISON, sizeof w);
  ASSERT_OK(nnlib_gradcheck_options_init_size(
      (nnlib_gradcheck_options *)&w.o, sizeof w.o));
  expect_guard(w.guard);
  assert_int_equal(w.o.struct_size, sizeof w.o);
  assert_true(w.o.step == 1e-2f);
  assert_int_equal(w.o.random_direction, 0);
  assert_int_equal(w.o.seed, 1);

  /* inference read from the guard would be 0xA5A5A5A5: refused */
  data d = make_data();
  nnlib_model *older = make_model(), *today = make_model();
  nnlib_tensor *x = NULL, *t = NULL;
  int64_t xs[2] = {BATCH, IN}, ts[2] = {BATCH, OUT};
  ASSERT_OK(nnlib_tensor_wrap(&x, nnlib_tensor_get_data(d.x), xs, 2));
  ASSERT_OK(nnlib_tensor_wrap(&t, nnlib_tensor_get_data(d.t), ts, 2));
  double err_older = -1.0, err_today = -2.0;
  ASSERT_OK(nnlib_model_gradcheck(older, x, t,
                                  (nnlib_gradcheck_options *)&w.o,
                                  &err_older));
  ASSERT_OK(nnlib_model_gradcheck(today, x, t, NULL, &err_today));
  assert_true(err_older == err_today); /* the same check: the defaults */
  assert_true(err_older < 1e-2);
  expect_guard(w.guard);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(older);
  nnlib_model_free(today);
  free_data(d);
}

static void test_validation_older_caller(void **s) {
  (void)s;
  GUARDED(old_validation_options) w;
  memset(&w, POISON, sizeof w);
  ASSERT_OK(nnlib_validation_options_init_size(
      (nnlib_validation_options *)&w.o, sizeof w.o));
  expect_guard(w.guard);
  assert_int_equal(w.o.struct_size, sizeof w.o);
  assert_null(w.o.x);
  assert_null(w.o.target);
  assert_null(w.o.losses);
  assert_int_equal(w.o.patience, 0);

  /* min_delta from the guard would be negative, epochs_run a wild
   * pointer: the defaults 0 and NULL are used */
  data d = make_data();
  float losses[2] = {-1.0f, -1.0f};
  w.o.x = d.x;
  w.o.target = d.t;
  w.o.losses = losses;
  nnlib_model *older = make_model(), *today = make_model();
  nnlib_fit_options fit;
  ASSERT_OK(nnlib_fit_options_init(&fit));
  fit.epochs = 2;
  ASSERT_OK(nnlib_model_fit_validated(older, d.x, d.t, &fit,
                                      (nnlib_validation_options *)&w.o));
  expect_guard(w.guard);
  ASSERT_OK(nnlib_model_fit(today, d.x, d.t, &fit));
  expect_same_params(older, today); /* restore_best 0 */
  float loss = 0.0f;
  ASSERT_OK(nnlib_model_evaluate(today, d.x, d.t, &loss, NULL));
  assert_true(losses[1] == loss); /* the second epoch's validation loss */
  assert_true(losses[0] > 0.0f);
  nnlib_model_free(older);
  nnlib_model_free(today);
  free_data(d);
}

/* A program built against a newer header: the fields this library does
 * not know are zeroed by init, accepted while zero, refused once set. */
static void test_newer_caller(void **s) {
  (void)s;
  typedef struct newer_fit_options {
    nnlib_fit_options known;
    int64_t added_later;
  } newer_fit_options;
  GUARDED(newer_fit_options) w;
  memset(&w, POISON, sizeof w);
  ASSERT_OK(nnlib_fit_options_init_size(&w.o.known, sizeof w.o));
  expect_guard(w.guard);
  assert_int_equal(w.o.known.struct_size, sizeof w.o);
  assert_int_equal(w.o.added_later, 0);
  assert_int_equal(w.o.known.epochs, 1);
  assert_null(w.o.known.epoch_losses);

  data d = make_data();
  nnlib_model *m = make_model();
  ASSERT_OK(nnlib_model_fit(m, d.x, d.t, &w.o.known));
  w.o.added_later = 1;
  ASSERT_STATUS(NNLIB_ERR_STRUCT_SIZE,
                nnlib_model_fit(m, d.x, d.t, &w.o.known));
  ts_expect_message("larger than this library knows");
  nnlib_model_free(m);
  free_data(d);
}

/* The functions behind the macros are what programs built against 1.0-1.2
 * headers call: they fill exactly the layout those headers declared, which
 * today is the whole struct, the same bytes as init_size with sizeof. */
#define EXPECT_OLD_ENTRY_POINT(type, call_old, call_sized)                     \
  do {                                                                         \
    GUARDED(type) a;                                                           \
    GUARDED(type) b;                                                           \
    memset(&a, POISON, sizeof a);                                              \
    memset(&b, POISON, sizeof b);                                              \
    ASSERT_OK(call_old);                                                       \
    ASSERT_OK(call_sized);                                                     \
    expect_guard(a.guard);                                                     \
    assert_int_equal(a.o.struct_size, sizeof(type));                           \
    assert_memory_equal(&a.o, &b.o, sizeof(type));                             \
  } while (0)

static void test_old_entry_points(void **s) {
  (void)s;
  EXPECT_OLD_ENTRY_POINT(nnlib_fit_options, (nnlib_fit_options_init)(&a.o),
                         nnlib_fit_options_init_size(&b.o, sizeof b.o));
  EXPECT_OLD_ENTRY_POINT(
      nnlib_validation_options, (nnlib_validation_options_init)(&a.o),
      nnlib_validation_options_init_size(&b.o, sizeof b.o));
  EXPECT_OLD_ENTRY_POINT(nnlib_conv2d_options,
                         (nnlib_conv2d_options_init)(&a.o),
                         nnlib_conv2d_options_init_size(&b.o, sizeof b.o));
  EXPECT_OLD_ENTRY_POINT(
      nnlib_gradcheck_options, (nnlib_gradcheck_options_init)(&a.o),
      nnlib_gradcheck_options_init_size(&b.o, sizeof b.o));
  /* nnlib_optimizer_options grew in 1.4 (warmup_steps): its old entry point
   * fills the 1.3 struct, as programs built against 1.3 headers have it,
   * and nothing past it */
  GUARDED(nnlib_optimizer_options) a;
  nnlib_optimizer_options b;
  size_t old_size = offsetof(nnlib_optimizer_options, warmup_steps);
  memset(&a, POISON, sizeof a);
  ASSERT_OK((nnlib_optimizer_options_init)(&a.o, NNLIB_OPT_RMSPROP));
  ASSERT_OK(nnlib_optimizer_options_init_size(&b, NNLIB_OPT_RMSPROP,
                                              sizeof b));
  expect_guard(a.guard);
  assert_int_equal(a.o.struct_size, old_size);
  assert_memory_equal((const char *)&a.o + sizeof a.o.struct_size,
                      (const char *)&b + sizeof b.struct_size,
                      old_size - sizeof b.struct_size);
  const unsigned char *tail = (const unsigned char *)&a.o.warmup_steps;
  for (size_t i = 0; i < sizeof a.o.warmup_steps; i++)
    assert_int_equal(tail[i], POISON);
  /* nnlib_pool2d_options grew in 1.5 (padding_bottom .. count_include_pad):
   * likewise, its old entry point fills the layout through padding_w */
  GUARDED(nnlib_pool2d_options) p;
  nnlib_pool2d_options q;
  size_t pool_size = offsetof(nnlib_pool2d_options, padding_bottom);
  memset(&p, POISON, sizeof p);
  ASSERT_OK((nnlib_pool2d_options_init)(&p.o));
  ASSERT_OK(nnlib_pool2d_options_init_size(&q, sizeof q));
  expect_guard(p.guard);
  assert_int_equal(p.o.struct_size, pool_size);
  assert_memory_equal((const char *)&p.o + sizeof p.o.struct_size,
                      (const char *)&q + sizeof q.struct_size,
                      pool_size - sizeof q.struct_size);
  const unsigned char *past = (const unsigned char *)&p.o + pool_size;
  for (size_t i = 0; i < sizeof p.o - pool_size; i++)
    assert_int_equal(past[i], POISON);
  /* the defaults of the new fields */
  assert_int_equal(q.padding_bottom, -1);
  assert_int_equal(q.padding_right, -1);
  assert_int_equal(q.dilation_h, 1);
  assert_int_equal(q.dilation_w, 1);
  assert_int_equal(q.ceil_mode, 0);
  assert_int_equal(q.count_include_pad, 1);
}

/* The header's macro passes the caller's own sizeof. */
static void test_macro_passes_callers_size(void **s) {
  (void)s;
  nnlib_fit_options fit;
  memset(&fit, POISON, sizeof fit);
  ASSERT_OK(nnlib_fit_options_init(&fit));
  assert_int_equal(fit.struct_size, sizeof fit);
  assert_null(fit.progress);
  nnlib_optimizer_options opt;
  memset(&opt, POISON, sizeof opt);
  ASSERT_OK(nnlib_optimizer_options_init(&opt, NNLIB_OPT_ADAMW));
  assert_int_equal(opt.struct_size, sizeof opt);
  assert_true(opt.weight_decay == 1e-2f);
}

static void test_init_errors(void **s) {
  (void)s;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_fit_options_init_size(NULL, sizeof(nnlib_fit_options)));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                (nnlib_gradcheck_options_init)(NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_optimizer_options_init_size(
                    NULL, NNLIB_OPT_SGD, sizeof(nnlib_optimizer_options)));
  nnlib_optimizer_options opt;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_optimizer_options_init_size(
                    &opt, (nnlib_optimizer_kind)99, sizeof opt));
  /* too small to hold struct_size: refused, nothing written */
  GUARDED(nnlib_pool2d_options) w;
  memset(&w, POISON, sizeof w);
  ASSERT_STATUS(NNLIB_ERR_STRUCT_SIZE,
                nnlib_pool2d_options_init_size(&w.o, sizeof(size_t) - 1));
  ts_expect_message("struct_size 7 is too small");
  ASSERT_STATUS(NNLIB_ERR_STRUCT_SIZE, nnlib_pool2d_options_init_size(&w.o, 0));
  const unsigned char *bytes = (const unsigned char *)&w;
  for (size_t i = 0; i < sizeof w; i++)
    assert_int_equal(bytes[i], POISON);
  /* exactly struct_size: a struct of no options, every one a default */
  ASSERT_OK(nnlib_pool2d_options_init_size(&w.o, sizeof(size_t)));
  assert_int_equal(w.o.struct_size, sizeof(size_t));
  for (size_t i = sizeof(size_t); i < sizeof w; i++)
    assert_int_equal(bytes[i], POISON);
  nnlib_layer *pool = NULL;
  ASSERT_OK(nnlib_pool2d_create(&pool, NNLIB_LAYER_AVGPOOL2D, 2, 2, &w.o));
  const int64_t image[3] = {2, 4, 4};
  expect_spec(pool, image, 3, "avgpool:2");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fit_older_caller),
      cmocka_unit_test(test_optimizer_older_caller),
      cmocka_unit_test(test_conv2d_older_caller),
      cmocka_unit_test(test_pool2d_older_caller),
      cmocka_unit_test(test_pool2d_1_4_caller),
      cmocka_unit_test(test_gradcheck_older_caller),
      cmocka_unit_test(test_validation_older_caller),
      cmocka_unit_test(test_newer_caller),
      cmocka_unit_test(test_old_entry_points),
      cmocka_unit_test(test_macro_passes_callers_size),
      cmocka_unit_test(test_init_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
