/* train_text.c - nnlib train --text: a byte-level language model trained on
 * text files. The model description reads token ids [T] (input:T, then an
 * embedding of the 256 byte values) and writes logits [T, 256], position t
 * predicting byte t + 1. Each step trains on --batch windows of T + 1 bytes
 * drawn by the text's seeded generator (nnlib_text_sample); every
 * --eval-every steps a line
 *   step=... train_loss=... valid_loss=...
 * (train_loss: the mean since the previous line; valid_loss: the mean over
 * the first 20 validation windows), and at the end
 *   valid_bpc=... steps=... seconds=...
 * with the bits per byte over every window of the validation split (the
 * last 10% of the text): mean cross-entropy / ln 2. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* two blocks of width 128, 4 heads, context 128 (in two halves for --help) */
#define DEFAULT_TEXT_SPEC_LINE1                                                \
  "input:128,embedding:256:128,positional,transformer:128:4:causal,"
#define DEFAULT_TEXT_SPEC_LINE2 "transformer:128:4:causal,layernorm,linear:256"
#define DEFAULT_TEXT_SPEC DEFAULT_TEXT_SPEC_LINE1 DEFAULT_TEXT_SPEC_LINE2
#define VALID_FRACTION 0.1
#define VALID_LINE_WINDOWS 20 /* validation windows behind each step= line */
#define BYTE_VALUES 256

typedef struct text_config {
  const char **paths;
  size_t path_count;
  const char *spec, *out;
  int64_t steps, batch, warmup, seed, eval_every, threads;
  float lr, weight_decay;
} text_config;

/* What a run holds: the text, the model, a training batch x/y [B, T], the
 * windows of the step= lines and every validation window. */
typedef struct text_run {
  nnlib_text *text;
  nnlib_model *model;
  int64_t context;
  nnlib_tensor *x, *y, *line_x, *line_y, *valid_x, *valid_y;
} text_run;

bool cli_wants_text(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], "--text") == 0)
      return true;
  return false;
}

void cli_train_text_usage(void) {
  printf(
      "usage: nnlib train --text PATH [--text PATH ...] [--model SPEC]\n"
      "                   [--steps N] [--batch B] [--lr X] [--warmup W]\n"
      "                   [--weight-decay X] [--seed S] [--eval-every E]\n"
      "                   [--threads T] [--out FILE.nnl]\n\n"
      "Trains a byte-level language model. Each PATH is a text file or a\n"
      "directory of them; the last 10%% of their bytes validate.\n"
      "  --model      a description reading token ids [T] and writing logits\n"
      "               [T, 256]: input:T,embedding:256:D,... ending in\n"
      "               linear:256 (T: the context in bytes). Default\n"
      "               " DEFAULT_TEXT_SPEC_LINE1 "\n"
      "               " DEFAULT_TEXT_SPEC_LINE2 "\n"
      "               an LSTM: input:128,embedding:256:64,lstm:256,linear:256\n"
      "  --steps      default 2000\n"
      "  --batch      windows per step, default 32\n"
      "  --lr         default 0.001 (AdamW, weight decay 0.01, cosine decay\n"
      "               to 0 at the last step)\n"
      "  --warmup     steps of linear warmup, default 100 (a tenth of --steps\n"
      "               when that is less)\n"
      "  --eval-every print step= train_loss= valid_loss= every E steps\n"
      "               (default 250; valid_loss: the first 20 validation\n"
      "               windows); the last line is valid_bpc= steps= seconds=\n"
      "               over every validation window\n"
      "  --weight-decay  AdamW's, default 0.01\n"
      "  --seed       default 1: the windows drawn and the initial weights\n"
      "  --threads    default 0: OpenBLAS's own choice\n"
      "  --out        save the trained model (.nnl; nnlib generate reads it);\n"
      "               a path that cannot be written is refused before\n"
      "               training\n"
      "  -h, --help   this help\n");
}

/* Every --text PATH, in order, into c->paths (room for every argument);
 * false (after one line) for a --text without a path after it. */
static bool parse_paths(cli_args *a, text_config *c) {
  for (int i = 0; i < a->count; i++)
    if (strcmp(a->argv[i], "--text") == 0 &&
        (i + 1 == a->count || strncmp(a->argv[i + 1], "--", 2) == 0)) {
      fprintf(stderr, "nnlib train: --text needs a path (a text file or a "
                      "directory of them)\n");
      return false;
    }
  const char *path;
  while ((path = cli_get_next(a, "text")) != NULL)
    c->paths[c->path_count++] = path;
  return true;
}

static bool warmup_fits(text_config *c) {
  if (c->warmup < 0) /* not given: 100, or a tenth of a short run */
    c->warmup = c->steps / 10 < 100 ? c->steps / 10 : 100;
  if (c->warmup < c->steps)
    return true;
  fprintf(stderr, "nnlib train: --warmup %lld: must be below --steps %lld\n",
          (long long)c->warmup, (long long)c->steps);
  return false;
}

static bool parse_text_config(cli_args *a, text_config *c) {
  if (!parse_paths(a, c))
    return false;
  c->spec = cli_get(a, "model", DEFAULT_TEXT_SPEC);
  c->out = cli_get(a, "out", NULL);
  return cli_get_i64(a, "steps", 2000, 1, INT32_MAX, &c->steps) &&
         cli_get_i64(a, "batch", 32, 1, 1 << 20, &c->batch) &&
         cli_get_i64(a, "warmup", -1, 0, INT32_MAX, &c->warmup) &&
         cli_get_i64(a, "seed", 1, 0, INT64_MAX, &c->seed) &&
         cli_get_i64(a, "eval-every", 250, 1, INT32_MAX, &c->eval_every) &&
         cli_get_i64(a, "threads", 0, 0, 1024, &c->threads) &&
         cli_get_float(a, "lr", 1e-3f, true, &c->lr) &&
         cli_get_float(a, "weight-decay", 0.01f, false, &c->weight_decay) &&
         cli_all_used(a, "train") && warmup_fits(c);
}

static void print_dims(FILE *f, const int64_t *dims, size_t rank) {
  fprintf(f, "[");
  for (size_t i = 0; i < rank; i++)
    fprintf(f, "%s%lld", i ? ", " : "", (long long)dims[i]);
  fprintf(f, "]");
}

/* The description declares its input (input:T): only then is T known. */
static bool declares_input(nnlib_model *m) {
  nnlib_node_info first;
  memset(&first, 0, sizeof first);
  first.struct_size = sizeof first;
  if (nnlib_model_get_node(m, 0, &first) == NNLIB_OK && first.layer == NULL &&
      first.rank > 0)
    return true;
  fprintf(stderr, "nnlib train: --text: the model description must start "
                  "with input:T, the context in bytes (e.g. "
                  "input:128,embedding:256:64,lstm:256,linear:256)\n");
  return false;
}

/* The first layer embeds at least the 256 byte values. */
static bool embeds_bytes(nnlib_model *m) {
  nnlib_layer *first = nnlib_model_get_layer(m, 0);
  nnlib_tensor *table = NULL;
  if (nnlib_layer_get_kind(first) != NNLIB_LAYER_EMBEDDING) {
    fprintf(stderr, "nnlib train: --text needs a language model whose first "
                    "layer embeds the byte ids (embedding:256:D), not %s\n",
            nnlib_layer_get_name(first));
    return false;
  }
  if (nnlib_layer_get_param(first, 0, &table, NULL) == NNLIB_OK &&
      nnlib_tensor_get_dim(table, 0) < BYTE_VALUES) {
    fprintf(stderr, "nnlib train: --text: embedding:%lld holds fewer ids "
                    "than the 256 byte values\n",
            (long long)nnlib_tensor_get_dim(table, 0));
    return false;
  }
  return true;
}

/* Input token ids [T], output logits [T, 256]: a language model over bytes.
 * *context = T. */
static bool is_byte_language_model(nnlib_model *m, int64_t *context) {
  int64_t in[NNLIB_MAX_RANK], out[NNLIB_MAX_RANK];
  size_t in_rank = 0, out_rank = 0;
  nnlib_model_get_input_shape(m, in, NNLIB_MAX_RANK, &in_rank);
  nnlib_model_get_output_shape(m, out, NNLIB_MAX_RANK, &out_rank);
  if (nnlib_model_get_input_count(m) != 1 || in_rank != 1) {
    fprintf(stderr, "nnlib train: --text needs a language model whose input "
                    "is [T] token ids (input:T,embedding:256:D,...), not ");
    print_dims(stderr, in, in_rank);
    fprintf(stderr, "\n");
    return false;
  }
  if (!embeds_bytes(m))
    return false;
  if (out_rank != 2 || out[0] != in[0] || out[1] != BYTE_VALUES) {
    fprintf(stderr, "nnlib train: --text needs a language model whose output "
                    "is logits [%lld, 256] (end with linear:256), not ",
            (long long)in[0]);
    print_dims(stderr, out, out_rank);
    fprintf(stderr, "\n");
    return false;
  }
  *context = in[0];
  return true;
}

/* AdamW, warmup, then a cosine decay to 0 at the last step. */
static nnlib_status make_optimizer(const text_config *c,
                                   nnlib_optimizer **out) {
  nnlib_optimizer_options o;
  nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAMW);
  o.learning_rate = c->lr;
  o.weight_decay = c->weight_decay;
  o.schedule = NNLIB_SCHEDULE_COSINE;
  o.total_steps = c->steps;
  o.warmup_steps = c->warmup;
  return nnlib_optimizer_create(out, &o);
}

/* The model of the description, compiled for --batch windows; 0, or the
 * exit status after one line. */
static int build_model(const text_config *c, text_run *r) {
  nnlib_status st;
  nnlib_optimizer *opt = NULL;
  if ((st = nnlib_model_create(&r->model)) != NNLIB_OK ||
      (st = nnlib_model_add_spec(r->model, c->spec)) != NNLIB_OK)
    return cli_fail("train", "model description", st);
  if (!declares_input(r->model))
    return 1;
  if ((st = make_optimizer(c, &opt)) != NNLIB_OK)
    return cli_fail("train", "optimizer", st);
  if ((st = nnlib_model_compile_graph(r->model, c->batch,
                                      NNLIB_LOSS_SOFTMAX_CE, opt,
                                      (uint64_t)c->seed)) != NNLIB_OK)
    return cli_fail("train", "compiling the model", st);
  return is_byte_language_model(r->model, &r->context) ? 0 : 1;
}

static nnlib_status int32_pair(int64_t rows, int64_t context,
                               nnlib_tensor **x, nnlib_tensor **y) {
  int64_t shape[2] = {rows, context};
  nnlib_status st = nnlib_tensor_create_int32(x, shape, 2);
  return st == NNLIB_OK ? nnlib_tensor_create_int32(y, shape, 2) : st;
}

/* The batch tensors and the validation windows (all of them, and the first
 * 20 for the step= lines); 0, or 1 after one line. */
static int prepare_windows(const text_config *c, text_run *r) {
  int64_t windows =
      nnlib_text_window_count(r->text, NNLIB_TEXT_VALID, r->context);
  if (windows < 1) {
    fprintf(stderr, "nnlib train: --text: the validation split (the last "
                    "10%%, %lld bytes) is shorter than one window of %lld + "
                    "1 bytes: give more text or a shorter input:T\n",
            (long long)nnlib_text_get_size(r->text, NNLIB_TEXT_VALID),
            (long long)r->context);
    return 1;
  }
  int64_t line = windows < VALID_LINE_WINDOWS ? windows : VALID_LINE_WINDOWS;
  nnlib_status st;
  if ((st = int32_pair(c->batch, r->context, &r->x, &r->y)) != NNLIB_OK ||
      (st = int32_pair(line, r->context, &r->line_x, &r->line_y)) !=
          NNLIB_OK ||
      (st = int32_pair(windows, r->context, &r->valid_x, &r->valid_y)) !=
          NNLIB_OK ||
      (st = nnlib_text_window(r->text, NNLIB_TEXT_VALID, 0, r->valid_x,
                              r->valid_y)) != NNLIB_OK ||
      (st = nnlib_text_window(r->text, NNLIB_TEXT_VALID, 0, r->line_x,
                              r->line_y)) != NNLIB_OK)
    return cli_fail("train", "validation windows", st);
  return 0;
}

static void text_run_free(text_run *r) {
  nnlib_tensor *owned[] = {r->x,      r->y,       r->line_x,
                           r->line_y, r->valid_x, r->valid_y};
  for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
    nnlib_tensor_free(owned[i]);
  nnlib_model_free(r->model);
  nnlib_text_free(r->text);
}

static void print_text_model(const text_config *c, const text_run *r) {
  int64_t params = 0;
  nnlib_model_get_param_count(r->model, &params);
  printf("model %s: %lld parameters, context %lld\n"
         "text: %lld training bytes, %lld validation bytes (%lld windows); "
         "adamw, batch %lld, %lld steps, warmup %lld\n",
         c->spec, (long long)params, (long long)r->context,
         (long long)nnlib_text_get_size(r->text, NNLIB_TEXT_TRAIN),
         (long long)nnlib_text_get_size(r->text, NNLIB_TEXT_VALID),
         (long long)nnlib_tensor_get_dim(r->valid_x, 0), (long long)c->batch,
         (long long)c->steps, (long long)c->warmup);
  fflush(stdout);
}

/* A failed step: the progress bar cleared (on a terminal the message would
 * follow it on its line), then the message. */
static int step_fail(cli_progress *bar, const char *what, nnlib_status st) {
  cli_progress_clear(bar);
  return cli_fail("train", what, st);
}

/* The steps, a step= line every --eval-every and after the last. */
static int train_steps(const text_config *c, text_run *r) {
  cli_progress bar = {isatty(2) != 0, cli_now(), 0, 0, 0.0};
  double loss_sum = 0.0;
  int64_t since = 0;
  nnlib_status st;
  for (int64_t step = 1; step <= c->steps; step++) {
    float loss, valid;
    if ((st = nnlib_text_sample(r->text, NNLIB_TEXT_TRAIN, r->x, r->y)) !=
        NNLIB_OK)
      return step_fail(&bar, "sampling a training batch", st);
    if ((st = nnlib_model_step(r->model, r->x, r->y, &loss)) != NNLIB_OK)
      return step_fail(&bar, "training", st);
    loss_sum += loss;
    since++;
    cli_progress_steps(&bar, step, c->steps, loss_sum / (double)since);
    if (step % c->eval_every != 0 && step != c->steps)
      continue;
    if ((st = nnlib_model_evaluate(r->model, r->line_x, r->line_y, &valid,
                                   NULL)) != NNLIB_OK)
      return step_fail(&bar, "validating", st);
    cli_progress_clear(&bar);
    printf("step=%lld train_loss=%.4f valid_loss=%.4f\n", (long long)step,
           loss_sum / (double)since, valid);
    fflush(stdout);
    loss_sum = 0.0;
    since = 0;
  }
  return 0;
}

static int run_text(const text_config *c) {
  if (c->threads > 0)
    nnlib_set_num_threads((int)c->threads);
  text_run r;
  memset(&r, 0, sizeof r);
  nnlib_status st = nnlib_text_load(&r.text, c->paths, c->path_count,
                                    VALID_FRACTION, (uint64_t)c->seed);
  int rc = st != NNLIB_OK ? cli_fail("train", "reading the text", st) : 0;
  if (rc == 0)
    rc = build_model(c, &r);
  if (rc == 0)
    rc = prepare_windows(c, &r);
  double start = cli_now();
  if (rc == 0) {
    print_text_model(c, &r);
    rc = train_steps(c, &r);
  }
  float loss = 0.0f;
  if (rc == 0 && (st = nnlib_model_evaluate(r.model, r.valid_x, r.valid_y,
                                            &loss, NULL)) != NNLIB_OK)
    rc = cli_fail("train", "validating", st);
  double seconds = cli_now() - start;
  if (rc == 0 && c->out != NULL &&
      (st = nnlib_model_save(r.model, c->out, 0)) != NNLIB_OK)
    rc = cli_fail("train", c->out, st);
  if (rc == 0)
    printf("valid_bpc=%.4f steps=%lld seconds=%.1f%s%s\n",
           (double)loss / log(2.0), (long long)c->steps, seconds,
           c->out ? " model=" : "", c->out ? c->out : "");
  text_run_free(&r);
  return rc;
}

int cmd_train_text(int argc, char **argv) {
  cli_args a;
  text_config c;
  memset(&c, 0, sizeof c);
  if (!cli_args_init(&a, argc, argv))
    return 1;
  c.paths = calloc((size_t)argc, sizeof *c.paths);
  if (c.paths == NULL) {
    fprintf(stderr, "nnlib train: out of memory\n");
    cli_args_free(&a);
    return 1;
  }
  if (cli_has_flag(&a, "help")) {
    free(c.paths);
    cli_train_text_usage();
    cli_args_free(&a);
    return 0;
  }
  bool ok = parse_text_config(&a, &c);
  cli_args_free(&a);
  int rc = !ok                                              ? 2
           : c.out != NULL && !cli_can_save("train", c.out) ? 1
                                                            : run_text(&c);
  free(c.paths);
  return rc;
}
