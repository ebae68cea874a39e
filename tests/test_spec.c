/* The text model description: nnlib_model_add_spec parses strictly (each
 * bad item gives NNLIB_ERR_PARSE naming the item and its column, and adds no
 * layer), nnlib_model_get_spec prints the canonical form, and the two round
 * trip: the reparsed model has the same architecture and, with the same
 * seed, bit-identical predictions. */
#include "test_support.h"

#include <locale.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static nnlib_model *new_model(void) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  return m;
}

static void expect_spec(const nnlib_model *m, const char *want) {
  char buf[512];
  size_t needed = 0;
  ASSERT_OK(nnlib_model_get_spec(m, buf, sizeof buf, &needed));
  assert_string_equal(buf, want);
  assert_int_equal(needed, strlen(want));
}

static void test_parse_mlp(void **s) {
  (void)s;
  nnlib_model *m = new_model();
  ASSERT_OK(nnlib_model_add_spec(m, "dense:256,relu,dense:128,relu,dense:10"));
  assert_int_equal(nnlib_model_get_layer_count(m), 5);
  const char *names[5] = {"dense", "relu", "dense", "relu", "dense"};
  for (size_t i = 0; i < 5; i++) {
    nnlib_layer *l = nnlib_model_get_layer(m, i);
    assert_string_equal(nnlib_layer_get_name(l), names[i]);
    assert_int_equal(nnlib_layer_get_kind(l), i % 2 == 0
                                                  ? NNLIB_LAYER_DENSE
                                                  : NNLIB_LAYER_ACTIVATION);
  }
  int64_t in = 784, count = 0, out[2];
  size_t rank = 0;
  ASSERT_OK(nnlib_model_compile(m, &in, 1, 4, NNLIB_LOSS_SOFTMAX_CE, NULL, 1));
  ASSERT_OK(nnlib_model_get_param_count(m, &count));
  assert_int_equal(count, 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  ASSERT_OK(nnlib_model_get_output_shape(m, out, 2, &rank));
  assert_int_equal(rank, 1);
  assert_int_equal(out[0], 10);
  nnlib_model_free(m);
}

static void test_whitespace_and_nobias(void **s) {
  (void)s;
  nnlib_model *m = new_model();
  ASSERT_OK(nnlib_model_add_spec(m, " \tdense:4 ,\n relu , dense:2:nobias  "));
  assert_int_equal(nnlib_model_get_layer_count(m), 3);
  expect_spec(m, "dense:4,relu,dense:2:nobias");
  int64_t in = 3;
  ASSERT_OK(nnlib_model_compile(m, &in, 1, 2, NNLIB_LOSS_MSE, NULL, 1));
  assert_int_equal(
      nnlib_layer_get_param_tensor_count(nnlib_model_get_layer(m, 0)), 2);
  assert_int_equal(
      nnlib_layer_get_param_tensor_count(nnlib_model_get_layer(m, 2)), 1);
  nnlib_model_free(m);
}

/* Appending to a model that already has layers keeps them. */
static void test_appends(void **s) {
  (void)s;
  nnlib_model *m = new_model();
  ASSERT_OK(nnlib_model_add(m, ts_dense(0, 5, 1)));
  ASSERT_OK(nnlib_model_add_spec(m, "tanh"));
  ASSERT_OK(nnlib_model_add_spec(m, "dense:1,sigmoid"));
  expect_spec(m, "dense:5,tanh,dense:1,sigmoid");
  nnlib_model_free(m);
}

static void test_every_activation(void **s) {
  (void)s;
  static const struct {
    const char *item, *canonical;
    nnlib_activation kind;
  } cases[] = {
      {"identity", "identity", NNLIB_ACT_IDENTITY},
      {"step", "step", NNLIB_ACT_STEP},
      {"sigmoid", "sigmoid", NNLIB_ACT_SIGMOID},
      {"tanh", "tanh", NNLIB_ACT_TANH},
      {"relu", "relu", NNLIB_ACT_RELU},
      {"leaky_relu", "leaky_relu", NNLIB_ACT_LEAKY_RELU},
      {"leaky_relu:0.01", "leaky_relu", NNLIB_ACT_LEAKY_RELU},
      {"leaky_relu:0.2", "leaky_relu:0.2", NNLIB_ACT_LEAKY_RELU},
      {"leaky_relu:1e-3", "leaky_relu:0.001", NNLIB_ACT_LEAKY_RELU},
      {"leaky_relu:+.5", "leaky_relu:0.5", NNLIB_ACT_LEAKY_RELU},
      {"leaky_relu:0", "leaky_relu:0", NNLIB_ACT_LEAKY_RELU},
      {"leaky_relu:0.333333343", "leaky_relu:0.33333334",
       NNLIB_ACT_LEAKY_RELU},
      {"leaky_relu:3E2", "leaky_relu:300", NNLIB_ACT_LEAKY_RELU},
      {"softplus", "softplus", NNLIB_ACT_SOFTPLUS},
      {"softmax", "softmax", NNLIB_ACT_SOFTMAX},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char spec[64], want[64];
    snprintf(spec, sizeof spec, "dense:3,%s", cases[i].item);
    snprintf(want, sizeof want, "dense:3,%s", cases[i].canonical);
    nnlib_model *m = new_model();
    ASSERT_OK(nnlib_model_add_spec(m, spec));
    nnlib_layer *l = nnlib_model_get_layer(m, 1);
    assert_int_equal(nnlib_layer_get_kind(l), NNLIB_LAYER_ACTIVATION);
    expect_spec(m, want);
    /* the reparsed canonical form prints the same */
    nnlib_model *again = new_model();
    ASSERT_OK(nnlib_model_add_spec(again, want));
    expect_spec(again, want);
    nnlib_model_free(again);
    nnlib_model_free(m);
  }
}

typedef struct bad_case {
  const char *spec;
  const char *where; /* "item N" and "column C" */
  const char *detail;
} bad_case;

static const bad_case bad_cases[] = {
    {"", "item 1 \"\" at column 1", "empty item"},
    {"   ", "item 1 \"\" at column 4", "empty item"},
    {"relu,", "item 2 \"\" at column 6", "empty item"},
    {",relu", "item 1 \"\" at column 1", "empty item"},
    {"relu,,relu", "item 2 \"\" at column 6", "empty item"},
    {"dense", "item 1 \"dense\" at column 1", "takes 1 to 2 arguments, got 0"},
    {"dense:", "item 1 \"dense:\" at column 1", "empty field at column 7"},
    {"dense::3", "item 1", "empty field at column 7"},
    {"dense:0", "column 1", "argument 1 \"0\" is not an integer in "
                            "1..2147483647"},
    {"dense:-1", "column 1", "\"-1\" is not an integer"},
    {"dense:+1", "column 1", "\"+1\" is not an integer"},
    {"dense:2147483648", "column 1", "not an integer in 1..2147483647"},
    {"dense:99999999999999999999999", "column 1", "not an integer"},
    {"dense:12x", "column 1", "\"12x\" is not an integer"},
    {"dense:1.5", "column 1", "\"1.5\" is not an integer"},
    {"dense:1:bias", "column 1", "the only option of dense is \"nobias\""},
    {"dense:1:nobias:x", "column 1", "takes 1 to 2 arguments, got 3"},
    {"relu:1", "item 1 \"relu:1\" at column 1", "takes 0 arguments, got 1"},
    {"leaky_relu:", "column 1", "empty field at column 12"},
    {"leaky_relu:0.1:2", "column 1", "takes 0 to 1 arguments, got 2"},
    {"leaky_relu:-0.1", "column 1", "slope -0.1 must be finite and >= 0"},
    {"leaky_relu:nan", "column 1", "\"nan\" is not a finite decimal number"},
    {"leaky_relu:inf", "column 1", "not a finite decimal number"},
    {"leaky_relu:1e99", "column 1", "not a finite decimal number"},
    {"leaky_relu:0x1p3", "column 1", "not a finite decimal number"},
    {"leaky_relu:.", "column 1", "not a finite decimal number"},
    {"leaky_relu:1e", "column 1", "not a finite decimal number"},
    {"leaky_relu:1.5.2", "column 1", "not a finite decimal number"},
    {"leaky_relu:0.00000000000000000000000000000000000000000000000000000000"
     "000000000001",
     "column 1", "not a finite decimal number"},
    {"conv:3", "item 1 \"conv:3\" at column 1",
     "argument 1 \"3\" is not AxBxC with integers in 1..2147483647"},
    {"conv2d:3", "item 1 \"conv2d:3\" at column 1",
     "unknown layer \"conv2d\" (known: dense, identity, step"},
    {"Dense:3", "column 1", "unknown layer \"Dense\""},
    {"dense :3", "column 1", "whitespace at column 6 inside the item"},
    {"dense:3 relu", "column 1", "whitespace at column 8"},
    {"dense:3;relu", "column 1", "\"3;relu\" is not an integer"},
    {"relu,dense:4,sigmoid,dense:x", "item 4 \"dense:x\" at column 22",
     "\"x\" is not an integer"},
    {"relu, softmax ,  tanh:2", "item 3 \"tanh:2\" at column 18",
     "takes 0 arguments"},
    {"dense:1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16", "column 1",
     "more than 16 fields"},
};

static void test_bad_specs(void **s) {
  (void)s;
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    nnlib_model *m = new_model();
    ASSERT_OK(nnlib_model_add_spec(m, "dense:2"));
    ASSERT_STATUS(NNLIB_ERR_PARSE, nnlib_model_add_spec(m, bad_cases[i].spec));
    ts_expect_message(bad_cases[i].where);
    ts_expect_message(bad_cases[i].detail);
    /* nothing was added */
    assert_int_equal(nnlib_model_get_layer_count(m), 1);
    expect_spec(m, "dense:2");
    nnlib_model_free(m);
  }
}

/* A long item is cut in the message; the message stays useful. */
static void test_long_garbage(void **s) {
  (void)s;
  char spec[2048];
  memset(spec, 'x', sizeof spec - 1);
  spec[sizeof spec - 1] = '\0';
  nnlib_model *m = new_model();
  ASSERT_STATUS(NNLIB_ERR_PARSE, nnlib_model_add_spec(m, spec));
  ts_expect_message("...\" at column 1: unknown layer");
  assert_int_equal(nnlib_model_get_layer_count(m), 0);
  /* many valid items */
  char many[4096] = "";
  for (int i = 0; i < 300; i++)
    strcat(many, i ? ",relu" : "dense:1");
  ASSERT_OK(nnlib_model_add_spec(m, many));
  assert_int_equal(nnlib_model_get_layer_count(m), 300);
  nnlib_model_free(m);
}

static void test_bad_calls(void **s) {
  (void)s;
  nnlib_model *m = new_model();
  char buf[8];
  size_t needed;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_add_spec(NULL, "relu"));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, nnlib_model_add_spec(m, NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_get_spec(NULL, buf, sizeof buf, &needed));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_get_spec(m, NULL, 4, &needed));
  ASSERT_OK(nnlib_model_add_spec(m, "dense:2"));
  int64_t in = 2;
  ASSERT_OK(nnlib_model_compile(m, &in, 1, 1, NNLIB_LOSS_MSE, NULL, 1));
  ASSERT_STATUS(NNLIB_ERR_WRONG_STATE, nnlib_model_add_spec(m, "relu"));
  ts_expect_message("already compiled");
  expect_spec(m, "dense:2"); /* works after compile too */
  nnlib_model_free(m);
}

/* snprintf-like: truncated, always terminated, full length in *needed. */
static void test_get_spec_capacity(void **s) {
  (void)s;
  nnlib_model *m = new_model();
  size_t needed = 99;
  char buf[32];
  ASSERT_OK(nnlib_model_get_spec(m, buf, sizeof buf, &needed));
  assert_string_equal(buf, "");
  assert_int_equal(needed, 0);
  ASSERT_OK(nnlib_model_add_spec(m, "dense:10,relu"));
  ASSERT_OK(nnlib_model_get_spec(m, NULL, 0, &needed));
  assert_int_equal(needed, 13);
  memset(buf, '#', sizeof buf);
  ASSERT_OK(nnlib_model_get_spec(m, buf, 5, &needed));
  assert_string_equal(buf, "dens");
  assert_int_equal(buf[5], '#');
  assert_int_equal(needed, 13);
  ASSERT_OK(nnlib_model_get_spec(m, buf, 13, &needed));
  assert_string_equal(buf, "dense:10,rel");
  ASSERT_OK(nnlib_model_get_spec(m, buf, 14, &needed));
  assert_string_equal(buf, "dense:10,relu");
  ASSERT_OK(nnlib_model_get_spec(m, buf, 1, NULL));
  assert_string_equal(buf, "");
  nnlib_model_free(m);
}

static void predict_bits(nnlib_model *m, const float *x, int64_t n,
                         int64_t in, float *y, int64_t out) {
  nnlib_tensor *tx = ts_tensor2(n, in, x), *ty = ts_tensor2(n, out, NULL);
  ASSERT_OK(nnlib_model_predict(m, tx, ty));
  memcpy(y, nnlib_tensor_get_data(ty), (size_t)(n * out) * sizeof(float));
  nnlib_tensor_free(tx);
  nnlib_tensor_free(ty);
}

/* Built through the API with every layer kind and option; its description
 * rebuilds an equal model: same description, same parameter count and,
 * with the same seed, the same bits out. */
static void test_round_trip_architecture(void **s) {
  (void)s;
  enum { IN = 7, OUT = 4, N = 5 };
  nnlib_model *a = new_model();
  nnlib_layer *layers[] = {
      ts_dense(IN, 9, 1),  ts_act(NNLIB_ACT_RELU, 0),
      ts_dense(0, 8, 0),   ts_act(NNLIB_ACT_LEAKY_RELU, 0.125f),
      ts_dense(0, 8, 1),   ts_act(NNLIB_ACT_LEAKY_RELU, 0.01f),
      ts_dense(0, 7, 1),   ts_act(NNLIB_ACT_SIGMOID, 0),
      ts_dense(0, 6, 1),   ts_act(NNLIB_ACT_TANH, 0),
      ts_dense(0, 6, 0),   ts_act(NNLIB_ACT_SOFTPLUS, 0),
      ts_act(NNLIB_ACT_IDENTITY, 0), ts_dense(0, 5, 1),
      ts_act(NNLIB_ACT_STEP, 0),     ts_dense(0, OUT, 1),
      ts_act(NNLIB_ACT_SOFTMAX, 0),
  };
  for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
    ASSERT_OK(nnlib_model_add(a, layers[i]));
  char spec[512];
  size_t needed;
  ASSERT_OK(nnlib_model_get_spec(a, spec, sizeof spec, &needed));
  assert_string_equal(spec, "dense:9,relu,dense:8:nobias,leaky_relu:0.125,"
                            "dense:8,leaky_relu,dense:7,sigmoid,dense:6,tanh,"
                            "dense:6:nobias,softplus,identity,dense:5,step,"
                            "dense:4,softmax");
  nnlib_model *b = new_model();
  ASSERT_OK(nnlib_model_add_spec(b, spec));
  expect_spec(b, spec);
  int64_t in = IN, pa, pb;
  ASSERT_OK(nnlib_model_compile(a, &in, 1, N, NNLIB_LOSS_MSE, NULL, 99));
  ASSERT_OK(nnlib_model_compile(b, &in, 1, N, NNLIB_LOSS_MSE, NULL, 99));
  ASSERT_OK(nnlib_model_get_param_count(a, &pa));
  ASSERT_OK(nnlib_model_get_param_count(b, &pb));
  assert_int_equal(pa, pb);
  float x[N * IN], ya[N * OUT], yb[N * OUT];
  uint32_t seed = 7;
  ts_fill_uniform(x, N * IN, -2.0f, 2.0f, &seed);
  predict_bits(a, x, N, IN, ya, OUT);
  predict_bits(b, x, N, IN, yb, OUT);
  assert_memory_equal(ya, yb, sizeof ya);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

/* Every allocation of add_spec fails in turn: either it succeeds or it
 * reports out-of-memory having added nothing, and nothing leaks. */
static void test_oom(void **s) {
  (void)s;
  ts_alloc_stats stats;
  /* more items than the model's first 8 slots: the layer array grows */
  const char *spec = "dense:8,relu,dense:4,leaky_relu:0.3,dense:2,sigmoid,"
                     "dense:2,tanh,dense:2,softmax";
  for (long fail_at = 1;; fail_at++) {
    stats.fail_at = 0;
    ts_alloc_install(&stats);
    nnlib_model *m = NULL;
    ASSERT_OK(nnlib_model_create(&m));
    ASSERT_OK(nnlib_model_add_spec(m, "dense:3"));
    stats.fail_at = stats.allocs + fail_at;
    nnlib_status st = nnlib_model_add_spec(m, spec);
    bool failed_one = stats.allocs >= stats.fail_at;
    if (st == NNLIB_OK) {
      assert_int_equal(nnlib_model_get_layer_count(m), 11);
    } else {
      assert_int_equal(st, NNLIB_ERR_OUT_OF_MEMORY);
      assert_int_equal(nnlib_model_get_layer_count(m), 1);
    }
    nnlib_model_free(m);
    assert_int_equal(stats.live, 0);
    ts_alloc_uninstall();
    if (!failed_one) {
      assert_int_equal(st, NNLIB_OK);
      assert_true(fail_at > 5);
      break;
    }
  }
}

/* Descriptions always use '.', also under a locale whose decimal point is a
 * comma (skipped where no such locale is installed). */
static void test_locale_independent(void **s) {
  (void)s;
  const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "de_DE"};
  const char *chosen = NULL;
  for (size_t i = 0; i < 4 && chosen == NULL; i++)
    chosen = setlocale(LC_NUMERIC, names[i]);
  if (chosen == NULL || localeconv()->decimal_point[0] == '.') {
    setlocale(LC_NUMERIC, "C");
    skip();
  }
  nnlib_model *m = new_model();
  nnlib_status st = nnlib_model_add_spec(m, "dense:2,leaky_relu:0.25");
  char buf[64] = "";
  if (st == NNLIB_OK)
    st = nnlib_model_get_spec(m, buf, sizeof buf, NULL);
  setlocale(LC_NUMERIC, "C");
  ASSERT_OK(st);
  assert_string_equal(buf, "dense:2,leaky_relu:0.25");
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_mlp),
      cmocka_unit_test(test_whitespace_and_nobias),
      cmocka_unit_test(test_appends),
      cmocka_unit_test(test_every_activation),
      cmocka_unit_test(test_bad_specs),
      cmocka_unit_test(test_long_garbage),
      cmocka_unit_test(test_bad_calls),
      cmocka_unit_test(test_get_spec_capacity),
      cmocka_unit_test(test_round_trip_architecture),
      cmocka_unit_test(test_oom),
      cmocka_unit_test(test_locale_independent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
