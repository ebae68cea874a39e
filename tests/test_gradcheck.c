/* Backpropagation against central finite differences (float32, h = 1e-2)
 * through nnlib_model_gradcheck: per layer, per activation, per loss and end
 * to end. Bar: normwise relative error <= 1e-3 (reliability.md R1). Inputs
 * are kept away from the kinks of ReLU-like functions. */
#include "test_support.h"

#include <math.h>
#include <string.h>

#define BAR 1e-3

typedef struct case_data {
  int64_t n, in, out;
  nnlib_loss loss;
  int index_targets;
} case_data;

/* Inputs whose magnitude is at least `gap` (so x +- h never crosses 0 in the
 * first layer's identity-weight cases) and a target of the right kind. */
static void make_batch(const case_data *c, nnlib_tensor **X, nnlib_tensor **T,
                       uint32_t seed) {
  uint32_t st = seed;
  *X = ts_tensor2(c->n, c->in, NULL);
  float *x = nnlib_tensor_get_data(*X);
  ts_fill_uniform(x, c->n * c->in, 0.3f, 1.5f, &st);
  for (int64_t i = 0; i < c->n * c->in; i++)
    if (i % 3 == 1)
      x[i] = -x[i];
  int64_t tcols = c->index_targets ? 1 : c->out;
  *T = ts_tensor2(c->n, tcols, NULL);
  float *t = nnlib_tensor_get_data(*T);
  for (int64_t r = 0; r < c->n; r++) {
    if (c->index_targets) {
      t[r] = (float)(r % c->out);
    } else if (c->loss == NNLIB_LOSS_SOFTMAX_CE) {
      for (int64_t k = 0; k < c->out; k++)
        t[r * c->out + k] = k == (r * 7) % c->out ? 1.0f : 0.0f;
    } else if (c->loss == NNLIB_LOSS_BCE_LOGITS) {
      ts_fill_uniform(t + r * c->out, c->out, 0.0f, 1.0f, &st);
    } else {
      ts_fill_uniform(t + r * c->out, c->out, -1.0f, 1.0f, &st);
    }
  }
}

static double gradcheck(nnlib_model *m, const case_data *c, int direction) {
  nnlib_tensor *X, *T;
  make_batch(c, &X, &T, 77);
  nnlib_gradcheck_options o;
  ASSERT_OK(nnlib_gradcheck_options_init(&o));
  o.random_direction = direction;
  double err = -1.0;
  ASSERT_OK(nnlib_model_gradcheck(m, X, T, &o, &err));
  nnlib_tensor_free(X);
  nnlib_tensor_free(T);
  return err;
}

static nnlib_optimizer *sgd(void) {
  nnlib_optimizer *o;
  ASSERT_OK(nnlib_sgd_create(&o, 0.1f, 0, 0, 0));
  return o;
}

static void expect_below(double err, const char *what) {
  if (!(err >= 0.0 && err <= BAR))
    fail_msg("%s: gradcheck error %.3g exceeds %.0e", what, err, BAR);
  print_message("  %-28s %.2e\n", what, err);
}

static void test_dense_each_loss(void **s) {
  (void)s;
  const case_data cases[] = {{5, 4, 3, NNLIB_LOSS_MSE, 0},
                             {5, 4, 3, NNLIB_LOSS_BCE_LOGITS, 0},
                             {5, 4, 3, NNLIB_LOSS_SOFTMAX_CE, 0},
                             {5, 4, 3, NNLIB_LOSS_SOFTMAX_CE, 1},
                             {1, 1, 1, NNLIB_LOSS_MSE, 0}};
  const char *names[] = {"dense + mse", "dense + bce_logits",
                         "dense + softmax_ce (1-hot)",
                         "dense + softmax_ce (index)", "dense 1x1 + mse"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const case_data *c = &cases[i];
    nnlib_model *m = ts_model(c->in, c->n, c->loss, sgd(), 3,
                              ts_dense(c->in, c->out, 1), NULL);
    expect_below(gradcheck(m, c, 0), names[i]);
    nnlib_model_free(m);
  }
}

/* dense -> activation -> dense, MSE: the activation's derivative enters the
 * first layer's gradients (fused path for elementwise kinds). */
static void check_activation(nnlib_activation kind, float param,
                             const char *name) {
  case_data c = {6, 5, 3, NNLIB_LOSS_MSE, 0};
  nnlib_model *m = ts_model(c.in, c.n, c.loss, sgd(), 11, ts_dense(c.in, 4, 1),
                            ts_act(kind, param), ts_dense(4, c.out, 1), NULL);
  expect_below(gradcheck(m, &c, 0), name);
  nnlib_model_free(m);
}

static void test_each_activation(void **s) {
  (void)s;
  check_activation(NNLIB_ACT_IDENTITY, 0, "identity");
  check_activation(NNLIB_ACT_SIGMOID, 0, "sigmoid");
  check_activation(NNLIB_ACT_TANH, 0, "tanh");
  check_activation(NNLIB_ACT_RELU, 0, "relu");
  check_activation(NNLIB_ACT_LEAKY_RELU, 0.1f, "leaky_relu");
  check_activation(NNLIB_ACT_SOFTPLUS, 0, "softplus");
  check_activation(NNLIB_ACT_SOFTMAX, 0, "softmax (layer)");
}

/* A standalone activation after a layer that is not dense (so not fused):
 * exercises the activation layer's own backward. */
static void test_unfused_activation(void **s) {
  (void)s;
  case_data c = {4, 3, 3, NNLIB_LOSS_MSE, 0};
  nnlib_model *m = ts_model(c.in, c.n, c.loss, sgd(), 5, ts_dense(c.in, 3, 1),
                            ts_act(NNLIB_ACT_SOFTMAX, 0),
                            ts_act(NNLIB_ACT_TANH, 0), ts_dense(3, 3, 1), NULL);
  expect_below(gradcheck(m, &c, 0), "softmax -> tanh (unfused)");
  nnlib_model_free(m);
}

static void test_end_to_end(void **s) {
  (void)s;
  case_data c = {8, 6, 4, NNLIB_LOSS_SOFTMAX_CE, 1};
  nnlib_model *m = ts_model(
      c.in, c.n, c.loss, sgd(), 21, ts_dense(c.in, 7, 1),
      ts_act(NNLIB_ACT_TANH, 0), ts_dense(7, 5, 0),
      ts_act(NNLIB_ACT_SOFTPLUS, 0), ts_dense(5, 6, 1),
      ts_act(NNLIB_ACT_SIGMOID, 0), ts_dense(6, c.out, 1), NULL);
  expect_below(gradcheck(m, &c, 0), "end to end, every scalar");
  expect_below(gradcheck(m, &c, 1), "end to end, random direction");
  nnlib_model_free(m);
}

/* The check must be able to fail: a model whose loss has a kink exactly
 * where the finite difference straddles it reports a large error. */
static void test_check_detects_wrong_gradient(void **s) {
  (void)s;
  case_data c = {1, 1, 1, NNLIB_LOSS_MSE, 0};
  /* step's straight-through backward is not its true derivative (0) */
  nnlib_model *m = ts_model(c.in, c.n, c.loss, sgd(), 1, ts_dense(1, 1, 1),
                            ts_act(NNLIB_ACT_STEP, 0), NULL);
  double err = gradcheck(m, &c, 0);
  assert_true(err > 0.5);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dense_each_loss),
      cmocka_unit_test(test_each_activation),
      cmocka_unit_test(test_unfused_activation),
      cmocka_unit_test(test_end_to_end),
      cmocka_unit_test(test_check_detects_wrong_gradient),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
