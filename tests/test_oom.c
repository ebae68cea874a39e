/* Allocation failure injection (reliability.md R8) over every public path
 * that allocates: tensors, layers, optimizers and their state (attach at
 * compile and at set_optimizer), model compile, fit, workspaces, gradient
 * check, IDX and data-set loading (plain and gzip), model descriptions,
 * model files in memory and on disk, recurrent layers and their initial
 * state, graph models.
 *
 * Each scenario is a function that does its work and frees everything,
 * returning the first status that is not NNLIB_OK. It runs once to count
 * its allocations, then once per allocation k with k failing: alone
 * (transient) and with every later one failing too (persistent, SQLite's
 * two modes). Every run must succeed or return NNLIB_ERR_OUT_OF_MEMORY
 * with a message, and leave no allocation behind (counting allocator of
 * tests/support). A new layer kind or loader adds one scenario here. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "test_support.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* First failure wins: evaluates `call` only while st is NNLIB_OK. */
#define STEP(call)                                                             \
  do {                                                                         \
    if (st == NNLIB_OK)                                                        \
      st = (call);                                                             \
  } while (0)

static char data_dir[64]; /* IDX files written once by the group setup */

/* ------------------------------------------------------------ scenarios */

static nnlib_status tensors(void) {
  nnlib_status st = NNLIB_OK;
  nnlib_tensor *a = NULL, *b = NULL;
  float buf[12] = {0};
  int64_t shape[3] = {2, 3, 2}, flat[1] = {12};
  STEP(nnlib_tensor_create(&a, shape, 3));
  STEP(nnlib_tensor_wrap(&b, buf, flat, 1));
  STEP(nnlib_tensor_copy(b, a));
  STEP(nnlib_tensor_set_shape(a, flat, 1));
  nnlib_tensor_free(a);
  nnlib_tensor_free(b);
  return st;
}

/* dense 6 -> 8 -> tanh -> dense -> 2, compiled with `opt` (may be NULL). */
static nnlib_status mlp(nnlib_model **out, nnlib_optimizer *opt,
                        nnlib_loss loss) {
  nnlib_status st = NNLIB_OK;
  nnlib_model *m = NULL;
  nnlib_layer *l = NULL;
  int64_t in[1] = {6};
  st = nnlib_model_create(&m);
  if (st != NNLIB_OK) {
    nnlib_optimizer_free(opt);
    return st;
  }
  STEP(nnlib_dense_create(&l, 6, 8, 1));
  STEP(nnlib_model_add(m, l));
  STEP(nnlib_activation_create(&l, NNLIB_ACT_TANH, 0));
  STEP(nnlib_model_add(m, l));
  STEP(nnlib_dense_create(&l, 0, 2, 1));
  STEP(nnlib_model_add(m, l));
  if (st == NNLIB_OK)
    st = nnlib_model_compile(m, in, 1, 4, loss, opt, 5);
  else
    nnlib_optimizer_free(opt); /* compile takes it, also on failure */
  if (st != NNLIB_OK) {
    nnlib_model_free(m);
    m = NULL;
  }
  *out = m;
  return st;
}

static nnlib_status batch(nnlib_tensor **x, nnlib_tensor **t, int64_t n,
                          int64_t in, int64_t out) {
  int64_t xs[2] = {n, in}, ts[2] = {n, out};
  *x = *t = NULL;
  nnlib_status st = nnlib_tensor_create(x, xs, 2);
  STEP(nnlib_tensor_create(t, ts, 2));
  if (st == NNLIB_OK) {
    float *xd = nnlib_tensor_get_data(*x), *td = nnlib_tensor_get_data(*t);
    for (int64_t i = 0; i < n * in; i++)
      xd[i] = (float)(i % 7) / 3.0f - 1.0f;
    for (int64_t i = 0; i < n; i++)
      td[i * out + i % out] = 1.0f;
  }
  return st;
}

/* Every optimizer kind is attached (state allocated) at compile; then fit
 * (its shuffle order), evaluate, predict. */
static nnlib_status train_with(nnlib_optimizer_kind kind) {
  nnlib_status st = NNLIB_OK;
  nnlib_optimizer_options o;
  nnlib_optimizer_options_init(&o, kind);
  if (kind == NNLIB_OPT_SGD || kind == NNLIB_OPT_RMSPROP)
    o.momentum = 0.9f;
  nnlib_optimizer *opt = NULL;
  nnlib_model *m = NULL;
  nnlib_tensor *x = NULL, *t = NULL, *y = NULL;
  STEP(nnlib_optimizer_create(&opt, &o));
  STEP(mlp(&m, opt, NNLIB_LOSS_SOFTMAX_CE));
  STEP(batch(&x, &t, 10, 6, 2));
  nnlib_fit_options fo;
  nnlib_fit_options_init(&fo);
  fo.epochs = 2;
  STEP(nnlib_model_fit(m, x, t, &fo));
  float loss, acc;
  STEP(nnlib_model_evaluate(m, x, t, &loss, &acc));
  int64_t ys[2] = {10, 2};
  STEP(nnlib_tensor_create(&y, ys, 2));
  STEP(nnlib_model_predict(m, x, y));
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  return st;
}

static nnlib_status train_sgd(void) { return train_with(NNLIB_OPT_SGD); }
static nnlib_status train_adam(void) { return train_with(NNLIB_OPT_ADAM); }
static nnlib_status train_adamw(void) { return train_with(NNLIB_OPT_ADAMW); }
static nnlib_status train_rmsprop(void) {
  return train_with(NNLIB_OPT_RMSPROP);
}

/* Inference-only model, a workspace per "thread", predictions; then an
 * optimizer attached afterwards with set_optimizer and one step. */
static nnlib_status workspace_and_set_optimizer(void) {
  nnlib_status st = NNLIB_OK;
  nnlib_model *m = NULL;
  nnlib_workspace *w1 = NULL, *w2 = NULL;
  nnlib_tensor *x = NULL, *t = NULL, *y = NULL;
  nnlib_optimizer *opt = NULL;
  STEP(mlp(&m, NULL, NNLIB_LOSS_MSE));
  STEP(nnlib_workspace_create(&w1, m));
  STEP(nnlib_workspace_create(&w2, m));
  STEP(batch(&x, &t, 9, 6, 2));
  int64_t ys[2] = {9, 2};
  STEP(nnlib_tensor_create(&y, ys, 2));
  STEP(nnlib_workspace_predict(w1, x, y));
  STEP(nnlib_workspace_predict(w2, x, y));
  nnlib_workspace_free(w1);
  nnlib_workspace_free(w2);
  STEP(nnlib_sgd_create(&opt, 0.1f, 0.9f, 1, 0.0f));
  if (st == NNLIB_OK)
    st = nnlib_model_set_optimizer(m, opt); /* takes it, also on failure */
  nnlib_tensor_free(y);
  y = NULL;
  if (st == NNLIB_OK) {
    nnlib_tensor *x4 = NULL, *t4 = NULL;
    STEP(batch(&x4, &t4, 4, 6, 2));
    STEP(nnlib_model_step(m, x4, t4, NULL));
    nnlib_tensor_free(x4);
    nnlib_tensor_free(t4);
  }
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
  return st;
}

static nnlib_status gradcheck(void) {
  nnlib_status st = NNLIB_OK;
  nnlib_model *m = NULL;
  nnlib_tensor *x = NULL, *t = NULL;
  STEP(mlp(&m, NULL, NNLIB_LOSS_MSE));
  STEP(batch(&x, &t, 3, 6, 2));
  double err;
  STEP(nnlib_model_gradcheck(m, x, t, NULL, &err));
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
  return st;
}

/* A model description, printed back, and compiled. */
static nnlib_status description(void) {
  nnlib_status st = NNLIB_OK;
  nnlib_model *m = NULL;
  char buf[256];
  size_t needed;
  int64_t in[1] = {5};
  STEP(nnlib_model_create(&m));
  STEP(nnlib_model_add_spec(
      m, "dense:16,relu,dense:8:nobias,leaky_relu:0.1,dense:4,softmax"));
  STEP(nnlib_model_get_spec(m, buf, sizeof buf, &needed));
  STEP(nnlib_model_compile(m, in, 1, 2, NNLIB_LOSS_NONE, NULL, 1));
  nnlib_model_free(m);
  return st;
}

/* Save to memory and to a file, load both ways, with optimizer state. */
static nnlib_status model_files(void) {
  nnlib_status st = NNLIB_OK;
  nnlib_optimizer *opt = NULL;
  nnlib_model *m = NULL, *a = NULL, *b = NULL;
  nnlib_tensor *x = NULL, *t = NULL;
  void *bytes = NULL;
  size_t size = 0;
  nnlib_model_file_info info;
  char path[128];
  snprintf(path, sizeof path, "%s/model.nnl", data_dir);
  nnlib_optimizer_options o;
  nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM);
  STEP(nnlib_optimizer_create(&opt, &o));
  STEP(mlp(&m, opt, NNLIB_LOSS_MSE));
  STEP(batch(&x, &t, 4, 6, 2));
  STEP(nnlib_model_step(m, x, t, NULL));
  STEP(nnlib_model_save_to_buffer(&bytes, &size, m, NNLIB_SAVE_OPTIMIZER));
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  STEP(nnlib_model_file_get_info(bytes, size, &info));
  STEP(nnlib_model_load_buffer(&a, bytes, size));
  STEP(nnlib_model_save(m, path, NNLIB_SAVE_OPTIMIZER));
  STEP(nnlib_model_load(&b, path));
  STEP(nnlib_model_step(b, x, t, NULL));
  nnlib_free(bytes);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
  nnlib_model_free(a);
  nnlib_model_free(b);
  return st;
}

/* IDX files written by the setup: images and labels, plain and gzip, then
 * the same through the data-set loader. */
static nnlib_status idx_files(void) {
  nnlib_status st = NNLIB_OK;
  const char *names[2] = {"images.idx", "images.idx.gz"};
  for (int i = 0; i < 2; i++) {
    char path[128];
    nnlib_tensor *t = NULL;
    snprintf(path, sizeof path, "%s/%s", data_dir, names[i]);
    STEP(nnlib_idx_load_images(&t, path, 0));
    nnlib_tensor_free(t);
    t = NULL;
    snprintf(path, sizeof path, "%s/%s", data_dir,
             i ? "labels.idx.gz" : "labels.idx");
    STEP(nnlib_idx_load_labels(&t, path, 10, i, 2));
    nnlib_tensor_free(t);
  }
  nnlib_tensor *images = NULL, *labels = NULL;
  STEP(nnlib_dataset_load_split(&images, &labels, data_dir, NNLIB_SPLIT_TRAIN,
                                0, 1));
  nnlib_tensor_free(images);
  nnlib_tensor_free(labels);
  return st;
}

/* lstm -> gru -> rnn (last step) -> dense, with an initial state, trained
 * one step with Adam; and a description with recurrent items. */
static nnlib_status recurrent(void) {
  nnlib_status st = NNLIB_OK;
  nnlib_model *m = NULL;
  nnlib_layer *l = NULL, *lstm = NULL;
  nnlib_optimizer *opt = NULL;
  nnlib_tensor *x = NULL, *t = NULL;
  int64_t in[2] = {4, 3}, xs[3] = {2, 4, 3}, ts[2] = {2, 2};
  float h0[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f}, c0[5] = {0};
  STEP(nnlib_model_create(&m));
  STEP(nnlib_lstm_create(&lstm, 3, 5, 1, 1));
  if (st == NNLIB_OK) {
    l = lstm;
    st = nnlib_recurrent_set_initial_state(lstm, h0, c0, 1);
    nnlib_status added = nnlib_model_add(m, l); /* takes it either way */
    if (st == NNLIB_OK)
      st = added;
  }
  STEP(nnlib_gru_create(&l, 0, 4, 1, 1));
  STEP(nnlib_model_add(m, l));
  STEP(nnlib_rnn_create(&l, 4, 3, NNLIB_ACT_TANH, 0, 0));
  STEP(nnlib_model_add(m, l));
  STEP(nnlib_dense_create(&l, 3, 2, 1));
  STEP(nnlib_model_add(m, l));
  nnlib_optimizer_options o;
  nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM);
  STEP(nnlib_optimizer_create(&opt, &o));
  if (st == NNLIB_OK)
    st = nnlib_model_compile(m, in, 2, 2, NNLIB_LOSS_MSE, opt, 3);
  STEP(nnlib_tensor_create(&x, xs, 3));
  STEP(nnlib_tensor_create(&t, ts, 2));
  if (st == NNLIB_OK)
    ASSERT_OK(nnlib_tensor_fill(x, 0.25f));
  STEP(nnlib_model_step(m, x, t, NULL));
  void *bytes = NULL;
  size_t size = 0;
  nnlib_model *loaded = NULL;
  STEP(nnlib_model_save_to_buffer(&bytes, &size, m, NNLIB_SAVE_OPTIMIZER));
  STEP(nnlib_model_load_buffer(&loaded, bytes, size));
  nnlib_model_free(loaded);
  nnlib_free(bytes);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
  return st;
}

/* Every convolutional kind through its constructor (conv2d and pooling
 * with options), compiled on [2, 7, 6], one Adam step, a workspace
 * prediction, an inference-mode gradient check, a save/load round trip
 * (batchnorm's running statistics are buffers), and a description with
 * every convolutional item. */
static nnlib_status convolutional(void) {
  nnlib_status st = NNLIB_OK;
  nnlib_model *m = NULL, *loaded = NULL, *parsed = NULL;
  nnlib_layer *l = NULL;
  nnlib_optimizer *opt = NULL;
  nnlib_tensor *x = NULL, *t = NULL, *y = NULL;
  nnlib_workspace *w = NULL;
  nnlib_conv2d_options co;
  nnlib_pool2d_options po;
  nnlib_conv2d_options_init(&co);
  nnlib_pool2d_options_init(&po);
  co.padding_h = co.padding_w = 1;
  po.stride_h = po.stride_w = 1;
  int64_t in[3] = {2, 7, 6}, xs[4] = {3, 2, 7, 6}, ts[2] = {3, 3};
  STEP(nnlib_model_create(&m));
  STEP(nnlib_conv2d_create(&l, 4, 3, 3, &co));
  STEP(nnlib_model_add(m, l));
  STEP(nnlib_batchnorm_create(&l, 0.1f, 1e-5f));
  STEP(nnlib_model_add(m, l));
  STEP(nnlib_pool2d_create(&l, NNLIB_LAYER_MAXPOOL2D, 2, 2, NULL));
  STEP(nnlib_model_add(m, l));
  STEP(nnlib_pool2d_create(&l, NNLIB_LAYER_AVGPOOL2D, 2, 2, &po));
  STEP(nnlib_model_add(m, l));
  STEP(nnlib_pool2d_create(&l, NNLIB_LAYER_MINPOOL2D, 1, 2, &po));
  STEP(nnlib_model_add(m, l));
  STEP(nnlib_dropout_create(&l, 0.25f));
  STEP(nnlib_model_add(m, l));
  STEP(nnlib_flatten_create(&l));
  STEP(nnlib_model_add(m, l));
  STEP(nnlib_dense_create(&l, 0, 3, 1));
  STEP(nnlib_model_add(m, l));
  nnlib_optimizer_options o;
  nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM);
  STEP(nnlib_optimizer_create(&opt, &o));
  if (st == NNLIB_OK)
    st = nnlib_model_compile(m, in, 3, 3, NNLIB_LOSS_MSE, opt, 3);
  STEP(nnlib_tensor_create(&x, xs, 4));
  STEP(nnlib_tensor_create(&t, ts, 2));
  STEP(nnlib_tensor_create(&y, ts, 2));
  if (st == NNLIB_OK)
    ASSERT_OK(nnlib_tensor_fill(x, 0.25f));
  STEP(nnlib_model_step(m, x, t, NULL));
  STEP(nnlib_workspace_create(&w, m));
  STEP(nnlib_workspace_predict(w, x, y));
  nnlib_gradcheck_options g;
  nnlib_gradcheck_options_init(&g);
  g.inference = 1;
  g.random_direction = 1;
  double err;
  STEP(nnlib_model_gradcheck(m, x, t, &g, &err));
  void *bytes = NULL;
  size_t size = 0;
  STEP(nnlib_model_save_to_buffer(&bytes, &size, m, NNLIB_SAVE_OPTIMIZER));
  STEP(nnlib_model_load_buffer(&loaded, bytes, size));
  STEP(nnlib_model_create(&parsed));
  STEP(nnlib_model_add_spec(parsed, "conv:4x3x3:s2x1:p1:d1x2:nobias,"
                                    "batchnorm:0.2:0.001,relu,maxpool:2,"
                                    "minpool:3:s1:p1,avgpool:2x1:s1,"
                                    "global_avgpool,dropout,flatten,dense:2"));
  nnlib_model_free(parsed);
  nnlib_model_free(loaded);
  nnlib_free(bytes);
  nnlib_workspace_free(w);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  return st;
}

/* A graph: inputs and merges through the C API and through a
 * description, compile_graph, input gradients, a step, the two-input
 * workspace and backward_output, save and load (format version 2). */
static nnlib_status graph(void) {
  nnlib_status st = NNLIB_OK;
  nnlib_model *m = NULL, *parsed = NULL, *loaded = NULL;
  nnlib_layer *d = NULL, *a = NULL;
  nnlib_tensor *x = NULL, *v = NULL, *t = NULL, *y = NULL;
  nnlib_workspace *w = NULL;
  nnlib_optimizer *opt = NULL;
  nnlib_node in_x = 0, in_v = 0, nd = 0, nc = 0;
  int64_t xs[2] = {2, 3}, vs[2] = {2, 2}, ts[2] = {2, 1};
  STEP(nnlib_model_create(&m));
  STEP(nnlib_model_input(m, xs + 1, 1, &in_x));
  STEP(nnlib_model_input(m, vs + 1, 1, &in_v));
  STEP(nnlib_dense_create(&d, 0, 2, 1));
  if (st == NNLIB_OK) {
    st = nnlib_model_apply(m, d, &in_x, 1, &nd); /* takes d */
    d = NULL;
  }
  STEP(nnlib_concat_create(&a, 0));
  if (st == NNLIB_OK) {
    nnlib_node both[2] = {nd, in_v};
    st = nnlib_model_apply(m, a, both, 2, &nc); /* takes a */
    a = NULL;
  }
  STEP(nnlib_model_add_spec(m, "h=dense:3,s=add(h,h),dense:1"));
  STEP(nnlib_sgd_create(&opt, 0.1f, 0.9f, 0, 0.0f));
  if (st == NNLIB_OK) {
    st = nnlib_model_compile_graph(m, 2, NNLIB_LOSS_MSE, opt, 3); /* takes */
    opt = NULL;
  }
  STEP(nnlib_model_set_input_gradients(m, 1));
  STEP(nnlib_tensor_create(&x, xs, 2));
  STEP(nnlib_tensor_create(&v, vs, 2));
  STEP(nnlib_tensor_create(&t, ts, 2));
  STEP(nnlib_tensor_create(&y, ts, 2));
  const nnlib_tensor *in[2] = {x, v}, *out = NULL;
  STEP(nnlib_model_step_inputs(m, in, 2, t, NULL));
  STEP(nnlib_workspace_create(&w, m));
  STEP(nnlib_workspace_predict_inputs(w, in, 2, y));
  STEP(nnlib_model_forward_inputs(m, in, 2, &out));
  STEP(nnlib_model_backward_output(m, t));
  void *bytes = NULL;
  size_t size = 0;
  STEP(nnlib_model_save_to_buffer(&bytes, &size, m, NNLIB_SAVE_OPTIMIZER));
  STEP(nnlib_model_load_buffer(&loaded, bytes, size));
  STEP(nnlib_model_create(&parsed));
  STEP(nnlib_model_add_spec(parsed, "x=input:3,v=input:2,d=dense:2(x),"
                                    "c=concat(d,v),multiply(c,c)"));
  nnlib_free(bytes);
  nnlib_workspace_free(w);
  nnlib_model_free(parsed);
  nnlib_model_free(loaded);
  nnlib_tensor_free(x);
  nnlib_tensor_free(v);
  nnlib_tensor_free(t);
  nnlib_tensor_free(y);
  nnlib_optimizer_free(opt);
  nnlib_layer_free(d);
  nnlib_layer_free(a);
  nnlib_model_free(m);
  return st;
}

/* ------------------------------------------------------------- the loop */

typedef struct scenario {
  const char *name;
  nnlib_status (*run)(void);
} scenario;

static void inject(const scenario *sc) {
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  nnlib_status st = sc->run();
  ts_alloc_uninstall();
  if (st != NNLIB_OK)
    fail_msg("%s: fails without injection: %s: %s", sc->name,
             nnlib_status_string(st), nnlib_last_error_message());
  if (stats.live != 0)
    fail_msg("%s: %ld blocks leaked without injection", sc->name, stats.live);
  long total = stats.allocs, failures = 0;
  assert_true(total > 0);
  for (int persistent = 0; persistent <= 1; persistent++)
    for (long k = 1; k <= total; k++) {
      stats.fail_at = k;
      ts_alloc_install(&stats);
      ts_alloc_fail_persistent(persistent);
      nnlib_clear_error();
      st = sc->run();
      long live = stats.live;
      ts_alloc_uninstall();
      if (st != NNLIB_OK && st != NNLIB_ERR_OUT_OF_MEMORY)
        fail_msg("%s: failing allocation %ld of %ld (%s) gave %s: %s",
                 sc->name, k, total, persistent ? "persistent" : "transient",
                 nnlib_status_string(st), nnlib_last_error_message());
      if (st != NNLIB_OK && nnlib_last_error_message()[0] == '\0')
        fail_msg("%s: allocation %ld: out of memory without a message",
                 sc->name, k);
      if (live != 0)
        fail_msg("%s: failing allocation %ld of %ld (%s) leaked %ld blocks",
                 sc->name, k, total, persistent ? "persistent" : "transient",
                 live);
      failures += st == NNLIB_ERR_OUT_OF_MEMORY;
    }
  /* a persistent failure from the first allocation on cannot succeed */
  assert_true(failures >= total);
  print_message("%s: %ld allocations, %ld of %ld injected runs out of "
                "memory\n", sc->name, total, failures, 2 * total);
}

/* A model whose compile, fit or workspace ran out of memory is still
 * usable: with memory back, compile (with a new optimizer: compile takes
 * the old one, also when it fails), fit and workspaces work. */
static void test_usable_after_failure(void **s) {
  (void)s;
  ts_alloc_stats stats = {0};
  for (long k = 1;; k++) {
    nnlib_model *m = NULL;
    nnlib_layer *l = NULL;
    nnlib_optimizer *opt = NULL;
    int64_t in[1] = {6};
    ts_alloc_install(&stats);
    ASSERT_OK(nnlib_model_create(&m));
    ASSERT_OK(nnlib_dense_create(&l, 6, 3, 1));
    ASSERT_OK(nnlib_model_add(m, l));
    ASSERT_OK(nnlib_activation_create(&l, NNLIB_ACT_SIGMOID, 0));
    ASSERT_OK(nnlib_model_add(m, l));
    ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0.9f, 0, 0));
    stats.fail_at = stats.allocs + k;
    ts_alloc_fail_persistent(1);
    nnlib_status st = nnlib_model_compile(m, in, 1, 4, NNLIB_LOSS_MSE, opt, 1);
    bool injected = stats.allocs >= stats.fail_at;
    stats.fail_at = 0;
    if (st != NNLIB_OK) {
      assert_int_equal(st, NNLIB_ERR_OUT_OF_MEMORY);
      ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0.9f, 0, 0));
      ASSERT_OK(nnlib_model_compile(m, in, 1, 4, NNLIB_LOSS_MSE, opt, 1));
    }
    nnlib_tensor *x = NULL, *t = NULL, *y = NULL;
    ASSERT_OK(batch(&x, &t, 8, 6, 3));
    stats.fail_at = stats.allocs + 1; /* fit's sample order */
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_MEMORY, nnlib_model_fit(m, x, t, NULL));
    stats.fail_at = stats.allocs + 1; /* the workspace */
    nnlib_workspace *w = (nnlib_workspace *)1;
    ASSERT_STATUS(NNLIB_ERR_OUT_OF_MEMORY, nnlib_workspace_create(&w, m));
    assert_null(w);
    stats.fail_at = 0;
    ts_alloc_fail_persistent(0);
    ASSERT_OK(nnlib_model_fit(m, x, t, NULL));
    ASSERT_OK(nnlib_workspace_create(&w, m));
    int64_t ys[2] = {8, 3};
    ASSERT_OK(nnlib_tensor_create(&y, ys, 2));
    ASSERT_OK(nnlib_workspace_predict(w, x, y));
    nnlib_workspace_free(w);
    nnlib_tensor_free(x);
    nnlib_tensor_free(t);
    nnlib_tensor_free(y);
    nnlib_model_free(m);
    assert_int_equal(stats.live, 0);
    ts_alloc_uninstall();
    if (!injected)
      break; /* compile needed fewer than k allocations: all covered */
  }
}

#define SCENARIO(fn)                                                           \
  static void test_##fn(void **s) {                                            \
    (void)s;                                                                   \
    const scenario sc = {#fn, fn};                                             \
    inject(&sc);                                                               \
  }
SCENARIO(tensors)
SCENARIO(train_sgd)
SCENARIO(train_adam)
SCENARIO(train_adamw)
SCENARIO(train_rmsprop)
SCENARIO(workspace_and_set_optimizer)
SCENARIO(gradcheck)
SCENARIO(description)
SCENARIO(model_files)
SCENARIO(idx_files)
SCENARIO(recurrent)
SCENARIO(convolutional)
SCENARIO(graph)

/* -------------------------------------------------------------- fixtures */

static void write_file(const char *name, const unsigned char *data,
                       size_t size, int gz) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", data_dir, name);
  if (gz) {
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, data, (unsigned)size), (int)size);
    assert_int_equal(gzclose(f), Z_OK);
  } else {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
  }
}

static int make_files(void **s) {
  (void)s;
  snprintf(data_dir, sizeof data_dir, "/tmp/nnlib_oom_XXXXXX");
  if (mkdtemp(data_dir) == NULL)
    return -1;
  /* 3 images of 2x2 and 3 labels: idx3 and idx1 of unsigned bytes */
  const unsigned char images[16 + 12] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0,
                                         0, 2, 0, 0, 0, 2, 1, 2, 3, 4,
                                         5, 6, 7, 8, 9, 10, 11, 255};
  const unsigned char labels[8 + 3] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9};
  write_file("images.idx", images, sizeof images, 0);
  write_file("images.idx.gz", images, sizeof images, 1);
  write_file("labels.idx", labels, sizeof labels, 0);
  write_file("labels.idx.gz", labels, sizeof labels, 1);
  write_file("train-images-idx3-ubyte", images, sizeof images, 0);
  write_file("train-labels-idx1-ubyte.gz", labels, sizeof labels, 1);
  return 0;
}

static int remove_files(void **s) {
  (void)s;
  const char *names[] = {"images.idx", "images.idx.gz", "labels.idx",
                         "labels.idx.gz", "train-images-idx3-ubyte",
                         "train-labels-idx1-ubyte.gz", "model.nnl"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", data_dir, names[i]);
    unlink(path);
  }
  rmdir(data_dir);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tensors),
      cmocka_unit_test(test_train_sgd),
      cmocka_unit_test(test_train_adam),
      cmocka_unit_test(test_train_adamw),
      cmocka_unit_test(test_train_rmsprop),
      cmocka_unit_test(test_workspace_and_set_optimizer),
      cmocka_unit_test(test_gradcheck),
      cmocka_unit_test(test_description),
      cmocka_unit_test(test_model_files),
      cmocka_unit_test(test_idx_files),
      cmocka_unit_test(test_recurrent),
      cmocka_unit_test(test_convolutional),
      cmocka_unit_test(test_graph),
      cmocka_unit_test(test_usable_after_failure),
  };
  return cmocka_run_group_tests(tests, make_files, remove_files);
}
