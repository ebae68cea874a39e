/* Layer normalisation over the last axis (nnlib_layernorm_create):
 *  - forward against a double-precision naive loop, and backward (dx,
 *    dgamma, dbeta) against central finite differences of that loop's loss
 *    sum(y g), for samples of rank 1, 2 and 3, with and without affine;
 *  - a call with run->steps = S (decoding) normalises n S rows and touches
 *    nothing else;
 *  - PyTorch (torch.nn.LayerNorm in float64, tests/fixtures/
 *    torch_text_layers.txt from tests/make_torch_text_layer_fixtures.py):
 *    y, the loss, dx and the parameter gradients within 1e-5 relative;
 *  - fused SGD, the initial gamma and beta, descriptions, model-file
 *    configs and model files round trip, bad arguments and bad configs
 *    with their exact statuses.
 * Internal: it runs the layer's forward and backward by themselves. */
#include "nnlib_internal.h"
#include "fixtures.h"
#include "test_support.h"
#include "layer_harness.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BAR 1e-5     /* PyTorch's answer, as asked of every text layer */
#define REF_BAR 1e-6 /* the naive loop and differences (measured: 1.1e-7) */

/* ------------------------------------------------------------ helpers */

/* param(m, index, grad): layer 0's parameter `index` or its gradient */
static float *param(nnlib_model *m, size_t index, bool grad) {
  return lh_param(m, 0, index, grad);
}

/* ------------------------------------------------ the naive reference */

/* y = (x - mean) / sqrt(var + eps) gamma + beta per row of d, in double,
 * the biased variance; gamma and beta NULL: neither. */
static void ref_forward(const double *x, const double *gamma,
                        const double *beta, double *y, int64_t rows,
                        int64_t d, double eps) {
  for (int64_t r = 0; r < rows; r++) {
    const double *xr = x + r * d;
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < d; i++)
      mean += xr[i] / (double)d;
    for (int64_t i = 0; i < d; i++)
      var += (xr[i] - mean) * (xr[i] - mean) / (double)d;
    for (int64_t i = 0; i < d; i++) {
      double h = (xr[i] - mean) / sqrt(var + eps);
      y[r * d + i] = gamma != NULL ? h * gamma[i] + beta[i] : h;
    }
  }
}

typedef struct ref_case {
  double *x, *gamma, *beta, *g;
  int64_t rows, d;
  double eps;
} ref_case;

static double ref_loss(const ref_case *c) {
  double *y = malloc((size_t)(c->rows * c->d) * sizeof *y);
  assert_non_null(y);
  ref_forward(c->x, c->gamma, c->beta, y, c->rows, c->d, c->eps);
  double loss = 0.0;
  for (int64_t i = 0; i < c->rows * c->d; i++)
    loss += y[i] * c->g[i];
  free(y);
  return loss;
}

/* dL/dv[i] by central differences of the double reference. */
static void finite_diff(ref_case *c, double *v, int64_t count, double *out) {
  for (int64_t i = 0; i < count; i++) {
    double keep = v[i], h = 1e-5; /* absolute: what matters is the spread */
    v[i] = keep + h;
    double up = ref_loss(c);
    v[i] = keep - h;
    double down = ref_loss(c);
    v[i] = keep;
    out[i] = (up - down) / (2.0 * h);
  }
}

/* ------------------------------------ naive loops and finite differences */

static void check_against_reference(const int64_t *shape, size_t rank,
                                    int64_t n, int affine, float eps,
                                    float shift) {
  nnlib_layer *l;
  ASSERT_OK(nnlib_layernorm_create(&l, eps, affine));
  nnlib_model *m = lh_one_layer(l, shape, rank, n);
  int64_t d = shape[rank - 1], size = n;
  for (size_t i = 0; i < rank; i++)
    size *= shape[i];
  int64_t rows = size / d;
  uint32_t seed = 7u + (uint32_t)rank * 31u + (uint32_t)affine;
  float *x = malloc((size_t)size * sizeof *x);
  float *g = malloc((size_t)size * sizeof *g);
  float *y = malloc((size_t)size * sizeof *y);
  float *dx = malloc((size_t)size * sizeof *dx);
  ts_fill_uniform(x, size, -2.0f + shift, 2.0f + shift, &seed);
  ts_fill_uniform(g, size, -1.0f, 1.0f, &seed);
  if (affine) {
    ts_fill_uniform(param(m, 0, false), d, 0.5f, 1.5f, &seed);
    ts_fill_uniform(param(m, 1, false), d, -0.5f, 0.5f, &seed);
  }
  nnlib__run run = lh_run(m, 0);
  ASSERT_OK(l->ops->forward(l, &run, x, y, n));

  ref_case c = {lh_to_double(x, size), NULL, NULL, lh_to_double(g, size), rows, d,
                (double)eps};
  if (affine) {
    c.gamma = lh_to_double(param(m, 0, false), d);
    c.beta = lh_to_double(param(m, 1, false), d);
  }
  double *want = malloc((size_t)size * sizeof *want);
  ref_forward(c.x, c.gamma, c.beta, want, rows, d, c.eps);
  char what[96];
  snprintf(what, sizeof what, "rank %zu affine %d shift %g: y", rank, affine,
           (double)shift);
  lh_expect_rel(what, y, want, size, REF_BAR);

  float *dy = malloc((size_t)size * sizeof *dy);
  memcpy(dy, g, (size_t)size * sizeof *dy);
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dx, n));
  finite_diff(&c, c.x, size, want);
  snprintf(what, sizeof what, "rank %zu affine %d: dx vs differences", rank,
           affine);
  lh_expect_rel(what, dx, want, size, REF_BAR);
  if (affine) {
    finite_diff(&c, c.gamma, d, want);
    lh_expect_rel("  dgamma vs differences", param(m, 0, true), want, d, REF_BAR);
    finite_diff(&c, c.beta, d, want);
    lh_expect_rel("  dbeta vs differences", param(m, 1, true), want, d, REF_BAR);
    free(c.gamma);
    free(c.beta);
  }
  free(c.x);
  free(c.g);
  free(want);
  free(x);
  free(g);
  free(y);
  free(dx);
  free(dy);
  nnlib_model_free(m);
}

static void test_reference_rank1(void **s) {
  (void)s;
  int64_t shape[1] = {7};
  check_against_reference(shape, 1, 3, 1, 1e-5f, 0.0f);
  check_against_reference(shape, 1, 3, 0, 1e-5f, 0.0f);
}

static void test_reference_rank2(void **s) {
  (void)s;
  int64_t shape[2] = {3, 5};
  check_against_reference(shape, 2, 2, 1, 1e-5f, 0.0f);
  check_against_reference(shape, 2, 2, 0, 1e-3f, 0.0f);
  /* a mean far from 0: the variance must not cancel away */
  check_against_reference(shape, 2, 2, 1, 1e-5f, 300.0f);
  check_against_reference(shape, 2, 2, 0, 1e-5f, -5000.0f);
}

static void test_reference_rank3(void **s) {
  (void)s;
  int64_t shape[3] = {2, 3, 4};
  check_against_reference(shape, 3, 2, 1, 1e-5f, 0.0f);
  check_against_reference(shape, 3, 2, 0, 0.5f, 1.0f);
}

/* A constant row has variance 0: y = 0 (times gamma, plus beta), dx from
 * r = 1/sqrt(eps), all finite. */
static void test_constant_row(void **s) {
  (void)s;
  nnlib_layer *l;
  ASSERT_OK(nnlib_layernorm_create(&l, 1e-5f, 1));
  int64_t shape[1] = {4};
  nnlib_model *m = lh_one_layer(l, shape, 1, 1);
  float x[4] = {3.0f, 3.0f, 3.0f, 3.0f}, y[4], dy[4] = {1, -2, 0.5f, 4},
        dx[4];
  param(m, 1, false)[2] = 0.25f;
  nnlib__run run = lh_run(m, 0);
  ASSERT_OK(l->ops->forward(l, &run, x, y, 1));
  for (int i = 0; i < 4; i++)
    assert_true(y[i] == (i == 2 ? 0.25f : 0.0f));
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dx, 1));
  /* xh = 0: dx = r (dy - mean dy) */
  float r = (float)(1.0 / sqrt(1e-5));
  for (int i = 0; i < 4; i++)
    ASSERT_NEAR(dx[i], r * (dy[i] - 0.875f), 1e-6 * r);
  nnlib_model_free(m);
}

/* ----------------------------------------------------------- decoding */

/* Planned [T, (H,) D]; a call with steps S holds n S positions, compact:
 * exactly those rows are normalised, and nothing past them is written. */
static void check_steps(const int64_t *shape, size_t rank, int64_t steps) {
  nnlib_layer *l;
  ASSERT_OK(nnlib_layernorm_create(&l, 1e-5f, 1));
  int64_t n = 3;
  nnlib_model *m = lh_one_layer(l, shape, rank, n);
  int64_t d = shape[rank - 1], per_position = 1;
  for (size_t i = 1; i < rank; i++)
    per_position *= shape[i];
  int64_t used = n * steps * per_position, full = n * shape[0] * per_position;
  uint32_t seed = 99u;
  ts_fill_uniform(param(m, 0, false), d, 0.5f, 1.5f, &seed);
  ts_fill_uniform(param(m, 1, false), d, -0.5f, 0.5f, &seed);
  float *x = malloc((size_t)full * sizeof *x);
  float *y = malloc((size_t)full * sizeof *y);
  float *dy = malloc((size_t)full * sizeof *dy);
  float *dx = malloc((size_t)full * sizeof *dx);
  ts_fill_uniform(x, full, -2.0f, 2.0f, &seed);
  ts_fill_uniform(dy, full, -1.0f, 1.0f, &seed);
  for (int64_t i = 0; i < full; i++)
    y[i] = dx[i] = -7.0f; /* sentinels */
  nnlib__run run = lh_run(m, steps);
  ASSERT_OK(l->ops->forward(l, &run, x, y, n));
  double *xd = lh_to_double(x, used), *want = malloc((size_t)used * sizeof *want);
  double *gamma = lh_to_double(param(m, 0, false), d);
  double *beta = lh_to_double(param(m, 1, false), d);
  ref_forward(xd, gamma, beta, want, used / d, d, 1e-5);
  lh_expect_rel("steps: y of the rows held", y, want, used, BAR);
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dx, n));
  for (int64_t i = used; i < full; i++) {
    assert_true(y[i] == -7.0f);
    assert_true(dx[i] == -7.0f);
  }
  /* the same rows through a plain call of used / d rows of [D] samples */
  nnlib_layer *flat;
  ASSERT_OK(nnlib_layernorm_create(&flat, 1e-5f, 1));
  nnlib_model *mf = lh_one_layer(flat, &d, 1, used / d);
  memcpy(param(mf, 0, false), param(m, 0, false), (size_t)d * sizeof(float));
  memcpy(param(mf, 1, false), param(m, 1, false), (size_t)d * sizeof(float));
  float *y2 = malloc((size_t)used * sizeof *y2);
  float *dx2 = malloc((size_t)used * sizeof *dx2);
  nnlib__run plain = lh_run(mf, 0);
  ASSERT_OK(flat->ops->forward(flat, &plain, x, y2, used / d));
  ASSERT_OK(flat->ops->backward(flat, &plain, x, y2, dy, dx2, used / d));
  assert_memory_equal(y, y2, (size_t)used * sizeof(float));
  assert_memory_equal(dx, dx2, (size_t)used * sizeof(float));
  assert_memory_equal(param(m, 0, true), param(mf, 0, true),
                      (size_t)d * sizeof(float));
  free(y2);
  free(dx2);
  nnlib_model_free(mf);
  free(xd);
  free(want);
  free(gamma);
  free(beta);
  free(x);
  free(y);
  free(dy);
  free(dx);
  nnlib_model_free(m);
}

static void test_steps(void **s) {
  (void)s;
  int64_t td[2] = {5, 6}, thd[3] = {4, 2, 3};
  check_steps(td, 2, 2);
  check_steps(td, 2, 1);
  check_steps(thd, 3, 3);
}

/* ------------------------------------------------------------ PyTorch */

static void check_torch_case(const fx_case *c) {
  const fx_tensor *x = fx_need(c, "x"), *g = fx_need(c, "g");
  int affine = (int)fx_int(c, "affine");
  nnlib_layer *l;
  ASSERT_OK(nnlib_layernorm_create(&l, fx_float(c, "eps"), affine));
  int64_t n = x->dims[0];
  nnlib_model *m = lh_one_layer(l, x->dims + 1, x->rank - 1, n);
  assert_int_equal(nnlib_layer_get_param_tensor_count(l), affine ? 2 : 0);
  if (affine) {
    assert_string_equal(nnlib_layer_get_param_name(l, 0), "weight");
    assert_string_equal(nnlib_layer_get_param_name(l, 1), "bias");
    memcpy(param(m, 0, false), fx_need(c, "weight")->data,
           (size_t)fx_need(c, "weight")->size * sizeof(float));
    memcpy(param(m, 1, false), fx_need(c, "bias")->data,
           (size_t)fx_need(c, "bias")->size * sizeof(float));
  }
  /* through the model's forward pass */
  nnlib__batch batch;
  memset(&batch, 0, sizeof batch);
  batch.x[0] = x->data;
  batch.n = n;
  batch.training = true;
  const float *y;
  ASSERT_OK(nnlib__forward(m, &m->bufs, &batch, &m->rng, &y));
  char what[120];
  double *want = lh_to_double(fx_need(c, "y")->data, x->size);
  snprintf(what, sizeof what, "%s y", c->name);
  lh_expect_rel(what, y, want, x->size, BAR);
  free(want);
  double loss = 0.0;
  for (int64_t i = 0; i < x->size; i++)
    loss += (double)y[i] * g->data[i];
  float lossf = (float)loss;
  double want_loss = fx_need(c, "loss")->data[0];
  snprintf(what, sizeof what, "%s loss", c->name);
  lh_expect_rel(what, &lossf, &want_loss, 1, BAR);

  float *dy = malloc((size_t)g->size * sizeof *dy);
  float *dx = malloc((size_t)x->size * sizeof *dx);
  memcpy(dy, g->data, (size_t)g->size * sizeof *dy);
  nnlib__run run = lh_run(m, 0);
  ASSERT_OK(l->ops->backward(l, &run, x->data, y, dy, dx, n));
  const char *names[3] = {"dx", "dweight", "dbias"};
  const float *got[3] = {dx, affine ? param(m, 0, true) : NULL,
                         affine ? param(m, 1, true) : NULL};
  for (int k = 0; k < (affine ? 3 : 1); k++) {
    const fx_tensor *t = fx_need(c, names[k]);
    want = lh_to_double(t->data, t->size);
    snprintf(what, sizeof what, "%s %s", c->name, names[k]);
    lh_expect_rel(what, got[k], want, t->size, BAR);
    free(want);
  }
  free(dy);
  free(dx);
  nnlib_model_free(m);
}

static void test_torch(void **s) {
  (void)s;
  char version[64];
  FILE *f = fx_open("torch_text_layers.txt", version);
  print_message("  fixtures from torch %s\n", version);
  fx_case c;
  int cases = 0;
  while (fx_read_case(f, &c)) {
    if (strcmp(fx_value(&c, "kind"), "layernorm") == 0) {
      check_torch_case(&c);
      cases++;
    }
    fx_free_case(&c);
  }
  fclose(f);
  assert_int_equal(cases, 3);
}

/* ----------------------------------------------- init and fused SGD */

static void test_init_and_fused_sgd(void **s) {
  (void)s;
  nnlib_layer *l;
  ASSERT_OK(nnlib_layernorm_create(&l, 1e-5f, 1));
  int64_t shape[2] = {2, 4};
  nnlib_model *m = lh_one_layer(l, shape, 2, 2);
  assert_int_equal(nnlib_layer_get_kind(l), NNLIB_LAYER_LAYERNORM);
  assert_string_equal(nnlib_layer_get_name(l), "layernorm");
  for (int i = 0; i < 4; i++) {
    assert_true(param(m, 0, false)[i] == 1.0f);
    assert_true(param(m, 1, false)[i] == 0.0f);
  }
  uint32_t seed = 5u;
  float x[16], y[16], dy[16], dx[16], dx_fused[16], gamma[4], beta[4];
  ts_fill_uniform(x, 16, -1.0f, 1.0f, &seed);
  ts_fill_uniform(param(m, 0, false), 4, 0.5f, 1.5f, &seed);
  ts_fill_uniform(param(m, 1, false), 4, -0.5f, 0.5f, &seed);
  memcpy(gamma, param(m, 0, false), sizeof gamma);
  memcpy(beta, param(m, 1, false), sizeof beta);
  nnlib__run run = lh_run(m, 0);
  ASSERT_OK(l->ops->forward(l, &run, x, y, 2));
  ts_fill_uniform(dy, 16, -1.0f, 1.0f, &seed);
  float dy_keep[16];
  memcpy(dy_keep, dy, sizeof dy);
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy, dx, 2));
  float dgamma[4], dbeta[4];
  memcpy(dgamma, param(m, 0, true), sizeof dgamma);
  memcpy(dbeta, param(m, 1, true), sizeof dbeta);
  /* fused: the same dx (read with the old gamma), then p -= lr dp */
  run.sgd_fused = true;
  run.sgd_lr = 0.5f;
  ASSERT_OK(l->ops->backward(l, &run, x, y, dy_keep, dx_fused, 2));
  assert_memory_equal(dx, dx_fused, sizeof dx);
  for (int i = 0; i < 4; i++) {
    assert_true(param(m, 0, false)[i] == gamma[i] - 0.5f * dgamma[i]);
    assert_true(param(m, 1, false)[i] == beta[i] - 0.5f * dbeta[i]);
  }
  nnlib_model_free(m);
}

/* ------------------------------------------ descriptions and configs */

static void test_descriptions(void **s) {
  (void)s;
  const char *const items[][2] = {
      {"layernorm", "layernorm"},
      {"layernorm:1e-5", "layernorm"},
      {"layernorm:0.00001", "layernorm"},
      {"layernorm:0.001", "layernorm:0.001"},
      {"layernorm:1e-06", "layernorm:1e-06"},
      {"layernorm:noaffine", "layernorm:noaffine"},
      {"layernorm:2.5e-3:noaffine", "layernorm:0.0025:noaffine"},
      {"layernorm:1e-5:noaffine", "layernorm:noaffine"},
  };
  ts_check_spec_items(items, sizeof items / sizeof items[0]);
  const char *const bad[][2] = {
      {"layernorm:0", "layernorm"},
      {"layernorm:-1e-5", "layernorm"},
      {"layernorm:abc", "not a finite decimal number"},
      {"layernorm:1e99", "not a finite decimal number"},
      {"layernorm:noaffine:1e-3", "at most"},
      {"layernorm:1e-3:1e-3", "at most"},
      {"layernorm:1:2:3", "layernorm"},
  };
  ts_check_spec_errors(bad, sizeof bad / sizeof bad[0]);
}

/* An eps that no shorter decimal gives back prints so that it parses to
 * the same bits. */
static void test_description_eps_bits(void **s) {
  (void)s;
  const float values[] = {1e-5f, 3.3333333e-4f, nextafterf(1e-5f, 1.0f),
                          FLT_MIN, 0.1f, 7.0f};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    nnlib_model *m = NULL;
    nnlib_layer *l;
    ASSERT_OK(nnlib_model_create(&m));
    ASSERT_OK(nnlib_layernorm_create(&l, values[i], 0));
    ASSERT_OK(nnlib_model_add(m, l));
    char text[128];
    size_t needed;
    ASSERT_OK(nnlib_model_get_spec(m, text, sizeof text, &needed));
    nnlib_model *back = NULL;
    ASSERT_OK(nnlib_model_create(&back));
    ASSERT_OK(nnlib_model_add_spec(back, text));
    const nnlib__layer_codec *codec = nnlib__codec_for_kind(
        NNLIB_LAYER_LAYERNORM);
    unsigned char a[16], b[16];
    nnlib__writer wa = {a, 0, sizeof a}, wb = {b, 0, sizeof b};
    codec->write_config(m->layers[0], &wa);
    codec->write_config(back->layers[0], &wb);
    assert_int_equal(wa.size, 8);
    assert_int_equal(wb.size, 8);
    if (memcmp(a, b, 8) != 0)
      fail_msg("eps %.9g printed as \"%s\" does not come back", (double)values[i],
               text);
    nnlib_model_free(m);
    nnlib_model_free(back);
  }
}

static nnlib_status read_config(const unsigned char *bytes, size_t size,
                                nnlib_layer **out) {
  nnlib__reader r = {bytes, size, "layernorm config"};
  *out = NULL;
  return nnlib__codec_for_kind(NNLIB_LAYER_LAYERNORM)->read_config(&r, out);
}

static void put_config(unsigned char out[8], float eps, uint32_t affine) {
  nnlib__writer w = {out, 0, 8};
  nnlib__put_f32(&w, eps);
  nnlib__put_u32(&w, affine);
  assert_int_equal(w.size, 8);
}

static void test_configs(void **s) {
  (void)s;
  const nnlib__layer_codec *codec = nnlib__codec_for_kind(NNLIB_LAYER_LAYERNORM);
  assert_non_null(codec);
  assert_ptr_equal(codec, nnlib__codec_for_name("layernorm", 9));
  const float eps[3] = {1e-5f, 1e-3f, 3.0f};
  for (int k = 0; k < 6; k++) {
    nnlib_layer *l, *back;
    ASSERT_OK(nnlib_layernorm_create(&l, eps[k % 3], k / 3));
    unsigned char bytes[16], again[16];
    nnlib__writer w = {bytes, 0, sizeof bytes};
    codec->write_config(l, &w);
    assert_int_equal(w.size, 8);
    ASSERT_OK(read_config(bytes, w.size, &back));
    nnlib__writer w2 = {again, 0, sizeof again};
    codec->write_config(back, &w2);
    assert_int_equal(w2.size, 8);
    assert_memory_equal(bytes, again, 8);
    assert_int_equal(nnlib_layer_get_kind(back), NNLIB_LAYER_LAYERNORM);
    nnlib_layer_free(l);
    nnlib_layer_free(back);
  }
  const float bad_eps[] = {0.0f, -0.0f, -1e-5f, NAN, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof bad_eps / sizeof bad_eps[0]; i++) {
    unsigned char bytes[8];
    nnlib_layer *l;
    put_config(bytes, bad_eps[i], 1);
    ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(bytes, 8, &l));
    assert_null(l);
  }
  unsigned char bytes[8];
  nnlib_layer *l;
  put_config(bytes, 1e-5f, 2);
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(bytes, 8, &l));
  assert_null(l);
  put_config(bytes, 1e-5f, 0xffffffffu);
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(bytes, 8, &l));
  put_config(bytes, 1e-5f, 1);
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(bytes, 7, &l));
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, read_config(bytes, 3, &l));
}

static void test_bad_arguments(void **s) {
  (void)s;
  nnlib_layer *l = (nnlib_layer *)&l;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_layernorm_create(NULL, 1e-5f, 1));
  const float bad_eps[] = {0.0f, -0.0f, -1e-5f, NAN, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof bad_eps / sizeof bad_eps[0]; i++) {
    l = (nnlib_layer *)&l;
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                  nnlib_layernorm_create(&l, bad_eps[i], 1));
    assert_null(l);
  }
  ts_expect_message("layernorm: eps");
  const int bad_affine[] = {-1, 2, 100};
  for (size_t i = 0; i < 3; i++) {
    l = (nnlib_layer *)&l;
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                  nnlib_layernorm_create(&l, 1e-5f, bad_affine[i]));
    assert_null(l);
  }
  ts_expect_message("with_affine is 100");
  ASSERT_OK(nnlib_layernorm_create(&l, FLT_MIN, 0));
  nnlib_layer_free(l);
  ASSERT_OK(nnlib_layernorm_create(&l, FLT_MAX, 1));
  nnlib_layer_free(l);
}

/* A layernorm model saved and loaded: the same description, configs and
 * predictions; a training step changes gamma and beta. */
static void test_model_file(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "layernorm:0.001,layernorm:noaffine"));
  nnlib_optimizer *opt;
  ASSERT_OK(nnlib_sgd_create(&opt, 0.1f, 0.0f, 0, 0.0f));
  int64_t shape[2] = {3, 4};
  ASSERT_OK(nnlib_model_compile(m, shape, 2, 2, NNLIB_LOSS_MSE, opt, 3));
  int64_t count = 0;
  ASSERT_OK(nnlib_model_get_param_count(m, &count));
  assert_int_equal(count, 8);
  uint32_t seed = 11u;
  float xv[24], tv[24];
  ts_fill_uniform(xv, 24, -1.0f, 1.0f, &seed);
  ts_fill_uniform(tv, 24, -1.0f, 1.0f, &seed);
  int64_t dims[3] = {2, 3, 4};
  nnlib_tensor *x, *t, *p1, *p2;
  ASSERT_OK(nnlib_tensor_wrap(&x, xv, dims, 3));
  ASSERT_OK(nnlib_tensor_wrap(&t, tv, dims, 3));
  ASSERT_OK(nnlib_tensor_create(&p1, dims, 3));
  ASSERT_OK(nnlib_tensor_create(&p2, dims, 3));
  float loss;
  ASSERT_OK(nnlib_model_step(m, x, t, &loss));
  assert_true(param(m, 0, false)[0] != 1.0f); /* gamma moved */
  ASSERT_OK(nnlib_model_predict(m, x, p1));
  void *data;
  size_t size;
  ASSERT_OK(nnlib_model_save_to_buffer(&data, &size, m, 0));
  nnlib_model *back;
  ASSERT_OK(nnlib_model_load_buffer(&back, data, size));
  nnlib_free(data);
  ASSERT_OK(nnlib_model_predict(back, x, p2));
  assert_memory_equal(nnlib_tensor_get_data(p1), nnlib_tensor_get_data(p2),
                      24 * sizeof(float));
  char text[128];
  size_t needed;
  ASSERT_OK(nnlib_model_get_spec(back, text, sizeof text, &needed));
  assert_string_equal(text, "layernorm:0.001,layernorm:noaffine");
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_tensor_free(p1);
  nnlib_tensor_free(p2);
  nnlib_model_free(m);
  nnlib_model_free(back);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_rank1),
      cmocka_unit_test(test_reference_rank2),
      cmocka_unit_test(test_reference_rank3),
      cmocka_unit_test(test_constant_row),
      cmocka_unit_test(test_steps),
      cmocka_unit_test(test_torch),
      cmocka_unit_test(test_init_and_fused_sgd),
      cmocka_unit_test(test_descriptions),
      cmocka_unit_test(test_description_eps_bits),
      cmocka_unit_test(test_configs),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_model_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
