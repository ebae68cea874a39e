/* Threads: eight threads predict with one shared model, each through its
 * own workspace, and get exactly the single-threaded predictions; several
 * threads train their own models at once and get exactly the weights of a
 * lone run, also when OpenBLAS splits their GEMMs; threads predicting
 * sequences of different lengths each get their own. Run under
 * ThreadSanitizer by the reliability checks. */
#define _POSIX_C_SOURCE 200809L
#include "test_support.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum { THREADS = 8, SAMPLES = 300, IN = 20, OUT = 5, ROUNDS = 20 };

typedef struct predict_job {
  nnlib_model *model;
  const nnlib_tensor *x;
  const float *expected;
  int mismatches;
  nnlib_status status;
} predict_job;

static void *predict_worker(void *arg) {
  predict_job *job = arg;
  nnlib_workspace *ws = NULL;
  nnlib_tensor *y = NULL;
  int64_t shape[2] = {SAMPLES, OUT};
  job->status = nnlib_workspace_create(&ws, job->model);
  if (job->status == NNLIB_OK)
    job->status = nnlib_tensor_create(&y, shape, 2);
  for (int r = 0; r < ROUNDS && job->status == NNLIB_OK; r++) {
    job->status = nnlib_workspace_predict(ws, job->x, y);
    if (memcmp(nnlib_tensor_get_data(y), job->expected,
               sizeof(float) * SAMPLES * OUT) != 0)
      job->mismatches++;
  }
  nnlib_tensor_free(y);
  nnlib_workspace_free(ws);
  return NULL;
}

static nnlib_model *make_model(uint64_t seed) {
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.05f, 0.9f, 0, 0));
  return ts_model(IN, 32, NNLIB_LOSS_SOFTMAX_CE, opt, seed, ts_dense(IN, 16, 1),
                  ts_act(NNLIB_ACT_TANH, 0), ts_dense(16, OUT, 1),
                  ts_act(NNLIB_ACT_SOFTMAX, 0), NULL);
}

static nnlib_tensor *inputs(void) {
  nnlib_tensor *x = ts_tensor2(SAMPLES, IN, NULL);
  uint32_t st = 8;
  ts_fill_uniform(nnlib_tensor_get_data(x), SAMPLES * IN, -1, 1, &st);
  return x;
}

static void test_shared_model_parallel_inference(void **s) {
  (void)s;
  nnlib_model *m = make_model(3);
  nnlib_tensor *x = inputs(), *y = ts_tensor2(SAMPLES, OUT, NULL);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  predict_job jobs[THREADS];
  pthread_t tids[THREADS];
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (predict_job){m, x, nnlib_tensor_get_data(y), 0, NNLIB_OK};
    assert_int_equal(pthread_create(&tids[i], NULL, predict_worker, &jobs[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(tids[i], NULL);
    ASSERT_OK(jobs[i].status);
    assert_int_equal(jobs[i].mismatches, 0);
  }
  nnlib_workspace *ws = (nnlib_workspace *)1;
  nnlib_model *raw;
  ASSERT_OK(nnlib_model_create(&raw));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_workspace_create(&ws, raw));
  assert_null(ws);
  nnlib_model_free(raw);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

/* The same with recurrent layers: samples of IN floats read as T = 4 steps
 * of 5 features; the layers keep their per-call state (gate activations,
 * cell states) in each workspace, and one shared initial state. */
static void test_shared_recurrent_model_parallel_inference(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "gru:8,rnn:6:relu,lstm:7,last,dense:5"));
  int64_t in[2] = {4, IN / 4};
  ASSERT_OK(nnlib_model_compile(m, in, 2, 32, NNLIB_LOSS_NONE, NULL, 4));
  float h0[7] = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f, -0.6f, 0.7f};
  ASSERT_OK(nnlib_recurrent_set_initial_state(nnlib_model_get_layer(m, 2), h0,
                                              h0, 1));
  nnlib_tensor *x = inputs(), *y = ts_tensor2(SAMPLES, OUT, NULL);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  predict_job jobs[THREADS];
  pthread_t tids[THREADS];
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (predict_job){m, x, nnlib_tensor_get_data(y), 0, NNLIB_OK};
    assert_int_equal(pthread_create(&tids[i], NULL, predict_worker, &jobs[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(tids[i], NULL);
    ASSERT_OK(jobs[i].status);
    assert_int_equal(jobs[i].mismatches, 0);
  }
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

/* Shorter sequences (1.2.0) in parallel: thread i predicts sequences of
 * 1 + i % 4 steps through its workspace (each keeps its own length) while
 * the others run other lengths, and gets the single-threaded predictions
 * for its length. */
static void test_shared_recurrent_model_shorter_sequences(void **s) {
  (void)s;
  enum { T = 4, F = IN / 4 };
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "gru:8,lstm:7,last,dense:5"));
  int64_t in[2] = {T, F};
  ASSERT_OK(nnlib_model_compile(m, in, 2, 32, NNLIB_LOSS_NONE, NULL, 5));
  nnlib_tensor *x[T], *y[T];
  for (int64_t t = 0; t < T; t++) {
    int64_t shape[3] = {SAMPLES, t + 1, F};
    uint32_t st = 9 + (uint32_t)t;
    ASSERT_OK(nnlib_tensor_create(&x[t], shape, 3));
    ts_fill_uniform(nnlib_tensor_get_data(x[t]), SAMPLES * (t + 1) * F, -1, 1,
                    &st);
    y[t] = ts_tensor2(SAMPLES, OUT, NULL);
    ASSERT_OK(nnlib_model_predict(m, x[t], y[t]));
  }
  predict_job jobs[THREADS];
  pthread_t tids[THREADS];
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (predict_job){m, x[i % T], nnlib_tensor_get_data(y[i % T]), 0,
                            NNLIB_OK};
    assert_int_equal(pthread_create(&tids[i], NULL, predict_worker, &jobs[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(tids[i], NULL);
    ASSERT_OK(jobs[i].status);
    assert_int_equal(jobs[i].mismatches, 0);
  }
  for (int t = 0; t < T; t++) {
    nnlib_tensor_free(x[t]);
    nnlib_tensor_free(y[t]);
  }
  nnlib_model_free(m);
}

/* A training worker's end: copies the first layer's weights into
 * weights[size] if all went well, and frees what the worker made. */
static void finish_job(nnlib_status *status, nnlib_model *m, nnlib_tensor *x,
                       nnlib_tensor *t, float *weights, size_t size) {
  nnlib_tensor *w;
  if (*status == NNLIB_OK)
    *status = nnlib_layer_get_param(nnlib_model_get_layer(m, 0), 0, &w, NULL);
  if (*status == NNLIB_OK)
    memcpy(weights, nnlib_tensor_get_data(w), size);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

typedef struct train_job {
  uint64_t seed;
  float weights[IN * 16];
  nnlib_status status;
} train_job;

static void *train_worker(void *arg) {
  train_job *job = arg;
  nnlib_model *m = make_model(job->seed);
  nnlib_tensor *x = inputs(), *t = ts_tensor2(SAMPLES, 1, NULL);
  for (int i = 0; i < SAMPLES; i++)
    nnlib_tensor_get_data(t)[i] = (float)(i % OUT);
  nnlib_fit_options fo;
  nnlib_fit_options_init(&fo);
  fo.epochs = 3;
  job->status = nnlib_model_fit(m, x, t, &fo);
  finish_job(&job->status, m, x, t, job->weights, sizeof job->weights);
  return NULL;
}

static void test_independent_models_train_in_parallel(void **s) {
  (void)s;
  static train_job alone[4], together[4];
  for (int i = 0; i < 4; i++) {
    alone[i].seed = together[i].seed = 10 + (uint64_t)i;
    train_worker(&alone[i]);
    ASSERT_OK(alone[i].status);
  }
  pthread_t tids[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&tids[i], NULL, train_worker, &together[i]), 0);
  for (int i = 0; i < 4; i++) {
    pthread_join(tids[i], NULL);
    ASSERT_OK(together[i].status);
    assert_memory_equal(alone[i].weights, together[i].weights,
                        sizeof alone[i].weights);
  }
}

/* GEMMs that OpenBLAS splits across its threads (above 2^18 multiply-adds)
 * from four threads at once, with two OpenBLAS threads set: each thread
 * gets the weights of a lone run (OpenBLAS's results differ in the last
 * bits between one thread and two, so nothing may change the count under
 * a running GEMM), and the count set is what remains afterwards. */
enum { WIDE_IN = 784, WIDE_BATCH = 32 }; /* 32x16x784 = 401,408 MACs */

typedef struct wide_job {
  uint64_t seed;
  float weights[16 * WIDE_IN];
  nnlib_status status;
} wide_job;

static void *wide_worker(void *arg) {
  wide_job *job = arg;
  nnlib_optimizer *opt;
  job->status = nnlib_sgd_create(&opt, 0.05f, 0, 0, 0);
  if (job->status != NNLIB_OK)
    return NULL;
  nnlib_model *m = ts_model(WIDE_IN, WIDE_BATCH, NNLIB_LOSS_SOFTMAX_CE, opt,
                            job->seed, ts_dense(WIDE_IN, 16, 1),
                            ts_act(NNLIB_ACT_RELU, 0), ts_dense(16, OUT, 1),
                            NULL);
  nnlib_tensor *x = ts_tensor2(WIDE_BATCH, WIDE_IN, NULL);
  nnlib_tensor *t = ts_tensor2(WIDE_BATCH, 1, NULL);
  uint32_t st = (uint32_t)job->seed;
  ts_fill_uniform(nnlib_tensor_get_data(x), WIDE_BATCH * WIDE_IN, 0, 1, &st);
  for (int i = 0; i < WIDE_BATCH; i++)
    nnlib_tensor_get_data(t)[i] = (float)(i % OUT);
  for (int step = 0; step < 50 && job->status == NNLIB_OK; step++)
    job->status = nnlib_model_step(m, x, t, NULL);
  finish_job(&job->status, m, x, t, job->weights, sizeof job->weights);
  return NULL;
}

static void test_split_gemms_from_many_threads(void **s) {
  (void)s;
  if (!ts_split_gemms_checkable()) /* valgrind, TSan: see the function */
    skip();
  int before = nnlib_get_num_threads();
  ASSERT_OK(nnlib_set_num_threads(2));
  static wide_job alone[4], together[4];
  for (int i = 0; i < 4; i++) {
    alone[i].seed = together[i].seed = 40 + (uint64_t)i;
    wide_worker(&alone[i]);
    ASSERT_OK(alone[i].status);
    assert_int_equal(nnlib_get_num_threads(), 2);
  }
  pthread_t tids[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(
        pthread_create(&tids[i], NULL, wide_worker, &together[i]), 0);
  for (int i = 0; i < 4; i++) {
    pthread_join(tids[i], NULL);
    ASSERT_OK(together[i].status);
    assert_memory_equal(alone[i].weights, together[i].weights,
                        sizeof alone[i].weights);
  }
  assert_int_equal(nnlib_get_num_threads(), 2);
  ASSERT_OK(nnlib_set_num_threads(before));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shared_model_parallel_inference),
      cmocka_unit_test(test_shared_recurrent_model_parallel_inference),
      cmocka_unit_test(test_shared_recurrent_model_shorter_sequences),
      cmocka_unit_test(test_independent_models_train_in_parallel),
      cmocka_unit_test(test_split_gemms_from_many_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
