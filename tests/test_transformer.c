/* A whole GPT-style model against PyTorch, and its contract around that.
 *
 * The model is the description
 *   input:T,embedding:V:D,positional,transformer:D:H[:mlpM][:causal],
 *   transformer:D:H[:mlpM][:causal],layernorm,linear:V
 * compiled with softmax cross-entropy over int32 targets [N, T] and AdamW.
 * tests/make_torch_gpt_fixtures.py builds its twin from stock PyTorch
 * modules and writes tests/fixtures/torch_gpt.txt (float32 draws, float64
 * passes); here, after copying those weights in through the public
 * nnlib_layer_get_param:
 *   - training-mode logits, the mean loss over the N*T tokens and every
 *     parameter gradient within 1e-5 (normwise relative error per tensor,
 *     |ours - torch| / |torch|, plus an elementwise check |ours_i -
 *     torch_i| <= 1e-4 |torch_i| + 1e-5 max |torch|, the floor covering
 *     gradients that are zero in exact arithmetic, such as the key bias);
 *   - 3 AdamW steps: each step's loss, the loss after them and the
 *     eval-mode logits of the updated model, within 1e-5 too (measured
 *     2.4e-7; Adam's first steps divide by |g|, so a gradient that is 0
 *     in exact arithmetic, the key bias's, moves by float32 noise, but
 *     the key bias does not change the output);
 *   - nnlib_model_evaluate: the same loss, and the accuracy equal to the
 *     share of tokens whose argmax logit (of nnlib_model_predict) is the
 *     target;
 * then, on small seeded models: finite differences (nnlib_model_gradcheck),
 * the description printed back and parsed again (same graph, same
 * parameters, same predictions), a save/load round trip, and bad inputs
 * with their exact statuses. */
#include "fixtures.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAR 1e-5
#define STEP_BAR 1e-5

/* ------------------------------------------------------------ helpers */

static nnlib_optimizer *adamw(void) {
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAMW));
  o.learning_rate = 1e-2f;
  o.weight_decay = 0.01f;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  return opt;
}

/* A model from a description, compiled for batches of up to n. */
static nnlib_model *build(const char *spec, int64_t n, nnlib_loss loss,
                          nnlib_optimizer *opt, uint64_t seed) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile_graph(m, n, loss, opt, seed));
  return m;
}

static nnlib_tensor *ids_tensor(int64_t n, int64_t t, const int32_t *ids) {
  const int64_t shape[2] = {n, t};
  nnlib_tensor *x = NULL;
  ASSERT_OK(nnlib_tensor_create_int32(&x, shape, 2));
  memcpy(nnlib_tensor_get_data_int32(x), ids, (size_t)(n * t) * sizeof *ids);
  return x;
}

/* Integers stored as floats in a fixture -> an int32 tensor of its shape. */
static nnlib_tensor *ids_of(const fx_tensor *src) {
  nnlib_tensor *x = NULL;
  ASSERT_OK(nnlib_tensor_create_int32(&x, src->dims, src->rank));
  int32_t *d = nnlib_tensor_get_data_int32(x);
  for (int64_t i = 0; i < src->size; i++) {
    d[i] = (int32_t)src->data[i];
    assert_true((float)d[i] == src->data[i]);
  }
  return x;
}

static nnlib_tensor *floats(const int64_t *shape, size_t rank) {
  nnlib_tensor *t = NULL;
  ASSERT_OK(nnlib_tensor_create(&t, shape, rank));
  return t;
}

/* Pseudo-random ids in [0, v) (an LCG independent of nnlib). */
static void random_ids(int32_t *ids, int64_t count, int64_t v,
                       uint32_t *state) {
  for (int64_t i = 0; i < count; i++) {
    *state = *state * 1664525u + 1013904223u;
    ids[i] = (int32_t)((*state >> 8) % (uint32_t)v);
  }
}

/* ------------------------------------------------------- comparisons */

static double worst_error, worst_step_error;

/* Normwise |a - b| / |b| within bar, and every element within
 * 10 bar |b_i| + bar max |b|. */
static double expect_close(const char *what, const float *a, int64_t a_size,
                           const fx_tensor *b, double bar) {
  if (a_size != b->size)
    fail_msg("%s: %lld values, torch has %lld", what, (long long)a_size,
             (long long)b->size);
  double diff2 = 0.0, norm2 = 0.0, scale = 0.0;
  for (int64_t i = 0; i < b->size; i++) {
    double d = (double)a[i] - b->data[i];
    diff2 += d * d;
    norm2 += (double)b->data[i] * b->data[i];
    scale = fmax(scale, fabs(b->data[i]));
  }
  double err = sqrt(diff2) / (norm2 > 0.0 ? sqrt(norm2) : 1.0);
  print_message("  %-28s %.2e\n", what, err);
  if (!(err <= bar))
    fail_msg("%s: normwise relative error %.3g exceeds %.0e", what, err, bar);
  for (int64_t i = 0; i < b->size; i++) {
    double d = fabs((double)a[i] - b->data[i]);
    double allowed = 10.0 * bar * fabs(b->data[i]) + bar * scale;
    if (!(d <= allowed))
      fail_msg("%s[%lld]: %.9g, torch %.9g (allowed %.3g)", what,
               (long long)i, (double)a[i], (double)b->data[i], allowed);
  }
  return err;
}

static void expect_scalar(const char *what, double ours, double torch,
                          double bar) {
  double err = fabs(ours - torch) / fmax(fabs(torch), 1e-30);
  print_message("  %-28s %.2e (%.9g vs %.9g)\n", what, err, ours, torch);
  if (!(err <= bar))
    fail_msg("%s: %.9g, torch %.9g: relative error %.3g exceeds %.0e", what,
             ours, torch, err, bar);
}

/* ---------------------------------------------------------- parameters */

static bool is_param(const fx_tensor *t) { return strchr(t->name, '.') != NULL; }

/* Calls visit for every parameter tensor of the model in nnlib's order
 * (layers in node order, each layer's tensors in get_param order) with the
 * fixture tensor of the same position in the file (the parameters are the
 * tensors whose name has a '.'): the fixture name must end in ".<nnlib's
 * name>" and the shapes must agree, so the order is checked as well.
 * Every fixture parameter must be used. */
typedef void (*param_visit)(nnlib_tensor *value, nnlib_tensor *grad,
                            const fx_tensor *torch, void *user);

static void for_each_param(nnlib_model *m, const fx_case *c,
                           param_visit visit, void *user) {
  size_t next = 0;
  for (size_t i = 0; i < nnlib_model_get_layer_count(m); i++) {
    nnlib_layer *l = nnlib_model_get_layer(m, i);
    for (size_t k = 0; k < nnlib_layer_get_param_tensor_count(l); k++) {
      while (next < c->tensor_count && !is_param(&c->tensors[next]))
        next++;
      if (next == c->tensor_count)
        fail_msg("%s: layer %zu (%s) has more parameters than the fixture",
                 c->name, i, nnlib_layer_get_name(l));
      const fx_tensor *t = &c->tensors[next++];
      const char *ours = nnlib_layer_get_param_name(l, k);
      const char *suffix = t->name + strlen(t->name) - strlen(ours);
      if (strlen(t->name) <= strlen(ours) || strcmp(suffix, ours) != 0 ||
          suffix[-1] != '.')
        fail_msg("%s: layer %zu (%s) param %zu is '%s', fixture has '%s'",
                 c->name, i, nnlib_layer_get_name(l), k, ours, t->name);
      nnlib_tensor *value = NULL, *grad = NULL;
      ASSERT_OK(nnlib_layer_get_param(l, k, &value, &grad));
      assert_int_equal(nnlib_tensor_get_rank(value), t->rank);
      const int64_t *dims = nnlib_tensor_get_shape(value);
      for (size_t d = 0; d < t->rank; d++)
        assert_int_equal(dims[d], t->dims[d]);
      visit(value, grad, t, user);
    }
  }
  while (next < c->tensor_count && !is_param(&c->tensors[next]))
    next++;
  if (next != c->tensor_count)
    fail_msg("%s: fixture parameter %s is not in the model", c->name,
             c->tensors[next].name);
}

static void copy_in(nnlib_tensor *value, nnlib_tensor *grad,
                    const fx_tensor *torch, void *user) {
  (void)grad;
  (void)user;
  memcpy(nnlib_tensor_get_data(value), torch->data,
         (size_t)torch->size * sizeof(float));
}

/* The gradient case holds d.<name> in the same order: the visit gets the
 * forward case's tensor and finds its gradient by name. */
static void check_grad(nnlib_tensor *value, nnlib_tensor *grad,
                       const fx_tensor *torch, void *user) {
  (void)value;
  const fx_case *grads = user;
  char name[40];
  snprintf(name, sizeof name, "d.%s", torch->name);
  double err = expect_close(name, nnlib_tensor_get_data_const(grad),
                            nnlib_tensor_get_size(grad),
                            fx_need(grads, name), BAR);
  worst_error = fmax(worst_error, err);
}

/* ------------------------------------------------------------- models */

/* The description of a fixture case. */
static void spec_of(const fx_case *c, char *buf, size_t size) {
  char block[64];
  int64_t d = fx_int(c, "d"), mlp = fx_int(c, "mlp");
  int n = snprintf(block, sizeof block, "transformer:%lld:%lld",
                   (long long)d, (long long)fx_int(c, "heads"));
  if (mlp != 4 * d)
    n += snprintf(block + n, sizeof block - (size_t)n, ":mlp%lld",
                  (long long)mlp);
  if (fx_int(c, "causal"))
    snprintf(block + n, sizeof block - (size_t)n, ":causal");
  snprintf(buf, size,
           "input:%lld,embedding:%lld:%lld,positional,%s,%s,layernorm,"
           "linear:%lld",
           (long long)fx_int(c, "t"), (long long)fx_int(c, "v"),
           (long long)d, block, block, (long long)fx_int(c, "v"));
}

/* Builds the case's model with its weights and AdamW. */
static nnlib_model *model_of(const fx_case *c) {
  char spec[256];
  spec_of(c, spec, sizeof spec);
  print_message("%s: %s\n", c->name, spec);
  nnlib_model *m = build(spec, fx_int(c, "n"), NNLIB_LOSS_SOFTMAX_CE,
                         adamw(), 7);
  for_each_param(m, c, copy_in, NULL);
  return m;
}

/* The share of tokens whose largest logit is the target's (ties: the
 * first index, as an argmax loop). */
static float token_accuracy(const float *logits, const int32_t *y,
                            int64_t tokens, int64_t v) {
  int64_t right = 0;
  for (int64_t r = 0; r < tokens; r++) {
    const float *z = logits + r * v;
    int64_t best = 0;
    for (int64_t k = 1; k < v; k++)
      if (z[k] > z[best])
        best = k;
    right += best == y[r];
  }
  return (float)right / (float)tokens;
}

/* ------------------------------------------------------ against torch */

static void check_case(const fx_case *c, const fx_case *grads) {
  nnlib_model *m = model_of(c);
  nnlib_tensor *x = ids_of(fx_need(c, "x")), *y = ids_of(fx_need(c, "y"));
  int64_t n = fx_int(c, "n"), t = fx_int(c, "t"), v = fx_int(c, "v");

  const nnlib_tensor *out = NULL;
  ASSERT_OK(nnlib_model_forward(m, x, &out));
  worst_error = fmax(worst_error,
                     expect_close("logits (training mode)",
                                  nnlib_tensor_get_data_const(out),
                                  nnlib_tensor_get_size(out),
                                  fx_need(c, "logits"), BAR));
  float loss = 0.0f;
  ASSERT_OK(nnlib_model_backward(m, x, y, &loss));
  expect_scalar("loss", loss, fx_need(c, "loss")->data[0], BAR);
  for_each_param(m, c, check_grad, (void *)grads);

  /* evaluate: the same loss; accuracy from the logits of predict */
  const int64_t out_shape[3] = {n, t, v};
  nnlib_tensor *logits = floats(out_shape, 3);
  ASSERT_OK(nnlib_model_predict(m, x, logits));
  float eval_loss = 0.0f, accuracy = -1.0f;
  ASSERT_OK(nnlib_model_evaluate(m, x, y, &eval_loss, &accuracy));
  expect_scalar("evaluate loss", eval_loss, fx_need(c, "loss")->data[0], BAR);
  float expected = token_accuracy(nnlib_tensor_get_data_const(logits),
                                  nnlib_tensor_get_data_int32_const(y), n * t,
                                  v);
  print_message("  accuracy %.6f, argmax share %.6f\n", (double)accuracy,
                (double)expected);
  assert_true(accuracy == expected);

  /* three AdamW steps on the same batch */
  const fx_tensor *step_losses = fx_need(c, "step_losses");
  for (int64_t s = 0; s < fx_int(c, "steps"); s++) {
    ASSERT_OK(nnlib_model_step(m, x, y, &loss));
    char what[48];
    snprintf(what, sizeof what, "AdamW step %lld loss", (long long)s);
    expect_scalar(what, loss, step_losses->data[s], STEP_BAR);
    worst_step_error = fmax(worst_step_error,
                            fabs(loss - step_losses->data[s]) /
                                step_losses->data[s]);
  }
  ASSERT_OK(nnlib_model_evaluate(m, x, y, &eval_loss, NULL));
  expect_scalar("loss after the steps", eval_loss,
                fx_need(c, "loss_after")->data[0], STEP_BAR);
  ASSERT_OK(nnlib_model_predict(m, x, logits));
  worst_step_error = fmax(
      worst_step_error,
      expect_close("eval logits after the steps",
                   nnlib_tensor_get_data_const(logits),
                   nnlib_tensor_get_size(logits), fx_need(c, "logits_after"),
                   STEP_BAR));

  nnlib_tensor_free(logits);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

static void test_against_torch(void **state) {
  (void)state;
  char version[64];
  FILE *f = fx_open("torch_gpt.txt", version);
  print_message("fixtures from torch %s\n", version);
  int cases = 0;
  fx_case *c = malloc(sizeof *c), *grads = malloc(sizeof *grads);
  assert_non_null(c);
  assert_non_null(grads);
  while (fx_read_case(f, c)) {
    assert_true(fx_read_case(f, grads));
    char want[96];
    snprintf(want, sizeof want, "%s_grads", c->name);
    assert_string_equal(grads->name, want);
    check_case(c, grads);
    fx_free_case(c);
    fx_free_case(grads);
    cases++;
  }
  free(c);
  free(grads);
  fclose(f);
  assert_int_equal(cases, 2);
  print_message("worst relative error %.2e (bar %.0e); after AdamW steps "
                "%.2e (bar %.0e)\n",
                worst_error, BAR, worst_step_error, STEP_BAR);
}

/* --------------------------------------------------- small GPT models */

#define SMALL_SPEC                                                             \
  "input:6,embedding:9:8,positional,transformer:8:2:causal,"                  \
  "transformer:8:2:mlp12:causal,layernorm,linear:9"
enum { SMALL_T = 6, SMALL_V = 9, SMALL_N = 3 };

static void small_batch(nnlib_tensor **x, nnlib_tensor **y, uint32_t seed) {
  int32_t ids[SMALL_N * SMALL_T], next[SMALL_N * SMALL_T];
  random_ids(ids, SMALL_N * SMALL_T, SMALL_V, &seed);
  random_ids(next, SMALL_N * SMALL_T, SMALL_V, &seed);
  *x = ids_tensor(SMALL_N, SMALL_T, ids);
  *y = ids_tensor(SMALL_N, SMALL_T, next);
}

static nnlib_tensor *small_logits(void) {
  const int64_t shape[3] = {SMALL_N, SMALL_T, SMALL_V};
  return floats(shape, 3);
}

static void expect_same_floats(const nnlib_tensor *a, const nnlib_tensor *b) {
  assert_int_equal(nnlib_tensor_get_size(a), nnlib_tensor_get_size(b));
  assert_memory_equal(nnlib_tensor_get_data_const(a),
                      nnlib_tensor_get_data_const(b),
                      (size_t)nnlib_tensor_get_size(a) * sizeof(float));
}

/* Central differences over every parameter scalar, and in a random
 * direction; bar 1e-3 at h = 1e-2 in float32 (tests/test_gradcheck.c). A
 * wrong gradient in one tensor makes that tensor's error near 1. */
static void test_gradcheck(void **state) {
  (void)state;
  nnlib_model *m = build("input:4,embedding:6:4,positional,"
                         "transformer:4:2:mlp6:causal,layernorm,linear:6",
                         2, NNLIB_LOSS_SOFTMAX_CE, NULL, 3);
  const int32_t ids[8] = {0, 3, 5, 3, 1, 2, 2, 4};
  const int32_t next[8] = {3, 5, 3, 1, 2, 2, 4, 0};
  nnlib_tensor *x = ids_tensor(2, 4, ids), *y = ids_tensor(2, 4, next);
  nnlib_gradcheck_options o;
  ASSERT_OK(nnlib_gradcheck_options_init(&o));
  double err = 1.0;
  ASSERT_OK(nnlib_model_gradcheck(m, x, y, &o, &err));
  print_message("gradcheck, every scalar: %.2e\n", err);
  assert_true(err <= 1e-3);
  o.random_direction = 1;
  err = 1.0;
  ASSERT_OK(nnlib_model_gradcheck(m, x, y, &o, &err));
  print_message("gradcheck, random direction: %.2e\n", err);
  assert_true(err <= 1e-3);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

/* The description prints back, parses into the same graph (the same text
 * again, the same parameter count, the same weights from the same seed)
 * and predicts the same; a model of another seed with the first one's
 * weights copied over predicts the same too. */
static void test_spec_round_trip(void **state) {
  (void)state;
  nnlib_model *a = build(SMALL_SPEC, SMALL_N, NNLIB_LOSS_SOFTMAX_CE, NULL, 5);
  size_t needed = 0;
  ASSERT_OK(nnlib_model_get_spec(a, NULL, 0, &needed));
  char *text = malloc(needed + 1), *again = malloc(needed + 1);
  assert_non_null(text);
  assert_non_null(again);
  ASSERT_OK(nnlib_model_get_spec(a, text, needed + 1, &needed));
  print_message("printed: %s\n", text);
  /* the block's layers by name, twice */
  assert_non_null(strstr(text, "attention:2:causal"));
  assert_non_null(strstr(text, "linear:12"));
  assert_non_null(strstr(text, "gelu"));

  nnlib_model *b = build(text, SMALL_N, NNLIB_LOSS_SOFTMAX_CE, NULL, 5);
  size_t needed_b = 0;
  ASSERT_OK(nnlib_model_get_spec(b, again, needed + 1, &needed_b));
  assert_int_equal(needed_b, needed);
  assert_string_equal(again, text);
  int64_t count_a = 0, count_b = 0;
  ASSERT_OK(nnlib_model_get_param_count(a, &count_a));
  ASSERT_OK(nnlib_model_get_param_count(b, &count_b));
  /* 9*8 + 6*8 + 2*(2*8 + 3*8*8+3*8 + 8*8+8 + 2*8) + mlp 8*32+32+32*8+8
   * + mlp12 8*12+12+12*8+8 + 2*8 + 8*9+9 */
  const int64_t block = 2 * 8 + (3 * 8 * 8 + 3 * 8) + (8 * 8 + 8) + 2 * 8;
  const int64_t expected = 9 * 8 + 6 * 8 + 2 * block +
                           (8 * 32 + 32 + 32 * 8 + 8) +
                           (8 * 12 + 12 + 12 * 8 + 8) + 2 * 8 + (8 * 9 + 9);
  assert_int_equal(count_a, expected);
  assert_int_equal(count_b, expected);

  nnlib_tensor *x = NULL, *y = NULL;
  small_batch(&x, &y, 11);
  nnlib_tensor *pa = small_logits(), *pb = small_logits();
  ASSERT_OK(nnlib_model_predict(a, x, pa));
  ASSERT_OK(nnlib_model_predict(b, x, pb));
  expect_same_floats(pa, pb);

  /* another seed: other weights, other predictions, until copied over */
  nnlib_model *c = build(text, SMALL_N, NNLIB_LOSS_SOFTMAX_CE, NULL, 6);
  ASSERT_OK(nnlib_model_predict(c, x, pb));
  assert_memory_not_equal(nnlib_tensor_get_data_const(pa),
                          nnlib_tensor_get_data_const(pb),
                          (size_t)nnlib_tensor_get_size(pa) * sizeof(float));
  float *from = NULL, *to = NULL;
  int64_t n_from = 0, n_to = 0;
  ASSERT_OK(nnlib_model_get_flat_params(a, &from, NULL, &n_from));
  ASSERT_OK(nnlib_model_get_flat_params(c, &to, NULL, &n_to));
  assert_int_equal(n_from, n_to);
  memcpy(to, from, (size_t)n_from * sizeof(float));
  ASSERT_OK(nnlib_model_predict(c, x, pb));
  expect_same_floats(pa, pb);

  free(text);
  free(again);
  nnlib_tensor_free(pa);
  nnlib_tensor_free(pb);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(a);
  nnlib_model_free(b);
  nnlib_model_free(c);
}

/* A trained model saved and loaded predicts the same bits, and with the
 * optimizer saved, the next step gives the same loss and weights. */
static void test_save_load(void **state) {
  (void)state;
  nnlib_model *m = build(SMALL_SPEC, SMALL_N, NNLIB_LOSS_SOFTMAX_CE, adamw(),
                         8);
  nnlib_tensor *x = NULL, *y = NULL;
  small_batch(&x, &y, 12);
  for (int i = 0; i < 2; i++)
    ASSERT_OK(nnlib_model_step(m, x, y, NULL));
  void *data = NULL;
  size_t size = 0;
  ASSERT_OK(nnlib_model_save_to_buffer(&data, &size, m, NNLIB_SAVE_OPTIMIZER));
  nnlib_model *loaded = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&loaded, data, size));
  nnlib_free(data);

  nnlib_tensor *p = small_logits(), *q = small_logits();
  ASSERT_OK(nnlib_model_predict(m, x, p));
  ASSERT_OK(nnlib_model_predict(loaded, x, q));
  expect_same_floats(p, q);

  float loss_m = 0.0f, loss_l = 1.0f;
  ASSERT_OK(nnlib_model_step(m, x, y, &loss_m));
  ASSERT_OK(nnlib_model_step(loaded, x, y, &loss_l));
  assert_true(loss_m == loss_l);
  float *wm = NULL, *wl = NULL;
  int64_t cm = 0, cl = 0;
  ASSERT_OK(nnlib_model_get_flat_params(m, &wm, NULL, &cm));
  ASSERT_OK(nnlib_model_get_flat_params(loaded, &wl, NULL, &cl));
  assert_int_equal(cm, cl);
  assert_memory_equal(wm, wl, (size_t)cm * sizeof(float));

  nnlib_tensor_free(p);
  nnlib_tensor_free(q);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  nnlib_model_free(loaded);
}

/* ---------------------------------------------------------- bad inputs */

/* Compiling the description must fail with `want`, naming something. */
static void expect_compile_fails(const char *spec, nnlib_status want) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_STATUS(want, nnlib_model_compile_graph(m, 2, NNLIB_LOSS_SOFTMAX_CE,
                                                NULL, 1));
  print_message("  %s -> %s: %s\n", spec, nnlib_status_string(want),
                nnlib_last_error_message());
  nnlib_model_free(m);
}

static void test_bad_data(void **state) {
  (void)state;
  nnlib_model *m = build(SMALL_SPEC, SMALL_N, NNLIB_LOSS_SOFTMAX_CE, adamw(),
                         9);
  nnlib_tensor *x = NULL, *y = NULL;
  small_batch(&x, &y, 13);
  nnlib_tensor *logits = small_logits();
  int32_t *ids = nnlib_tensor_get_data_int32(x);
  float loss = 0.0f;

  /* float32 ids */
  const int64_t shape[2] = {SMALL_N, SMALL_T};
  nnlib_tensor *fx = floats(shape, 2);
  ASSERT_STATUS(NNLIB_ERR_DTYPE, nnlib_model_predict(m, fx, logits));
  ASSERT_STATUS(NNLIB_ERR_DTYPE, nnlib_model_backward(m, fx, y, &loss));

  /* ids out of range, at the last sample and position */
  const int32_t bad_ids[2] = {-1, SMALL_V};
  int32_t kept = ids[SMALL_N * SMALL_T - 1];
  for (int i = 0; i < 2; i++) {
    ids[SMALL_N * SMALL_T - 1] = bad_ids[i];
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, nnlib_model_predict(m, x, logits));
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                  nnlib_model_backward(m, x, y, &loss));
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                  nnlib_model_evaluate(m, x, y, &loss, NULL));
  }
  ids[SMALL_N * SMALL_T - 1] = kept;

  /* a target out of range */
  int32_t *targets = nnlib_tensor_get_data_int32(y);
  kept = targets[4];
  targets[4] = SMALL_V;
  ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, nnlib_model_backward(m, x, y, &loss));
  targets[4] = kept;

  /* targets of the wrong count: [N, T - 1] and [N, T + 1] */
  for (int64_t d = -1; d <= 1; d += 2) {
    const int64_t tshape[2] = {SMALL_N, SMALL_T + d};
    nnlib_tensor *wrong = NULL;
    ASSERT_OK(nnlib_tensor_create_int32(&wrong, tshape, 2));
    ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                  nnlib_model_backward(m, x, wrong, &loss));
    ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                  nnlib_model_evaluate(m, x, wrong, &loss, NULL));
    nnlib_tensor_free(wrong);
  }

  /* a sequence longer than the compiled context: x [N, T + 1] */
  const int64_t long_shape[2] = {SMALL_N, SMALL_T + 1};
  nnlib_tensor *longer = NULL;
  ASSERT_OK(nnlib_tensor_create_int32(&longer, long_shape, 2));
  nnlib_clear_error();
  nnlib_status st = nnlib_model_predict(m, longer, logits);
  print_message("  x [N, T+1] -> %s: %s\n", nnlib_status_string(st),
                nnlib_last_error_message());
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE, nnlib_model_predict(m, longer, logits));
  assert_non_null(strstr(nnlib_last_error_message(), "compiled context"));
  ASSERT_STATUS(NNLIB_ERR_TOO_LARGE,
                nnlib_model_backward(m, longer, y, &loss));
  nnlib_tensor_free(longer);

  /* nothing above changed the model: a step still works */
  ASSERT_OK(nnlib_model_step(m, x, y, &loss));
  assert_true(isfinite(loss));

  nnlib_tensor_free(fx);
  nnlib_tensor_free(logits);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

static void test_bad_models(void **state) {
  (void)state;
  /* int32 targets with MSE (logits [T, V] vs targets [T]) */
  nnlib_model *m = build("input:4,embedding:5:4,linear:5", 2,
                         NNLIB_LOSS_MSE, NULL, 1);
  const int32_t ids[8] = {0, 1, 2, 3, 4, 3, 2, 1};
  nnlib_tensor *x = ids_tensor(2, 4, ids), *y = ids_tensor(2, 4, ids);
  float loss = 0.0f;
  ASSERT_STATUS(NNLIB_ERR_DTYPE, nnlib_model_backward(m, x, y, &loss));
  ASSERT_STATUS(NNLIB_ERR_DTYPE, nnlib_model_evaluate(m, x, y, &loss, NULL));
  nnlib_model_free(m);

  /* heads that do not divide the width */
  nnlib_model *p = NULL;
  ASSERT_OK(nnlib_model_create(&p));
  ASSERT_STATUS(NNLIB_ERR_PARSE,
                nnlib_model_add_spec(p, "input:4,embedding:5:10,"
                                        "transformer:10:3"));
  assert_int_equal(nnlib_model_get_layer_count(p), 0);
  ASSERT_STATUS(NNLIB_ERR_PARSE,
                nnlib_model_add_spec(p, "input:4,embedding:5:8,"
                                        "transformer:8:2:mlp0"));
  ASSERT_STATUS(NNLIB_ERR_PARSE,
                nnlib_model_add_spec(p, "input:4,embedding:5:8,"
                                        "transformer:8:2:causal:causal"));
  ASSERT_STATUS(NNLIB_ERR_PARSE,
                nnlib_model_add_spec(p, "input:4,embedding:5:8,"
                                        "transformer:8:2:dropout1"));
  nnlib_model_free(p);

  /* a block width other than the embedding's. The block's first
   * layernorm and its attention take the width of their input, so with 2
   * heads (which divide 8) the mismatch surfaces at the MLP's residual
   * add ([T, 8] + [T, 12]); with 3 heads at the attention (8 is not a
   * multiple of 3). Both NNLIB_ERR_SHAPE_MISMATCH at compile. */
  expect_compile_fails("input:4,embedding:5:8,transformer:12:2,linear:5",
                       NNLIB_ERR_SHAPE_MISMATCH);
  expect_compile_fails("input:4,embedding:5:8,transformer:12:3,linear:5",
                       NNLIB_ERR_SHAPE_MISMATCH);
  /* an embedding reading a layer's output (floats), not an input */
  expect_compile_fails("input:4,embedding:5:8,embedding:5:8,linear:5",
                       NNLIB_ERR_DTYPE);
  /* a dense layer reading the ids input beside the embedding */
  expect_compile_fails("ids=input:4,e=embedding:5:3(ids),flatten,"
                       "f=dense:4,g=dense:4(ids),add(f,g),dense:5",
                       NNLIB_ERR_DTYPE);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_against_torch),
      cmocka_unit_test(test_gradcheck),
      cmocka_unit_test(test_spec_round_trip),
      cmocka_unit_test(test_save_load),
      cmocka_unit_test(test_bad_data),
      cmocka_unit_test(test_bad_models),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
