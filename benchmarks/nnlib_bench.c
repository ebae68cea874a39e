/* nnlib_bench.c - nnlib-bench, the benchmark suite of issue 9.
 *
 *   nnlib-bench                       the whole suite
 *   nnlib-bench --model mlp-large --batch 256 --threads 1 --bench train
 *
 * One JSON object per line on stdout (see benchmarks/README.md for the
 * fields); progress and skips on stderr. Kinds:
 *   gemm    GFLOP/s of products alone, through nnlib's GEMM seam (split
 *           over the threads as in a step): square sizes in all three transpose
 *           cases the layers use (NT, TN, NN), then each model's exact
 *           shapes; the machine's measured FMA peak beside
 *   train   nnlib_model_step, interleaved rep by rep with the step's own
 *           GEMM calls, recorded (bench_record.c) and replayed alone on
 *           the step's buffers (bench_replay.c), so gemm_efficiency =
 *           gemm_s / step_s is the share of the step spent in its GEMMs,
 *           a ratio taken under the same machine noise; the bench's GEMM
 *           list (bench_models.c) must match the recorded calls
 *   infer   nnlib_model_predict against its forward GEMMs, likewise
 *   memory  peak heap of mlp-large training at batch 1024 (and of a small
 *           residual CNN at batch 128) against the bytes
 *           of parameters, gradients, optimizer state and activations
 *   profile (asked for by name only) nnlib's per-layer profile of training
 *           steps: seconds and GEMM FLOPs per layer and per layer name,
 *           beside the FLOPs of the bench's GEMM list for that layer
 *   profile-infer (asked for by name only) the same for predictions
 *   generate (gpt, asked for by name only) nnlib_model_generate's tokens/s
 *           with the cache and without it (use_cache 0), alternating
 *   check   (asked for by name only) the replay's checks for training and
 *           inference: list against recording, the values it writes, and
 *           that it leaves the model as a twin that never replays
 *
 *   nnlib-bench --model cnn --batch 64 --export-onnx cnn.onnx
 *
 * times nothing: it writes the model the bench times (same layers, same
 * seed, so the same weights) as ONNX with nnlib's own export, and beside
 * it one batch of the bench's inputs and nnlib's predictions for it, so
 * another runtime can run the same model and be checked on the same
 * numbers first (benchmarks/compare_onnxruntime.py). */
#define _POSIX_C_SOURCE 200809L
#include "bench_models.h"
#include "bench_peak.h"
#include "bench_replay.h"
#include "bench_util.h"

#include <cblas.h>
#include <nnlib.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_config {
  const char *model;  /* NULL: all                       */
  int64_t batch;      /* 0: the model's suite batches    */
  int threads;        /* 0: 1 and 2                      */
  const char *kind;   /* NULL: gemm, train, infer, memory */
  const char *optim;  /* sgd, momentum, adam, adamw; NULL: the model's */
  double seconds;     /* time budget per measurement     */
  int64_t new_tokens; /* generate: tokens after the prompt (256) */
  double peak_per_core;
  const char *peak_isa;
  bench_peaks peaks; /* each vector width's, for the machine line */
  const char *export_onnx; /* --export-onnx PATH: write, time nothing */
} bench_config;

/* ------------------------------------------------------------ helpers */

static void die(const char *what, nnlib_status st) {
  fprintf(stderr, "nnlib-bench: %s: %s: %s\n", what, nnlib_status_string(st),
          nnlib_last_error_message());
  exit(1);
}

#define CHECK(call)                                                            \
  do {                                                                         \
    nnlib_status st_ = (call);                                                 \
    if (st_ != NNLIB_OK)                                                       \
      die(#call, st_);                                                         \
  } while (0)

static float *alloc_floats(size_t count, uint32_t *seed) {
  float *p = malloc((count ? count : 1) * sizeof *p);
  if (p == NULL) {
    fprintf(stderr, "nnlib-bench: out of memory\n");
    exit(1);
  }
  bench_fill(p, count, -0.5f, 0.5f, seed);
  return p;
}

static void set_threads(int threads) {
  CHECK(nnlib_set_num_threads(threads));
  /* nnlib's setting is OpenBLAS's: the replayed GEMMs run on the same pool */
}

static bool kind_selected(const bench_config *c, const char *kind) {
  return c->kind == NULL || strcmp(c->kind, kind) == 0;
}

/* profile and generate run only when asked for by name. */
static bool kind_named(const bench_config *c, const char *kind) {
  return c->kind != NULL && strcmp(c->kind, kind) == 0;
}

/* The weight update of plain SGD is folded into the weight-gradient GEMM by
 * the library (src/model/train.c), so the replay issues it with beta = 1. */
static bool sgd_fused(const char *optim) { return strcmp(optim, "sgd") == 0; }

/* --optim, else the model's own (gpt: AdamW), else plain SGD. */
static const char *model_optim(const bench_config *c,
                               const bench_model_def *d) {
  return c->optim != NULL ? c->optim : d->optim != NULL ? d->optim : "sgd";
}

/* ------------------------------------------------- one GEMM alone */

#define MAX_GEMMS 4096

/* One entry of a GEMM list on buffers of its own, for the raw timings of
 * the gemm kind (the model's training and inference replay the step's
 * recorded calls instead, on the step's buffers: bench_replay.c). */
typedef struct alone {
  bench_gemm g;
  float *a, *b, *c;                 /* own; NULL: shared */
  float *shared[BENCH_MAX_BUFFERS]; /* the buffers the GEMM addresses */
} alone;

/* Floats of a row-major operand of `rows` rows of `cols` at leading
 * dimension ld (0: packed). */
static size_t operand_floats(int rows, int cols, int ld) {
  return rows == 0 ? 0 : (size_t)(rows - 1) * (size_t)(ld ? ld : cols) + cols;
}

/* Own buffers, like the library's distinct activations and weights;
 * operands in a shared buffer (attention's QKV rows and workspace) get
 * one allocation per buffer, as the layer's workspace. */
static void alone_init(alone *r, const bench_gemm *g,
                       const bench_buffers *buffers) {
  uint32_t seed = 7;
  memset(r, 0, sizeof *r);
  r->g = *g;
  const bench_operand *ops[3] = {&g->a, &g->b, &g->c};
  float **own[3] = {&r->a, &r->b, &r->c};
  bool ta = g->ta == 'T', tb = g->tb == 'T';
  size_t sizes[3] = {operand_floats(ta ? g->k : g->m, ta ? g->m : g->k,
                                    g->a.ld),
                     operand_floats(tb ? g->n : g->k, tb ? g->k : g->n,
                                    g->b.ld),
                     operand_floats(g->m, g->n, g->c.ld)};
  for (int o = 0; o < 3; o++) {
    int buf = ops[o]->buf;
    if (buf == 0)
      *own[o] = alloc_floats(sizes[o], &seed);
    else if (r->shared[buf - 1] == NULL)
      r->shared[buf - 1] =
          alloc_floats((size_t)buffers->floats[buf - 1], &seed);
  }
}

/* Call `call` of a repeated GEMM: where it reads or writes one operand. */
static float *operand_at(const alone *r, const bench_operand *o, float *own,
                         int call) {
  if (o->buf == 0)
    return own;
  int inner = r->g.inner > 0 ? r->g.inner : 1;
  return r->shared[o->buf - 1] + o->offset +
         (int64_t)(call / inner) * o->outer_step +
         (int64_t)(call % inner) * o->inner_step;
}

/* Every call of the GEMM in turn; a repeated GEMM reuses its own buffers,
 * as a layer's chunks reuse their workspace, or walks its shared ones. */
static void alone_run(const alone *r) {
  const bench_gemm *g = &r->g;
  int lda = g->a.ld ? g->a.ld : g->ta == 'N' ? g->k : g->m;
  int ldb = g->b.ld ? g->b.ld : g->tb == 'N' ? g->n : g->k;
  int ldc = g->c.ld ? g->c.ld : g->n;
  for (int t = 0; t < g->repeat; t++) {
    bench_call call = {true,
                       g->ta,
                       g->tb,
                       g->m,
                       g->n,
                       g->k,
                       g->alpha,
                       g->beta,
                       operand_at(r, &g->a, r->a, t),
                       operand_at(r, &g->b, r->b, t),
                       operand_at(r, &g->c, r->c, t),
                       lda,
                       ldb,
                       ldc,
                       .batch = 0};
    bench_call_issue(&call);
  }
}

static void alone_free(alone *r) {
  free(r->a);
  free(r->b);
  free(r->c);
  for (int i = 0; i < BENCH_MAX_BUFFERS; i++)
    free(r->shared[i]);
}

/* --------------------------------------------------------- machine */

static void print_machine(const bench_config *c) {
  char cpu[256], family[32], model[32];
  bench_cpuinfo("model name", cpu, sizeof cpu);
  bench_cpuinfo("cpu family", family, sizeof family);
  bench_cpuinfo("model", model, sizeof model);
  bench_json_begin();
  bench_json_str("bench", "machine");
  bench_json_str("cpu", cpu);
  bench_json_str("cpu_family", family);
  bench_json_str("cpu_model", model);
  bench_json_int("cores", openblas_get_num_procs());
  bench_json_str("openblas", openblas_get_config());
  bench_json_str("openblas_core", openblas_get_corename());
  const char *coretype = getenv("OPENBLAS_CORETYPE");
  bench_json_str("openblas_coretype_env", coretype ? coretype : "");
  nnlib_blas_info blas = {.struct_size = sizeof blas};
  if (nnlib_blas_get_info(&blas) == NNLIB_OK)
    bench_json_int("openblas_fallback", blas.kernels_are_fallback);
  bench_json_str("nnlib", nnlib_version_string());
  bench_json_str("peak_isa", c->peak_isa);
  bench_json_num("peak_gflops_per_core", c->peak_per_core);
  bench_json_num("peak_avx2_gflops_per_core", c->peaks.avx2);
  bench_json_num("peak_avx512_gflops_per_core", c->peaks.avx512);
  bench_json_end();
}

/* ------------------------------------------------------------ gemm */

static void emit_gemm(const bench_config *c, const char *model, int64_t batch,
                      int threads, const bench_gemm *g, bench_stats *s) {
  double flops = bench_gemm_flops(g, 1);
  double peak = c->peak_per_core * threads;
  bench_json_begin();
  bench_json_str("bench", "gemm");
  bench_json_str("model", model);
  bench_json_int("batch", batch);
  bench_json_int("threads", threads);
  bench_json_stats(s);
  bench_json_num("samples_per_s", batch > 0 ? batch / s->median_s : NAN);
  bench_json_num("gflops", flops / s->median_s * 1e-9);
  char trans[3] = {g->ta, g->tb, '\0'};
  bench_json_str("trans", trans);
  bench_json_str("role", g->role);
  bench_json_int("m", g->m);
  bench_json_int("n", g->n);
  bench_json_int("k", g->k);
  if (g->repeat > 1) /* median_s and gflops are over all the calls */
    bench_json_int("repeat", g->repeat);
  if (g->a.ld || g->b.ld || g->c.ld) {
    bench_json_int("lda", g->a.ld);
    bench_json_int("ldb", g->b.ld);
    bench_json_int("ldc", g->c.ld);
  }
  bench_json_num("peak_gflops", peak);
  bench_json_num("peak_fraction", flops / s->median_s * 1e-9 / peak);
  bench_json_end();
}

static bench_stats time_gemm(const bench_config *c, const bench_gemm *g,
                             const bench_buffers *buffers) {
  static alone r; /* large: not on the stack */
  alone_init(&r, g, buffers);
  double t0 = bench_now();
  for (int i = 0; i < 3; i++)
    alone_run(&r);
  int reps = bench_reps_for(c->seconds * 0.25, (bench_now() - t0) / 3, 5, 2000);
  double *times = malloc((size_t)reps * sizeof *times);
  for (int i = 0; i < reps; i++) {
    double s = bench_now();
    alone_run(&r);
    times[i] = bench_now() - s;
  }
  bench_stats st = bench_summarise(times, reps);
  free(times);
  alone_free(&r);
  return st;
}

static void run_gemm_squares(const bench_config *c, int threads) {
  static const int sizes[] = {64, 128, 256, 512, 1024, 2048};
  static const char cases[3][2] = {{'N', 'T'}, {'T', 'N'}, {'N', 'N'}};
  static const char *roles[3] = {"square_nt", "square_tn", "square_nn"};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (int t = 0; t < 3; t++) {
      int n = sizes[s];
      bench_gemm g = bench_gemm_plain(roles[t], -1, cases[t][0], cases[t][1],
                                      n, n, n, 1.0f, 0.0f, 1);
      bench_stats st = time_gemm(c, &g, NULL);
      emit_gemm(c, "square", 0, threads, &g, &st);
    }
}

/* sgd and momentum at lr 0.01; adam and adamw at their defaults (lr 1e-3;
 * AdamW's weight decay 0.01, as examples/char_gpt.c). */
static nnlib_optimizer *make_optimizer(const char *optim) {
  nnlib_optimizer_options o;
  nnlib_optimizer *opt = NULL;
  bool adam = strcmp(optim, "adam") == 0, adamw = strcmp(optim, "adamw") == 0;
  CHECK(nnlib_optimizer_options_init(&o, adam    ? NNLIB_OPT_ADAM
                                         : adamw ? NNLIB_OPT_ADAMW
                                                 : NNLIB_OPT_SGD));
  if (strcmp(optim, "momentum") == 0)
    o.momentum = 0.9f;
  if (!adam && !adamw)
    o.learning_rate = 0.01f;
  CHECK(nnlib_optimizer_create(&opt, &o));
  return opt;
}

static nnlib_model *make_model(const bench_model_def *d, int64_t batch,
                               const char *optim) {
  nnlib_model *m = NULL;
  CHECK(nnlib_model_create(&m));
  CHECK(d->build(m));
  CHECK(nnlib_model_compile(m, d->input_shape, d->input_rank, batch, d->loss,
                            make_optimizer(optim), 42));
  return m;
}

/* count, the length of a model's GEMM list, when the list is known and
 * fits the bench's arrays; exits otherwise. */
static int list_fits(const bench_model_def *d, int count) {
  if (count < 0) {
    fprintf(stderr, "nnlib-bench: %s: GEMMs of a layer kind unknown\n",
            d->name);
    exit(1);
  }
  if (count > MAX_GEMMS) {
    fprintf(stderr, "nnlib-bench: %s: %d GEMMs in the list, room for %d\n",
            d->name, count, MAX_GEMMS);
    exit(1);
  }
  return count;
}

static void run_gemm_model(const bench_config *c, const bench_model_def *d,
                           int64_t batch, int threads) {
  nnlib_model *m = make_model(d, batch, model_optim(c, d));
  static bench_gemm g[MAX_GEMMS]; /* large: not on the stack */
  bench_buffers buffers;
  int count = list_fits(
      d, bench_model_gemms(m, batch, true, false, g, MAX_GEMMS, &buffers));
  for (int i = 0; i < count; i++) {
    bench_stats st = time_gemm(c, &g[i], &buffers);
    emit_gemm(c, d->name, batch, threads, &g[i], &st);
  }
  nnlib_model_free(m);
}

/* ---------------------------------------------------- train / infer */

typedef struct batch_data {
  nnlib_tensor *x, *target, *y;
} batch_data;

/* A language model's batch: random int32 token ids [batch, T] in
 * [0, vocab) and random int32 next-token targets of the same shape;
 * logits [batch, T, vocab]. */
static batch_data make_token_batch(const bench_model_def *d, int64_t batch) {
  batch_data b = {NULL, NULL, NULL};
  int64_t t = d->input_shape[0], ids[2] = {batch, t};
  int64_t yshape[3] = {batch, t, d->vocab};
  CHECK(nnlib_tensor_create_int32(&b.x, ids, 2));
  CHECK(nnlib_tensor_create_int32(&b.target, ids, 2));
  CHECK(nnlib_tensor_create(&b.y, yshape, 3));
  int32_t *x = nnlib_tensor_get_data_int32(b.x);
  int32_t *y = nnlib_tensor_get_data_int32(b.target);
  uint32_t seed = 1;
  for (int64_t i = 0; i < batch * t; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (int32_t)((seed >> 8) % (uint32_t)d->vocab);
    seed = seed * 1664525u + 1013904223u;
    y[i] = (int32_t)((seed >> 8) % (uint32_t)d->vocab);
  }
  return b;
}

/* Random inputs in [0, 1); class indices for softmax CE, one-hot rows for
 * the other losses. */
static batch_data make_batch(const bench_model_def *d, int64_t batch) {
  batch_data b = {NULL, NULL, NULL};
  if (d->vocab > 0)
    return make_token_batch(d, batch);
  int64_t xshape[4] = {batch};
  for (size_t i = 0; i < d->input_rank; i++)
    xshape[i + 1] = d->input_shape[i];
  CHECK(nnlib_tensor_create(&b.x, xshape, d->input_rank + 1));
  uint32_t seed = 1;
  bench_fill(nnlib_tensor_get_data(b.x), (size_t)nnlib_tensor_get_size(b.x),
             0.0f, 1.0f, &seed);
  int64_t yshape[2] = {batch, d->outputs};
  CHECK(nnlib_tensor_create(&b.y, yshape, 2));
  bool index = d->loss == NNLIB_LOSS_SOFTMAX_CE;
  CHECK(nnlib_tensor_create(&b.target, yshape, index ? 1 : 2));
  float *t = nnlib_tensor_get_data(b.target);
  for (int64_t i = 0; i < batch; i++) {
    int64_t label = (i * 7 + 3) % d->outputs;
    if (index)
      t[i] = (float)label;
    else
      t[i * d->outputs + label] = 1.0f;
  }
  return b;
}

static void free_batch(batch_data *b) {
  nnlib_tensor_free(b->x);
  nnlib_tensor_free(b->target);
  nnlib_tensor_free(b->y);
}

/* One unit of the work measured: a training step or a prediction. */
static void run_once(nnlib_model *m, batch_data *b, bool training) {
  if (training)
    CHECK(nnlib_model_step(m, b->x, b->target, NULL));
  else
    CHECK(nnlib_model_predict(m, b->x, b->y));
}

/* The model's GEMM list; exits when a layer kind is unknown to it. */
static int model_gemms(const bench_config *c, const bench_model_def *d,
                       nnlib_model *m, int64_t batch, bool training,
                       bench_gemm *g, bench_buffers *buffers) {
  const char *optim = model_optim(c, d);
  int count = bench_model_gemms(m, batch, training,
                                training && sgd_fused(optim), g, MAX_GEMMS,
                                buffers);
  return list_fits(d, count);
}

static void check_failed(const bench_model_def *d, int64_t batch,
                         bool training, const char *why) {
  fprintf(stderr, "nnlib-bench: %s %s, batch %lld, %d threads: %s\n",
          d->name, training ? "training" : "inference", (long long)batch,
          nnlib_get_num_threads(), why);
  exit(1);
}

/* Records the GEMM calls of one step (after one unrecorded, so lazily
 * made state is there), checks that the next step makes the very same
 * calls on the same pointers and that the bench's GEMM list is these
 * calls, then makes them the replay, each call attributed to its list
 * entry's layer. Exits naming the first difference otherwise. Runs three
 * steps; returns the list's entry count. */
static int record_step(const bench_config *c, const bench_model_def *d,
                       nnlib_model *m, batch_data *b, int64_t batch,
                       bool training, bench_replay *r) {
  bench_recording first = {NULL, 0, 0, false}, second = first;
  char why[1024];
  run_once(m, b, training);
  bench_record_start(&first);
  run_once(m, b, training);
  bench_record_start(&second);
  run_once(m, b, training);
  bench_record_stop();
  if (first.out_of_memory || second.out_of_memory ||
      !bench_replay_init(r, &first)) {
    fprintf(stderr, "nnlib-bench: out of memory\n");
    exit(1);
  }
  if (first.count == 0)
    check_failed(d, batch, training,
                 "no GEMM call recorded: libnnlib's nnlib__gemm was not "
                 "wrapped (bench_record.c)");
  if (!bench_recordings_equal(&first, &second, why, sizeof why))
    check_failed(d, batch, training, why);
  bench_recording_free(&first);
  bench_recording_free(&second);
  static bench_gemm g[MAX_GEMMS]; /* large: not on the stack */
  bench_buffers buffers;
  int count = model_gemms(c, d, m, batch, training, g, &buffers);
  if (!bench_replay_attribute(r, g, count, why, sizeof why))
    check_failed(d, batch, training, why);
  return count;
}

/* One replay of the step's calls (of one layer, or all for layer < 0),
 * timed; what they accumulate into is saved before and restored after,
 * untimed (bench_replay.c says why). */
static double replay_timed(bench_replay *r, int layer) {
  bench_replay_save(r);
  double s = bench_now();
  bench_replay_run(r, layer);
  double seconds = bench_now() - s;
  bench_replay_restore(r);
  return seconds;
}

typedef struct paired {
  bench_stats work, gemm;
} paired;

/* Times `work` and the replayed GEMMs rep by rep, alternating, so both see
 * the same machine; warms up both first. */
static paired time_paired(const bench_config *c, nnlib_model *m,
                          batch_data *b, bool training, bench_replay *r) {
  double t0 = bench_now();
  int warm = 0;
  while (warm < 5 || bench_now() - t0 < 0.1 * c->seconds) {
    run_once(m, b, training);
    replay_timed(r, -1);
    warm++;
  }
  double one = (bench_now() - t0) / warm;
  int reps = bench_reps_for(c->seconds, one, 11, 200000);
  double *work = malloc(2 * (size_t)reps * sizeof *work), *gemm = work + reps;
  for (int i = 0; i < reps; i++) {
    double s = bench_now();
    run_once(m, b, training);
    work[i] = bench_now() - s;
    gemm[i] = replay_timed(r, -1);
  }
  paired p = {bench_summarise(work, reps), bench_summarise(gemm, reps)};
  free(work);
  return p;
}

static void run_model(const bench_config *c, const bench_model_def *d,
                      int64_t batch, int threads, bool training) {
  const char *optim = model_optim(c, d);
  nnlib_model *m = make_model(d, batch, optim);
  batch_data b = make_batch(d, batch);
  bench_replay r;
  record_step(c, d, m, &b, batch, training, &r);
  paired p = time_paired(c, m, &b, training, &r);
  double flops = bench_replay_flops(&r, -1);
  bench_json_begin();
  bench_json_str("bench", training ? "train" : "infer");
  bench_json_str("model", d->name);
  bench_json_int("batch", batch);
  bench_json_int("threads", threads);
  bench_json_stats(&p.work);
  bench_json_num("samples_per_s", batch / p.work.median_s);
  if (d->vocab > 0) { /* a language model: every position is a token */
    bench_json_int("context", d->input_shape[0]);
    bench_json_num("tokens_per_s",
                   (double)(batch * d->input_shape[0]) / p.work.median_s);
  }
  bench_json_num("gflops", flops / p.work.median_s * 1e-9);
  bench_json_num("gemm_s", p.gemm.median_s);
  bench_json_num("gemm_efficiency", p.gemm.median_s / p.work.median_s);
  bench_json_num("gemm_gflops", flops / p.gemm.median_s * 1e-9);
  bench_json_num("overhead_s", p.work.median_s - p.gemm.median_s);
  bench_json_int("gemm_calls", r.count);
  /* how gemm_s was taken: the step's recorded calls on its own buffers
   * (lines without this field replayed a hand-made list on copies) */
  bench_json_str("gemm_replay", "recorded");
  bench_json_int("replay_restored_bytes", (long long)r.saved_floats * 4);
  if (training)
    bench_json_str("optim", optim);
  bench_json_end();
  bench_replay_free(&r);
  free_batch(&b);
  nnlib_model_free(m);
}

/* ------------------------------------------------------------ check */

/* true when two models' parameters are equal bit for bit. */
static bool same_params(nnlib_model *x, nnlib_model *y) {
  float *px = NULL, *py = NULL;
  int64_t nx = 0, ny = 0;
  CHECK(nnlib_model_get_flat_params(x, &px, NULL, &nx));
  CHECK(nnlib_model_get_flat_params(y, &py, NULL, &ny));
  return nx == ny && memcmp(px, py, (size_t)nx * sizeof *px) == 0;
}

static bool same_outputs(const batch_data *x, const batch_data *y) {
  int64_t n = nnlib_tensor_get_size(x->y);
  return n == nnlib_tensor_get_size(y->y) &&
         memcmp(nnlib_tensor_get_data(x->y), nnlib_tensor_get_data(y->y),
                (size_t)n * sizeof(float)) == 0;
}

/* The replay's checks, for --bench check: the recorded calls against the
 * GEMM list (record_step), the values one replay writes (no NaN or Inf;
 * subnormals counted), and that the replay leaves no trace: a model whose
 * every step or prediction is followed by a replay ends, after the same
 * work, with the same parameters and outputs, bit for bit, as a twin of
 * the same seed that never replays. One "check" line; exits on a
 * failure. */
static void run_check(const bench_config *c, const bench_model_def *d,
                      int64_t batch, int threads, bool training) {
  enum { ROUNDS = 3 };
  const char *optim = model_optim(c, d);
  nnlib_model *plain = make_model(d, batch, optim);
  nnlib_model *replayed = make_model(d, batch, optim);
  batch_data bp = make_batch(d, batch), br = make_batch(d, batch);
  bench_replay r;
  int entries = record_step(c, d, replayed, &br, batch, training, &r);
  for (int i = 0; i < 3; i++) /* the steps record_step ran */
    run_once(plain, &bp, training);
  long long nonfinite = 0, subnormal = 0;
  bench_replay_save(&r);
  bench_replay_run(&r, -1);
  bench_replay_scan(&r, &nonfinite, &subnormal);
  bench_replay_restore(&r);
  for (int i = 0; i < ROUNDS; i++) {
    run_once(plain, &bp, training);
    run_once(replayed, &br, training);
    replay_timed(&r, -1);
  }
  CHECK(nnlib_model_predict(plain, bp.x, bp.y));
  CHECK(nnlib_model_predict(replayed, br.x, br.y));
  bool trace = !same_params(plain, replayed) || !same_outputs(&bp, &br);
  bench_json_begin();
  bench_json_str("bench", "check");
  bench_json_str("model", d->name);
  bench_json_int("batch", batch);
  bench_json_int("threads", threads);
  bench_json_str("mode", training ? "train" : "infer");
  if (training)
    bench_json_str("optim", optim);
  bench_json_int("gemm_calls", r.count);
  bench_json_int("list_entries", entries);
  bench_json_int("list_matches", 1); /* record_step exits otherwise */
  bench_json_int("restored_regions", r.region_count);
  bench_json_int("replay_restored_bytes", (long long)r.saved_floats * 4);
  bench_json_int("replay_nonfinite", nonfinite);
  bench_json_int("replay_subnormal", subnormal);
  bench_json_int("replay_leaves_trace", trace);
  bench_json_end();
  bench_replay_free(&r);
  free_batch(&bp);
  free_batch(&br);
  nnlib_model_free(plain);
  nnlib_model_free(replayed);
  if (trace)
    check_failed(d, batch, training,
                 "the replay changed the model: parameters or outputs differ "
                 "from a twin that never replays");
  if (nonfinite > 0)
    check_failed(d, batch, training, "the replay wrote NaN or Inf");
}

/* ----------------------------------------------------------- memory */

/* Every block carries its size in a 64-byte header, so frees can count. */
typedef struct heap_counter {
  long long live, peak;
} heap_counter;

enum { HEADER = 64 };

static void *counting_alloc(size_t size, size_t alignment, void *user) {
  (void)alignment; /* <= 64, and the header keeps 64-byte alignment */
  heap_counter *h = user;
  size_t total = (size + HEADER + 63) / 64 * 64;
  unsigned char *p = aligned_alloc(64, total);
  if (p == NULL)
    return NULL;
  memcpy(p, &size, sizeof size);
  h->live += (long long)size;
  if (h->live > h->peak)
    h->peak = h->live;
  return p + HEADER;
}

static void counting_free(void *ptr, void *user) {
  if (ptr == NULL)
    return;
  heap_counter *h = user;
  unsigned char *p = (unsigned char *)ptr - HEADER;
  size_t size;
  memcpy(&size, p, sizeof size);
  h->live -= (long long)size;
  free(p);
}

/* True for an elementwise activation node that reads a dense node, which
 * applies it in place (nnlib fuses the pair; PyTorch-style frameworks
 * would keep both outputs). */
static bool applied_in_place(nnlib_model *m, const nnlib_node_info *info) {
  if (info->layer == NULL ||
      nnlib_layer_get_kind(info->layer) != NNLIB_LAYER_ACTIVATION ||
      info->input_count != 1)
    return false;
  for (size_t i = 0; i < nnlib_model_get_node_count(m); i++) {
    nnlib_node_info in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    CHECK(nnlib_model_get_node(m, i, &in));
    if (in.node == info->inputs[0])
      return in.layer != NULL &&
             nnlib_layer_get_kind(in.layer) == NNLIB_LAYER_DENSE &&
             strcmp(nnlib_layer_get_name(info->layer), "softmax") != 0;
  }
  return false;
}

/* Bytes the training state needs at minimum: parameters, their gradients,
 * optimizer state, and the output of every node that backward reads
 * again, one batch each (an elementwise activation applied in place shares
 * its dense layer's). */
static long long needed_bytes(nnlib_model *m, int64_t batch, const char *optim,
                              long long parts[4]) {
  int64_t params = 0;
  CHECK(nnlib_model_get_param_count(m, &params));
  int states = strcmp(optim, "adam") == 0 || strcmp(optim, "adamw") == 0
                   ? 2
                   : strcmp(optim, "momentum") == 0;
  long long acts = 0;
  for (size_t i = 0; i < nnlib_model_get_node_count(m); i++) {
    nnlib_node_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK(nnlib_model_get_node(m, i, &info));
    if (info.layer == NULL || applied_in_place(m, &info))
      continue;
    long long n = batch;
    for (size_t k = 0; k < info.rank; k++)
      n *= info.shape[k];
    acts += n;
  }
  parts[0] = params * 4LL;
  parts[1] = params * 4LL;
  parts[2] = params * 4LL * states;
  parts[3] = acts * 4LL;
  return parts[0] + parts[1] + parts[2] + parts[3];
}

static void run_memory(const bench_config *c, const bench_model_def *d,
                       int64_t batch, int threads) {
  const char *optim = model_optim(c, d);
  heap_counter h = {0, 0};
  nnlib_allocator a = {sizeof a, counting_alloc, counting_free, &h};
  long long rss0 = bench_proc_status_bytes("VmRSS");
  CHECK(nnlib_set_allocator(&a));
  nnlib_model *m = make_model(d, batch, optim);
  batch_data b = make_batch(d, batch);
  double times[5];
  for (int i = 0; i < 5; i++) {
    double s = bench_now();
    CHECK(nnlib_model_step(m, b.x, b.target, NULL));
    times[i] = bench_now() - s;
  }
  long long rss1 = bench_proc_status_bytes("VmRSS");
  long long parts[4];
  long long need = needed_bytes(m, batch, optim, parts);
  bench_stats st = bench_summarise(times, 5);
  /* the batch tensors are the caller's data, not training state */
  long long inputs = (nnlib_tensor_get_size(b.x) + nnlib_tensor_get_size(b.y) +
                      nnlib_tensor_get_size(b.target)) * 4LL;
  long long peak = h.peak - inputs;
  bench_json_begin();
  bench_json_str("bench", "memory");
  bench_json_str("model", d->name);
  bench_json_int("batch", batch);
  bench_json_int("threads", threads);
  bench_json_stats(&st);
  bench_json_num("samples_per_s", batch / st.median_s);
  bench_json_num("gflops", NAN);
  bench_json_str("optim", optim);
  bench_json_int("peak_bytes", peak);
  bench_json_int("needed_bytes", need);
  bench_json_num("peak_ratio", (double)peak / (double)need);
  bench_json_int("params_bytes", parts[0]);
  bench_json_int("grads_bytes", parts[1]);
  bench_json_int("optimizer_bytes", parts[2]);
  bench_json_int("activations_bytes", parts[3]);
  bench_json_int("rss_growth_bytes", rss1 - rss0);
  bench_json_end();
  free_batch(&b);
  nnlib_model_free(m);
  CHECK(nnlib_set_allocator(NULL));
}

/* ----------------------------------------------------------- export */

static void write_file(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
    fprintf(stderr, "nnlib-bench: cannot write %s\n", path);
    exit(1);
  }
}

/* "64x784": a tensor's shape, batch first, as the export line gives it. */
static void shape_text(const nnlib_tensor *t, char *buf, size_t capacity) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < nnlib_tensor_get_rank(t) && used < capacity; i++)
    used += (size_t)snprintf(buf + used, capacity - used, "%s%lld",
                             i ? "x" : "", (long long)nnlib_tensor_get_dim(t, i));
}

/* PATH with a suffix, in new memory. */
static char *path_with(const char *path, const char *suffix) {
  size_t n = strlen(path) + strlen(suffix) + 1;
  char *p = malloc(n);
  if (p == NULL) {
    fprintf(stderr, "nnlib-bench: out of memory\n");
    exit(1);
  }
  snprintf(p, n, "%s%s", path, suffix);
  return p;
}

/* The model of run_model (make_model: the same build and seed 42, so the
 * same weights) saved as ONNX, its batch of make_batch as PATH.input.bin
 * (float32, or int32 token ids) and nnlib_model_predict's output for it as
 * PATH.output.bin (float32), both raw little-endian in the tensors'
 * row-major order. One "export_onnx" line names the files and shapes. */
static void run_export(const bench_config *c, const bench_model_def *d,
                       int64_t batch) {
  if (d->build == NULL) {
    fprintf(stderr, "nnlib-bench: %s cannot be exported: needs %s\n",
            d->name, d->missing);
    exit(1);
  }
  nnlib_model *m = make_model(d, batch, model_optim(c, d));
  batch_data b = make_batch(d, batch);
  CHECK(nnlib_model_predict(m, b.x, b.y));
  CHECK(nnlib_model_save_onnx(m, c->export_onnx));
  char *input = path_with(c->export_onnx, ".input.bin");
  char *output = path_with(c->export_onnx, ".output.bin");
  size_t in_bytes = 4 * (size_t)nnlib_tensor_get_size(b.x);
  bool ids = d->vocab > 0;
  write_file(input,
             ids ? (const void *)nnlib_tensor_get_data_int32(b.x)
                 : (const void *)nnlib_tensor_get_data(b.x),
             in_bytes);
  write_file(output, nnlib_tensor_get_data(b.y),
             4 * (size_t)nnlib_tensor_get_size(b.y));
  char in_shape[128], out_shape[128];
  shape_text(b.x, in_shape, sizeof in_shape);
  shape_text(b.y, out_shape, sizeof out_shape);
  int64_t params = 0;
  CHECK(nnlib_model_get_param_count(m, &params));
  bench_json_begin();
  bench_json_str("bench", "export_onnx");
  bench_json_str("model", d->name);
  bench_json_int("batch", batch);
  bench_json_str("onnx", c->export_onnx);
  bench_json_str("input", input);
  bench_json_str("input_type", ids ? "int32" : "float32");
  bench_json_str("input_shape", in_shape);
  bench_json_int("vocab", d->vocab); /* ids lie in [0, vocab); 0: floats */
  bench_json_str("output", output);
  bench_json_str("output_shape", out_shape);
  bench_json_int("params", params);
  bench_json_end();
  free(input);
  free(output);
  free_batch(&b);
  nnlib_model_free(m);
}

/* ---------------------------------------------------------- profile */

/* GEMM FLOPs of layer `index` in the step's recorded calls (attributed
 * through the GEMM list, which matches them), forward and backward. */
static void list_flops(const bench_replay *r, int index, double *forward,
                       double *backward) {
  *forward = *backward = 0.0;
  for (int i = 0; i < r->count; i++)
    if (r->layer[i] == index) {
      const bench_call *g = &r->calls[i];
      double f = 2.0 * g->m * (double)g->n * g->k;
      if (strcmp(r->role[i], "forward") == 0)
        *forward += f;
      else
        *backward += f;
    }
}

/* Seconds per step summed by layer name ("attention", "layernorm", ...):
 * the layer's passes and its GEMMs replayed alone. */
typedef struct name_time {
  const char *name;
  double seconds, gemm_s;
  int layers;
} name_time;

static void add_name_time(name_time *t, int *count, const char *name,
                          double seconds, double gemm_s) {
  for (int i = 0; i < *count; i++)
    if (strcmp(t[i].name, name) == 0) {
      t[i].seconds += seconds;
      t[i].gemm_s += gemm_s;
      t[i].layers++;
      return;
    }
  t[*count] = (name_time){name, seconds, gemm_s, 1};
  ++*count;
}

/* Median seconds of one layer's recorded GEMMs replayed alone (0 without
 * any). */
static double layer_gemm_seconds(bench_replay *r, int layer, int reps) {
  bool any = false;
  for (int i = 0; i < r->count; i++)
    any |= r->layer[i] == layer;
  if (!any)
    return 0.0;
  double times[64];
  reps = reps < 64 ? reps : 64;
  for (int i = 0; i < reps; i++)
    times[i] = replay_timed(r, layer);
  return bench_summarise(times, reps).median_s;
}

/* Training steps (profile) or predictions (profile-infer) with nnlib's
 * profiler on: one "profile" line per layer
 * (seconds and GEMM FLOPs per step, forward and backward, the FLOPs of
 * the step's recorded GEMMs the bench's GEMM list attributes to that
 * layer, which must be equal, and those GEMMs replayed alone on the
 * step's buffers, so beyond_gemm_s is its time outside
 * them: softmax, normalisation, bias and activation passes), one
 * "profile_name" line per layer name, and one "profile_step" line: the
 * step's time, the layers' sum and what is left (loss and optimizer). */
static void run_profile(const bench_config *c, const bench_model_def *d,
                        int64_t batch, int threads, bool training) {
  const char *optim = model_optim(c, d);
  nnlib_model *m = make_model(d, batch, optim);
  batch_data b = make_batch(d, batch);
  bench_replay r;
  record_step(c, d, m, &b, batch, training, &r);
  double t0 = bench_now();
  run_once(m, &b, training);
  int steps = bench_reps_for(c->seconds, bench_now() - t0, 3, 100000);
  double *times = malloc((size_t)steps * sizeof *times);
  CHECK(nnlib_model_set_profiling(m, 1));
  for (int i = 0; i < steps; i++) {
    double s = bench_now();
    run_once(m, &b, training);
    times[i] = bench_now() - s;
  }
  CHECK(nnlib_model_set_profiling(m, 0));
  replay_timed(&r, -1); /* warm */
  double total = 0.0;
  for (int i = 0; i < steps; i++)
    total += times[i];
  bench_stats st = bench_summarise(times, steps);
  free(times);
  double step = total / steps, layers_s = 0.0;
  size_t layers = nnlib_model_get_layer_count(m);
  name_time names[64];
  int name_count = 0;
  for (size_t i = 0; i < layers; i++) {
    nnlib_layer_profile lp;
    memset(&lp, 0, sizeof lp);
    lp.struct_size = sizeof lp;
    CHECK(nnlib_model_get_layer_profile(m, i, &lp));
    nnlib_layer *l = nnlib_model_get_layer(m, i);
    double fwd = lp.forward_seconds / steps, bwd = lp.backward_seconds / steps;
    double lf, lb;
    list_flops(&r, (int)i, &lf, &lb);
    double gemm_s = layer_gemm_seconds(&r, (int)i, steps < 5 ? 5 : steps);
    layers_s += fwd + bwd;
    if (name_count < 64)
      add_name_time(names, &name_count, nnlib_layer_get_name(l), fwd + bwd,
                    gemm_s);
    bench_json_begin();
    bench_json_str("bench", "profile");
    bench_json_str("model", d->name);
    bench_json_str("mode", training ? "train" : "infer");
    bench_json_int("batch", batch);
    bench_json_int("threads", threads);
    bench_json_int("layer", (long long)i);
    bench_json_str("name", nnlib_layer_get_name(l));
    bench_json_int("fused", lp.fused);
    bench_json_num("forward_s", fwd);
    bench_json_num("backward_s", bwd);
    bench_json_num("share", (fwd + bwd) / step);
    bench_json_num("forward_flops", lp.forward_flops / steps);
    bench_json_num("backward_flops", lp.backward_flops / steps);
    bench_json_num("list_forward_flops", lf);
    bench_json_num("list_backward_flops", lb);
    bench_json_num("gemm_s", gemm_s); /* its GEMMs replayed alone */
    bench_json_num("beyond_gemm_s", fwd + bwd - gemm_s);
    bench_json_end();
  }
  for (int i = 0; i < name_count; i++) {
    bench_json_begin();
    bench_json_str("bench", "profile_name");
    bench_json_str("model", d->name);
    bench_json_str("mode", training ? "train" : "infer");
    bench_json_int("batch", batch);
    bench_json_int("threads", threads);
    bench_json_str("name", names[i].name);
    bench_json_int("layers", names[i].layers);
    bench_json_num("seconds", names[i].seconds);
    bench_json_num("share", names[i].seconds / step);
    bench_json_num("gemm_s", names[i].gemm_s);
    bench_json_num("beyond_gemm_s", names[i].seconds - names[i].gemm_s);
    bench_json_num("beyond_gemm_share",
                   (names[i].seconds - names[i].gemm_s) / step);
    bench_json_end();
  }
  bench_json_begin();
  bench_json_str("bench", "profile_step");
  bench_json_str("model", d->name);
  bench_json_str("mode", training ? "train" : "infer");
  bench_json_int("batch", batch);
  bench_json_int("threads", threads);
  bench_json_stats(&st);
  bench_json_num("mean_s", step);
  bench_json_num("layers_s", layers_s);
  /* training: loss, optimizer, the pass; inference: the pass */
  bench_json_num("rest_s", step - layers_s);
  bench_json_num("rest_share", (step - layers_s) / step);
  bench_json_num("list_flops", bench_replay_flops(&r, -1));
  if (training)
    bench_json_str("optim", optim);
  bench_json_end();
  bench_replay_free(&r);
  free_batch(&b);
  nnlib_model_free(m);
}

/* --------------------------------------------------------- generate */

/* Restarts of the cached window while generating `count` tokens after a
 * prompt of `prompt` in a context of t (include/nnlib.h,
 * nnlib_model_generate: when the T positions are used up, the newest T/2
 * run again from position 0). Every token but the last is appended. */
static int cache_restarts(int64_t prompt, int64_t count, int64_t t) {
  int restarts = 0;
  int64_t length = prompt;
  for (int64_t i = 0; i + 1 < count; i++) {
    if (length < t) {
      length++;
    } else {
      restarts++;
      length = t / 2 > 0 ? t / 2 : 1;
    }
  }
  return restarts;
}

static double generate_once(nnlib_model *m, const int32_t *prompt,
                            int64_t prompt_length, int64_t count, int cache,
                            int32_t *out) {
  nnlib_generate_options o;
  CHECK(nnlib_generate_options_init(&o));
  o.use_cache = cache;
  double s = bench_now();
  CHECK(nnlib_model_generate(m, prompt, prompt_length, count, &o, out));
  return bench_now() - s;
}

/* nnlib_model_generate on the untrained model (random weights; the
 * speed does not depend on them): a prompt of 16 random ids, then
 * --new-tokens (256: past the context of 128, so the cached window
 * restarts; cache_restarts says how often), with the cache and without
 * it, alternating call by call. One line per mode; tokens_per_s = new
 * tokens / median seconds. */
static void run_generate(const bench_config *c, const bench_model_def *d,
                         int threads) {
  enum { PROMPT = 16 };
  const int64_t COUNT = c->new_tokens;
  nnlib_model *m = make_model(d, d->batches[0], model_optim(c, d));
  int32_t prompt[PROMPT], *out = malloc((size_t)COUNT * sizeof *out);
  if (out == NULL)
    exit(1);
  uint32_t seed = 3;
  for (int i = 0; i < PROMPT; i++) {
    seed = seed * 1664525u + 1013904223u;
    prompt[i] = (int32_t)((seed >> 8) % (uint32_t)d->vocab);
  }
  double one = generate_once(m, prompt, PROMPT, COUNT, 1, out) +
               generate_once(m, prompt, PROMPT, COUNT, 0, out);
  int reps = bench_reps_for(c->seconds, one, 3, 1000);
  double *times = malloc(2 * (size_t)reps * sizeof *times);
  for (int i = 0; i < reps; i++) {
    times[i] = generate_once(m, prompt, PROMPT, COUNT, 1, out);
    times[reps + i] = generate_once(m, prompt, PROMPT, COUNT, 0, out);
  }
  bench_stats st[2] = {bench_summarise(times, reps),
                       bench_summarise(times + reps, reps)};
  free(times);
  for (int cache = 1; cache >= 0; cache--) {
    const bench_stats *s = &st[1 - cache];
    bench_json_begin();
    bench_json_str("bench", "generate");
    bench_json_str("model", d->name);
    bench_json_int("batch", 1);
    bench_json_int("threads", threads);
    bench_json_stats(s);
    bench_json_num("samples_per_s", 1.0 / s->median_s);
    bench_json_num("gflops", NAN);
    bench_json_int("use_cache", cache);
    bench_json_int("prompt", PROMPT);
    bench_json_int("new_tokens", COUNT);
    bench_json_int("context", d->input_shape[0]);
    bench_json_int("cache_restarts",
                   cache ? cache_restarts(PROMPT, COUNT, d->input_shape[0]) : 0);
    bench_json_num("tokens_per_s", (double)COUNT / s->median_s);
    bench_json_num("cache_speedup", st[1].median_s / st[0].median_s);
    bench_json_end();
  }
  free(out);
  nnlib_model_free(m);
}

/* ------------------------------------------------------------ suite */

static void usage(FILE *f) {
  fprintf(f,
          "usage: nnlib-bench [--model NAME] [--batch B] [--threads T]\n"
          "                   [--bench gemm|train|infer|memory|profile|"
          "profile-infer|generate|check]\n"
          "                   [--optim sgd|momentum|adam|adamw] [--seconds S]\n"
          "                   [--new-tokens N]\n"
          "       nnlib-bench --model NAME [--batch B] --export-onnx PATH\n"
          "No arguments: the whole suite (profile, profile-infer, generate and\n"
          "check only when named). Output: JSON lines on stdout.\n"
          "--export-onnx writes\n"
          "the model as ONNX, PATH.input.bin (a batch of its inputs) and\n"
          "PATH.output.bin (nnlib's predictions), and times nothing.\n"
          "Models:");
  for (size_t i = 0; i < bench_model_count; i++)
    fprintf(f, " %s", bench_models[i].name);
  fprintf(f, "\n");
}

static const char *arg_value(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "nnlib-bench: %s needs a value\n", argv[*i]);
    usage(stderr);
    exit(2);
  }
  return argv[++*i];
}

static bench_config parse_args(int argc, char **argv) {
  bench_config c = {.seconds = 1.0,
                    .new_tokens = 256,
                    .peak_per_core = NAN,
                    .peak_isa = "none",
                    .peaks = {NAN, NAN}};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--model") == 0)
      c.model = arg_value(argc, argv, &i);
    else if (strcmp(a, "--batch") == 0)
      c.batch = atoll(arg_value(argc, argv, &i));
    else if (strcmp(a, "--threads") == 0)
      c.threads = atoi(arg_value(argc, argv, &i));
    else if (strcmp(a, "--bench") == 0)
      c.kind = arg_value(argc, argv, &i);
    else if (strcmp(a, "--optim") == 0)
      c.optim = arg_value(argc, argv, &i);
    else if (strcmp(a, "--seconds") == 0)
      c.seconds = atof(arg_value(argc, argv, &i));
    else if (strcmp(a, "--new-tokens") == 0)
      c.new_tokens = atoll(arg_value(argc, argv, &i));
    else if (strcmp(a, "--export-onnx") == 0)
      c.export_onnx = arg_value(argc, argv, &i);
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    } else {
      fprintf(stderr, "nnlib-bench: unknown argument %s\n", a);
      usage(stderr);
      exit(2);
    }
  }
  bool kind_ok = c.kind == NULL || strcmp(c.kind, "gemm") == 0 ||
                 strcmp(c.kind, "train") == 0 ||
                 strcmp(c.kind, "infer") == 0 || strcmp(c.kind, "memory") == 0 ||
                 strcmp(c.kind, "profile") == 0 ||
                 strcmp(c.kind, "profile-infer") == 0 ||
                 strcmp(c.kind, "generate") == 0 ||
                 strcmp(c.kind, "check") == 0;
  bool optim_ok = c.optim == NULL || strcmp(c.optim, "sgd") == 0 ||
                  strcmp(c.optim, "momentum") == 0 ||
                  strcmp(c.optim, "adam") == 0 ||
                  strcmp(c.optim, "adamw") == 0;
  if (!kind_ok || !optim_ok || c.batch < 0 || c.threads < 0 ||
      c.new_tokens < 1 ||
      !(c.seconds > 0.0) || (c.model && !bench_model_find(c.model))) {
    fprintf(stderr, "nnlib-bench: bad --bench, --optim, --model or number\n");
    usage(stderr);
    exit(2);
  }
  if (c.export_onnx != NULL && c.model == NULL) {
    fprintf(stderr, "nnlib-bench: --export-onnx needs --model\n");
    usage(stderr);
    exit(2);
  }
  return c;
}

/* The model's runs for one thread count. */
static void run_model_kinds(const bench_config *c, const bench_model_def *d,
                            int threads) {
  if (d->build == NULL) {
    fprintf(stderr, "nnlib-bench: %s skipped: needs %s\n", d->name,
            d->missing);
    return;
  }
  for (int bi = 0; bi < d->batch_count; bi++) {
    int64_t batch = d->batches[bi];
    if (c->batch != 0 && c->batch != batch)
      continue;
    if (kind_selected(c, "gemm"))
      run_gemm_model(c, d, batch, threads);
    if (kind_selected(c, "train"))
      run_model(c, d, batch, threads, true);
    if (kind_selected(c, "infer"))
      run_model(c, d, batch, threads, false);
    if (kind_named(c, "profile"))
      run_profile(c, d, batch, threads, true);
    if (kind_named(c, "profile-infer"))
      run_profile(c, d, batch, threads, false);
    if (kind_named(c, "check")) {
      run_check(c, d, batch, threads, true);
      run_check(c, d, batch, threads, false);
    }
  }
  if (kind_named(c, "generate") && d->vocab > 0)
    run_generate(c, d, threads);
  if (c->batch != 0 && !kind_selected(c, "memory")) {
    bool listed = false;
    for (int bi = 0; bi < d->batch_count; bi++)
      listed |= d->batches[bi] == c->batch;
    if (!listed) { /* an ad-hoc batch size */
      if (kind_selected(c, "gemm"))
        run_gemm_model(c, d, c->batch, threads);
      if (kind_selected(c, "train"))
        run_model(c, d, c->batch, threads, true);
      if (kind_selected(c, "infer"))
        run_model(c, d, c->batch, threads, false);
      if (kind_named(c, "profile"))
        run_profile(c, d, c->batch, threads, true);
      if (kind_named(c, "profile-infer"))
        run_profile(c, d, c->batch, threads, false);
      if (kind_named(c, "check")) {
        run_check(c, d, c->batch, threads, true);
        run_check(c, d, c->batch, threads, false);
      }
    }
  }
}

int main(int argc, char **argv) {
  bench_config c = parse_args(argc, argv);
  if (c.export_onnx != NULL) {
    const bench_model_def *d = bench_model_find(c.model);
    set_threads(c.threads > 0 ? c.threads : 1);
    run_export(&c, d, c.batch > 0 ? c.batch : d->batches[0]);
    return 0;
  }
  c.peak_per_core = bench_peak_gflops_per_core(&c.peak_isa, &c.peaks);
  print_machine(&c);
  /* every measurement names the kernels it ran on, so runs with and
   * without OPENBLAS_CORETYPE can share one results file */
  bench_json_tag("kernels", openblas_get_corename());
  int thread_list[2] = {1, 2}, thread_count = 2;
  if (c.threads > 0) {
    thread_list[0] = c.threads;
    thread_count = 1;
  }
  for (int ti = 0; ti < thread_count; ti++) {
    int threads = thread_list[ti];
    set_threads(threads);
    if (c.model == NULL && kind_selected(&c, "gemm"))
      run_gemm_squares(&c, threads);
    for (size_t i = 0; i < bench_model_count; i++)
      if (c.model == NULL || strcmp(c.model, bench_models[i].name) == 0)
        run_model_kinds(&c, &bench_models[i], threads);
  }
  if (kind_selected(&c, "memory") &&
      (c.model == NULL || strcmp(c.model, "mlp-large") == 0)) {
    int threads = thread_list[0];
    set_threads(threads);
    run_memory(&c, bench_model_find("mlp-large"), c.batch ? c.batch : 1024,
               threads);
  }
  if (kind_selected(&c, "memory") &&
      (c.model == NULL || strcmp(c.model, "resnet") == 0)) {
    int threads = thread_list[0];
    set_threads(threads);
    run_memory(&c, &bench_resnet, c.batch ? c.batch : 128, threads);
  }
  return 0;
}
