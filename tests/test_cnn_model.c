/* A whole convolutional model: after compile, training steps, passes and
 * predictions allocate nothing (the im2col buffers, pooling indices,
 * dropout masks and batchnorm statistics are planned workspaces); threads
 * predicting through their own workspaces get the model's own answers
 * (inference only reads the layers); training resumed from a saved file
 * continues bit for bit (dropout masks from the saved generator, running
 * statistics as buffers); the numerics check names a convolutional layer;
 * plain SGD folded into backward equals the unfolded update. */
#include "test_support.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC                                                                   \
  "conv:4x3x3:p1:nobias,batchnorm,relu,maxpool:2,conv:6x3x3:s1:p1,relu,"      \
  "minpool:2:s1,avgpool:2,dropout:0.3,flatten,dense:8,relu,dense:3"

enum { C = 2, H = 9, W = 8, IN = C * H * W, OUT = 3, BATCH = 6 };

static nnlib_model *cnn(nnlib_optimizer *opt, uint64_t seed) {
  nnlib_model *m = NULL;
  int64_t shape[3] = {C, H, W};
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, SPEC));
  ASSERT_OK(nnlib_model_compile(m, shape, 3, BATCH, NNLIB_LOSS_SOFTMAX_CE, opt,
                                seed));
  return m;
}

static nnlib_optimizer *optimizer(nnlib_optimizer_kind kind) {
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, kind));
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  return opt;
}

static nnlib_tensor *images(int64_t n, uint32_t seed) {
  nnlib_tensor *x = ts_tensor2(n, IN, NULL);
  ts_fill_uniform(nnlib_tensor_get_data(x), n * IN, -1, 1, &seed);
  return x;
}

static nnlib_tensor *labels(int64_t n) {
  nnlib_tensor *t = NULL;
  ASSERT_OK(nnlib_tensor_create(&t, &n, 1));
  for (int64_t i = 0; i < n; i++)
    nnlib_tensor_get_data(t)[i] = (float)(i % OUT);
  return t;
}

static void check_no_alloc(nnlib_optimizer_kind kind) {
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  nnlib_model *m = cnn(optimizer(kind), 3);
  nnlib_tensor *x = images(BATCH, 1), *t = labels(BATCH);
  nnlib_tensor *big = images(3 * BATCH + 2, 2), *tbig = labels(3 * BATCH + 2);
  nnlib_tensor *y = ts_tensor2(BATCH, OUT, NULL);
  nnlib_tensor *ybig = ts_tensor2(3 * BATCH + 2, OUT, NULL);
  nnlib_workspace *ws = NULL;
  ASSERT_OK(nnlib_workspace_create(&ws, m));
  long before = stats.allocs;
  const nnlib_tensor *out;
  float loss, accuracy;
  for (int i = 0; i < 5; i++) {
    ASSERT_OK(nnlib_model_step(m, x, t, &loss));
    ASSERT_OK(nnlib_model_predict(m, big, ybig));
    ASSERT_OK(nnlib_workspace_predict(ws, big, ybig));
  }
  ASSERT_OK(nnlib_model_forward(m, x, &out));
  ASSERT_OK(nnlib_model_backward(m, x, t, &loss));
  ASSERT_OK(nnlib_model_apply_gradients(m));
  ASSERT_OK(nnlib_model_evaluate(m, big, tbig, &loss, &accuracy));
  if (stats.allocs != before)
    fail_msg("kind %d: %ld heap allocations after compile", (int)kind,
             stats.allocs - before);
  assert_true(isfinite(loss));
  nnlib_workspace_free(ws);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_tensor_free(big);
  nnlib_tensor_free(tbig);
  nnlib_tensor_free(y);
  nnlib_tensor_free(ybig);
  nnlib_model_free(m);
  ts_alloc_uninstall();
  assert_int_equal(stats.live, 0);
}

static void test_no_allocation_after_compile(void **s) {
  (void)s;
  check_no_alloc(NNLIB_OPT_SGD); /* plain SGD: folded into backward */
  check_no_alloc(NNLIB_OPT_ADAM);
}

/* ----------------------------------------------------------- threads */

typedef struct job {
  nnlib_workspace *ws;
  const nnlib_tensor *x;
  nnlib_tensor *y;
  nnlib_status st;
} job;

static void *predict_job(void *arg) {
  job *j = arg;
  for (int i = 0; i < 20 && j->st == NNLIB_OK; i++)
    j->st = nnlib_workspace_predict(j->ws, j->x, j->y);
  return NULL;
}

static void test_threads_share_the_model(void **s) {
  (void)s;
  nnlib_model *m = cnn(optimizer(NNLIB_OPT_ADAM), 4);
  nnlib_tensor *x = images(BATCH, 5), *t = labels(BATCH);
  for (int i = 0; i < 3; i++) /* running statistics away from 0 and 1 */
    ASSERT_OK(nnlib_model_step(m, x, t, NULL));
  enum { THREADS = 4, SAMPLES = 2 * BATCH + 3 };
  nnlib_tensor *all = images(SAMPLES, 6), *want = ts_tensor2(SAMPLES, OUT, NULL);
  ASSERT_OK(nnlib_model_predict(m, all, want));
  job jobs[THREADS];
  pthread_t tids[THREADS];
  for (int i = 0; i < THREADS; i++) {
    ASSERT_OK(nnlib_workspace_create(&jobs[i].ws, m));
    jobs[i].x = all;
    jobs[i].y = ts_tensor2(SAMPLES, OUT, NULL);
    jobs[i].st = NNLIB_OK;
    assert_int_equal(pthread_create(&tids[i], NULL, predict_job, &jobs[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(tids[i], NULL);
    ASSERT_OK(jobs[i].st);
    assert_memory_equal(nnlib_tensor_get_data(jobs[i].y),
                        nnlib_tensor_get_data(want), sizeof(float) * SAMPLES * OUT);
    nnlib_workspace_free(jobs[i].ws);
    nnlib_tensor_free(jobs[i].y);
  }
  nnlib_tensor_free(all);
  nnlib_tensor_free(want);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* ------------------------------------------------------------ resume */

static unsigned char *save(nnlib_model *m, size_t *n) {
  void *data = NULL;
  ASSERT_OK(nnlib_model_save_to_buffer(&data, n, m, NNLIB_SAVE_OPTIMIZER));
  return data;
}

static void test_resume_bit_identical(void **s) {
  (void)s;
  nnlib_model *a = cnn(optimizer(NNLIB_OPT_ADAM), 9);
  nnlib_tensor *x = images(4 * BATCH, 7), *t = labels(4 * BATCH);
  nnlib_fit_options fo;
  ASSERT_OK(nnlib_fit_options_init(&fo));
  fo.epochs = 2;
  ASSERT_OK(nnlib_model_fit(a, x, t, &fo));
  size_t n, na, nb;
  unsigned char *saved = save(a, &n);
  ASSERT_OK(nnlib_model_fit(a, x, t, &fo));
  nnlib_model *b = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&b, saved, n));
  ASSERT_OK(nnlib_model_fit(b, x, t, &fo));
  unsigned char *sa = save(a, &na), *sb = save(b, &nb);
  assert_int_equal(na, nb);
  assert_memory_equal(sa, sb, na);
  nnlib_free(saved);
  nnlib_free(sa);
  nnlib_free(sb);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

/* Plain SGD folded into the layers' backward passes gives the weights of
 * the separate update (nnlib_model_backward + nnlib_model_apply_gradients). */
static void test_fused_sgd_matches(void **s) {
  (void)s;
  nnlib_optimizer *oa = NULL, *ob = NULL;
  ASSERT_OK(nnlib_sgd_create(&oa, 0.05f, 0, 0, 0));
  ASSERT_OK(nnlib_sgd_create(&ob, 0.05f, 0, 0, 0));
  nnlib_model *a = cnn(oa, 12), *b = cnn(ob, 12);
  nnlib_tensor *x = images(BATCH, 8), *t = labels(BATCH);
  for (int i = 0; i < 3; i++) {
    ASSERT_OK(nnlib_model_step(a, x, t, NULL));
    ASSERT_OK(nnlib_model_backward(b, x, t, NULL));
    ASSERT_OK(nnlib_model_apply_gradients(b));
  }
  for (size_t l = 0; l < nnlib_model_get_layer_count(a); l++) {
    nnlib_layer *la = nnlib_model_get_layer(a, l);
    nnlib_layer *lb = nnlib_model_get_layer(b, l);
    for (size_t p = 0; p < nnlib_layer_get_param_tensor_count(la); p++) {
      nnlib_tensor *va, *vb;
      ASSERT_OK(nnlib_layer_get_param(la, p, &va, NULL));
      ASSERT_OK(nnlib_layer_get_param(lb, p, &vb, NULL));
      for (int64_t i = 0; i < nnlib_tensor_get_size(va); i++)
        ASSERT_NEAR(nnlib_tensor_get_data(va)[i], nnlib_tensor_get_data(vb)[i],
                    1e-6);
    }
  }
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

static void test_numerics_names_the_layer(void **s) {
  (void)s;
  nnlib_model *m = cnn(optimizer(NNLIB_OPT_SGD), 2);
  ASSERT_OK(nnlib_model_set_check_numerics(m, 1));
  nnlib_layer *conv = nnlib_model_get_layer(m, 4);
  nnlib_tensor *w;
  ASSERT_OK(nnlib_layer_get_param(conv, 0, &w, NULL));
  nnlib_tensor_get_data(w)[5] = INFINITY;
  nnlib_tensor *x = images(BATCH, 3), *y = ts_tensor2(BATCH, OUT, NULL);
  ASSERT_STATUS(NNLIB_ERR_NUMERICAL, nnlib_model_predict(m, x, y));
  /* predict runs the relu after the convolution in its pass (folded) */
  const char *msg = nnlib_last_error_message();
  if (strstr(msg, "layer 4 (conv2d, with layer 5 relu folded in) output "
                  "is") == NULL)
    fail_msg("message \"%s\" does not name layer 4 (conv2d)", msg);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_allocation_after_compile),
      cmocka_unit_test(test_threads_share_the_model),
      cmocka_unit_test(test_resume_bit_identical),
      cmocka_unit_test(test_fused_sgd_matches),
      cmocka_unit_test(test_numerics_names_the_layer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
