/* conv2d, the pools (with ceil mode, dilation, padding on each side and
 * averages without the padding) and batchnorm against PyTorch: forward
 * outputs, input gradients, parameter gradients and batchnorm's running
 * statistics, on the same inputs and weights, within 1e-4 relative error
 * per tensor
 * (max |ours - torch| / max |torch|). The reference values come from
 * tests/make_torch_fixtures.py (tests/fixtures/torch_layers.txt, which
 * names the torch version); no PyTorch is needed here. Internal, so it can
 * run a layer's backward by itself and read dx, which a model never
 * computes for its first layer. */
#include "nnlib_internal.h"
#include "fixtures.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAR 1e-4

/* ------------------------------------------------------- comparisons */

static double worst_error; /* over the whole run, for the summary */

/* max |a - b| / max |b| */
static void expect_close(const fx_case *c, const char *what, const float *a,
                         const fx_tensor *b) {
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < b->size; i++) {
    double d = fabs((double)a[i] - b->data[i]);
    if (d > diff || isnan(d))
      diff = d;
    if (fabs(b->data[i]) > scale)
      scale = fabs(b->data[i]);
  }
  double err = diff / (scale > 0.0 ? scale : 1.0);
  print_message("  %-40s %-18s %.2e\n", c->name, what, err);
  if (!(err <= BAR))
    fail_msg("%s %s: relative error %.3g exceeds %.0e", c->name, what, err,
             BAR);
  if (err > worst_error)
    worst_error = err;
}

/* ----------------------------------------------------------- running */

/* A compiled one-layer model over per-sample `shape` for n samples. */
static nnlib_model *one_layer(nnlib_layer *l, const int64_t *shape,
                              size_t rank, int64_t n) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, l));
  ASSERT_OK(nnlib_model_compile(m, shape, rank, n, NNLIB_LOSS_MSE, NULL, 1));
  return m;
}

static void set_tensor(nnlib_tensor *dst, const fx_tensor *src) {
  assert_int_equal(nnlib_tensor_get_size(dst), src->size);
  memcpy(nnlib_tensor_get_data(dst), src->data,
         (size_t)src->size * sizeof(float));
}

static void set_param(nnlib_model *m, size_t index, const fx_tensor *src) {
  nnlib_tensor *t;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, 0), index, &t,
                                  NULL));
  set_tensor(t, src);
}

/* Forward (training or inference) and the layer's own backward with
 * dy = g; checks y and dx against the case, leaves the parameter
 * gradients in the layer. */
static void run_and_check(nnlib_model *m, const fx_case *c, bool training) {
  const fx_tensor *x = fx_need(c, "x"), *g = fx_need(c, "g");
  int64_t n = x->dims[0];
  const float *y;
  nnlib__batch batch;
  memset(&batch, 0, sizeof batch);
  batch.x[0] = x->data;
  batch.n = n;
  batch.training = training;
  ASSERT_OK(nnlib__forward(m, &m->bufs, &batch, training ? &m->rng : NULL,
                           &y));
  expect_close(c, "forward y", y, fx_need(c, "y"));
  nnlib_layer *l = m->layers[0];
  float *dy = malloc((size_t)g->size * sizeof(float));
  float *dx = malloc((size_t)x->size * sizeof(float));
  memcpy(dy, g->data, (size_t)g->size * sizeof(float));
  nnlib__run run = {training, m->bufs.workspace[1], /* node 1: layer 0 */ training ? &m->rng : NULL,
                    false, 0.0f, 0, 0, NULL, false};
  ASSERT_OK(l->ops->backward(l, &run, x->data, y, dy, dx, n));
  expect_close(c, "backward dx", dx, fx_need(c, "dx"));
  free(dy);
  free(dx);
}

static void expect_param_grad(nnlib_model *m, const fx_case *c, size_t index,
                              const char *name) {
  nnlib_tensor *grad;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, 0), index, NULL,
                                  &grad));
  expect_close(c, name, nnlib_tensor_get_data(grad), fx_need(c, name));
}

static void check_conv(const fx_case *c) {
  nnlib_conv2d_options o;
  ASSERT_OK(nnlib_conv2d_options_init(&o));
  o.in_channels = fx_int(c, "cin");
  o.stride_h = fx_int(c, "sh");
  o.stride_w = fx_int(c, "sw");
  o.padding_h = fx_int(c, "ph");
  o.padding_w = fx_int(c, "pw");
  o.dilation_h = fx_int(c, "dh");
  o.dilation_w = fx_int(c, "dw");
  o.with_bias = (int)fx_int(c, "bias");
  nnlib_layer *l;
  ASSERT_OK(nnlib_conv2d_create(&l, fx_int(c, "cout"), fx_int(c, "kh"),
                                fx_int(c, "kw"), &o));
  int64_t shape[3] = {fx_int(c, "cin"), fx_int(c, "h"), fx_int(c, "w")};
  nnlib_model *m = one_layer(l, shape, 3, fx_int(c, "n"));
  set_param(m, 0, fx_need(c, "weight"));
  if (o.with_bias)
    set_param(m, 1, fx_need(c, "bias"));
  run_and_check(m, c, true);
  expect_param_grad(m, c, 0, "dweight");
  if (o.with_bias)
    expect_param_grad(m, c, 1, "dbias");
  nnlib_model_free(m);
}

static void check_pool(const fx_case *c) {
  const char *kind = fx_value(c, "kind");
  nnlib_layer_kind k = strcmp(kind, "max") == 0   ? NNLIB_LAYER_MAXPOOL2D
                       : strcmp(kind, "min") == 0 ? NNLIB_LAYER_MINPOOL2D
                                                  : NNLIB_LAYER_AVGPOOL2D;
  nnlib_pool2d_options o;
  ASSERT_OK(nnlib_pool2d_options_init(&o));
  o.stride_h = fx_int(c, "sh");
  o.stride_w = fx_int(c, "sw");
  o.padding_h = fx_int(c, "ph");
  o.padding_w = fx_int(c, "pw");
  o.padding_bottom = fx_int(c, "pb");
  o.padding_right = fx_int(c, "pr");
  o.dilation_h = fx_int(c, "dh");
  o.dilation_w = fx_int(c, "dw");
  o.ceil_mode = (int)fx_int(c, "ceil");
  o.count_include_pad = (int)fx_int(c, "cip");
  nnlib_layer *l;
  ASSERT_OK(nnlib_pool2d_create(&l, k, fx_int(c, "kh"), fx_int(c, "kw"),
                                &o));
  int64_t shape[3] = {fx_int(c, "c"), fx_int(c, "h"), fx_int(c, "w")};
  nnlib_model *m = one_layer(l, shape, 3, fx_int(c, "n"));
  run_and_check(m, c, true);
  nnlib_model_free(m);
}

static void check_global_avgpool(const fx_case *c) {
  nnlib_layer *l;
  ASSERT_OK(nnlib_global_avgpool_create(&l));
  int64_t shape[3] = {fx_int(c, "c"), fx_int(c, "h"), fx_int(c, "w")};
  nnlib_model *m = one_layer(l, shape, 3, fx_int(c, "n"));
  run_and_check(m, c, true);
  nnlib_model_free(m);
}

static void set_buffer(nnlib_model *m, size_t index, const fx_tensor *src) {
  nnlib_tensor *t;
  ASSERT_OK(nnlib_layer_get_buffer(nnlib_model_get_layer(m, 0), index, &t));
  set_tensor(t, src);
}

static void expect_buffer(nnlib_model *m, const fx_case *c, size_t index,
                          const char *name) {
  nnlib_tensor *t;
  ASSERT_OK(nnlib_layer_get_buffer(nnlib_model_get_layer(m, 0), index, &t));
  expect_close(c, name, nnlib_tensor_get_data(t), fx_need(c, name));
}

static void check_batchnorm(const fx_case *c) {
  nnlib_layer *l;
  ASSERT_OK(nnlib_batchnorm_create(&l, fx_float(c, "momentum"),
                                   fx_float(c, "eps")));
  const fx_tensor *x = fx_need(c, "x");
  int64_t shape[NNLIB_MAX_RANK];
  size_t rank = x->rank - 1;
  for (size_t i = 0; i < rank; i++)
    shape[i] = x->dims[i + 1];
  nnlib_model *m = one_layer(l, shape, rank, x->dims[0]);
  assert_string_equal(nnlib_layer_get_buffer_name(m->layers[0], 0),
                      "running_mean");
  assert_string_equal(nnlib_layer_get_buffer_name(m->layers[0], 1),
                      "running_var");
  set_param(m, 0, fx_need(c, "weight"));
  set_param(m, 1, fx_need(c, "bias"));
  set_buffer(m, 0, fx_need(c, "running_mean"));
  set_buffer(m, 1, fx_need(c, "running_var"));
  run_and_check(m, c, fx_int(c, "training") == 1);
  expect_param_grad(m, c, 0, "dweight");
  expect_param_grad(m, c, 1, "dbias");
  /* after one training pass (or untouched by an inference pass) */
  expect_buffer(m, c, 0, "running_mean_after");
  expect_buffer(m, c, 1, "running_var_after");
  nnlib_model_free(m);
}

static bool starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void test_against_torch(void **s) {
  (void)s;
  char version[64];
  FILE *f = fx_open("torch_layers.txt", version);
  print_message("reference: torch %s (tests/make_torch_fixtures.py)\n",
                version);
  fx_case *c = malloc(sizeof *c);
  int cases = 0;
  while (fx_read_case(f, c)) {
    if (starts_with(c->name, "conv"))
      check_conv(c);
    else if (starts_with(c->name, "global_avgpool"))
      check_global_avgpool(c);
    else if (strstr(c->name, "pool") != NULL)
      check_pool(c);
    else if (starts_with(c->name, "batchnorm"))
      check_batchnorm(c);
    else
      fail_msg("unknown case %s", c->name);
    fx_free_case(c);
    cases++;
  }
  free(c);
  fclose(f);
  assert_true(cases >= 28);
  print_message("%d cases, worst relative error %.2e\n", cases, worst_error);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_against_torch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
