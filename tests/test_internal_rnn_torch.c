/* rnn, lstm and gru against PyTorch: tests/data/torch_rnn.txt holds, for a
 * dozen cases, inputs, weights, initial states and an output gradient dY
 * with PyTorch's forward output, input gradient and parameter gradients
 * (computed in float64 by tests/make_torch_rnn_fixtures.py, no PyTorch
 * needed here). nnlib runs the same model through the public forward, then
 * each layer's backward with dY (internal: the first layer's dX is no
 * public quantity), and every tensor must match within 1e-4 normwise
 * relative error: |a - b| / |b| over the tensor. */
#include "nnlib_internal.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAR 1e-4
#define MAX_TENSORS 32

typedef struct named_tensor {
  char name[48];
  int64_t count;
  float *values; /* float32: exact for inputs, rounded for results */
  double *exact; /* as read */
} named_tensor;

typedef struct torch_case {
  char name[64], kind[8], act[8];
  int64_t layers, batch, steps, features, hidden, bias, sequences, rows;
  size_t tensor_count;
  named_tensor tensors[MAX_TENSORS];
} torch_case;

/* ------------------------------------------------------------ reading */

static char *read_text(void) {
  const char *dir = getenv("NNLIB_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/torch_rnn.txt",
           dir != NULL ? dir : ".");
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot open %s (set NNLIB_SOURCE_DIR)", path);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)size + 1);
  assert_non_null(text);
  assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
  text[size] = '\0';
  fclose(f);
  return text;
}

/* The next whitespace-separated word, skipping '#' comment lines. */
static char *next_word(char **at) {
  char *p = *at;
  for (;;) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
      p++;
    if (*p != '#')
      break;
    while (*p != '\0' && *p != '\n')
      p++;
  }
  if (*p == '\0')
    return NULL;
  char *word = p;
  while (*p != '\0' && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
    p++;
  if (*p != '\0')
    *p++ = '\0';
  *at = p;
  return word;
}

static int64_t next_int(char **at) {
  char *w = next_word(at);
  assert_non_null(w);
  return strtoll(w, NULL, 10);
}

static void read_tensor(char **at, named_tensor *t) {
  snprintf(t->name, sizeof t->name, "%s", next_word(at));
  t->count = next_int(at);
  t->values = malloc((size_t)t->count * sizeof(float));
  t->exact = malloc((size_t)t->count * sizeof(double));
  for (int64_t i = 0; i < t->count; i++) {
    t->exact[i] = strtod(next_word(at), NULL);
    t->values[i] = (float)t->exact[i];
  }
}

static int64_t *field(torch_case *c, const char *key) {
  struct { const char *key; int64_t *v; } map[] = {
      {"layers", &c->layers},     {"batch", &c->batch},
      {"steps", &c->steps},       {"features", &c->features},
      {"hidden", &c->hidden},     {"bias", &c->bias},
      {"sequences", &c->sequences}, {"state_rows", &c->rows}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(map[i].key, key) == 0)
      return map[i].v;
  return NULL;
}

/* Reads one case; false at the end of the file. */
static bool read_case(char **at, torch_case *c) {
  memset(c, 0, sizeof *c);
  char *w = next_word(at);
  if (w == NULL)
    return false;
  assert_string_equal(w, "case");
  snprintf(c->name, sizeof c->name, "%s", next_word(at));
  while ((w = next_word(at)) != NULL && strcmp(w, "end") != 0) {
    if (strcmp(w, "kind") == 0) {
      snprintf(c->kind, sizeof c->kind, "%s", next_word(at));
    } else if (strcmp(w, "nonlinearity") == 0) {
      snprintf(c->act, sizeof c->act, "%s", next_word(at));
    } else if (strcmp(w, "tensor") == 0) {
      assert_true(c->tensor_count < MAX_TENSORS);
      read_tensor(at, &c->tensors[c->tensor_count++]);
    } else {
      int64_t *v = field(c, w);
      if (v == NULL)
        fail_msg("%s: unknown key \"%s\"", c->name, w);
      *v = next_int(at);
    }
  }
  return true;
}

static void free_case(torch_case *c) {
  for (size_t i = 0; i < c->tensor_count; i++) {
    free(c->tensors[i].values);
    free(c->tensors[i].exact);
  }
}

static const named_tensor *tensor(const torch_case *c, const char *name) {
  for (size_t i = 0; i < c->tensor_count; i++)
    if (strcmp(c->tensors[i].name, name) == 0)
      return &c->tensors[i];
  return NULL;
}

static const named_tensor *need(const torch_case *c, const char *name) {
  const named_tensor *t = tensor(c, name);
  if (t == NULL)
    fail_msg("%s: no tensor %s", c->name, name);
  return t;
}

/* ------------------------------------------------------------ running */

static nnlib_layer *make_layer(const torch_case *c, int64_t sequences) {
  nnlib_layer *l = NULL;
  int bias = (int)c->bias, seq = (int)sequences;
  if (strcmp(c->kind, "rnn") == 0)
    ASSERT_OK(nnlib_rnn_create(&l, 0, c->hidden,
                               strcmp(c->act, "relu") == 0 ? NNLIB_ACT_RELU
                                                           : NNLIB_ACT_TANH,
                               bias, seq));
  else if (strcmp(c->kind, "lstm") == 0)
    ASSERT_OK(nnlib_lstm_create(&l, 0, c->hidden, bias, seq));
  else
    ASSERT_OK(nnlib_gru_create(&l, 0, c->hidden, bias, seq));
  return l;
}

static const char *const param_names[4] = {"weight_ih", "weight_hh",
                                           "bias_ih", "bias_hh"};

static nnlib_model *build(const torch_case *c) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  for (int64_t i = 0; i < c->layers; i++)
    ASSERT_OK(nnlib_model_add(
        m, make_layer(c, i + 1 < c->layers ? 1 : c->sequences)));
  int64_t in[2] = {c->steps, c->features};
  ASSERT_OK(nnlib_model_compile(m, in, 2, c->batch, NNLIB_LOSS_MSE, NULL, 1));
  for (int64_t i = 0; i < c->layers; i++) {
    nnlib_layer *l = nnlib_model_get_layer(m, (size_t)i);
    for (size_t p = 0; p < nnlib_layer_get_param_tensor_count(l); p++) {
      char name[48];
      snprintf(name, sizeof name, "%s_l%lld", param_names[p], (long long)i);
      assert_string_equal(nnlib_layer_get_param_name(l, p), param_names[p]);
      const named_tensor *t = need(c, name);
      nnlib_tensor *v;
      ASSERT_OK(nnlib_layer_get_param(l, p, &v, NULL));
      assert_int_equal(nnlib_tensor_get_size(v), t->count);
      memcpy(nnlib_tensor_get_data(v), t->values,
             (size_t)t->count * sizeof(float));
    }
  }
  if (c->rows > 0) {
    const named_tensor *c0 = tensor(c, "c0");
    ASSERT_OK(nnlib_recurrent_set_initial_state(
        nnlib_model_get_layer(m, 0), need(c, "h0")->values,
        c0 != NULL ? c0->values : NULL, c->rows));
  }
  return m;
}

/* Normwise relative error of got against the reference. */
static double compare(const torch_case *c, const char *what, const float *got,
                      const named_tensor *want, int64_t count) {
  assert_int_equal(count, want->count);
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < count; i++) {
    double d = (double)got[i] - want->exact[i];
    diff += d * d;
    norm += want->exact[i] * want->exact[i];
  }
  double err = sqrt(diff) / (norm > 0.0 ? sqrt(norm) : 1.0);
  if (!(err <= BAR))
    fail_msg("%s: %s differs from PyTorch by %.3g (relative)", c->name, what,
             err);
  return err;
}

/* Backward through every layer from the output gradient dY; returns dX of
 * the model's input (caller frees). */
static float *backward_all(nnlib_model *m, const torch_case *c,
                           const float *x) {
  int64_t n = c->batch;
  const named_tensor *dy_ref = need(c, "dy");
  float *g = malloc((size_t)dy_ref->count * sizeof(float));
  memcpy(g, dy_ref->values, (size_t)dy_ref->count * sizeof(float));
  for (size_t i = m->layer_count; i-- > 0;) {
    nnlib_layer *l = m->layers[i];
    /* a chain: layer i is node i + 1, reading node i (node 0: the input) */
    const float *in = i == 0 ? x : m->bufs.acts[i];
    float *dx = malloc((size_t)(n * l->in_size) * sizeof(float));
    nnlib__run run = {true, m->bufs.workspace[i + 1], &m->rng, false, 0.0f,
                      0, 0, NULL, false};
    ASSERT_OK(l->ops->backward(l, &run, in, m->bufs.acts[i + 1], g, dx, n));
    free(g);
    g = dx;
  }
  return g;
}

static double check_case(const torch_case *c) {
  nnlib_model *m = build(c);
  const named_tensor *x = need(c, "x");
  int64_t shape[3] = {c->batch, c->steps, c->features};
  nnlib_tensor *X;
  ASSERT_OK(nnlib_tensor_wrap(&X, x->values, shape, 3));
  const nnlib_tensor *Y;
  ASSERT_OK(nnlib_model_forward(m, X, &Y));
  double worst = compare(c, "y", nnlib_tensor_get_data_const(Y), need(c, "y"),
                         nnlib_tensor_get_size(Y));
  float *dx = backward_all(m, c, x->values);
  double e = compare(c, "dx", dx, need(c, "dx"), x->count);
  worst = e > worst ? e : worst;
  for (size_t i = 0; i < m->layer_count; i++) {
    nnlib_layer *l = m->layers[i];
    for (size_t p = 0; p < l->param_count; p++) {
      char name[64];
      snprintf(name, sizeof name, "grad_%s_l%zu", param_names[p], i);
      e = compare(c, name, l->params[p].grad.data, need(c, name),
                  l->params[p].size);
      worst = e > worst ? e : worst;
    }
  }
  free(dx);
  nnlib_tensor_free(X);
  nnlib_model_free(m);
  return worst;
}

static void test_agrees_with_pytorch(void **s) {
  (void)s;
  char *text = read_text(), *at = text;
  torch_case c;
  int cases = 0;
  double worst = 0.0;
  while (read_case(&at, &c)) {
    double e = check_case(&c);
    print_message("  %-28s worst relative error %.2e\n", c.name, e);
    worst = e > worst ? e : worst;
    free_case(&c);
    cases++;
  }
  print_message("  %d cases, worst %.2e (bar %.0e)\n", cases, worst, BAR);
  assert_true(cases >= 12);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_agrees_with_pytorch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
