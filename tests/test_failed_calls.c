/* A call that fails changes nothing (the header's preamble): its outputs,
 * the model's parameters, gradients, loss and input shape, a pending
 * forward pass and the generator stay as they were. Also the checks that
 * come before a pass runs: class-index targets (also for an accuracy
 * alone), and a language model whose logits pick tokens its embedding
 * cannot read back. */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { FEATURES = 4, CLASSES = 3, BATCH = 4 };

/* dense:4->8, relu, dropout 0.5, dense:8->3 under softmax CE with plain
 * SGD: the dropout draws from the model's generator. */
static nnlib_model *classifier(void) {
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0.9f, 0, 0));
  nnlib_layer *drop;
  ASSERT_OK(nnlib_dropout_create(&drop, 0.5f));
  return ts_model(FEATURES, BATCH, NNLIB_LOSS_SOFTMAX_CE, opt, 5,
                  ts_dense(FEATURES, 8, 1), ts_act(NNLIB_ACT_RELU, 0.0f), drop,
                  ts_dense(8, CLASSES, 1), NULL);
}

static nnlib_tensor *inputs(void) {
  float x[BATCH * FEATURES];
  for (int i = 0; i < BATCH * FEATURES; i++)
    x[i] = 0.25f * (float)(i % 7) - 0.5f;
  return ts_tensor2(BATCH, FEATURES, x);
}

/* class indices {0, 1, 2, last} */
static nnlib_tensor *targets(float last) {
  const float t[BATCH] = {0.0f, 1.0f, 2.0f, last};
  return ts_tensor2(BATCH, 1, t);
}

static float *copy_params(nnlib_model *m, int64_t *count) {
  float *p, *g;
  ASSERT_OK(nnlib_model_get_flat_params(m, &p, &g, count));
  return ts_copy_floats(p, *count);
}

static void assert_params_are(nnlib_model *m, const float *want) {
  float *p, *g;
  int64_t count;
  ASSERT_OK(nnlib_model_get_flat_params(m, &p, &g, &count));
  assert_memory_equal(p, want, (size_t)count * sizeof(float));
}

/* A bad class index fails backward, step, evaluate (with or without the
 * loss) and fit before anything runs: *loss and *accuracy keep their
 * values, the weights theirs, and the next good step draws the same
 * dropout masks as on a model that never saw the bad calls. */
static void test_bad_class_index_runs_nothing(void **s) {
  (void)s;
  nnlib_model *m = classifier(), *twin = classifier();
  nnlib_tensor *x = inputs(), *good = targets(1.0f);
  int64_t count;
  float *before = copy_params(m, &count);
  const float bad[] = {3.0f, -1.0f, 1.5f, NAN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    nnlib_tensor *t = targets(bad[i]);
    float loss = 123.0f, acc = 456.0f;
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, nnlib_model_backward(m, x, t, &loss));
    ts_expect_message("the target of row 3 is");
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, nnlib_model_step(m, x, t, &loss));
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                  nnlib_model_evaluate(m, x, t, NULL, &acc));
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE,
                  nnlib_model_evaluate(m, x, t, &loss, &acc));
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_RANGE, nnlib_model_fit(m, x, t, NULL));
    assert_true(loss == 123.0f && acc == 456.0f);
    assert_params_are(m, before);
    nnlib_tensor_free(t);
  }
  float la, lb;
  ASSERT_OK(nnlib_model_step(m, x, good, &la));
  ASSERT_OK(nnlib_model_step(twin, x, good, &lb));
  assert_memory_equal(&la, &lb, sizeof la);
  float *after_twin = copy_params(twin, &count);
  assert_params_are(m, after_twin);
  free(before);
  free(after_twin);
  nnlib_tensor_free(x);
  nnlib_tensor_free(good);
  nnlib_model_free(m);
  nnlib_model_free(twin);
}

/* predict and forward refused for their arguments leave a pending forward
 * pass for backward_output; a pass that runs spends it. */
static void test_refused_calls_keep_the_pending_forward(void **s) {
  (void)s;
  nnlib_model *m = classifier();
  nnlib_tensor *x = inputs(), *dy = ts_tensor2(BATCH, CLASSES, NULL);
  nnlib_tensor *y = ts_tensor2(BATCH, CLASSES, NULL);
  const nnlib_tensor *out;
  ASSERT_OK(nnlib_model_forward(m, x, &out));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_predict(m, x, NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_forward(m, NULL, &out));
  ASSERT_OK(nnlib_model_backward_output(m, dy));
  ASSERT_OK(nnlib_model_forward(m, x, &out));
  ASSERT_OK(nnlib_model_predict(m, x, y));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_backward_output(m, dy));
  nnlib_tensor_free(x);
  nnlib_tensor_free(dy);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

static size_t input_rank(const nnlib_model *m) {
  nnlib_node_info info;
  info.struct_size = sizeof info;
  ASSERT_OK(nnlib_model_get_node(m, 0, &info));
  assert_true(info.layer == NULL);
  return info.rank;
}

/* A compile that fails in planning leaves the loss NONE, the implicit
 * input without a shape and no maximum batch; the model then compiles. */
static void test_failed_compile_leaves_the_model(void **s) {
  (void)s;
  nnlib_model *m;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, ts_dense(5, 3, 1)));
  int64_t wrong[1] = {4}, right[1] = {5};
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile(m, wrong, 1, 8, NNLIB_LOSS_MSE, NULL, 1));
  assert_int_equal(nnlib_model_get_loss(m), NNLIB_LOSS_NONE);
  assert_int_equal(nnlib_model_get_max_batch(m), 0);
  assert_int_equal(input_rank(m), 0);
  ASSERT_OK(nnlib_model_compile(m, right, 1, 8, NNLIB_LOSS_MSE, NULL, 1));
  assert_int_equal(nnlib_model_get_loss(m), NNLIB_LOSS_MSE);
  assert_int_equal(input_rank(m), 1);
  nnlib_model_free(m);
}

/* gradcheck on another batch puts back the gradients of the backward
 * before it, so that applying them after the check applies those, and
 * leaves the input gradients of that backward as they were. */
static void test_gradcheck_keeps_the_gradients(void **s) {
  (void)s;
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0, 0, 0));
  nnlib_model *m = ts_model(FEATURES, BATCH, NNLIB_LOSS_MSE, opt, 2,
                            ts_dense(FEATURES, 3, 1), NULL);
  nnlib_tensor *xa = inputs(), *xb = inputs(), *t = ts_tensor2(BATCH, 3, NULL);
  float *xbv = nnlib_tensor_get_data(xb);
  for (int i = 0; i < BATCH * FEATURES; i++)
    xbv[i] = 1.0f - xbv[i];
  ASSERT_OK(nnlib_model_set_input_gradients(m, 1));
  ASSERT_OK(nnlib_model_backward(m, xa, t, NULL));
  float *p, *g;
  int64_t count;
  ASSERT_OK(nnlib_model_get_flat_params(m, &p, &g, &count));
  float *grads = ts_copy_floats(g, count);
  const nnlib_tensor *dx;
  ASSERT_OK(nnlib_model_get_input_gradient(m, 0, &dx));
  float *dx_before =
      ts_copy_floats(nnlib_tensor_get_data_const(dx), BATCH * FEATURES);
  nnlib_tensor *x2 = ts_tensor2(2, FEATURES, nnlib_tensor_get_data(xb));
  nnlib_tensor *t2 = ts_tensor2(2, 3, NULL);
  double err;
  ASSERT_OK(nnlib_model_gradcheck(m, x2, t2, NULL, &err));
  assert_true(err < 1e-2);
  assert_memory_equal(g, grads, (size_t)count * sizeof(float));
  ASSERT_OK(nnlib_model_get_input_gradient(m, 0, &dx));
  assert_int_equal(nnlib_tensor_get_shape(dx)[0], BATCH);
  assert_memory_equal(nnlib_tensor_get_data_const(dx), dx_before,
                      BATCH * FEATURES * sizeof(float));
  free(grads);
  free(dx_before);
  nnlib_tensor_free(x2);
  nnlib_tensor_free(t2);
  nnlib_tensor_free(xa);
  nnlib_tensor_free(xb);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* Logits over 200 tokens after an embedding of 4: refused before any
 * token is written. */
static void test_generate_refuses_logits_beyond_the_vocabulary(void **s) {
  (void)s;
  nnlib_model *m;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "input:8,embedding:4:8,positional,"
                                    "transformer:8:2:causal,layernorm,"
                                    "linear:200"));
  ASSERT_OK(nnlib_model_compile_graph(m, 2, NNLIB_LOSS_NONE, NULL, 1));
  const int32_t prompt[2] = {1, 2};
  int32_t out[5] = {-1, -1, -1, -1, -1};
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED,
                nnlib_model_generate(m, prompt, 2, 5, NULL, out));
  ts_expect_message("the logits pick among 200 tokens");
  ts_expect_message("reads ids 0 to 3 only");
  for (int i = 0; i < 5; i++)
    assert_int_equal(out[i], -1);
  nnlib_model_free(m);
}

/* No bytes at all is an empty text, whatever the pointer. */
static void test_empty_text_from_null(void **s) {
  (void)s;
  nnlib_text *t = NULL;
  ASSERT_OK(nnlib_text_from_bytes(&t, NULL, 0, 0.0, 1));
  assert_non_null(t);
  assert_int_equal(nnlib_text_get_size(t, 0), 0);
  nnlib_text_free(t);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_text_from_bytes(&t, NULL, 3, 0.0, 1));
  assert_null(t);
}

/* A chain with a declared input prints its layers only, as 1.2 did; the
 * parsed text compiles with that input's shape and prints the same. */
static void test_spec_of_a_declared_chain(void **s) {
  (void)s;
  nnlib_model *a, *b;
  ASSERT_OK(nnlib_model_create(&a));
  ASSERT_OK(nnlib_model_add_spec(a, "input:4x6,linear:3"));
  char text[128];
  ASSERT_OK(nnlib_model_get_spec(a, text, sizeof text, NULL));
  assert_string_equal(text, "linear:3");
  ASSERT_OK(nnlib_model_create(&b));
  ASSERT_OK(nnlib_model_add_spec(b, text));
  int64_t shape[2] = {4, 6};
  ASSERT_OK(nnlib_model_compile(b, shape, 2, 2, NNLIB_LOSS_NONE, NULL, 1));
  char again[128];
  ASSERT_OK(nnlib_model_get_spec(b, again, sizeof again, NULL));
  assert_string_equal(text, again);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_class_index_runs_nothing),
      cmocka_unit_test(test_refused_calls_keep_the_pending_forward),
      cmocka_unit_test(test_failed_compile_leaves_the_model),
      cmocka_unit_test(test_gradcheck_keeps_the_gradients),
      cmocka_unit_test(test_generate_refuses_logits_beyond_the_vocabulary),
      cmocka_unit_test(test_empty_text_from_null),
      cmocka_unit_test(test_spec_of_a_declared_chain),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
