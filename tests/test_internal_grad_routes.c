/* Where backward writes each node's gradient (plan.c): over the spent
 * output of the layer that writes it when that layer's kind allows it and
 * the output is at least as large, else in a region of its own that the
 * liveness plan places; never over the model's output. That is what keeps
 * a 784-1024-1024-10 MLP at one wide gradient buffer instead of two. Node
 * v is layer v - 1 in these chains (node 0 is the input); grads[v] is
 * dL/d(output of node v). The values these routes carry are checked against
 * finite differences by test_gradcheck and friends; this test pins the
 * routes themselves, and that the model output survives a backward pass. */
#include "nnlib_internal.h"
#include "test_support.h"

#include <string.h>

static nnlib_optimizer *sgd(void) {
  nnlib_optimizer *o;
  ASSERT_OK(nnlib_sgd_create(&o, 0.05f, 0, 0, 0));
  return o;
}

/* dense 20->32 relu, dense 32->32 relu, dense 32->3: the pairs fuse (layers
 * 1 and 3 run inside the dense before them). The last dense cannot write
 * over the model output, so its dx gets a region; the middle dense writes
 * over its own output; the first layer forms no dx. The plan holds the
 * three outputs (256 + 256 + 32 floats, padded) and, at the peak, the loss
 * gradient (32) and the last dense's dx (256): 832 floats. */
static void test_wide_mlp_uses_one_wide_buffer(void **s) {
  (void)s;
  nnlib_model *m = ts_model(20, 8, NNLIB_LOSS_SOFTMAX_CE, sgd(), 1,
                            ts_dense(20, 32, 1), ts_act(NNLIB_ACT_RELU, 0),
                            ts_dense(32, 32, 1), ts_act(NNLIB_ACT_RELU, 0),
                            ts_dense(32, 3, 1), NULL);
  assert_true(m->layers[1]->fused_away && m->layers[3]->fused_away);
  assert_null(m->input_grads);
  assert_ptr_equal(m->bufs.grads[2], m->bufs.acts[3]);
  assert_non_null(m->bufs.grads[4]);
  assert_ptr_not_equal(m->bufs.grads[4], m->bufs.acts[5]);
  assert_int_equal(nnlib__buffers_floats(m, true), 832);
  nnlib_model_free(m);
}

/* A narrowing layer cannot hold its dx in its output: dense 8->6->4->5.
 * Layer 4 (4->5, the output) and layer 2 (6->4) send dx to regions of
 * their own, which the plan may place where a spent gradient was. */
static void test_narrowing_layers_alternate(void **s) {
  (void)s;
  nnlib_model *m = ts_model(8, 4, NNLIB_LOSS_MSE, sgd(), 2, ts_dense(8, 6, 1),
                            ts_act(NNLIB_ACT_TANH, 0), ts_dense(6, 4, 1),
                            ts_act(NNLIB_ACT_TANH, 0), ts_dense(4, 5, 1), NULL);
  assert_ptr_not_equal(m->bufs.grads[4], m->bufs.acts[5]);
  assert_ptr_not_equal(m->bufs.grads[2], m->bufs.acts[3]);
  assert_ptr_not_equal(m->bufs.grads[4], m->bufs.grads[5]);
  assert_ptr_not_equal(m->bufs.grads[2], m->bufs.grads[4]);
  nnlib_model_free(m);
}

/* A standalone (unfused) softmax between two dense layers writes its dx
 * over its own output; the dense above it sends dx to a region. */
static void test_unfused_activation_over_output(void **s) {
  (void)s;
  nnlib_model *m = ts_model(3, 4, NNLIB_LOSS_MSE, sgd(), 3, ts_dense(3, 5, 1),
                            ts_act(NNLIB_ACT_SOFTMAX, 0), ts_dense(5, 2, 1),
                            NULL);
  assert_false(m->layers[1]->fused_away);
  assert_ptr_equal(m->bufs.grads[1], m->bufs.acts[2]);
  assert_ptr_not_equal(m->bufs.grads[2], m->bufs.acts[3]);
  nnlib_model_free(m);
}

/* The model output is intact after backward (which runs its own forward on
 * the same batch first), while the layer below writes its dx over its own
 * output. */
static void test_backward_keeps_model_output(void **s) {
  (void)s;
  enum { N = 4, IN = 6, OUT = 6 };
  nnlib_model *m = ts_model(IN, N, NNLIB_LOSS_MSE, NULL, 4, ts_dense(IN, 6, 1),
                            ts_act(NNLIB_ACT_SIGMOID, 0), ts_dense(6, 6, 1),
                            ts_act(NNLIB_ACT_SIGMOID, 0), ts_dense(6, OUT, 1),
                            NULL);
  assert_ptr_equal(m->bufs.grads[2], m->bufs.acts[3]);
  assert_ptr_not_equal(m->bufs.grads[4], m->bufs.acts[5]);
  float xv[N * IN], tv[N * OUT], before[N * OUT];
  uint32_t seed = 7;
  ts_fill_uniform(xv, N * IN, -1.0f, 1.0f, &seed);
  ts_fill_uniform(tv, N * OUT, -1.0f, 1.0f, &seed);
  nnlib_tensor *x = ts_tensor2(N, IN, xv), *t = ts_tensor2(N, OUT, tv);
  const nnlib_tensor *y;
  ASSERT_OK(nnlib_model_forward(m, x, &y));
  memcpy(before, nnlib_tensor_get_data_const(y), sizeof before);
  float loss;
  ASSERT_OK(nnlib_model_backward(m, x, t, &loss));
  assert_memory_equal(before, m->bufs.acts[5], sizeof before);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* Gradient check of model m on a batch of 3 random 1x5x5 images. */
static void expect_gradients(nnlib_model *m, int64_t outputs) {
  const int64_t xs[4] = {3, 1, 5, 5}, ts[2] = {3, outputs};
  nnlib_tensor *x, *t;
  ASSERT_OK(nnlib_tensor_create(&x, xs, 4));
  ASSERT_OK(nnlib_tensor_create(&t, ts, 2));
  uint32_t seed = 5;
  ts_fill_uniform(nnlib_tensor_get_data(x), 75, -1.0f, 1.0f, &seed);
  ts_fill_uniform(nnlib_tensor_get_data(t), 3 * outputs, -1.0f, 1.0f, &seed);
  double err;
  ASSERT_OK(nnlib_model_gradcheck(m, x, t, NULL, &err));
  print_message("  gradcheck %.2e\n", err);
  assert_true(err < 1e-3);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
}

static nnlib_model *image_model(const char *spec) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  const int64_t shape[3] = {1, 5, 5};
  ASSERT_OK(nnlib_model_compile(m, shape, 3, 3, NNLIB_LOSS_MSE, NULL, 9));
  return m;
}

/* conv 1->2 channels, conv 2->3, flatten, dense: the second conv's output
 * (3 planes) holds its dx (2 planes); flatten is a view of the tanh before
 * it (its output is the tanh's, and the tanh's gradient is flatten's, which
 * the last dense writes in a region of its own); the gradients still match
 * finite differences through those routes. */
static void test_conv_writes_dx_over_its_output(void **s) {
  (void)s;
  nnlib_model *m = image_model("conv:2x3x3:p1,tanh,conv:3x3x3:p1,tanh,"
                               "flatten,dense:2");
  assert_ptr_equal(m->bufs.grads[2], m->bufs.acts[3]);     /* conv 2->3 */
  assert_ptr_equal(m->bufs.grads[1], m->bufs.acts[2]);     /* tanh */
  assert_ptr_equal(m->bufs.acts[5], m->bufs.acts[4]);      /* flatten: view */
  assert_ptr_equal(m->bufs.grads[4], m->bufs.grads[5]);    /* of the tanh */
  assert_ptr_not_equal(m->bufs.grads[5], m->bufs.acts[6]); /* dense: last */
  assert_ptr_not_equal(m->bufs.grads[5], m->bufs.acts[4]);
  expect_gradients(m, 2);
  nnlib_model_free(m);
}

/* Flatten is a view of a layer node that it alone reads: it takes that
 * node's activation region and lends it its gradient region, a flatten of
 * a flatten too. */
static void test_flatten_views_its_input(void **s) {
  (void)s;
  /* nodes: input, conv, tanh, flatten, flatten, dense */
  nnlib_model *m = image_model("conv:2x3x3:p1,tanh,flatten,flatten,dense:2");
  assert_ptr_equal(m->bufs.acts[3], m->bufs.acts[2]);
  assert_ptr_equal(m->bufs.acts[4], m->bufs.acts[2]);
  assert_ptr_equal(m->bufs.grads[2], m->bufs.grads[4]);
  assert_ptr_equal(m->bufs.grads[3], m->bufs.grads[4]);
  expect_gradients(m, 2);
  nnlib_model_free(m);
}

/* The gradient flatten lends lives until its input's layer has read it:
 * the second convolution's dx (3 planes) is wider than its output, so it
 * gets a region of its own, which must not be its dy, flatten's gradient
 * (nodes: input, conv, conv, flatten, dense). */
static void test_flatten_lends_its_gradient_long_enough(void **s) {
  (void)s;
  nnlib_model *m = image_model("conv:3x3x3:p1,conv:2x3x3:p1,flatten,dense:2");
  assert_ptr_equal(m->bufs.grads[2], m->bufs.grads[3]);
  assert_ptr_not_equal(m->bufs.grads[1], m->bufs.grads[2]);
  expect_gradients(m, 2);
  nnlib_model_free(m);
}

/* Two flattens of one tanh copy (nodes: input, conv, t, flatten, f,
 * flatten(t), g, add), and so does a flatten of the model input (nodes:
 * input, flatten, dense), whose data is the caller's. */
static void test_flatten_copies_when_shared(void **s) {
  (void)s;
  nnlib_model *m = image_model("conv:2x3x3:p1,t=tanh,flatten,f=dense:2,"
                               "flatten(t),g=dense:2,add(f,g)");
  assert_ptr_not_equal(m->bufs.acts[3], m->bufs.acts[2]);
  assert_ptr_not_equal(m->bufs.acts[5], m->bufs.acts[2]);
  assert_ptr_not_equal(m->bufs.acts[5], m->bufs.acts[3]);
  assert_ptr_not_equal(m->bufs.grads[2], m->bufs.grads[3]);
  assert_ptr_not_equal(m->bufs.grads[2], m->bufs.grads[5]);
  expect_gradients(m, 2);
  nnlib_model_free(m);
  m = image_model("flatten,dense:2");
  assert_non_null(m->bufs.acts[1]);
  expect_gradients(m, 2);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wide_mlp_uses_one_wide_buffer),
      cmocka_unit_test(test_narrowing_layers_alternate),
      cmocka_unit_test(test_unfused_activation_over_output),
      cmocka_unit_test(test_backward_keeps_model_output),
      cmocka_unit_test(test_conv_writes_dx_over_its_output),
      cmocka_unit_test(test_flatten_views_its_input),
      cmocka_unit_test(test_flatten_lends_its_gradient_long_enough),
      cmocka_unit_test(test_flatten_copies_when_shared),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
