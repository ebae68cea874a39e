/* nnlib_model_generate through the public API, on a small seeded GPT
 *   input:8,embedding:11:8,positional,transformer:8:2:causal,
 *   transformer:8:2:causal,layernorm,linear:11
 * and an LSTM language model (input:8,embedding:11:6,lstm:10,linear:11).
 *
 * The reference is nnlib_model_predict, which knows nothing of decoding:
 * in a causal model the logits at position len - 1 depend only on
 * positions 0 .. len - 1, so a window of len tokens padded with zeros to
 * [1, T] gives, at row len - 1, the logits generate samples the next
 * token from. The window follows the documented rule: without the cache
 * the newest T tokens; with it, tokens are appended until T are held, and
 * then the newest T/2 (the new one included) start again at position 0.
 * Checked:
 *   - greedy decoding (top_k = 1, any temperature) equals an argmax loop
 *     over predict, with and without the cache, from prompts of 1, 3 and T
 *     tokens, far past the context (and the two windowing rules really
 *     give different tokens there, so the comparison can tell them apart);
 *   - the same seed gives the same tokens, other seeds others; with and
 *     without the cache the same tokens while prompt + count <= T;
 *   - the first token's distribution over 4000 seeds matches
 *     softmax(logits / temperature) over the top k (within 5 standard
 *     errors), and tokens outside the top k never come;
 *   - generate leaves the model as it was: parameters, the optimizer, the
 *     dropout generator, and a training forward pass in flight (its output
 *     buffer, and the gradients of a backward_output after it);
 *   - every bad input with its exact status, out untouched. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GPT_SPEC                                                               \
  "input:8,embedding:11:8,positional,transformer:8:2:causal,"                 \
  "transformer:8:2:causal,layernorm,linear:11"
#define LSTM_SPEC "input:8,embedding:11:6,lstm:10,linear:11"
enum { T = 8, V = 11, LONG = 40 };

/* ------------------------------------------------------------ helpers */

static nnlib_optimizer *adamw(void) {
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAMW));
  o.learning_rate = 2e-2f;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  return opt;
}

static nnlib_model *build(const char *spec, uint64_t seed) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile_graph(m, 2, NNLIB_LOSS_SOFTMAX_CE, adamw(),
                                      seed));
  return m;
}

static nnlib_generate_options options(uint64_t seed, int use_cache,
                                      int64_t top_k, float temperature) {
  nnlib_generate_options o;
  ASSERT_OK(nnlib_generate_options_init(&o));
  o.seed = seed;
  o.use_cache = use_cache;
  o.top_k = top_k;
  o.temperature = temperature;
  return o;
}

static void generate(nnlib_model *m, const int32_t *prompt, int64_t length,
                     int64_t count, const nnlib_generate_options *o,
                     int32_t *out) {
  ASSERT_OK(nnlib_model_generate(m, prompt, length, count, o, out));
  for (int64_t i = 0; i < count; i++)
    assert_true(out[i] >= 0 && out[i] < V);
}

/* -------------------------------------------------- predict reference */

/* The logits predict gives at position len - 1 of window[0 .. len)
 * padded with zeros to T. */
static void logits_after(nnlib_model *m, const int32_t *window, int64_t len,
                         float logits[V]) {
  const int64_t xs[2] = {1, T}, ys[3] = {1, T, V};
  nnlib_tensor *x = NULL, *y = NULL;
  ASSERT_OK(nnlib_tensor_create_int32(&x, xs, 2));
  ASSERT_OK(nnlib_tensor_create(&y, ys, 3));
  memcpy(nnlib_tensor_get_data_int32(x), window, (size_t)len * sizeof *window);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  memcpy(logits, nnlib_tensor_get_data_const(y) + (len - 1) * V,
         V * sizeof(float));
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
}

/* The first index of the largest logit (generate breaks ties by the
 * smaller token as well). */
static int32_t argmax(const float logits[V]) {
  int32_t best = 0;
  for (int32_t k = 1; k < V; k++)
    if (logits[k] > logits[best])
      best = k;
  return best;
}

/* The window after appending `token` to window[0 .. *len). */
static void append(int32_t *window, int64_t *len, int32_t token, int cached) {
  if (*len < T) {
    window[(*len)++] = token;
    return;
  }
  int64_t keep = cached ? (T / 2 > 0 ? T / 2 : 1) : T;
  memmove(window, window + (T - keep + 1), (size_t)(keep - 1) * sizeof *window);
  window[keep - 1] = token;
  *len = keep;
}

static void greedy_reference(nnlib_model *m, const int32_t *prompt,
                             int64_t length, int64_t count, int cached,
                             int32_t *out) {
  int32_t window[T];
  int64_t len = length;
  memcpy(window, prompt, (size_t)length * sizeof *prompt);
  for (int64_t i = 0; i < count; i++) {
    float logits[V];
    logits_after(m, window, len, logits);
    out[i] = argmax(logits);
    append(window, &len, out[i], cached);
  }
}

static void print_tokens(const char *what, const int32_t *t, int64_t n) {
  char line[4 * LONG + 1];
  size_t used = 0;
  for (int64_t i = 0; i < n && used + 4 < sizeof line; i++)
    used += (size_t)snprintf(line + used, sizeof line - used, "%d ", t[i]);
  line[used] = '\0';
  print_message("  %-26s %s\n", what, line);
}

/* ------------------------------------------------------------- greedy */

/* A small random model's argmax hardly depends on the tokens (an LSTM's
 * greedy run settles on one token at once). Trained briefly to repeat the
 * first token of its window (y[t] = x[0]: the LSTM must carry it), its
 * greedy tokens depend on where the window starts, which is what the two
 * windowing rules differ in. */
static void train_to_repeat_first(nnlib_model *m) {
  const int64_t shape[2] = {2, T};
  nnlib_tensor *x = NULL, *y = NULL;
  ASSERT_OK(nnlib_tensor_create_int32(&x, shape, 2));
  ASSERT_OK(nnlib_tensor_create_int32(&y, shape, 2));
  int32_t *xd = nnlib_tensor_get_data_int32(x),
          *yd = nnlib_tensor_get_data_int32(y);
  uint32_t lcg = 5;
  float loss = 0.0f;
  for (int step = 0; step < 300; step++) {
    for (int i = 0; i < 2 * T; i++) {
      lcg = lcg * 1664525u + 1013904223u;
      xd[i] = (int32_t)((lcg >> 8) % V);
    }
    for (int i = 0; i < 2 * T; i++)
      yd[i] = xd[i - i % T];
    ASSERT_OK(nnlib_model_step(m, x, y, &loss));
  }
  print_message("  trained to repeat the first token: loss %.3f\n",
                (double)loss);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
}

static void check_greedy(const char *spec, const char *name, int train) {
  nnlib_model *m = build(spec, 21);
  if (train)
    train_to_repeat_first(m);
  const int32_t prompts[T] = {3, 7, 1, 0, 10, 4, 4, 9};
  const int64_t lengths[3] = {1, 3, T};
  int differs = 0;
  for (size_t p = 0; p < 3; p++) {
    int32_t want[2][LONG], got[LONG];
    for (int cached = 0; cached <= 1; cached++) {
      greedy_reference(m, prompts, lengths[p], LONG, cached, want[cached]);
      /* top_k 1 is greedy at any temperature */
      const float temperatures[2] = {1.0f, 3.0f};
      for (int k = 0; k < 2; k++) {
        nnlib_generate_options o =
            options(5 + (uint64_t)k, cached, 1, temperatures[k]);
        memset(got, 0xff, sizeof got);
        generate(m, prompts, lengths[p], LONG, &o, got);
        if (memcmp(got, want[cached], sizeof got) != 0) {
          print_tokens("predict argmax", want[cached], LONG);
          print_tokens("generate top_k 1", got, LONG);
          fail_msg("%s, prompt of %lld, use_cache %d: greedy tokens differ",
                   name, (long long)lengths[p], cached);
        }
      }
    }
    /* a shorter run is a prefix of the longer one */
    int32_t few[5];
    nnlib_generate_options o = options(1, 1, 1, 1.0f);
    generate(m, prompts, lengths[p], 5, &o, few);
    assert_memory_equal(few, want[1], sizeof few);
    differs += memcmp(want[0], want[1], sizeof want[0]) != 0;
    print_message("%s, prompt of %lld:\n", name, (long long)lengths[p]);
    print_tokens("greedy, no cache", want[0], LONG);
    print_tokens("greedy, cache", want[1], LONG);
  }
  /* past the context the two windows differ: the check above can tell
   * the cache's restart from the sliding window */
  assert_true(differs > 0);
  nnlib_model_free(m);
}

static void test_greedy_gpt(void **state) {
  (void)state;
  check_greedy(GPT_SPEC, "gpt", 0);
}

static void test_greedy_lstm(void **state) {
  (void)state;
  check_greedy(LSTM_SPEC, "lstm", 1);
}

/* -------------------------------------------------------------- seeds */

static void check_seeds(const char *spec, const char *name) {
  nnlib_model *m = build(spec, 22);
  const int32_t prompt[3] = {2, 9, 5};
  int32_t a[LONG], b[LONG], c[LONG];
  for (int cached = 0; cached <= 1; cached++) {
    nnlib_generate_options o = options(77, cached, 0, 1.0f);
    generate(m, prompt, 3, LONG, &o, a);
    generate(m, prompt, 3, LONG, &o, b);
    assert_memory_equal(a, b, sizeof a);
    o.seed = 78;
    generate(m, prompt, 3, LONG, &o, c);
    assert_memory_not_equal(a, c, sizeof a);
  }
  /* within the context the cache changes nothing, sampling included */
  const int64_t fits = T - 3;
  for (uint64_t seed = 1; seed <= 20; seed++) {
    nnlib_generate_options o = options(seed, 1, 0, 1.3f);
    generate(m, prompt, 3, fits, &o, a);
    o.use_cache = 0;
    generate(m, prompt, 3, fits, &o, b);
    if (memcmp(a, b, (size_t)fits * sizeof *a) != 0) {
      print_tokens("cache", a, fits);
      print_tokens("no cache", b, fits);
      fail_msg("%s, seed %llu: the cache changed the tokens", name,
               (unsigned long long)seed);
    }
  }
  nnlib_model_free(m);
}

static void test_seeds_gpt(void **state) {
  (void)state;
  check_seeds(GPT_SPEC, "gpt");
}

static void test_seeds_lstm(void **state) {
  (void)state;
  check_seeds(LSTM_SPEC, "lstm");
}

/* ------------------------------------------------------- distribution */

enum { DRAWS = 4000 };

/* p_k = softmax(logits / temperature) over the top_k largest (all: 0). */
static void expected_distribution(const float logits[V], int64_t top_k,
                                  float temperature, double p[V]) {
  int in_top[V];
  for (int k = 0; k < V; k++) {
    int above = 0; /* tokens ranked before k: larger, or equal and smaller */
    for (int j = 0; j < V; j++)
      above += logits[j] > logits[k] || (logits[j] == logits[k] && j < k);
    in_top[k] = top_k == 0 || above < top_k;
  }
  double top = logits[argmax(logits)], total = 0.0;
  for (int k = 0; k < V; k++) {
    p[k] = in_top[k] ? exp(((double)logits[k] - top) / temperature) : 0.0;
    total += p[k];
  }
  for (int k = 0; k < V; k++)
    p[k] /= total;
}

static void check_distribution(nnlib_model *m, int64_t top_k,
                               float temperature, int cached) {
  const int32_t prompt[3] = {6, 1, 8};
  float logits[V];
  logits_after(m, prompt, 3, logits);
  double p[V];
  expected_distribution(logits, top_k, temperature, p);
  int64_t seen[V] = {0};
  for (uint64_t seed = 1; seed <= DRAWS; seed++) {
    nnlib_generate_options o = options(seed, cached, top_k, temperature);
    int32_t token = -1;
    generate(m, prompt, 3, 1, &o, &token);
    seen[token]++;
  }
  double worst = 0.0;
  for (int k = 0; k < V; k++) {
    double f = (double)seen[k] / DRAWS;
    if (p[k] == 0.0) {
      assert_int_equal(seen[k], 0);
      continue;
    }
    double sigma = sqrt(p[k] * (1.0 - p[k]) / DRAWS);
    double z = fabs(f - p[k]) / sigma;
    worst = fmax(worst, z);
    if (!(z <= 5.0))
      fail_msg("top_k %lld, temperature %g, cache %d: token %d drawn %.4f, "
               "softmax %.4f (%.1f standard errors)",
               (long long)top_k, (double)temperature, cached, k, f, p[k], z);
  }
  print_message("  top_k %lld, temperature %.1f, cache %d: worst %.2f "
                "standard errors\n",
                (long long)top_k, (double)temperature, cached, worst);
}

static void test_first_token_distribution(void **state) {
  (void)state;
  nnlib_model *m = build(GPT_SPEC, 23);
  check_distribution(m, 0, 1.0f, 1);
  check_distribution(m, 0, 0.5f, 0);
  check_distribution(m, 3, 1.5f, 1);
  nnlib_model_free(m);
}

/* ---------------------------------------------------- model unchanged */

/* A model with dropout (so the model's generator matters), built twice
 * from one seed. Model a generates between a training forward pass and
 * the backward_output after it; model b does not. Everything after must
 * agree bit for bit. */
static void test_model_unchanged(void **state) {
  (void)state;
  const char *spec = "input:8,embedding:11:8,positional,"
                     "transformer:8:2:causal:dropout0.2,layernorm,linear:11";
  nnlib_model *a = build(spec, 24), *b = build(spec, 24);
  const int64_t xs[2] = {2, T}, gs[3] = {2, T, V};
  nnlib_tensor *x = NULL, *y = NULL, *dy = NULL;
  ASSERT_OK(nnlib_tensor_create_int32(&x, xs, 2));
  ASSERT_OK(nnlib_tensor_create_int32(&y, xs, 2));
  ASSERT_OK(nnlib_tensor_create(&dy, gs, 3));
  int32_t *xd = nnlib_tensor_get_data_int32(x),
          *yd = nnlib_tensor_get_data_int32(y);
  for (int i = 0; i < 2 * T; i++) {
    xd[i] = (i * 7 + 3) % V;
    yd[i] = (i * 5 + 1) % V;
  }
  uint32_t lcg = 99;
  ts_fill_uniform(nnlib_tensor_get_data(dy), 2 * T * V, -1.0f, 1.0f, &lcg);
  float *pa = NULL, *pb = NULL, *ga = NULL, *gb = NULL;
  int64_t count = 0;
  ASSERT_OK(nnlib_model_get_flat_params(a, &pa, &ga, &count));
  ASSERT_OK(nnlib_model_get_flat_params(b, &pb, &gb, &count));
  size_t bytes = (size_t)count * sizeof(float);

  const nnlib_tensor *out_a = NULL, *out_b = NULL;
  ASSERT_OK(nnlib_model_forward(a, x, &out_a));
  ASSERT_OK(nnlib_model_forward(b, x, &out_b));
  size_t out_bytes = (size_t)nnlib_tensor_get_size(out_a) * sizeof(float);
  float *saved = malloc(out_bytes);
  assert_non_null(saved);
  memcpy(saved, nnlib_tensor_get_data_const(out_a), out_bytes);

  const int32_t prompt[2] = {4, 4};
  int32_t tokens[LONG];
  for (int cached = 0; cached <= 1; cached++) {
    nnlib_generate_options o = options(3, cached, 0, 1.0f);
    generate(a, prompt, 2, LONG, &o, tokens);
  }
  assert_memory_equal(nnlib_tensor_get_data_const(out_a), saved, out_bytes);
  assert_memory_equal(pa, pb, bytes);

  ASSERT_OK(nnlib_model_backward_output(a, dy));
  ASSERT_OK(nnlib_model_backward_output(b, dy));
  assert_memory_equal(ga, gb, bytes);

  /* steps draw dropout masks from each model's generator */
  for (int s = 0; s < 2; s++) {
    float la = 0.0f, lb = 1.0f;
    ASSERT_OK(nnlib_model_step(a, x, y, &la));
    ASSERT_OK(nnlib_model_step(b, x, y, &lb));
    assert_true(la == lb);
    generate(a, prompt, 2, 5, NULL, tokens);
  }
  assert_memory_equal(pa, pb, bytes);
  assert_int_equal(nnlib_optimizer_get_step_count(nnlib_model_get_optimizer(a)),
                   2);

  free(saved);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_tensor_free(dy);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

/* ---------------------------------------------------------- bad inputs */

#define SENTINEL (-7)

/* Expects `want` from generate, with out left as it was. */
static void expect_fails(nnlib_status want, nnlib_model *m,
                         const int32_t *prompt, int64_t length, int64_t count,
                         const nnlib_generate_options *o) {
  int32_t out[4] = {SENTINEL, SENTINEL, SENTINEL, SENTINEL};
  ASSERT_STATUS(want, nnlib_model_generate(m, prompt, length, count, o, out));
  for (int i = 0; i < 4; i++)
    assert_int_equal(out[i], SENTINEL);
}

static nnlib_model *compiled(const char *spec) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile_graph(m, 1, NNLIB_LOSS_NONE, NULL, 1));
  return m;
}

static void test_bad_arguments(void **state) {
  (void)state;
  nnlib_model *m = build(GPT_SPEC, 25);
  const int32_t prompt[T + 1] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  nnlib_generate_options o = options(1, 1, 0, 1.0f);
  const nnlib_status bad = NNLIB_ERR_INVALID_ARGUMENT;

  expect_fails(bad, NULL, prompt, 2, 3, &o);
  expect_fails(bad, m, NULL, 2, 3, &o);
  expect_fails(bad, m, prompt, 0, 3, &o);
  expect_fails(bad, m, prompt, -1, 3, &o);
  expect_fails(bad, m, prompt, 2, -1, &o);
  ASSERT_STATUS(bad, nnlib_model_generate(m, prompt, 2, 3, &o, NULL));

  const float temperatures[4] = {0.0f, -1.0f, NAN, INFINITY};
  for (int i = 0; i < 4; i++) {
    nnlib_generate_options t = options(1, 1, 0, temperatures[i]);
    expect_fails(bad, m, prompt, 2, 3, &t);
  }
  nnlib_generate_options k = options(1, 1, -1, 1.0f);
  expect_fails(bad, m, prompt, 2, 3, &k);
  const int caches[2] = {2, -1};
  for (int i = 0; i < 2; i++) {
    nnlib_generate_options c = options(1, caches[i], 0, 1.0f);
    expect_fails(bad, m, prompt, 2, 3, &c);
  }
  nnlib_generate_options small = o;
  small.struct_size = 0;
  expect_fails(NNLIB_ERR_STRUCT_SIZE, m, prompt, 2, 3, &small);
  ASSERT_STATUS(bad, nnlib_generate_options_init(
                         (nnlib_generate_options *)NULL));

  /* a prompt longer than the context T */
  for (int cached = 0; cached <= 1; cached++) {
    nnlib_generate_options c = options(1, cached, 0, 1.0f);
    expect_fails(NNLIB_ERR_TOO_LARGE, m, prompt, T + 1, 3, &c);
    /* prompt ids out of range, first or last */
    int32_t ids[3] = {1, 2, 3};
    const int32_t wrong[2] = {-1, V};
    for (int w = 0; w < 2; w++)
      for (int at = 0; at < 3; at += 2) {
        ids[at] = wrong[w];
        expect_fails(NNLIB_ERR_OUT_OF_RANGE, m, ids, 3, 3, &c);
        expect_fails(NNLIB_ERR_OUT_OF_RANGE, m, ids, 3, 0, &c);
        ids[at] = at + 1;
      }
  }
  /* count 0 writes nothing; out may then be NULL */
  ASSERT_OK(nnlib_model_generate(m, prompt, 2, 0, &o, NULL));
  /* NULL options: the defaults */
  int32_t out[3];
  generate(m, prompt, 2, 3, NULL, out);
  nnlib_model_free(m);

  /* not compiled */
  nnlib_model *raw = NULL;
  ASSERT_OK(nnlib_model_create(&raw));
  ASSERT_OK(nnlib_model_add_spec(raw, GPT_SPEC));
  expect_fails(NNLIB_ERR_WRONG_STATE, raw, prompt, 2, 3, &o);
  nnlib_model_free(raw);

  /* not language models: float features in; logits not [T, V]; a layer
   * that cannot decode (concat); attention without the causal mask with
   * the cache (a position would see later ones; without the cache the
   * window runs whole, which is allowed) */
  const char *not_lm[3] = {
      "input:8,dense:16,relu,dense:11",
      "input:8,embedding:11:4,flatten,dense:11",
      ("ids=input:8,e=embedding:11:4,a=linear:4(e),b=linear:4(e),"
       "concat:-1(a,b),linear:11"),
  };
  for (int i = 0; i < 3; i++) {
    nnlib_model *n = compiled(not_lm[i]);
    expect_fails(NNLIB_ERR_UNSUPPORTED, n, prompt, 2, 3, &o);
    print_message("  %s: %s\n", not_lm[i], nnlib_last_error_message());
    nnlib_model_free(n);
  }
  nnlib_model *full = compiled("input:8,embedding:11:8,positional,"
                               "transformer:8:2,layernorm,linear:11");
  expect_fails(NNLIB_ERR_UNSUPPORTED, full, prompt, 2, 3, &o);
  print_message("  non-causal with the cache: %s\n",
                nnlib_last_error_message());
  nnlib_generate_options plain = options(1, 0, 0, 1.0f);
  generate(full, prompt, 2, 3, &plain, out);
  nnlib_model_free(full);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_greedy_gpt),
      cmocka_unit_test(test_greedy_lstm),
      cmocka_unit_test(test_seeds_gpt),
      cmocka_unit_test(test_seeds_lstm),
      cmocka_unit_test(test_first_token_distribution),
      cmocka_unit_test(test_model_unchanged),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
