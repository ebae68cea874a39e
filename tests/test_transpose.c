/* test_transpose - the transpose layer (nnlib_transpose_create) through the
 * public API: forward and backward of every permutation of per-sample
 * shapes of rank 2, 3 and 4 (unit axes, and sizes past the copy's 32-wide
 * tiles, included) against naive index loops over a batch of 3; the
 * gradient through transposes inside networks by central differences
 * (nnlib_model_gradcheck, bar 1e-3 as reliability.md R1); the description
 * item and model files (chain and graph) round trip with the config bytes
 * of docs/FILE_FORMAT.md; bad arguments, items and configs with their
 * exact statuses; and no allocation in a training step. */
#include "file_parts.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 3
#define MAX_AXES 4

/* ------------------------------------------------ naive references */

/* The row-major index of `at` in dims. */
static int64_t flat_index(const int64_t *at, const int64_t *dims,
                          size_t rank) {
  int64_t i = 0;
  for (size_t a = 0; a < rank; a++)
    i = i * dims[a] + at[a];
  return i;
}

/* Steps `at` through dims in row-major order; false after the last. */
static bool next_index(int64_t *at, const int64_t *dims, size_t rank) {
  for (size_t a = rank; a-- > 0;) {
    if (++at[a] < dims[a])
      return true;
    at[a] = 0;
  }
  return false;
}

/* y[n, o] = x[n, i] with i[perm[k]] = o[k]: the definition, one element at
 * a time. */
static void naive_permute(const float *x, float *y, const int64_t *dims,
                          const int64_t *perm, size_t rank, int64_t n) {
  int64_t out_dims[MAX_AXES], size = 1;
  for (size_t k = 0; k < rank; k++) {
    out_dims[k] = dims[perm[k]];
    size *= dims[k];
  }
  for (int64_t s = 0; s < n; s++) {
    int64_t o[MAX_AXES] = {0}, i[MAX_AXES];
    do {
      for (size_t k = 0; k < rank; k++)
        i[perm[k]] = o[k];
      y[s * size + flat_index(o, out_dims, rank)] =
          x[s * size + flat_index(i, dims, rank)];
    } while (next_index(o, out_dims, rank));
  }
}

/* The next permutation in lexicographic order; false after the last. */
static bool next_perm(int64_t *p, size_t rank) {
  size_t i = rank - 1;
  while (i > 0 && p[i - 1] >= p[i])
    i--;
  if (i == 0)
    return false;
  size_t j = rank - 1;
  while (p[j] <= p[i - 1])
    j--;
  int64_t t = p[i - 1];
  p[i - 1] = p[j];
  p[j] = t;
  for (size_t a = i, b = rank - 1; a < b; a++, b--) {
    t = p[a];
    p[a] = p[b];
    p[b] = t;
  }
  return true;
}

/* ------------------------------------------- forward and backward */

static nnlib_tensor *batch_of(const int64_t *dims, size_t rank,
                              uint32_t *seed) {
  int64_t shape[MAX_AXES + 1] = {BATCH};
  memcpy(shape + 1, dims, rank * sizeof *dims);
  nnlib_tensor *t = NULL;
  ASSERT_OK(nnlib_tensor_create(&t, shape, rank + 1));
  ts_fill_uniform(nnlib_tensor_get_data(t), nnlib_tensor_get_size(t), -1, 1,
                  seed);
  return t;
}

static void expect_equal(const char *what, const float *got,
                         const float *want, int64_t count,
                         const int64_t *perm, size_t rank) {
  for (int64_t i = 0; i < count; i++)
    if (got[i] != want[i])
      fail_msg("%s, perm %lld %lld %lld %lld (rank %zu): element %lld is "
               "%g, want %g",
               what, (long long)perm[0], (long long)(rank > 1 ? perm[1] : -1),
               (long long)(rank > 2 ? perm[2] : -1),
               (long long)(rank > 3 ? perm[3] : -1), rank, (long long)i,
               got[i], want[i]);
}

/* One permutation of one shape: y against the naive forward, dx (the
 * input gradient from backward_output) against the naive permutation of
 * dy by the inverse. */
static void check_perm(const int64_t *dims, const int64_t *perm,
                       size_t rank, uint32_t *seed) {
  nnlib_layer *l = NULL;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_transpose_create(&l, perm, rank));
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add(m, l));
  ASSERT_OK(nnlib_model_compile(m, dims, rank, BATCH, NNLIB_LOSS_NONE, NULL,
                                1));
  ASSERT_OK(nnlib_model_set_input_gradients(m, 1));
  int64_t out_dims[MAX_AXES], inverse[MAX_AXES], got_dims[NNLIB_MAX_RANK];
  size_t got_rank = 0;
  for (size_t k = 0; k < rank; k++) {
    out_dims[k] = dims[perm[k]];
    inverse[perm[k]] = (int64_t)k;
  }
  ASSERT_OK(nnlib_layer_get_output_shape(l, got_dims, NNLIB_MAX_RANK,
                                         &got_rank));
  assert_int_equal(got_rank, rank);
  assert_memory_equal(got_dims, out_dims, rank * sizeof *dims);
  nnlib_tensor *x = batch_of(dims, rank, seed);
  nnlib_tensor *dy = batch_of(out_dims, rank, seed);
  int64_t size = nnlib_tensor_get_size(x);
  float *want = malloc((size_t)size * sizeof *want);
  assert_non_null(want);
  const nnlib_tensor *y = NULL, *dx = NULL;
  ASSERT_OK(nnlib_model_forward(m, x, &y));
  naive_permute(nnlib_tensor_get_data(x), want, dims, perm, rank, BATCH);
  expect_equal("forward", nnlib_tensor_get_data_const(y), want, size, perm,
               rank);
  ASSERT_OK(nnlib_model_backward_output(m, dy));
  ASSERT_OK(nnlib_model_get_input_gradient(m, 0, &dx));
  naive_permute(nnlib_tensor_get_data(dy), want, out_dims, inverse, rank,
                BATCH);
  expect_equal("backward", nnlib_tensor_get_data_const(dx), want, size, perm,
               rank);
  free(want);
  nnlib_tensor_free(x);
  nnlib_tensor_free(dy);
  nnlib_model_free(m);
}

/* Every permutation of each shape: ranks 2, 3 and 4, unit axes (which the
 * copy drops), runs of axes that stay together (which it merges), and
 * sizes past one 32 x 32 tile with ragged edges. */
static void every_permutation(void **state) {
  (void)state;
  static const struct {
    size_t rank;
    int64_t dims[MAX_AXES];
  } shapes[] = {
      {2, {3, 5}},     {2, {40, 37}},      {2, {1, 6}},
      {3, {2, 3, 4}},  {3, {5, 33, 34}},   {3, {4, 1, 3}},
      {4, {3, 2, 4, 5}}, {4, {2, 1, 3, 4}}, {4, {2, 35, 3, 33}},
  };
  uint32_t seed = 11;
  size_t checked = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int64_t perm[MAX_AXES] = {0, 1, 2, 3};
    do {
      check_perm(shapes[s].dims, perm, shapes[s].rank, &seed);
      checked++;
    } while (next_perm(perm, shapes[s].rank));
  }
  assert_int_equal(checked, 3 * 2 + 3 * 6 + 3 * 24);
}

/* ------------------------------------------------ inside networks */

/* Backpropagated gradients of every parameter before, between and after
 * transposes against central differences: the transposes' backward is
 * what carries them. */
static void gradients_through_networks(void **state) {
  (void)state;
  static const struct {
    const char *spec;
    int64_t outputs;
  } nets[] = {
      /* [T, D] -> [D, T]: linear over the time axis; the transpose's
       * gradient is written over its spent output */
      {"x=input:4x5,linear:6,tanh,transpose:1x0,linear:3,transpose:1x0,"
       "flatten,dense:2",
       2},
      /* channels last and back, with a linear over the channels */
      {"x=input:2x4x5,conv:3x3x3:p1,transpose:1x2x0,linear:4,sigmoid,"
       "transpose:2x0x1,conv:2x3x3,flatten,dense:3",
       3},
      /* a node read by a transpose and by another layer (fan-out) */
      {"x=input:3x4,a=linear:4(x),t=transpose:1x0(a),b=linear:3(t),"
       "flatten(b),f=dense:2,flatten(a),g=dense:2,add(f,g)",
       2},
  };
  for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
    nnlib_model *m = NULL;
    ASSERT_OK(nnlib_model_create(&m));
    ASSERT_OK(nnlib_model_add_spec(m, nets[i].spec));
    ASSERT_OK(nnlib_model_compile_graph(m, BATCH, NNLIB_LOSS_MSE, NULL, 5));
    int64_t dims[NNLIB_MAX_RANK];
    size_t rank = 0;
    ASSERT_OK(nnlib_model_get_input_shape_at(m, 0, dims, NNLIB_MAX_RANK,
                                             &rank));
    uint32_t seed = 21;
    nnlib_tensor *x = batch_of(dims, rank, &seed), *target = NULL;
    int64_t ts[2] = {BATCH, nets[i].outputs};
    ASSERT_OK(nnlib_tensor_create(&target, ts, 2));
    ts_fill_uniform(nnlib_tensor_get_data(target), BATCH * nets[i].outputs,
                    -1, 1, &seed);
    nnlib_gradcheck_options o;
    ASSERT_OK(nnlib_gradcheck_options_init(&o));
    double err = 1.0;
    ASSERT_OK(nnlib_model_gradcheck(m, x, target, &o, &err));
    print_message("  net %zu: max relative error %.2e\n", i, err);
    if (!(err <= 1e-3))
      fail_msg("%s: gradient relative error %.3g", nets[i].spec, err);
    nnlib_tensor_free(x);
    nnlib_tensor_free(target);
    nnlib_model_free(m);
  }
}

/* A training step allocates nothing (the layer needs no workspace). */
static void no_allocation_per_step(void **state) {
  (void)state;
  nnlib_model *m = NULL;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "transpose:1x2x0,linear:3,"
                                    "transpose:2x0x1,flatten,dense:2"));
  ASSERT_OK(nnlib_sgd_create(&opt, 0.05f, 0.9f, 0, 0.0f));
  const int64_t dims[3] = {2, 3, 4};
  ASSERT_OK(nnlib_model_compile(m, dims, 3, BATCH, NNLIB_LOSS_MSE, opt, 3));
  uint32_t seed = 5;
  nnlib_tensor *x = batch_of(dims, 3, &seed), *target = ts_tensor2(BATCH, 2,
                                                                  NULL);
  float loss = 0;
  ASSERT_OK(nnlib_model_step(m, x, target, &loss)); /* warm */
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  for (int s = 0; s < 3; s++)
    ASSERT_OK(nnlib_model_step(m, x, target, &loss));
  ts_alloc_uninstall();
  assert_int_equal(stats.allocs, 0);
  nnlib_tensor_free(x);
  nnlib_tensor_free(target);
  nnlib_model_free(m);
}

/* ------------------------------------------ descriptions and files */

static void description_items(void **state) {
  (void)state;
  const char *const items[][2] = {
      {"transpose:1x2x0", "transpose:1x2x0"},
      {"transpose:0", "transpose:0"},
      {"transpose:3x2x1x0x4x6x5", "transpose:3x2x1x0x4x6x5"},
      {" transpose:1x0 ,linear:3", "transpose:1x0,linear:3"},
      {"x=input:2x3x4,a=transpose:2x1x0(x),b=transpose:0x2x1(x),"
       "flatten(a),f=dense:3,flatten(b),g=dense:3,add(f,g)",
       "x=input:2x3x4,a=transpose:2x1x0,b=transpose:0x2x1(x),"
       "flatten(a),f=dense:3,flatten(b),g=dense:3,add(f,g)"},
  };
  ts_check_spec_items(items, sizeof items / sizeof items[0]);
  const char *const bad[][2] = {
      {"transpose", "transpose"},
      {"transpose:", "empty field at column 11"},
      {"transpose:1x0:2", "transpose"},
      {"transpose:2x0", "argument 1 \"2x0\" is not 2 integers in 0..1 joined "
                        "by 'x'"},
      {"transpose:1x1", "perm[1] is 1 again (not a permutation)"},
      {"transpose:1xx0", "is not 3 integers in 0..2 joined by 'x'"},
      {"transpose:1x0x", "is not 3 integers in 0..2 joined by 'x'"},
      {"transpose:-1x0", "is not 2 integers in 0..1 joined by 'x'"},
      {"transpose:0x10", "is not 2 integers in 0..1 joined by 'x'"},
      {"transpose:0x1x2x3x4x5x6x7", "permutes more axes than a sample has"},
  };
  ts_check_spec_errors(bad, sizeof bad / sizeof bad[0]);
}

static nnlib_model *compiled_graph(const char *spec) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, spec));
  ASSERT_OK(nnlib_model_compile_graph(m, BATCH, NNLIB_LOSS_MSE, NULL, 9));
  return m;
}

/* The model saved and loaded back: the same description, bitwise equal
 * predictions; returns the file (free it). */
static unsigned char *round_trip(nnlib_model *m, size_t *size) {
  void *data = NULL;
  ASSERT_OK(nnlib_model_save_to_buffer(&data, size, m, 0));
  unsigned char *file = malloc(*size);
  assert_non_null(file);
  memcpy(file, data, *size);
  nnlib_free(data);
  nnlib_model *back = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&back, file, *size));
  char a[512], b[512];
  ASSERT_OK(nnlib_model_get_spec(m, a, sizeof a, NULL));
  ASSERT_OK(nnlib_model_get_spec(back, b, sizeof b, NULL));
  assert_string_equal(a, b);
  int64_t dims[NNLIB_MAX_RANK];
  size_t rank = 0;
  ASSERT_OK(nnlib_model_get_input_shape_at(m, 0, dims, NNLIB_MAX_RANK, &rank));
  uint32_t seed = 31;
  nnlib_tensor *x = batch_of(dims, rank, &seed);
  const nnlib_tensor *ya = NULL, *yb = NULL;
  ASSERT_OK(nnlib_model_forward(m, x, &ya));
  ASSERT_OK(nnlib_model_forward(back, x, &yb));
  assert_int_equal(nnlib_tensor_get_size(ya), nnlib_tensor_get_size(yb));
  assert_memory_equal(nnlib_tensor_get_data_const(ya),
                      nnlib_tensor_get_data_const(yb),
                      (size_t)nnlib_tensor_get_size(ya) * sizeof(float));
  nnlib_tensor_free(x);
  nnlib_model_free(back);
  return file;
}

/* A copy of the file with the first layer's config edited by `edit`
 * loads as NNLIB_ERR_CORRUPT_FILE with a message containing `needle`. */
static void refused_config(const unsigned char *file, size_t size,
                           void (*edit)(unsigned char *config),
                           const char *needle) {
  ts_file_parts parts;
  ts_split_file(file, size, &parts);
  uint32_t kind, length;
  edit(ts_first_config(&parts, &kind, &length));
  size_t bad_size;
  unsigned char *bad = ts_join_file(&parts, &bad_size);
  nnlib_model *m = NULL;
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE,
                nnlib_model_load_buffer(&m, bad, bad_size));
  ts_expect_message(needle);
  assert_null(m);
  free(bad);
  ts_free_parts(&parts);
}

static void repeat_axis(unsigned char *c) { ts_wr64(c + 24, 2); }
static void rank_too_large(unsigned char *c) { ts_wr64(c, 8); }
static void rank_zero(unsigned char *c) { ts_wr64(c, 0); }
/* rank 2, perm {1, 0}: the third value is left over */
static void rank_two(unsigned char *c) {
  ts_wr64(c, 2);
  ts_wr64(c + 8, 1);
  ts_wr64(c + 16, 0);
}

static void model_files(void **state) {
  (void)state;
  /* a chain (file version 1) */
  nnlib_model *chain = NULL;
  ASSERT_OK(nnlib_model_create(&chain));
  ASSERT_OK(nnlib_model_add_spec(chain, "transpose:1x2x0,linear:3,flatten,"
                                        "dense:2"));
  const int64_t dims[3] = {2, 3, 4};
  ASSERT_OK(nnlib_model_compile(chain, dims, 3, BATCH, NNLIB_LOSS_MSE, NULL,
                                4));
  size_t size = 0;
  unsigned char *file = round_trip(chain, &size);
  ts_file_parts parts;
  ts_split_file(file, size, &parts);
  uint32_t kind, length;
  unsigned char *c = ts_first_config(&parts, &kind, &length);
  assert_int_equal(kind, NNLIB_LAYER_TRANSPOSE);
  assert_int_equal(kind, 22);
  assert_int_equal(length, 32); /* i64 rank, i64 perm x 3 */
  const int64_t want[4] = {3, 1, 2, 0};
  for (int i = 0; i < 4; i++)
    assert_int_equal((int64_t)ts_rd64(c + 8 * i), want[i]);
  ts_free_parts(&parts);
  refused_config(file, size, repeat_axis, "perm[2] is 2 again");
  refused_config(file, size, rank_too_large, "transpose: rank 8 outside 1 .. 7");
  refused_config(file, size, rank_zero, "transpose: rank 0 outside 1 .. 7");
  refused_config(file, size, rank_two, "8 trailing bytes in the layer 0 config");
  free(file);
  nnlib_model_free(chain);
  /* a graph (file version 2) */
  nnlib_model *g = compiled_graph(
      "x=input:2x3x4,a=transpose:2x1x0(x),b=transpose:0x2x1(x),flatten(a),"
      "f=dense:3,flatten(b),g=dense:3,add(f,g)");
  file = round_trip(g, &size);
  free(file);
  nnlib_model_free(g);
}

/* --------------------------------------------------- bad arguments */

static void bad_arguments(void **state) {
  (void)state;
  nnlib_layer *l = (nnlib_layer *)&l;
  const int64_t p3[3] = {1, 2, 0}, out_of_range[3] = {0, 3, 1};
  const int64_t negative[2] = {-1, 0}, twice[3] = {2, 0, 2};
  const int64_t p8[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_transpose_create(NULL, p3, 3));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_transpose_create(&l, NULL, 3));
  assert_null(l);
  ts_expect_message("perm is NULL");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_transpose_create(&l, p3, 0));
  ts_expect_message("rank 0 outside 1 .. 7");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_transpose_create(&l, p8, 8));
  ts_expect_message("rank 8 outside 1 .. 7");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_transpose_create(&l, out_of_range, 3));
  ts_expect_message("perm[1] is 3, outside 0 .. 2");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_transpose_create(&l, negative, 2));
  ts_expect_message("perm[0] is -1, outside 0 .. 1");
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_transpose_create(&l, twice, 3));
  ts_expect_message("perm[2] is 2 again (not a permutation)");
  assert_null(l);
  /* the rank must be the input's: a chain's layer, a graph's named node */
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_transpose_create(&l, p3, 3));
  ASSERT_OK(nnlib_model_add(m, l));
  const int64_t flat[2] = {3, 4};
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile(m, flat, 2, BATCH, NNLIB_LOSS_NONE, NULL,
                                    1));
  ts_expect_message("layer 0 (transpose): transpose: a permutation of 3 axes, "
                    "but the input is [3, 4], of rank 2");
  nnlib_model_free(m);
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "x=input:5,dense:4,t=transpose:1x0"));
  ASSERT_STATUS(NNLIB_ERR_SHAPE_MISMATCH,
                nnlib_model_compile_graph(m, BATCH, NNLIB_LOSS_NONE, NULL, 1));
  ts_expect_message("'t'");
  ts_expect_message("the input is [4], of rank 1");
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_permutation),
      cmocka_unit_test(gradients_through_networks),
      cmocka_unit_test(no_allocation_per_step),
      cmocka_unit_test(description_items),
      cmocka_unit_test(model_files),
      cmocka_unit_test(bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
