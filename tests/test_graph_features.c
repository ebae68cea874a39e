/* test_graph_features.c - the model's features inside graphs (issue 13):
 * plain SGD fused into backward gives the update backward + p -= lr g
 * gives; the numerics check names the node (and the input) that went bad;
 * the profile counts every layer of a graph, merges included; a graph of
 * recurrent layers takes shorter sequences as the same weights compiled
 * for that length do; dropout and batchnorm inside a graph draw and keep
 * their state from the model's generator and buffers. */
#include "test_support.h"

#include <math.h>
#include <string.h>

enum { N = 4 };

static nnlib_model *graph(const char *spec, nnlib_loss loss,
                          nnlib_optimizer *opt, uint64_t seed) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile_graph(m, N, loss, opt, seed));
  return m;
}

static nnlib_tensor *random_tensor(const int64_t *shape, size_t rank,
                                   uint32_t *seed) {
  nnlib_tensor *t = NULL;
  ASSERT_OK(nnlib_tensor_create(&t, shape, rank));
  ts_fill_uniform(nnlib_tensor_get_data(t), nnlib_tensor_get_size(t), -1.0f,
                  1.0f, seed);
  return t;
}

static const char *const FANOUT =
    "x=input:5,v=input:3,d=dense:6(x),t=tanh,s=sigmoid(d),a=add(t,s),"
    "p=multiply(a,d),concat(p,v),dense:2";

/* One plain-SGD step (fused into backward) equals backward, then
 * p -= lr g by hand, on a twin model with the same seed. */
static void test_fused_sgd_matches_manual_update(void **state) {
  (void)state;
  const float lr = 0.1f;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, lr, 0.0f, 0, 0.0f));
  nnlib_model *fused = graph(FANOUT, NNLIB_LOSS_MSE, opt, 3);
  nnlib_model *manual = graph(FANOUT, NNLIB_LOSS_MSE, NULL, 3);
  uint32_t seed = 5;
  const int64_t xs[2] = {N, 5}, vs[2] = {N, 3}, ts[2] = {N, 2};
  nnlib_tensor *x = random_tensor(xs, 2, &seed), *v = random_tensor(vs, 2, &seed);
  nnlib_tensor *t = random_tensor(ts, 2, &seed);
  const nnlib_tensor *in[2] = {x, v};
  float loss_fused, loss_manual;
  ASSERT_OK(nnlib_model_step_inputs(fused, in, 2, t, &loss_fused));
  ASSERT_OK(nnlib_model_backward_inputs(manual, in, 2, t, &loss_manual));
  assert_true(loss_fused == loss_manual);
  float *p_fused, *p_manual, *g_manual;
  int64_t count, count2;
  ASSERT_OK(nnlib_model_get_flat_params(fused, &p_fused, NULL, &count));
  ASSERT_OK(nnlib_model_get_flat_params(manual, &p_manual, &g_manual, &count2));
  assert_int_equal(count, count2);
  for (int64_t i = 0; i < count; i++)
    ASSERT_NEAR(p_fused[i], p_manual[i] - lr * g_manual[i], 1e-6);
  nnlib_tensor_free(x);
  nnlib_tensor_free(v);
  nnlib_tensor_free(t);
  nnlib_model_free(fused);
  nnlib_model_free(manual);
}

/* A NaN in the second input and an overflowing named node are reported
 * by name. */
static void test_numerics_names_nodes(void **state) {
  (void)state;
  nnlib_model *m = graph("x=input:2,v=input:2,big=dense:3(x),"
                         "concat(big,v),dense:1",
                         NNLIB_LOSS_MSE, NULL, 1);
  ASSERT_OK(nnlib_model_set_check_numerics(m, 1));
  uint32_t seed = 9;
  const int64_t s2[2] = {N, 2}, s1[2] = {N, 1};
  nnlib_tensor *x = random_tensor(s2, 2, &seed), *v = random_tensor(s2, 2, &seed);
  nnlib_tensor *y = random_tensor(s1, 2, &seed);
  const nnlib_tensor *in[2] = {x, v};
  nnlib_tensor_get_data(v)[3] = NAN;
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_predict_inputs(m, in, 2, y));
  ts_expect_message("input batch 1");
  nnlib_tensor_get_data(v)[3] = 0.0f;
  nnlib_tensor *w;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, 0), 0, &w, NULL));
  ASSERT_OK(nnlib_tensor_fill(w, 3e38f));
  nnlib_tensor_get_data(x)[0] = 1.0f;
  nnlib_tensor_get_data(x)[1] = 1.0f;
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_predict_inputs(m, in, 2, y));
  ts_expect_message("node 'big' (dense) output is inf");
  nnlib_tensor_free(x);
  nnlib_tensor_free(v);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

/* Every layer of a graph is counted, merges included, once per pass. */
static void test_profile_counts_every_node(void **state) {
  (void)state;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.01f, 0.9f, 0, 0.0f));
  nnlib_model *m = graph(FANOUT, NNLIB_LOSS_MSE, opt, 4);
  ASSERT_OK(nnlib_model_set_profiling(m, 1));
  uint32_t seed = 2;
  const int64_t xs[2] = {N, 5}, vs[2] = {N, 3}, ts[2] = {N, 2};
  nnlib_tensor *x = random_tensor(xs, 2, &seed), *v = random_tensor(vs, 2, &seed);
  nnlib_tensor *t = random_tensor(ts, 2, &seed);
  const nnlib_tensor *in[2] = {x, v};
  for (int i = 0; i < 3; i++)
    ASSERT_OK(nnlib_model_step_inputs(m, in, 2, t, NULL));
  for (size_t i = 0; i < nnlib_model_get_layer_count(m); i++) {
    nnlib_layer_profile p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    ASSERT_OK(nnlib_model_get_layer_profile(m, i, &p));
    assert_int_equal(p.forward_calls, 3);
    assert_int_equal(p.backward_calls, 3);
  }
  nnlib_tensor_free(x);
  nnlib_tensor_free(v);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* lstm (last step) read by two branches that are added: compiled for 7
 * steps, a batch of 4 steps predicts what the same weights compiled for 4
 * steps predict. */
static void test_shorter_sequences_in_a_graph(void **state) {
  (void)state;
  const char *spec7 = "x=input:7x3,h=lstm:5,last,a=dense:5(h),b=tanh(h),"
                      "add(a,b),dense:2";
  const char *spec4 = "x=input:4x3,h=lstm:5,last,a=dense:5(h),b=tanh(h),"
                      "add(a,b),dense:2";
  nnlib_model *m7 = graph(spec7, NNLIB_LOSS_MSE, NULL, 6);
  nnlib_model *m4 = graph(spec4, NNLIB_LOSS_MSE, NULL, 6);
  float *p7, *p4;
  int64_t c7, c4;
  ASSERT_OK(nnlib_model_get_flat_params(m7, &p7, NULL, &c7));
  ASSERT_OK(nnlib_model_get_flat_params(m4, &p4, NULL, &c4));
  assert_int_equal(c7, c4);
  memcpy(p4, p7, (size_t)c7 * sizeof(float));
  uint32_t seed = 8;
  const int64_t xs[3] = {N, 4, 3}, ys[2] = {N, 2};
  nnlib_tensor *x = random_tensor(xs, 3, &seed);
  nnlib_tensor *y7 = random_tensor(ys, 2, &seed), *y4 = random_tensor(ys, 2, &seed);
  ASSERT_OK(nnlib_model_predict(m7, x, y7));
  ASSERT_OK(nnlib_model_predict(m4, x, y4));
  assert_memory_equal(nnlib_tensor_get_data(y7), nnlib_tensor_get_data(y4),
                      N * 2 * sizeof(float));
  /* a graph with another layer inside the time axis refuses them */
  nnlib_model *inside = graph("x=input:7x3,a=lstm:5,b=tanh(a),add(a,b),"
                              "lstm:2",
                              NNLIB_LOSS_MSE, NULL, 6);
  const int64_t s7[2] = {N, 14};
  nnlib_tensor *y = random_tensor(s7, 2, &seed);
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH, nnlib_model_predict(inside, x, y));
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_tensor_free(y7);
  nnlib_tensor_free(y4);
  nnlib_model_free(m7);
  nnlib_model_free(m4);
  nnlib_model_free(inside);
}

/* Dropout and batchnorm in two branches: two models of one seed train to
 * the same bits (one generator, drawn in node order), predictions use the
 * running statistics (no dropout: predict twice, same output), and the
 * running statistics moved. */
static void test_dropout_and_batchnorm_in_branches(void **state) {
  (void)state;
  const char *real = "x=input:6,a=dense:8,da=dropout:0.5,b=batchnorm(x),"
                     "db=dense:8,add(da,db),dense:2";
  nnlib_optimizer *o1 = NULL, *o2 = NULL;
  ASSERT_OK(nnlib_sgd_create(&o1, 0.05f, 0.0f, 0, 0.0f));
  ASSERT_OK(nnlib_sgd_create(&o2, 0.05f, 0.0f, 0, 0.0f));
  nnlib_model *m1 = graph(real, NNLIB_LOSS_MSE, o1, 12);
  nnlib_model *m2 = graph(real, NNLIB_LOSS_MSE, o2, 12);
  uint32_t seed = 4;
  const int64_t xs[2] = {N, 6}, ts[2] = {N, 2};
  nnlib_tensor *x = random_tensor(xs, 2, &seed), *t = random_tensor(ts, 2, &seed);
  nnlib_tensor *y1 = random_tensor(ts, 2, &seed), *y2 = random_tensor(ts, 2, &seed);
  for (int i = 0; i < 5; i++) {
    ASSERT_OK(nnlib_model_step(m1, x, t, NULL));
    ASSERT_OK(nnlib_model_step(m2, x, t, NULL));
  }
  float *p1, *p2;
  int64_t count;
  ASSERT_OK(nnlib_model_get_flat_params(m1, &p1, NULL, &count));
  ASSERT_OK(nnlib_model_get_flat_params(m2, &p2, NULL, &count));
  assert_memory_equal(p1, p2, (size_t)count * sizeof(float));
  ASSERT_OK(nnlib_model_predict(m1, x, y1));
  ASSERT_OK(nnlib_model_predict(m1, x, y2));
  assert_memory_equal(nnlib_tensor_get_data(y1), nnlib_tensor_get_data(y2),
                      N * 2 * sizeof(float));
  nnlib_tensor *mean;
  nnlib_layer *bn = nnlib_model_get_layer(m1, 2);
  assert_int_equal(nnlib_layer_get_kind(bn), NNLIB_LAYER_BATCHNORM);
  ASSERT_OK(nnlib_layer_get_buffer(bn, 0, &mean));
  double moved = 0.0;
  for (int64_t i = 0; i < nnlib_tensor_get_size(mean); i++)
    moved += fabs(nnlib_tensor_get_data(mean)[i]);
  assert_true(moved > 0.0);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_tensor_free(y1);
  nnlib_tensor_free(y2);
  nnlib_model_free(m1);
  nnlib_model_free(m2);
}

/* fit with several inputs: validation data through validation_inputs;
 * validation->x alone cannot describe two inputs and is refused. The
 * validated fit lowers the validation loss. */
static void test_fit_inputs_with_validation(void **state) {
  (void)state;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.05f, 0.9f, 0, 0.0f));
  nnlib_model *m = graph(FANOUT, NNLIB_LOSS_MSE, opt, 7);
  uint32_t seed = 21;
  const int64_t xs[2] = {16, 5}, vs[2] = {16, 3}, ts[2] = {16, 2};
  nnlib_tensor *x = random_tensor(xs, 2, &seed), *v = random_tensor(vs, 2, &seed);
  nnlib_tensor *t = random_tensor(ts, 2, &seed);
  const nnlib_tensor *in[2] = {x, v};
  nnlib_fit_options fo;
  ASSERT_OK(nnlib_fit_options_init(&fo));
  fo.epochs = 20;
  nnlib_validation_options vo;
  ASSERT_OK(nnlib_validation_options_init(&vo));
  float losses[20];
  vo.x = x;
  vo.target = t;
  vo.losses = losses;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_fit_inputs(m, in, 2, t, &fo, &vo, NULL));
  ts_expect_message("validation inputs");
  vo.x = NULL;
  ASSERT_OK(nnlib_model_fit_inputs(m, in, 2, t, &fo, &vo, in));
  assert_true(losses[19] < losses[0]);
  nnlib_tensor_free(x);
  nnlib_tensor_free(v);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fused_sgd_matches_manual_update),
      cmocka_unit_test(test_numerics_names_nodes),
      cmocka_unit_test(test_profile_counts_every_node),
      cmocka_unit_test(test_shorter_sequences_in_a_graph),
      cmocka_unit_test(test_dropout_and_batchnorm_in_branches),
      cmocka_unit_test(test_fit_inputs_with_validation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
