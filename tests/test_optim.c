/* Optimizer updates against their closed forms (PyTorch's update rules,
 * written out here in double), over several steps of a small model whose
 * gradients come from nnlib's backward pass. */
#include "test_support.h"

#include <stddef.h>

#include <math.h>
#include <string.h>

enum { IN = 3, OUT = 2, N = 4, P = OUT * IN + OUT, STEPS = 6 };

typedef struct reference {
  double p[P], m[P], v[P];
  long t;
} reference;

static double ref_lr(const nnlib_optimizer_options *o, long t) {
  long w = (long)o->warmup_steps;
  if (t < w) /* linear warmup, then the schedule from step w */
    return o->learning_rate * (double)(t + 1) / (double)w;
  t -= w;
  switch (o->schedule) {
  case NNLIB_SCHEDULE_STEP:
    return o->learning_rate * pow(o->gamma, (double)(t / o->step_size));
  case NNLIB_SCHEDULE_COSINE: {
    long span = (long)o->total_steps - w;
    double frac = t >= span ? 1.0 : (double)t / span;
    return o->min_learning_rate + (o->learning_rate - o->min_learning_rate) *
                                      0.5 * (1.0 + cos(3.14159265358979323846 * frac));
  }
  default:
    return o->learning_rate;
  }
}

static void ref_step(const nnlib_optimizer_options *o, reference *r,
                     const float *grad) {
  double g[P], norm = 0.0, lr = ref_lr(o, r->t);
  for (int i = 0; i < P; i++)
    norm += (double)grad[i] * grad[i];
  norm = sqrt(norm);
  double clip = (o->clip_norm > 0 && norm > o->clip_norm) ? o->clip_norm / norm : 1.0;
  for (int i = 0; i < P; i++)
    g[i] = grad[i] * clip;
  long s = r->t + 1;
  for (int i = 0; i < P; i++) {
    double gi = g[i];
    switch (o->kind) {
    case NNLIB_OPT_SGD:
      gi += o->weight_decay * r->p[i];
      if (o->momentum > 0) {
        r->m[i] = o->momentum * r->m[i] + gi;
        gi = o->nesterov ? gi + o->momentum * r->m[i] : r->m[i];
      }
      r->p[i] -= lr * gi;
      break;
    case NNLIB_OPT_ADAM:
    case NNLIB_OPT_ADAMW:
      if (o->kind == NNLIB_OPT_ADAMW)
        r->p[i] *= 1.0 - lr * o->weight_decay;
      else
        gi += o->weight_decay * r->p[i];
      r->m[i] = o->beta1 * r->m[i] + (1 - o->beta1) * gi;
      r->v[i] = o->beta2 * r->v[i] + (1 - o->beta2) * gi * gi;
      r->p[i] -= lr * (r->m[i] / (1 - pow(o->beta1, s))) /
                 (sqrt(r->v[i] / (1 - pow(o->beta2, s))) + o->epsilon);
      break;
    case NNLIB_OPT_RMSPROP:
      gi += o->weight_decay * r->p[i];
      r->v[i] = o->alpha * r->v[i] + (1 - o->alpha) * gi * gi;
      gi /= sqrt(r->v[i]) + o->epsilon;
      if (o->momentum > 0) {
        r->m[i] = o->momentum * r->m[i] + gi;
        gi = r->m[i];
      }
      r->p[i] -= lr * gi;
      break;
    }
  }
  r->t++;
}

static void run_against_reference(const nnlib_optimizer_options *o,
                                  const char *what) {
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_optimizer_create(&opt, o));
  nnlib_model *m = ts_model(IN, N, NNLIB_LOSS_MSE, opt, 5,
                            ts_dense(IN, OUT, 1), NULL);
  nnlib_layer *d = nnlib_model_get_layer(m, 0);
  nnlib_tensor *w, *b, *gw, *gb;
  ASSERT_OK(nnlib_layer_get_param(d, 0, &w, &gw));
  ASSERT_OK(nnlib_layer_get_param(d, 1, &b, &gb));
  ASSERT_OK(nnlib_tensor_fill(b, 0.3f)); /* non-zero so decay acts on it */
  float x[N * IN], t[N * OUT];
  uint32_t st = 3;
  ts_fill_uniform(x, N * IN, -1, 1, &st);
  ts_fill_uniform(t, N * OUT, -2, 2, &st);
  nnlib_tensor *X = ts_tensor2(N, IN, x), *T = ts_tensor2(N, OUT, t);
  reference r;
  memset(&r, 0, sizeof r);
  for (int i = 0; i < OUT * IN; i++)
    r.p[i] = nnlib_tensor_get_data(w)[i];
  for (int i = 0; i < OUT; i++)
    r.p[OUT * IN + i] = nnlib_tensor_get_data(b)[i];
  for (int step = 0; step < STEPS; step++) {
    ASSERT_OK(nnlib_model_backward(m, X, T, NULL));
    float g[P];
    memcpy(g, nnlib_tensor_get_data(gw), sizeof(float) * OUT * IN);
    memcpy(g + OUT * IN, nnlib_tensor_get_data(gb), sizeof(float) * OUT);
    ref_step(o, &r, g);
    ASSERT_OK(nnlib_model_apply_gradients(m));
    for (int i = 0; i < P; i++) {
      float got = i < OUT * IN ? nnlib_tensor_get_data(w)[i]
                               : nnlib_tensor_get_data(b)[i - OUT * IN];
      if (fabs(got - r.p[i]) > 2e-6 * (1.0 + fabs(r.p[i])))
        fail_msg("%s: step %d, parameter %d is %.9g, closed form %.9g", what,
                 step, i, got, r.p[i]);
    }
  }
  assert_int_equal(nnlib_optimizer_get_step_count(nnlib_model_get_optimizer(m)),
                   STEPS);
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  nnlib_model_free(m);
}

static nnlib_optimizer_options opts(nnlib_optimizer_kind kind) {
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, kind));
  return o;
}

static void test_sgd_plain_momentum_nesterov(void **s) {
  (void)s;
  nnlib_optimizer_options o = opts(NNLIB_OPT_SGD);
  o.learning_rate = 0.1f;
  run_against_reference(&o, "sgd");
  o.momentum = 0.9f;
  run_against_reference(&o, "sgd momentum");
  o.nesterov = 1;
  run_against_reference(&o, "sgd nesterov");
  o.weight_decay = 0.05f;
  run_against_reference(&o, "sgd nesterov + weight decay");
  o.nesterov = 0;
  o.momentum = 0.0f;
  run_against_reference(&o, "sgd + weight decay");
}

static void test_adam_adamw(void **s) {
  (void)s;
  nnlib_optimizer_options o = opts(NNLIB_OPT_ADAM);
  o.learning_rate = 0.05f;
  run_against_reference(&o, "adam");
  o.weight_decay = 0.1f;
  run_against_reference(&o, "adam + L2");
  o = opts(NNLIB_OPT_ADAMW);
  o.learning_rate = 0.05f;
  o.weight_decay = 0.2f;
  run_against_reference(&o, "adamw");
}

static void test_rmsprop(void **s) {
  (void)s;
  nnlib_optimizer_options o = opts(NNLIB_OPT_RMSPROP);
  o.learning_rate = 0.01f;
  run_against_reference(&o, "rmsprop");
  o.momentum = 0.5f;
  o.weight_decay = 0.01f;
  run_against_reference(&o, "rmsprop + momentum + decay");
}

static void test_schedules_and_clipping(void **s) {
  (void)s;
  nnlib_optimizer_options o = opts(NNLIB_OPT_SGD);
  o.learning_rate = 0.2f;
  o.schedule = NNLIB_SCHEDULE_STEP;
  o.step_size = 2;
  o.gamma = 0.5f;
  run_against_reference(&o, "sgd, step decay");
  o.schedule = NNLIB_SCHEDULE_COSINE;
  o.total_steps = 4; /* runs past T: stays at the minimum */
  o.min_learning_rate = 0.01f;
  run_against_reference(&o, "sgd, cosine");
  o.warmup_steps = 2; /* steps 0 and 1 ramp up, then cosine over 2 more */
  run_against_reference(&o, "sgd, warmup + cosine");
  o = opts(NNLIB_OPT_ADAMW);
  o.schedule = NNLIB_SCHEDULE_COSINE;
  o.total_steps = STEPS;
  o.warmup_steps = 3;
  run_against_reference(&o, "adamw, warmup + cosine");
  o = opts(NNLIB_OPT_ADAM);
  o.clip_norm = 0.05f; /* well below the gradient norm: clipping acts */
  run_against_reference(&o, "adam, clipped");
}

static void test_defaults_and_bad_options(void **s) {
  (void)s;
  nnlib_optimizer_options o = opts(NNLIB_OPT_ADAMW);
  assert_true(o.learning_rate == 1e-3f && o.weight_decay == 1e-2f);
  assert_true(o.beta1 == 0.9f && o.beta2 == 0.999f && o.epsilon == 1e-8f);
  nnlib_optimizer *opt = (nnlib_optimizer *)1;
  o.learning_rate = -1.0f;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_optimizer_create(&opt, &o));
  assert_null(opt);
  o = opts(NNLIB_OPT_SGD);
  o.nesterov = 1; /* without momentum */
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_optimizer_create(&opt, &o));
  o = opts(NNLIB_OPT_SGD);
  o.schedule = NNLIB_SCHEDULE_STEP; /* step_size 0 */
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_optimizer_create(&opt, &o));
  o = opts(NNLIB_OPT_SGD);
  o.warmup_steps = -1;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_optimizer_create(&opt, &o));
  o.schedule = NNLIB_SCHEDULE_COSINE; /* warmup as long as the whole run */
  o.total_steps = 5;
  o.warmup_steps = 5;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_optimizer_create(&opt, &o));
  assert_non_null(strstr(nnlib_last_error_message(), "warmup_steps 5"));
  o = opts(NNLIB_OPT_SGD);
  o.struct_size = 3;
  ASSERT_STATUS(NNLIB_ERR_STRUCT_SIZE, nnlib_optimizer_create(&opt, &o));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_optimizer_options_init(&o, (nnlib_optimizer_kind)9));
  /* a longer struct from a newer caller: fine if the tail is zero */
  struct {
    nnlib_optimizer_options o;
    uint64_t future_field;
  } newer;
  memset(&newer, 0, sizeof newer);
  newer.o = opts(NNLIB_OPT_SGD);
  newer.o.struct_size = sizeof newer;
  ASSERT_OK(nnlib_optimizer_create(&opt, &newer.o));
  nnlib_optimizer_free(opt);
  newer.future_field = 1;
  ASSERT_STATUS(NNLIB_ERR_STRUCT_SIZE, nnlib_optimizer_create(&opt, &newer.o));
  ASSERT_OK(nnlib_optimizer_create(&opt, NULL));
  assert_true(nnlib_optimizer_get_learning_rate(opt) == 0.01f);
  ASSERT_OK(nnlib_optimizer_set_learning_rate(opt, 0.5f));
  assert_true(nnlib_optimizer_get_learning_rate(opt) == 0.5f);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_optimizer_set_learning_rate(opt, NAN));
  nnlib_optimizer_free(opt);
}

static void assert_same_options(const nnlib_optimizer_options *a,
                                const nnlib_optimizer_options *b) {
  assert_int_equal(a->kind, b->kind);
  assert_true(a->learning_rate == b->learning_rate);
  assert_true(a->momentum == b->momentum && a->nesterov == b->nesterov);
  assert_true(a->weight_decay == b->weight_decay);
  assert_true(a->beta1 == b->beta1 && a->beta2 == b->beta2);
  assert_true(a->alpha == b->alpha && a->epsilon == b->epsilon);
  assert_int_equal(a->schedule, b->schedule);
  assert_int_equal(a->step_size, b->step_size);
  assert_true(a->gamma == b->gamma);
  assert_int_equal(a->total_steps, b->total_steps);
  assert_true(a->min_learning_rate == b->min_learning_rate);
  assert_true(a->clip_norm == b->clip_norm);
  assert_int_equal(a->warmup_steps, b->warmup_steps);
}

/* nnlib_optimizer_get_options (1.1): what went in comes out, also through a
 * model file; the learning rate as last set; older (shorter) and newer
 * (longer) caller structs; bad arguments. */
static void test_options_read_back(void **s) {
  (void)s;
  nnlib_optimizer_options in = opts(NNLIB_OPT_ADAM), out;
  in.learning_rate = 3e-3f;
  in.beta1 = 0.8f;
  in.schedule = NNLIB_SCHEDULE_COSINE;
  in.total_steps = 100;
  in.min_learning_rate = 1e-5f;
  in.clip_norm = 2.0f;
  in.warmup_steps = 7;
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_optimizer_create(&opt, &in));
  memset(&out, 0xab, sizeof out);
  out.struct_size = sizeof out;
  ASSERT_OK(nnlib_optimizer_get_options(opt, &out));
  assert_int_equal(out.struct_size, sizeof out);
  assert_same_options(&in, &out);
  ASSERT_OK(nnlib_optimizer_set_learning_rate(opt, 0.5f));
  ASSERT_OK(nnlib_optimizer_get_options(opt, &out));
  assert_true(out.learning_rate == 0.5f);
  in.learning_rate = 0.5f;

  /* an older caller's struct ends before clip_norm: that stays untouched */
  nnlib_optimizer_options older;
  memset(&older, 0xcd, sizeof older);
  older.struct_size = offsetof(nnlib_optimizer_options, clip_norm);
  ASSERT_OK(nnlib_optimizer_get_options(opt, &older));
  assert_true(older.beta1 == 0.8f && older.total_steps == 100);
  unsigned char tail[sizeof older.clip_norm];
  memcpy(tail, &older.clip_norm, sizeof tail);
  for (size_t i = 0; i < sizeof tail; i++)
    assert_int_equal(tail[i], 0xcd);
  /* a newer caller's field this library lacks comes back zero */
  struct {
    nnlib_optimizer_options o;
    uint64_t future_field;
  } newer;
  newer.o.struct_size = sizeof newer;
  newer.future_field = 7;
  ASSERT_OK(nnlib_optimizer_get_options(opt, &newer.o));
  assert_true(newer.future_field == 0 && newer.o.struct_size == sizeof newer);
  assert_same_options(&in, &newer.o);

  out.struct_size = 3;
  ASSERT_STATUS(NNLIB_ERR_STRUCT_SIZE, nnlib_optimizer_get_options(opt, &out));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_optimizer_get_options(NULL, &out));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_optimizer_get_options(opt, NULL));

  /* through a model file saved with its optimizer */
  nnlib_model *m = ts_model(3, 4, NNLIB_LOSS_MSE, opt, 1, ts_dense(3, 2, 1),
                            NULL);
  void *bytes;
  size_t size;
  ASSERT_OK(nnlib_model_save_to_buffer(&bytes, &size, m, NNLIB_SAVE_OPTIMIZER));
  nnlib_model *loaded;
  ASSERT_OK(nnlib_model_load_buffer(&loaded, bytes, size));
  out.struct_size = sizeof out;
  ASSERT_OK(nnlib_optimizer_get_options(nnlib_model_get_optimizer(loaded),
                                        &out));
  assert_same_options(&in, &out);
  nnlib_free(bytes);
  nnlib_model_free(loaded);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sgd_plain_momentum_nesterov),
      cmocka_unit_test(test_adam_adamw),
      cmocka_unit_test(test_rmsprop),
      cmocka_unit_test(test_schedules_and_clipping),
      cmocka_unit_test(test_defaults_and_bad_options),
      cmocka_unit_test(test_options_read_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
