/* old_client.c - a program written against an earlier release's header
 * (tests/old_clients/include-1.0/nnlib.h, -1.2/nnlib.h: the headers of
 * 1.0.0 and 1.2.0 as released), built with that header alone and run
 * against this library: what docs/ABI_POLICY.md promises an old caller.
 * Its option structs have the old layouts and are filled by the exported
 * _options_init functions those headers declared (each checked to write
 * nothing past the struct); output structs are read through the old
 * layouts; every call goes through the old declarations. It trains a small
 * CNN on a learnable synthetic task through the allocator hook, and checks
 * the accuracy, the progress reports, a model file's round trip to the bit
 * and its header info, a gradient check, 1.1's optimizer options and
 * validated fit (1.2 header), and exact statuses for bad calls. Exit 0 and
 * one "ok" line, or a message naming the failed check and exit 1. */
#define _POSIX_C_SOURCE 200809L /* posix_memalign */
#include "nnlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "old_client %s, line %d: %s failed (%s)\n",              \
              NNLIB_VERSION_STRING, __LINE__, #cond,                           \
              nnlib_last_error_message());                                     \
      failures++;                                                              \
    }                                                                          \
  } while (0)
#define OK(call) CHECK((call) == NNLIB_OK)

/* ------------------------------------------------------- allocator hook */

static long live_blocks, total_blocks;

static void *counting_alloc(size_t size, size_t alignment, void *user) {
  (void)user;
  void *p = NULL;
  if (alignment < sizeof(void *))
    alignment = sizeof(void *);
  if (posix_memalign(&p, alignment, size ? size : 1) != 0)
    return NULL;
  live_blocks++;
  total_blocks++;
  return p;
}

static void counting_free(void *p, void *user) {
  (void)user;
  if (p != NULL)
    live_blocks--;
  free(p);
}

/* --------------------------------------------- option structs, guarded */

/* An option struct followed by guard bytes: _init must write exactly the
 * old struct (struct_size = its sizeof) and nothing after it. */
#define GUARDED(type)                                                          \
  struct {                                                                     \
    type o;                                                                    \
    unsigned char guard[64];                                                   \
  }
#define GUARD_BYTE 0xA5

static int guard_intact(const unsigned char *guard, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (guard[i] != GUARD_BYTE)
      return 0;
  return 1;
}

/* `init` (an _options_init call on w.o) fills exactly w.o: its struct_size
 * is the old sizeof and the guard after it is untouched. */
#define FILLS_EXACTLY(w, init)                                                 \
  do {                                                                         \
    memset(&(w), GUARD_BYTE, sizeof(w));                                       \
    OK(init);                                                                  \
    CHECK((w).o.struct_size == sizeof((w).o));                                 \
    CHECK(guard_intact((w).guard, sizeof((w).guard)));                         \
  } while (0)

static void check_option_inits(void) {
  GUARDED(nnlib_conv2d_options) conv;
  FILLS_EXACTLY(conv, nnlib_conv2d_options_init(&conv.o));
  CHECK(conv.o.stride_h == 1 && conv.o.padding_w == 0 &&
        conv.o.dilation_h == 1 && conv.o.with_bias == 1 &&
        conv.o.in_channels == 0);

  GUARDED(nnlib_pool2d_options) pool;
  FILLS_EXACTLY(pool, nnlib_pool2d_options_init(&pool.o));
  CHECK(pool.o.stride_h == 0 && pool.o.padding_w == 0);

  GUARDED(nnlib_optimizer_options) opt;
  FILLS_EXACTLY(opt, nnlib_optimizer_options_init(&opt.o, NNLIB_OPT_ADAMW));
  CHECK(opt.o.kind == NNLIB_OPT_ADAMW && opt.o.learning_rate == 0.001f &&
        opt.o.weight_decay == 0.01f && opt.o.beta2 == 0.999f);

  GUARDED(nnlib_fit_options) fit;
  FILLS_EXACTLY(fit, nnlib_fit_options_init(&fit.o));
  CHECK(fit.o.epochs == 1 && fit.o.shuffle == 1 && fit.o.progress == NULL);

  GUARDED(nnlib_gradcheck_options) gc;
  FILLS_EXACTLY(gc, nnlib_gradcheck_options_init(&gc.o));
  CHECK(gc.o.step == 1e-2f && gc.o.random_direction == 0);
}

/* ------------------------------------------------------- the data set */

enum { SIDE = 8, TRAIN = 256, TEST = 128, CLASSES = 2, BATCH = 32 };

/* Class 0: a bright top half; class 1: a bright left half; both under
 * uniform noise from a fixed linear congruential generator. */
static unsigned lcg_state = 12345u;
static float noise(void) {
  lcg_state = lcg_state * 1103515245u + 12345u;
  return (float)((lcg_state >> 8) & 0xFFFF) / 65536.0f * 0.6f;
}

static void make_set(nnlib_tensor **x, nnlib_tensor **y, int64_t n) {
  int64_t xs[4] = {n, 1, SIDE, SIDE}, ys[1] = {n};
  OK(nnlib_tensor_create(x, xs, 4));
  OK(nnlib_tensor_create(y, ys, 1));
  float *xd = nnlib_tensor_get_data(*x), *yd = nnlib_tensor_get_data(*y);
  for (int64_t s = 0; s < n; s++) {
    int cls = (int)(s % CLASSES);
    yd[s] = (float)cls;
    for (int r = 0; r < SIDE; r++)
      for (int c = 0; c < SIDE; c++) {
        int bright = cls == 0 ? r < SIDE / 2 : c < SIDE / 2;
        xd[(s * SIDE + r) * SIDE + c] = (bright ? 0.7f : 0.0f) + noise();
      }
  }
}

/* ---------------------------------------------------------- the model */

/* conv 4x3x3 (padding 1), relu, maxpool 2, flatten, dense 2 */
static nnlib_model *make_cnn(void) {
  nnlib_model *m = NULL;
  nnlib_layer *l = NULL;
  OK(nnlib_model_create(&m));
  nnlib_conv2d_options conv;
  OK(nnlib_conv2d_options_init(&conv));
  conv.padding_h = conv.padding_w = 1;
  OK(nnlib_conv2d_create(&l, 4, 3, 3, &conv));
  OK(nnlib_model_add(m, l));
  OK(nnlib_activation_create(&l, NNLIB_ACT_RELU, 0.0f));
  OK(nnlib_model_add(m, l));
  OK(nnlib_pool2d_create(&l, NNLIB_LAYER_MAXPOOL2D, 2, 2, NULL));
  OK(nnlib_model_add(m, l));
  OK(nnlib_flatten_create(&l));
  OK(nnlib_model_add(m, l));
  OK(nnlib_dense_create(&l, 0, CLASSES, 1));
  OK(nnlib_model_add(m, l));
  nnlib_optimizer_options o;
  OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM));
  o.learning_rate = 0.01f;
  nnlib_optimizer *opt = NULL;
  OK(nnlib_optimizer_create(&opt, &o));
  int64_t in[3] = {1, SIDE, SIDE};
  OK(nnlib_model_compile(m, in, 3, BATCH, NNLIB_LOSS_SOFTMAX_CE, opt, 7));
  return m;
}

typedef struct progress_seen {
  long calls, bad;
} progress_seen;

/* The library fills its own progress struct; the old layout's fields must
 * read right through it. */
static int on_progress(const nnlib_progress *p, void *user) {
  progress_seen *seen = user;
  seen->calls++;
  if (p->struct_size < sizeof *p || p->epoch < 0 || p->epoch >= p->epochs ||
      p->batch < 0 || p->batch >= p->batches || p->batches != TRAIN / BATCH ||
      p->samples != TRAIN || p->samples_done != (p->batch + 1) * BATCH ||
      !isfinite(p->loss))
    seen->bad++;
  return 0;
}

static void train_and_check(nnlib_model *m, nnlib_tensor *x, nnlib_tensor *y,
                            nnlib_tensor *tx, nnlib_tensor *ty) {
  enum { EPOCHS = 12 };
  float losses[EPOCHS];
  progress_seen seen = {0, 0};
  nnlib_fit_options f;
  OK(nnlib_fit_options_init(&f));
  f.epochs = EPOCHS;
  f.batch_size = BATCH;
  f.progress = on_progress;
  f.user = &seen;
  f.epoch_losses = losses;
  OK(nnlib_model_fit(m, x, y, &f));
  CHECK(seen.calls == EPOCHS * (TRAIN / BATCH));
  CHECK(seen.bad == 0);
  CHECK(losses[EPOCHS - 1] < 0.5f * losses[0]);
  CHECK(nnlib_optimizer_get_step_count(nnlib_model_get_optimizer(m)) ==
        EPOCHS * (TRAIN / BATCH));
  float loss = -1.0f, accuracy = -1.0f;
  OK(nnlib_model_evaluate(m, tx, ty, &loss, &accuracy));
  CHECK(accuracy >= 0.95f);
  CHECK(loss < 0.3f);
}

/* Saved with its optimizer into memory, read back, and the same bits out
 * of predict; the file's header through the old info struct. */
static void check_model_file(nnlib_model *m, nnlib_tensor *tx) {
  void *data = NULL;
  size_t size = 0;
  OK(nnlib_model_save_buffer(m, NNLIB_SAVE_OPTIMIZER, &data, &size));
  nnlib_model_file_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  OK(nnlib_model_file_get_info(data, size, &info));
  CHECK(info.file_size == size && info.layer_count == 5 &&
        info.has_optimizer == 1 && info.optimizer_kind == NNLIB_OPT_ADAM &&
        info.input_rank == 3 && info.input_shape[1] == SIDE &&
        info.max_batch == BATCH && info.loss == NNLIB_LOSS_SOFTMAX_CE);
  CHECK(info.library_version == nnlib_version());
  nnlib_model *back = NULL;
  OK(nnlib_model_load_buffer(&back, data, size));
  nnlib_model *cut = (nnlib_model *)&cut;
  CHECK(nnlib_model_load_buffer(&cut, data, size / 2) == NNLIB_ERR_TRUNCATED);
  CHECK(cut == NULL);
  nnlib_free(data);
  int64_t ys[2] = {TEST, CLASSES};
  nnlib_tensor *a = NULL, *b = NULL;
  OK(nnlib_tensor_create(&a, ys, 2));
  OK(nnlib_tensor_create(&b, ys, 2));
  OK(nnlib_model_predict(m, tx, a));
  if (back != NULL)
    OK(nnlib_model_predict(back, tx, b));
  CHECK(memcmp(nnlib_tensor_get_data(a), nnlib_tensor_get_data(b),
               sizeof(float) * TEST * CLASSES) == 0);
  nnlib_tensor_free(a);
  nnlib_tensor_free(b);
  nnlib_model_free(back);
}

/* A tanh dense network's gradients against finite differences (a loss
 * and no optimizer: a model for evaluation and gradient checks). */
static void check_gradients(void) {
  nnlib_model *m = NULL;
  nnlib_layer *l = NULL;
  OK(nnlib_model_create(&m));
  OK(nnlib_dense_create(&l, 3, 4, 1));
  OK(nnlib_model_add(m, l));
  OK(nnlib_activation_create(&l, NNLIB_ACT_TANH, 0.0f));
  OK(nnlib_model_add(m, l));
  OK(nnlib_dense_create(&l, 4, 2, 1));
  OK(nnlib_model_add(m, l));
  int64_t in[1] = {3};
  OK(nnlib_model_compile(m, in, 1, 4, NNLIB_LOSS_MSE, NULL, 3));
  int64_t xs[2] = {4, 3}, ts[2] = {4, 2};
  nnlib_tensor *x = NULL, *t = NULL;
  OK(nnlib_tensor_create(&x, xs, 2));
  OK(nnlib_tensor_create(&t, ts, 2));
  for (int i = 0; i < 12; i++)
    nnlib_tensor_get_data(x)[i] = noise() - 0.3f;
  for (int i = 0; i < 8; i++)
    nnlib_tensor_get_data(t)[i] = noise();
  nnlib_gradcheck_options g;
  OK(nnlib_gradcheck_options_init(&g));
  double err = 1.0;
  OK(nnlib_model_gradcheck(m, x, t, &g, &err));
  CHECK(err < 1e-2);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* Exact statuses for calls that can only fail. */
static void check_errors(nnlib_model *m) {
  nnlib_layer *l = NULL;
  CHECK(nnlib_conv2d_create(&l, 0, 3, 3, NULL) == NNLIB_ERR_INVALID_ARGUMENT);
  CHECK(l == NULL);
  CHECK(nnlib_dense_create(&l, 3, -1, 1) == NNLIB_ERR_INVALID_ARGUMENT);
  int64_t in[3] = {1, SIDE, SIDE};
  CHECK(nnlib_model_compile(m, in, 3, BATCH, NNLIB_LOSS_SOFTMAX_CE, NULL, 1) ==
        NNLIB_ERR_WRONG_STATE);
  OK(nnlib_dense_create(&l, 4, 4, 1));
  CHECK(nnlib_model_add(m, l) == NNLIB_ERR_WRONG_STATE); /* freed by it */
  int64_t xs[4] = {2, 1, SIDE + 1, SIDE}, ys[2] = {2, CLASSES};
  nnlib_tensor *x = NULL, *y = NULL;
  OK(nnlib_tensor_create(&x, xs, 4));
  OK(nnlib_tensor_create(&y, ys, 2));
  CHECK(nnlib_model_predict(m, x, y) == NNLIB_ERR_SHAPE_MISMATCH);
  CHECK(strlen(nnlib_last_error_message()) > 0);
  CHECK(strcmp(nnlib_status_string(NNLIB_ERR_SHAPE_MISMATCH),
               "shape mismatch") == 0);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
}

#if NNLIB_VERSION_MINOR >= 1
/* 1.1: the optimizer's options read back through the old struct, and a
 * validated fit with early stopping. */
static void check_since_1_1(nnlib_model *m, nnlib_tensor *x, nnlib_tensor *y,
                            nnlib_tensor *tx, nnlib_tensor *ty) {
  GUARDED(nnlib_optimizer_options) back;
  memset(&back, GUARD_BYTE, sizeof back);
  back.o.struct_size = sizeof back.o;
  OK(nnlib_optimizer_get_options(nnlib_model_get_optimizer(m), &back.o));
  CHECK(guard_intact(back.guard, sizeof back.guard));
  CHECK(back.o.kind == NNLIB_OPT_ADAM && back.o.learning_rate == 0.01f &&
        back.o.beta1 == 0.9f);

  GUARDED(nnlib_validation_options) v;
  FILLS_EXACTLY(v, nnlib_validation_options_init(&v.o));
  CHECK(v.o.patience == 0 && v.o.restore_best == 0 && v.o.x == NULL);
  float losses[3];
  int64_t run = -1;
  v.o.x = tx;
  v.o.target = ty;
  v.o.losses = losses;
  v.o.epochs_run = &run;
  nnlib_fit_options f;
  OK(nnlib_fit_options_init(&f));
  f.epochs = 3;
  OK(nnlib_model_fit_validated(m, x, y, &f, &v.o));
  CHECK(run == 3);
  CHECK(isfinite(losses[0]) && isfinite(losses[2]) && losses[2] < 0.5f);
}
#endif

int main(void) {
  CHECK(nnlib_version() / 10000 == NNLIB_VERSION_MAJOR);
  CHECK(nnlib_version() >= NNLIB_VERSION_NUMBER);
  nnlib_allocator a = {sizeof a, counting_alloc, counting_free, NULL};
  OK(nnlib_set_allocator(&a));
  OK(nnlib_set_num_threads(1));
  check_option_inits();
  nnlib_tensor *x = NULL, *y = NULL, *tx = NULL, *ty = NULL;
  make_set(&x, &y, TRAIN);
  make_set(&tx, &ty, TEST);
  nnlib_model *m = make_cnn();
  train_and_check(m, x, y, tx, ty);
  check_model_file(m, tx);
  check_errors(m);
#if NNLIB_VERSION_MINOR >= 1
  check_since_1_1(m, x, y, tx, ty);
#endif
  check_gradients();
  nnlib_model_free(m);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_tensor_free(tx);
  nnlib_tensor_free(ty);
  CHECK(total_blocks > 0);
  CHECK(live_blocks == 0);
  OK(nnlib_set_allocator(NULL));
  if (failures > 0) {
    fprintf(stderr, "old_client (header %s): %d check(s) failed\n",
            NNLIB_VERSION_STRING, failures);
    return 1;
  }
  printf("old_client (header %s, library %s): ok, %ld allocations\n",
         NNLIB_VERSION_STRING, nnlib_version_string(), total_blocks);
  return 0;
}
