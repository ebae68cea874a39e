/* char_gpt.c - a small GPT-style character language model trained on
 * English text (by default the fortunes of Debian's `fortunes` package),
 * then asked to write some; or, with --model lstm, the recurrent baseline.
 *
 *   char_gpt [--text PATH]... [--model gpt|lstm] [--steps N] [--batch B]
 *            [--context T] [--width D] [--blocks K] [--heads H]
 *            [--hidden U] [--lr X] [--warmup W] [--weight-decay X]
 *            [--seed S] [--eval-every E] [--eval-windows V] [--sample N]
 *            [--out FILE.nnl]
 *
 * Tokens are bytes (vocabulary 256). The text is split once: the last 10%
 * of the concatenated files validates. The model (defaults in brackets):
 *
 *   input:T, embedding:256:D, positional,            [T 128, D 128]
 *   K x transformer:D:H:causal                       [K 4, H 4, MLP 4 D]
 *   layernorm, linear:256                            logits [T, 256]
 *
 * 875,520 parameters at the defaults. --model lstm trains
 *
 *   input:T, embedding:256:D, lstm:U, linear:256     [U 256]
 *
 * instead (an LSTM over the embedded bytes, 493,824 parameters at D 128),
 * with everything else the same. Each step trains on B windows of
 * T + 1 bytes drawn by the text's seeded generator (nnlib_text_sample):
 * softmax cross-entropy of every position's next byte, the mean over the
 * B T tokens. AdamW (lr 1e-3, weight decay 0.01 on every parameter, betas
 * 0.9 and 0.999) with W warmup steps (100) and a cosine decay to 0 at
 * step N (2000). Every E steps (250) it prints
 *
 *   step=... train_loss=... valid_loss=...
 *
 * where train_loss is the mean over the steps since the last line and
 * valid_loss the mean over the first V (20) validation windows, and at
 * the end
 *
 *   valid_bpc=... steps=... seconds=...
 *
 * with bits per character over every window of the validation split
 * (nnlib_text_window: consecutive windows of T bytes, every byte but the
 * first predicted once) and the wall time of the training loop (the
 * periodic validation included). --sample N then writes N bytes continuing
 * "The " (temperature 0.8, top-k 40, seed 1). benchmarks/char_gpt_torch.py
 * trains the same model on the same windows in PyTorch. nnlib uses
 * every core unless OPENBLAS_NUM_THREADS says otherwise. */
#include <math.h>
#include <nnlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call)                                                            \
  do {                                                                         \
    nnlib_status st_ = (call);                                                 \
    if (st_ != NNLIB_OK) {                                                     \
      fprintf(stderr, "%s: %s\n", nnlib_status_string(st_),                    \
              nnlib_last_error_message());                                     \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#define MAX_PATHS 16

typedef struct config {
  const char *paths[MAX_PATHS];
  size_t path_count;
  const char *out;
  int lstm; /* --model lstm */
  int64_t steps, batch, context, width, blocks, heads, hidden, warmup;
  int64_t eval_every, eval_windows, sample;
  float lr, weight_decay;
  uint64_t seed;
} config;

static void usage(const char *program) {
  fprintf(stderr,
          "usage: %s [--text PATH]... [--model gpt|lstm] [--steps N] "
          "[--batch B] [--context T] [--width D] [--blocks K] [--heads H] "
          "[--hidden U] [--lr X] [--warmup W] "
          "[--weight-decay X] [--seed S] [--eval-every E] "
          "[--eval-windows V] [--sample N] [--out FILE.nnl]\n",
          program);
  exit(2);
}

static int64_t *int_option(config *c, const char *name) {
  struct {
    const char *name;
    int64_t *field;
  } table[] = {{"--steps", &c->steps},           {"--batch", &c->batch},
               {"--context", &c->context},       {"--width", &c->width},
               {"--blocks", &c->blocks},         {"--heads", &c->heads},
               {"--hidden", &c->hidden},
               {"--warmup", &c->warmup},         {"--eval-every", &c->eval_every},
               {"--eval-windows", &c->eval_windows}, {"--sample", &c->sample}};
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(name, table[i].name) == 0)
      return table[i].field;
  return NULL;
}

static config parse_args(int argc, char **argv) {
  config c = {{NULL}, 0,   NULL, 0,    2000,  32,    128, 128, 4,
              4,      256, 100,  250,  20,    0,     1e-3f, 0.01f, 1};
  for (int i = 1; i < argc; i++) {
    const char *option = argv[i];
    if (i + 1 == argc)
      usage(argv[0]);
    const char *value = argv[++i];
    int64_t *field = int_option(&c, option);
    if (field != NULL)
      *field = strtoll(value, NULL, 10);
    else if (strcmp(option, "--text") == 0 && c.path_count < MAX_PATHS)
      c.paths[c.path_count++] = value;
    else if (strcmp(option, "--model") == 0 &&
             (strcmp(value, "gpt") == 0 || strcmp(value, "lstm") == 0))
      c.lstm = strcmp(value, "lstm") == 0;
    else if (strcmp(option, "--out") == 0)
      c.out = value;
    else if (strcmp(option, "--lr") == 0)
      c.lr = strtof(value, NULL);
    else if (strcmp(option, "--weight-decay") == 0)
      c.weight_decay = strtof(value, NULL);
    else if (strcmp(option, "--seed") == 0)
      c.seed = strtoull(value, NULL, 10);
    else
      usage(argv[0]);
  }
  if (c.path_count == 0)
    c.paths[c.path_count++] = "/usr/share/games/fortunes";
  if (c.steps < 1 || c.batch < 1 || c.context < 1 || c.width < 1 ||
      c.blocks < 0 || c.heads < 1 || c.hidden < 1 || c.warmup < 0 ||
      c.warmup >= c.steps ||
      c.eval_every < 1 || c.eval_windows < 1 || c.sample < 0 ||
      !(c.lr > 0.0f) || !(c.weight_decay >= 0.0f))
    usage(argv[0]);
  return c;
}

/* The description of the header comment. */
static void describe(const config *c, char *buf, size_t size) {
  if (c->lstm) {
    snprintf(buf, size, "input:%lld,embedding:256:%lld,lstm:%lld,linear:256",
             (long long)c->context, (long long)c->width,
             (long long)c->hidden);
    return;
  }
  int n = snprintf(buf, size, "input:%lld,embedding:256:%lld,positional",
                   (long long)c->context, (long long)c->width);
  for (int64_t b = 0; b < c->blocks; b++)
    n += snprintf(buf + n, size - (size_t)n, ",transformer:%lld:%lld:causal",
                  (long long)c->width, (long long)c->heads);
  snprintf(buf + n, size - (size_t)n, ",layernorm,linear:256");
}

static nnlib_model *build_model(const config *c) {
  char spec[2048];
  describe(c, spec, sizeof spec);
  nnlib_model *m;
  CHECK(nnlib_model_create(&m));
  CHECK(nnlib_model_add_spec(m, spec));
  nnlib_optimizer_options o;
  nnlib_optimizer *opt;
  CHECK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAMW));
  o.learning_rate = c->lr;
  o.weight_decay = c->weight_decay;
  o.schedule = NNLIB_SCHEDULE_COSINE;
  o.total_steps = c->steps;
  o.warmup_steps = c->warmup;
  CHECK(nnlib_optimizer_create(&opt, &o));
  CHECK(nnlib_model_compile_graph(m, c->batch, NNLIB_LOSS_SOFTMAX_CE, opt,
                                  c->seed));
  return m;
}

static double now_seconds(void) {
  struct timespec t;
  timespec_get(&t, TIME_UTC);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Mean loss per token over validation windows [0, count): evaluate runs
 * them in batches of the compiled size. */
static double valid_loss(nnlib_model *m, const nnlib_text *text,
                         int64_t count, int64_t context) {
  int64_t shape[2] = {count, context};
  nnlib_tensor *x, *y;
  CHECK(nnlib_tensor_create_int32(&x, shape, 2));
  CHECK(nnlib_tensor_create_int32(&y, shape, 2));
  CHECK(nnlib_text_window(text, NNLIB_TEXT_VALID, 0, x, y));
  float loss;
  CHECK(nnlib_model_evaluate(m, x, y, &loss, NULL));
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  return loss;
}

static void print_sample(nnlib_model *m, int64_t count) {
  const char *prompt = "The ";
  int32_t ids[4];
  for (int i = 0; i < 4; i++)
    ids[i] = (unsigned char)prompt[i];
  int32_t *out = malloc((size_t)count * sizeof *out);
  if (out == NULL)
    exit(1);
  nnlib_generate_options g;
  CHECK(nnlib_generate_options_init(&g));
  g.temperature = 0.8f;
  g.top_k = 40;
  g.seed = 1;
  CHECK(nnlib_model_generate(m, ids, 4, count, &g, out));
  printf("--- sample ---\n%s", prompt);
  for (int64_t i = 0; i < count; i++)
    putchar((int)out[i]);
  printf("\n--- end ---\n");
  free(out);
}

int main(int argc, char **argv) {
  config c = parse_args(argc, argv);
  nnlib_text *text;
  CHECK(nnlib_text_load(&text, c.paths, c.path_count, 0.1, c.seed));
  nnlib_model *m = build_model(&c);
  int64_t params = 0, shape[2] = {c.batch, c.context};
  CHECK(nnlib_model_get_param_count(m, &params));
  int64_t windows = nnlib_text_window_count(text, NNLIB_TEXT_VALID, c.context);
  char spec[2048];
  describe(&c, spec, sizeof spec);
  /* the description says the rest (blocks, width, heads, or the LSTM) */
  printf("char_gpt: %s\ncontext %lld, %lld parameters\n"
         "text: %lld training bytes, %lld validation bytes (%lld windows), "
         "batch %lld, %d BLAS threads\n",
         spec, (long long)c.context, (long long)params,
         (long long)nnlib_text_get_size(text, NNLIB_TEXT_TRAIN),
         (long long)nnlib_text_get_size(text, NNLIB_TEXT_VALID),
         (long long)windows, (long long)c.batch, nnlib_get_num_threads());
  fflush(stdout);
  nnlib_tensor *x, *y;
  CHECK(nnlib_tensor_create_int32(&x, shape, 2));
  CHECK(nnlib_tensor_create_int32(&y, shape, 2));
  int64_t eval_windows = c.eval_windows < windows ? c.eval_windows : windows;
  double start = now_seconds(), loss_sum = 0.0;
  int64_t since = 0;
  for (int64_t step = 1; step <= c.steps; step++) {
    float loss;
    CHECK(nnlib_text_sample(text, NNLIB_TEXT_TRAIN, x, y));
    CHECK(nnlib_model_step(m, x, y, &loss));
    loss_sum += loss;
    since++;
    if (step % c.eval_every == 0 || step == c.steps) {
      printf("step=%lld train_loss=%.4f valid_loss=%.4f\n", (long long)step,
             loss_sum / (double)since,
             valid_loss(m, text, eval_windows, c.context));
      fflush(stdout);
      loss_sum = 0.0;
      since = 0;
    }
  }
  double seconds = now_seconds() - start;
  double bpc = valid_loss(m, text, windows, c.context) / log(2.0);
  printf("valid_bpc=%.4f steps=%lld seconds=%.1f\n", bpc, (long long)c.steps,
         seconds);
  if (c.out != NULL)
    CHECK(nnlib_model_save(m, c.out, 0));
  if (c.sample > 0)
    print_sample(m, c.sample);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  nnlib_text_free(text);
  return 0;
}
