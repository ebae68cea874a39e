/* Graph descriptions (1.3): named nodes (NAME=), references (REF,...),
 * input items and merge items. The node structure a text builds is the one
 * it says (checked through nnlib_model_get_node against inputs written out
 * by hand), a parsed graph compiles, nnlib_model_get_spec round-trips
 * text-identically (also for graphs built with the C API), every malformed
 * graph item is NNLIB_ERR_PARSE naming the position and the offending name
 * and leaves the model exactly as it was, and 1.2 descriptions print as
 * before. */
#include "test_support.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

enum { NONE = -1, MAX_READS = 4 };

static nnlib_model *new_model(void) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  return m;
}

static nnlib_node_info node_info(const nnlib_model *m, size_t index) {
  nnlib_node_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  ASSERT_OK(nnlib_model_get_node(m, index, &info));
  return info;
}

/* The index of a node handle, by looking it up among the model's nodes. */
static size_t index_of(const nnlib_model *m, nnlib_node handle) {
  size_t count = nnlib_model_get_node_count(m);
  for (size_t i = 0; i < count; i++)
    if (node_info(m, i).node == handle)
      return i;
  fail_msg("node handle %llu is not in the model", (unsigned long long)handle);
  return 0;
}

/* What one node should be: its layer kind (NONE for a model input), the
 * indices of the nodes it reads (NONE-terminated) and its name (NULL:
 * unnamed). */
typedef struct want_node {
  int kind;
  int reads[MAX_READS + 1];
  const char *name;
} want_node;

static void expect_nodes(const nnlib_model *m, const want_node *want,
                         size_t count) {
  assert_int_equal(nnlib_model_get_node_count(m), count);
  for (size_t i = 0; i < count; i++) {
    nnlib_node_info info = node_info(m, i);
    if (want[i].kind == NONE) {
      assert_null(info.layer);
    } else {
      assert_non_null(info.layer);
      assert_int_equal(nnlib_layer_get_kind(info.layer), want[i].kind);
    }
    size_t reads = 0;
    while (want[i].reads[reads] != NONE)
      reads++;
    if (info.input_count != reads)
      fail_msg("node %zu reads %zu nodes, want %zu", i, info.input_count,
               reads);
    for (size_t k = 0; k < reads; k++)
      assert_int_equal(index_of(m, info.inputs[k]), want[i].reads[k]);
    if (want[i].name == NULL)
      assert_null(info.name);
    else
      assert_string_equal(info.name, want[i].name);
  }
}

static void spec_of(const nnlib_model *m, char *buf, size_t size) {
  size_t needed = 0;
  ASSERT_OK(nnlib_model_get_spec(m, buf, size, &needed));
  assert_true(needed < size);
  assert_int_equal(needed, strlen(buf));
}

static void expect_spec(const nnlib_model *m, const char *want) {
  char buf[1024];
  spec_of(m, buf, sizeof buf);
  assert_string_equal(buf, want);
}

/* Both models have the same nodes: the same layer kinds, the same inputs,
 * the same input shapes, and every layer prints the same item alone. */
static void expect_same_graph(const nnlib_model *a, const nnlib_model *b) {
  size_t count = nnlib_model_get_node_count(a);
  assert_int_equal(nnlib_model_get_node_count(b), count);
  assert_int_equal(nnlib_model_get_input_count(a),
                   nnlib_model_get_input_count(b));
  for (size_t i = 0; i < count; i++) {
    nnlib_node_info x = node_info(a, i), y = node_info(b, i);
    assert_int_equal(x.layer == NULL, y.layer == NULL);
    assert_int_equal(x.input_index, y.input_index);
    assert_int_equal(x.input_count, y.input_count);
    for (size_t k = 0; k < x.input_count; k++)
      assert_int_equal(index_of(a, x.inputs[k]), index_of(b, y.inputs[k]));
    if (x.layer == NULL) {
      assert_int_equal(x.rank, y.rank);
      assert_memory_equal(x.shape, y.shape, x.rank * sizeof x.shape[0]);
      continue;
    }
    assert_int_equal(nnlib_layer_get_kind(x.layer),
                     nnlib_layer_get_kind(y.layer));
    assert_string_equal(nnlib_layer_get_name(x.layer),
                        nnlib_layer_get_name(y.layer));
  }
}

/* Parses text into a fresh model, which must print it back unchanged and
 * then reparse into the same graph printing the same text again. */
static nnlib_model *parse_round_trip(const char *text) {
  nnlib_model *m = new_model();
  ASSERT_OK(nnlib_model_add_spec(m, text));
  expect_spec(m, text);
  nnlib_model *again = new_model();
  ASSERT_OK(nnlib_model_add_spec(again, text));
  expect_same_graph(m, again);
  expect_spec(again, text);
  nnlib_model_free(again);
  return m;
}

static void test_residual_block(void **s) {
  (void)s;
  const char *text =
      "x=input:16x8x8,conv:16x3x3:p1,relu,c=conv:16x3x3:p1,add(x,c),relu";
  nnlib_model *m = parse_round_trip(text);
  const want_node want[] = {
      {NONE, {NONE}, "x"},
      {NNLIB_LAYER_CONV2D, {0, NONE}, NULL},
      {NNLIB_LAYER_ACTIVATION, {1, NONE}, NULL},
      {NNLIB_LAYER_CONV2D, {2, NONE}, "c"},
      {NNLIB_LAYER_ADD, {0, 3, NONE}, NULL},
      {NNLIB_LAYER_ACTIVATION, {4, NONE}, NULL},
  };
  expect_nodes(m, want, sizeof want / sizeof want[0]);
  nnlib_node_info input = node_info(m, 0);
  assert_int_equal(input.input_index, 0);
  assert_int_equal(input.rank, 3);
  assert_int_equal(input.shape[0], 16);
  assert_int_equal(input.shape[1], 8);
  assert_int_equal(input.shape[2], 8);
  assert_int_equal(nnlib_model_get_layer_count(m), 5);
  ASSERT_OK(nnlib_model_compile_graph(m, 2, NNLIB_LOSS_MSE, NULL, 1));
  int64_t out[4];
  size_t rank = 0;
  ASSERT_OK(nnlib_model_get_output_shape(m, out, 4, &rank));
  assert_int_equal(rank, 3);
  assert_int_equal(out[0] * out[1] * out[2], 16 * 8 * 8);
  expect_spec(m, text); /* after compile too */
  nnlib_model_free(m);
}

static void test_two_inputs(void **s) {
  (void)s;
  const char *text = "img=input:1x28x28,vec=input:4,conv:8x3x3:p1(img),relu,"
                     "flatten,f=dense:32,concat(f,vec),dense:10";
  nnlib_model *m = parse_round_trip(text);
  const want_node want[] = {
      {NONE, {NONE}, "img"},
      {NONE, {NONE}, "vec"},
      {NNLIB_LAYER_CONV2D, {0, NONE}, NULL},
      {NNLIB_LAYER_ACTIVATION, {2, NONE}, NULL},
      {NNLIB_LAYER_FLATTEN, {3, NONE}, NULL},
      {NNLIB_LAYER_DENSE, {4, NONE}, "f"},
      {NNLIB_LAYER_CONCAT, {5, 1, NONE}, NULL},
      {NNLIB_LAYER_DENSE, {6, NONE}, NULL},
  };
  expect_nodes(m, want, sizeof want / sizeof want[0]);
  assert_int_equal(nnlib_model_get_input_count(m), 2);
  assert_int_equal(node_info(m, 1).input_index, 1);
  assert_int_equal(node_info(m, 1).rank, 1);
  assert_int_equal(node_info(m, 1).shape[0], 4);
  ASSERT_OK(nnlib_model_compile_graph(m, 3, NNLIB_LOSS_SOFTMAX_CE, NULL, 2));
  int64_t out[2], count = 0;
  size_t rank = 0;
  ASSERT_OK(nnlib_model_get_output_shape(m, out, 2, &rank));
  assert_int_equal(rank, 1);
  assert_int_equal(out[0], 10);
  ASSERT_OK(nnlib_model_get_param_count(m, &count));
  assert_int_equal(count, (8 * 9 + 8) + (8 * 28 * 28 * 32 + 32) +
                              ((32 + 4) * 10 + 10));
  nnlib_model_free(m);
}

/* References are read in the order written: concat(b,a) puts b first. The
 * output is compared with the concatenation done by hand. */
static void test_reference_order(void **s) {
  (void)s;
  enum { N = 3 };
  nnlib_model *m = parse_round_trip("a=input:2,b=input:3,concat(b,a)");
  ASSERT_OK(nnlib_model_compile_graph(m, N, NNLIB_LOSS_MSE, NULL, 1));
  float a[N * 2], b[N * 3], want[N * 5];
  uint32_t seed = 3;
  ts_fill_uniform(a, N * 2, -1.0f, 1.0f, &seed);
  ts_fill_uniform(b, N * 3, -1.0f, 1.0f, &seed);
  for (int i = 0; i < N; i++) {
    memcpy(want + i * 5, b + i * 3, 3 * sizeof(float));
    memcpy(want + i * 5 + 3, a + i * 2, 2 * sizeof(float));
  }
  nnlib_tensor *ta = ts_tensor2(N, 2, a), *tb = ts_tensor2(N, 3, b);
  nnlib_tensor *ty = ts_tensor2(N, 5, NULL);
  const nnlib_tensor *inputs[2] = {ta, tb};
  ASSERT_OK(nnlib_model_predict_inputs(m, inputs, 2, ty));
  assert_memory_equal(nnlib_tensor_get_data(ty), want, sizeof want);
  nnlib_tensor_free(ta);
  nnlib_tensor_free(tb);
  nnlib_tensor_free(ty);
  nnlib_model_free(m);
}

/* Names given by an earlier call can be referenced; the first item of a
 * call without references reads the newest node, an input included. */
static void test_across_calls(void **s) {
  (void)s;
  nnlib_model *m = new_model();
  ASSERT_OK(nnlib_model_add_spec(m, "x=input:4"));
  ASSERT_OK(nnlib_model_add_spec(m, "h=dense:4"));
  ASSERT_OK(nnlib_model_add_spec(m, "g=tanh,add(h,g,x)"));
  ASSERT_OK(nnlib_model_add_spec(m, "dense:2"));
  const want_node want[] = {
      {NONE, {NONE}, "x"},
      {NNLIB_LAYER_DENSE, {0, NONE}, "h"},
      {NNLIB_LAYER_ACTIVATION, {1, NONE}, "g"},
      {NNLIB_LAYER_ADD, {1, 2, 0, NONE}, NULL},
      {NNLIB_LAYER_DENSE, {3, NONE}, NULL},
  };
  expect_nodes(m, want, sizeof want / sizeof want[0]);
  expect_spec(m, "x=input:4,h=dense:4,g=tanh,add(h,g,x),dense:2");
  ASSERT_OK(nnlib_model_compile_graph(m, 1, NNLIB_LOSS_MSE, NULL, 1));
  nnlib_model_free(m);
}

/* "last" after a recurrent item with references: the references go with
 * the recurrent item, "last" follows it. Names are printed only where an
 * item with references reads the node (the dense node "h" keeps its name
 * in the model, but the text leaves it out). */
static void test_last_and_unneeded_names(void **s) {
  (void)s;
  nnlib_model *m = parse_round_trip(
      "x=input:5x3,y=input:5x3,a=lstm:4(x),last,b=gru:4(y),last,"
      "concat(a,b),dense:2");
  const want_node want[] = {
      {NONE, {NONE}, "x"},
      {NONE, {NONE}, "y"},
      {NNLIB_LAYER_LSTM, {0, NONE}, "a"},
      {NNLIB_LAYER_GRU, {1, NONE}, "b"},
      {NNLIB_LAYER_CONCAT, {2, 3, NONE}, NULL},
      {NNLIB_LAYER_DENSE, {4, NONE}, NULL},
  };
  expect_nodes(m, want, sizeof want / sizeof want[0]);
  ASSERT_OK(nnlib_model_compile_graph(m, 2, NNLIB_LOSS_MSE, NULL, 1));
  nnlib_model_free(m);

  m = new_model();
  ASSERT_OK(nnlib_model_add_spec(
      m, " in=input:3 , h=dense:3 , unused=relu , add(in,unused) "));
  expect_spec(m, "in=input:3,dense:3,unused=relu,add(in,unused)");
  assert_string_equal(node_info(m, 1).name, "h"); /* kept, not printed */
  nnlib_model_free(m);
}

/* Descriptions 1.2 accepts build chains and print exactly as in 1.2. */
static void test_chains_print_as_before(void **s) {
  (void)s;
  static const char *const chains[] = {
      "dense:256,relu,dense:128,relu,dense:10",
      "conv:8x3x3:p1,relu,maxpool:2,flatten,dense:10",
      "lstm:8,last,dense:2",
      "gru:4,rnn:3:relu:nobias,last,dense:2:nobias,softmax",
      "dense:4,dropout:0.5,batchnorm,leaky_relu:0.2,dense:1",
  };
  for (size_t i = 0; i < sizeof chains / sizeof chains[0]; i++) {
    nnlib_model *m = new_model();
    ASSERT_OK(nnlib_model_add_spec(m, chains[i]));
    expect_spec(m, chains[i]);
    size_t layers = nnlib_model_get_layer_count(m);
    /* one implicit input, then every layer reads the node before */
    assert_int_equal(nnlib_model_get_node_count(m), layers + 1);
    assert_int_equal(nnlib_model_get_input_count(m), 1);
    for (size_t v = 1; v <= layers; v++) {
      nnlib_node_info info = node_info(m, v);
      assert_int_equal(info.input_count, 1);
      assert_int_equal(index_of(m, info.inputs[0]), v - 1);
    }
    nnlib_model_free(m);
  }
}

/* ------------------------------------------------------------ errors */

typedef struct bad_graph {
  const char *spec;
  const char *where;   /* item number and column */
  const char *what;    /* the problem, with the offending name */
} bad_graph;

/* Each runs on a model that already holds "x=input:4,h=dense:4". */
static const bad_graph bad_graphs[] = {
    /* unknown names, forward references and so cycles */
    {"dense:2(y)", "item 1 \"dense:2(y)\" at column 1",
     "refers to 'y' at column 9, which no earlier item defines (a node can "
     "only read nodes made before it, so cycles cannot be written)"},
    {"relu,a=dense:2(b),b=relu", "item 2 \"a=dense:2(b)\" at column 6",
     "refers to 'b' at column 16, which no earlier item defines"},
    {"a=dense:4(b),b=relu(a)", "item 1", "refers to 'b' at column 11"},
    {"a=dense:4(a)", "item 1", "refers to 'a' at column 11"},
    {"relu,add(h,zz)", "item 2 \"add(h,zz)\" at column 6",
     "refers to 'zz' at column 12"},
    /* names used twice: in the text, and against an earlier call */
    {"a=relu,a=tanh", "item 2 \"a=tanh\" at column 8",
     "the name 'a' at column 8 is used twice: node 2 already has it"},
    {"relu,h=tanh", "item 2", "the name 'h' at column 6 is used twice: node "
                              "1 already has it"},
    {"x=input:3", "item 1", "the name 'x' at column 1 is used twice"},
    /* bad names and references */
    {"1a=relu", "item 1 \"1a=relu\" at column 1",
     "bad name '1a' at column 1: a name is 1 to 31 characters"},
    {"relu,a-b=relu", "item 2 \"a-b=relu\" at column 6",
     "bad name 'a-b' at column 6"},
    {"=relu", "item 1", "bad name '' at column 1"},
    {"abcdefghijklmnopqrstuvwxyz0123456=relu", "item 1",
     "bad name 'abcdefghijklmnopqrstuvwxyz0123456' at column 1"},
    {"add(h,x.y)", "item 1", "bad reference 'x.y' at column 7"},
    {"add(h,)", "item 1", "bad reference '' at column 7"},
    {"add(h,x=h)", "item 1", "bad reference 'x=h' at column 7"},
    /* references where they cannot be */
    {"v=input:3(x)", "item 1 \"v=input:3(x)\" at column 1",
     "an input reads no node"},
    {"lstm:2,last(h)", "item 2 \"last(h)\" at column 8",
     "\"last\" changes the item before it and makes no node"},
    {"lstm:2,l=last", "item 2 \"l=last\" at column 8", "takes no name"},
    /* reference counts */
    {"add(h)", "item 1 \"add(h)\" at column 1",
     "add merges 2 or more nodes, but the item names 1: write add(A,B,...)"},
    {"relu,multiply", "item 2 \"multiply\" at column 6",
     "multiply merges 2 or more nodes, but the item names 0"},
    {"concat:0(x)", "item 1", "concat merges 2 or more nodes"},
    {"dense:2(x,h)", "item 1 \"dense:2(x,h)\" at column 1",
     "dense reads one node, but the item names 2 (only add, concat and "
     "multiply read several)"},
    /* parentheses */
    {"relu,add(x,h", "item 2 \"add(x,h\" at column 6",
     "unbalanced parentheses: '(' at column 9 is never closed"},
    {"relu,dense:2(x),tanh(h,relu", "item 3 \"tanh(h,relu\" at column 17",
     "'(' at column 21 is never closed"},
    {"relu),tanh", "item 1 \"relu)\" at column 1",
     "unbalanced parentheses: ')' at column 5 closes no '('"},
    {"add(x,h))", "item 1", "')' at column 9 closes no '('"},
    {"add((x),h)", "item 1", "'(' at column 5 inside the references"},
    {"add(x,h)relu", "item 1", "text after the ')' at column 8"},
    {"add(x)(h)", "item 1", "text after the ')' at column 6"},
    {"a=(x)", "item 1", "no layer or input at column 3"},
    {"relu,(x)", "item 2 \"(x)\" at column 6", "no layer or input at column 6"},
    {"add(x, h)", "item 1", "whitespace at column 7 inside the item"},
    /* input items */
    {"v=input", "item 1", "takes 1 argument, got 0"},
    {"v=input:3x0", "item 1", "\"3x0\" is not a shape"},
    {"v=input:3xx3", "item 1", "\"3xx3\" is not a shape"},
    {"v=input:1x2x3x4x5x6x7x8", "item 1", "is not a shape DxDx... of 1 to 7"},
    {"v=input:2147483648", "item 1", "\"2147483648\" is not a shape"},
    /* a good item, then a bad one: the good one is undone too */
    {"a=dense:3(x),b=relu,add(a,b,q)", "item 3 \"add(a,b,q)\" at column 21",
     "refers to 'q' at column 29"},
    {"a=dense:3,dense:x", "item 2", "\"x\" is not an integer"},
};

static void test_bad_graphs(void **s) {
  (void)s;
  const char *base = "x=input:4,h=dense:4";
  for (size_t i = 0; i < sizeof bad_graphs / sizeof bad_graphs[0]; i++) {
    nnlib_model *m = new_model();
    ASSERT_OK(nnlib_model_add_spec(m, base));
    char before[64];
    spec_of(m, before, sizeof before);
    ASSERT_STATUS(NNLIB_ERR_PARSE, nnlib_model_add_spec(m, bad_graphs[i].spec));
    ts_expect_message(bad_graphs[i].where);
    ts_expect_message(bad_graphs[i].what);
    /* the model is exactly as before: nodes, layers, names, text */
    assert_int_equal(nnlib_model_get_node_count(m), 2);
    assert_int_equal(nnlib_model_get_layer_count(m), 1);
    assert_int_equal(nnlib_model_get_input_count(m), 1);
    expect_spec(m, before);
    /* no name the failed call gave is left behind */
    ASSERT_OK(nnlib_model_add_spec(m, "a=tanh,b=relu,add(a,b,h)"));
    nnlib_model_free(m);
  }
}

/* On an empty model a failing call removes the implicit input its first
 * item made: inputs can still be declared afterwards. */
static void test_failure_on_empty_model(void **s) {
  (void)s;
  nnlib_model *m = new_model();
  ASSERT_STATUS(NNLIB_ERR_PARSE, nnlib_model_add_spec(m, "dense:3,add(zz,q)"));
  ts_expect_message("item 2 \"add(zz,q)\" at column 9");
  ts_expect_message("refers to 'zz' at column 13");
  assert_int_equal(nnlib_model_get_node_count(m), 0);
  assert_int_equal(nnlib_model_get_input_count(m), 0);
  expect_spec(m, "");
  ASSERT_OK(nnlib_model_add_spec(m, "x=input:3,dense:1"));
  assert_int_equal(node_info(m, 0).input_index, 0);
  assert_string_equal(node_info(m, 0).name, "x");
  nnlib_model_free(m);

  /* an input cannot follow layers on the implicit input */
  m = new_model();
  ASSERT_OK(nnlib_model_add_spec(m, "dense:3"));
  ASSERT_STATUS(NNLIB_ERR_PARSE, nnlib_model_add_spec(m, "relu,v=input:3"));
  ts_expect_message("item 2 \"v=input:3\" at column 6");
  assert_int_equal(nnlib_model_get_node_count(m), 2);
  expect_spec(m, "dense:3");
  nnlib_model_free(m);
}

/* Every allocation of a graph description fails in turn: the call either
 * succeeds or reports out-of-memory with the model as it was; no leak. */
static void test_oom(void **s) {
  (void)s;
  const char *spec = "b=dense:4(x),relu,c=dense:4,add(x,c,b),e=tanh,"
                     "concat(e,x),dense:2";
  ts_alloc_stats stats;
  for (long fail_at = 1;; fail_at++) {
    stats.fail_at = 0;
    ts_alloc_install(&stats);
    nnlib_model *m = NULL;
    ASSERT_OK(nnlib_model_create(&m));
    ASSERT_OK(nnlib_model_add_spec(m, "x=input:4"));
    stats.fail_at = stats.allocs + fail_at;
    nnlib_status st = nnlib_model_add_spec(m, spec);
    bool failed_one = stats.allocs >= stats.fail_at;
    if (st == NNLIB_OK) {
      assert_int_equal(nnlib_model_get_node_count(m), 8);
    } else {
      assert_int_equal(st, NNLIB_ERR_OUT_OF_MEMORY);
      assert_int_equal(nnlib_model_get_node_count(m), 1);
      assert_int_equal(nnlib_model_get_layer_count(m), 0);
    }
    nnlib_model_free(m);
    assert_int_equal(stats.live, 0);
    ts_alloc_uninstall();
    if (!failed_one) {
      assert_int_equal(st, NNLIB_OK);
      assert_true(fail_at > 7);
      break;
    }
  }
}

/* ----------------------------------------------- graphs of the C API */

static nnlib_node apply(nnlib_model *m, nnlib_layer *l,
                        const nnlib_node *inputs, size_t count) {
  nnlib_node node = 0;
  ASSERT_OK(nnlib_model_apply(m, l, inputs, count, &node));
  return node;
}

static nnlib_layer *merge(nnlib_layer_kind kind) {
  nnlib_layer *l = NULL;
  if (kind == NNLIB_LAYER_ADD)
    ASSERT_OK(nnlib_add_create(&l));
  else if (kind == NNLIB_LAYER_MULTIPLY)
    ASSERT_OK(nnlib_multiply_create(&l));
  else
    ASSERT_OK(nnlib_concat_create(&l, 0));
  return l;
}

static void predict(nnlib_model *m, const float *x, int64_t n, int64_t in,
                    float *y, int64_t out) {
  nnlib_tensor *tx = ts_tensor2(n, in, x), *ty = ts_tensor2(n, out, NULL);
  ASSERT_OK(nnlib_model_predict(m, tx, ty));
  memcpy(y, nnlib_tensor_get_data(ty), (size_t)(n * out) * sizeof(float));
  nnlib_tensor_free(tx);
  nnlib_tensor_free(ty);
}

/* input -> h = dense -> (relu, tanh) -> add -> concat with h -> dense, no
 * node named: h fans out to three readers. The printed text names what
 * items with references read (invented names n1, ...), parses back into the
 * same graph, prints the same, and with the same seed predicts the same
 * bits. */
static void test_c_api_round_trip(void **s) {
  (void)s;
  enum { IN = 6, H = 5, OUT = 2, N = 4 };
  nnlib_model *a = new_model();
  int64_t shape[1] = {IN};
  nnlib_node x, h, r, t, sum, cat;
  ASSERT_OK(nnlib_model_input(a, shape, 1, &x));
  h = apply(a, ts_dense(0, H, 1), &x, 1);
  r = apply(a, ts_act(NNLIB_ACT_RELU, 0), &h, 1);
  t = apply(a, ts_act(NNLIB_ACT_TANH, 0), &h, 1);
  nnlib_node rt[2] = {r, t};
  sum = apply(a, merge(NNLIB_LAYER_ADD), rt, 2);
  nnlib_node sum_h[2] = {sum, h};
  cat = apply(a, merge(NNLIB_LAYER_CONCAT), sum_h, 2);
  apply(a, ts_dense(0, OUT, 1), &cat, 1);
  char text[512];
  spec_of(a, text, sizeof text);
  assert_string_equal(text, "n0=input:6,n1=dense:5,n2=relu,n3=tanh(n1),"
                            "n4=add(n2,n3),concat(n4,n1),dense:2");

  nnlib_model *b = parse_round_trip(text);
  expect_same_graph(a, b);
  const want_node nodes[] = {
      {NONE, {NONE}, "n0"},
      {NNLIB_LAYER_DENSE, {0, NONE}, "n1"},
      {NNLIB_LAYER_ACTIVATION, {1, NONE}, "n2"},
      {NNLIB_LAYER_ACTIVATION, {1, NONE}, "n3"},
      {NNLIB_LAYER_ADD, {2, 3, NONE}, "n4"},
      {NNLIB_LAYER_CONCAT, {4, 1, NONE}, NULL},
      {NNLIB_LAYER_DENSE, {5, NONE}, NULL},
  };
  expect_nodes(b, nodes, sizeof nodes / sizeof nodes[0]);
  ASSERT_OK(nnlib_model_compile_graph(a, N, NNLIB_LOSS_MSE, NULL, 42));
  ASSERT_OK(nnlib_model_compile_graph(b, N, NNLIB_LOSS_MSE, NULL, 42));
  float in[N * IN], ya[N * OUT], yb[N * OUT];
  uint32_t seed = 11;
  ts_fill_uniform(in, N * IN, -2.0f, 2.0f, &seed);
  predict(a, in, N, IN, ya, OUT);
  predict(b, in, N, IN, yb, OUT);
  assert_memory_equal(ya, yb, sizeof ya);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

/* A node's own name is printed; an invented name avoids every name of the
 * model (n1 is taken by a node that needs no name, so h becomes n1_2). */
static void test_invented_names_avoid_user_names(void **s) {
  (void)s;
  nnlib_model *m = new_model();
  int64_t shape[1] = {3};
  nnlib_node x, h, r, t;
  ASSERT_OK(nnlib_model_input(m, shape, 1, &x));
  ASSERT_OK(nnlib_model_set_node_name(m, x, "features"));
  h = apply(m, ts_dense(0, 3, 1), &x, 1);
  r = apply(m, ts_act(NNLIB_ACT_RELU, 0), &h, 1);
  ASSERT_OK(nnlib_model_set_node_name(m, r, "n1"));
  t = apply(m, ts_act(NNLIB_ACT_SIGMOID, 0), &r, 1);
  nnlib_node th[2] = {t, h};
  apply(m, merge(NNLIB_LAYER_MULTIPLY), th, 2);
  const char *want = "features=input:3,n1_2=dense:3,relu,n3=sigmoid,"
                     "multiply(n3,n1_2)";
  expect_spec(m, want);
  nnlib_model *again = parse_round_trip(want);
  expect_same_graph(m, again);
  nnlib_model_free(again);
  nnlib_model_free(m);
}

/* What the grammar cannot write: an output that is not the newest node. */
static void test_unprintable(void **s) {
  (void)s;
  nnlib_model *m = new_model();
  int64_t shape[1] = {3};
  nnlib_node x, h;
  ASSERT_OK(nnlib_model_input(m, shape, 1, &x));
  h = apply(m, ts_dense(0, 3, 1), &x, 1);
  apply(m, ts_act(NNLIB_ACT_RELU, 0), &h, 1);
  ASSERT_OK(nnlib_model_set_output(m, h));
  char buf[64];
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED,
                nnlib_model_get_spec(m, buf, sizeof buf, NULL));
  ts_expect_message("the output is node 1, not the newest node 2");
  nnlib_model_free(m);

  /* the implicit input has no item, so no reference can name it */
  m = new_model();
  ASSERT_OK(nnlib_model_add(m, ts_dense(0, 3, 1)));
  nnlib_node both[2] = {node_info(m, 0).node, node_info(m, 1).node};
  apply(m, merge(NNLIB_LAYER_ADD), both, 2);
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED,
                nnlib_model_get_spec(m, buf, sizeof buf, NULL));
  ts_expect_message("the implicit input (node 0) is read by a node other");
  nnlib_model_free(m);
}

/* A merge reads at most 64 nodes, as nnlib_model_apply takes. */
static void test_many_refs(void **s) {
  (void)s;
  char text[512] = "x=input:2,h=relu,add(h";
  for (int i = 1; i < 64; i++)
    strcat(text, ",h");
  strcat(text, ")");
  nnlib_model *m = new_model();
  ASSERT_OK(nnlib_model_add_spec(m, text));
  assert_int_equal(node_info(m, 2).input_count, 64);
  expect_spec(m, text);
  nnlib_model_free(m);

  text[strlen(text) - 1] = '\0';
  strcat(text, ",x)");
  m = new_model();
  ASSERT_STATUS(NNLIB_ERR_PARSE, nnlib_model_add_spec(m, text));
  ts_expect_message("item 3");
  ts_expect_message("add reads at most 64 nodes, but the item names 65");
  assert_int_equal(nnlib_model_get_node_count(m), 0);
  nnlib_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_residual_block),
      cmocka_unit_test(test_two_inputs),
      cmocka_unit_test(test_reference_order),
      cmocka_unit_test(test_across_calls),
      cmocka_unit_test(test_last_and_unneeded_names),
      cmocka_unit_test(test_chains_print_as_before),
      cmocka_unit_test(test_bad_graphs),
      cmocka_unit_test(test_failure_on_empty_model),
      cmocka_unit_test(test_oom),
      cmocka_unit_test(test_c_api_round_trip),
      cmocka_unit_test(test_invented_names_avoid_user_names),
      cmocka_unit_test(test_unprintable),
      cmocka_unit_test(test_many_refs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
