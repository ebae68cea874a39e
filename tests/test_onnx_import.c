/* test_onnx_import - nnlib_model_load_onnx(_buffer) on ONNX models written
 * here byte by byte (a protobuf writer of a few lines, independent of the
 * library's reader): a small Gemm + Relu model predicts what naive loops
 * compute; crafted bad files give their exact status with *out NULL and
 * nothing leaked (truncation at every byte, huge, negative and overflowing
 * dims, an initializer shorter than its dims, a tensor of no elements
 * whose other dims overflow, a cycle, a name nothing
 * produces, an unknown op named in the message, external data, no output,
 * opsets 0, 5, 6 (Gemm's broadcast) and 18; opsets 7 to 17 read; broken
 * nn.MultiheadAttention subgraphs: the head count, the scale, the mask,
 * weights that are not initializers; torch's opset-14 LayerNorm subgraph
 * broken: the exponent, epsilon, the axes, an intermediate read outside,
 * a scale per row); the
 * graph output chosen by nnlib_onnx_options.output (only its nodes
 * imported; none chosen among several, or a name that is no output, with
 * their statuses; a bad loss or an optimizer without one refused before
 * reading, the optimizer freed; a directory given as the path), a
 * time-major RNN graph input [T, N, F] taken batch first with Y and Y_h
 * given batch first (against a naive loop), and
 * LayerNormalization's Mean and InvStdDev refused where read; Transposes
 * onto transpose layers (also after a Reshape torch's flatten(2) writes,
 * its target folded through Shape, Slice and Concat) and the perms that
 * stay refused; whole-sample imports (nnlib_onnx_options.whole_sample) of
 * Gemm with a matrix bias (opsets 13 and 6) and transA, Flatten at axis 0
 * and a Transpose of the sample's axes against naive loops, with their
 * refusals (a symbolic input axis, a batch-reading MaxPool, a bad value)
 * and an options struct of 1.5's size reading as before; Softmax's
 * function body (ReduceMax, Sub, Exp, ReduceSum, Div) at opsets 13 and 11
 * as one softmax against a naive loop, and broken (another axis, the
 * Sub's result read outside) refused naming the ReduceMax; a file's
 * INT64_MIN read as a value (a Slice's end, Neg's overflow, a Reshape
 * target below -1), not as the batch size from Shape; a Reshape to
 * [-1, ...] that would change the batch size refused as such; Softmax at
 * opset 11 over the last axis and over the whole sample (batch first and
 * whole-sample) against numpy's values; and an
 * allocation failure injected at every allocation of an import (batch
 * first, whole-sample, the softmax body) fails with
 * NNLIB_ERR_OUT_OF_MEMORY, leaving no block behind. */
#define _POSIX_C_SOURCE 200809L /* mkstemp, fdopen */
#include "test_support.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------ protobuf writer */

typedef struct pbuf {
  unsigned char b[4096];
  size_t n;
} pbuf;

static void put_varint(pbuf *p, uint64_t v) {
  do {
    assert_true(p->n < sizeof p->b);
    p->b[p->n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
}

static void put_int(pbuf *p, uint32_t field, int64_t v) {
  put_varint(p, (uint64_t)field << 3);
  put_varint(p, (uint64_t)v);
}

static void put_bytes(pbuf *p, uint32_t field, const void *data, size_t n) {
  put_varint(p, (uint64_t)field << 3 | 2);
  put_varint(p, n);
  assert_true(p->n + n <= sizeof p->b);
  memcpy(p->b + p->n, data, n);
  p->n += n;
}

static void put_str(pbuf *p, uint32_t field, const char *s) {
  put_bytes(p, field, s, strlen(s));
}

static void put_msg(pbuf *p, uint32_t field, const pbuf *m) {
  put_bytes(p, field, m->b, m->n);
}

/* TensorProto: dims 1, data_type 2 (FLOAT 1), name 8, raw_data 9. */
static pbuf tensor(const char *name, const int64_t *dims, size_t rank,
                   const float *values, size_t count) {
  pbuf t = {{0}, 0};
  for (size_t k = 0; k < rank; k++)
    put_int(&t, 1, dims[k]);
  put_int(&t, 2, 1);
  put_str(&t, 8, name);
  unsigned char raw[1024];
  for (size_t k = 0; k < count; k++) {
    uint32_t bits;
    memcpy(&bits, &values[k], 4);
    for (int j = 0; j < 4; j++)
      raw[4 * k + (size_t)j] = (unsigned char)(bits >> (8 * j));
  }
  put_bytes(&t, 9, raw, 4 * count);
  return t;
}

/* ValueInfoProto of a float tensor [batch, dims...]. */
/* ValueInfoProto of a tensor of element type `elem` (FLOAT 1, UINT8 2,
 * INT8 3, ...). */
static pbuf typed_value_info(const char *name, int64_t elem,
                             const int64_t *dims, size_t rank) {
  pbuf shape = {{0}, 0}, tt = {{0}, 0}, type = {{0}, 0}, v = {{0}, 0};
  for (size_t k = 0; k < rank; k++) {
    pbuf dim = {{0}, 0};
    if (dims[k] < 0)
      put_str(&dim, 2, "N"); /* dim_param */
    else
      put_int(&dim, 1, dims[k]);
    put_msg(&shape, 1, &dim);
  }
  put_int(&tt, 1, elem);
  put_msg(&tt, 2, &shape);
  put_msg(&type, 1, &tt);
  put_str(&v, 1, name);
  put_msg(&v, 2, &type);
  return v;
}

static pbuf value_info(const char *name, const int64_t *dims, size_t rank) {
  return typed_value_info(name, 1, dims, rank);
}

/* NodeProto: input 1, output 2, name 3, op_type 4, attribute 5. */
static pbuf node(const char *op, const char *in0, const char *in1,
                 const char *in2, const char *out) {
  pbuf n = {{0}, 0};
  const char *ins[3] = {in0, in1, in2};
  for (int k = 0; k < 3; k++)
    if (ins[k] != NULL)
      put_str(&n, 1, ins[k]);
  put_str(&n, 2, out);
  put_str(&n, 3, op);
  put_str(&n, 4, op);
  return n;
}

static void attr_int(pbuf *n, const char *name, int64_t v) {
  pbuf a = {{0}, 0};
  put_str(&a, 1, name);
  put_int(&a, 3, v);
  put_int(&a, 20, 2); /* INT */
  put_msg(n, 5, &a);
}

static const float W[12] = {0.5f,  -1.0f, 0.25f, 2.0f,  -0.5f, 1.5f,
                            1.0f,  0.0f,  -2.0f, 0.75f, 0.1f,  -0.3f};
static const float B[3] = {0.1f, -0.2f, 0.3f};

/* What the graph of the small model holds; each test changes one part. */
typedef struct parts {
  int64_t opset;
  bool no_output, cycle, dangling, unknown_op, external, short_init;
  int64_t w_dims[2];
} parts;

static parts good_parts(void) {
  parts p = {13, false, false, false, false, false, false, {3, 4}};
  return p;
}

/* x [N, 4] -> Gemm(W [3, 4], B [3], transB) -> Relu -> y [N, 3]. */
static pbuf model_bytes(const parts *p) {
  pbuf g = {{0}, 0}, m = {{0}, 0}, opset = {{0}, 0};
  pbuf gemm = node("Gemm", "x", "W", "B", "h");
  attr_int(&gemm, "transB", 1);
  put_msg(&g, 1, &gemm);
  pbuf relu = node(p->unknown_op ? "FrobnicateOp" : "Relu",
                   p->cycle ? "y" : p->dangling ? "nowhere" : "h", NULL, NULL,
                   p->cycle ? "h2" : "y");
  put_msg(&g, 1, &relu);
  if (p->cycle) {
    pbuf back = node("Relu", "h2", NULL, NULL, "y");
    put_msg(&g, 1, &back);
  }
  put_str(&g, 2, "small");
  pbuf w = tensor("W", p->w_dims, 2, W, p->short_init ? 11 : 12);
  if (p->external) {
    pbuf entry = {{0}, 0};
    put_str(&entry, 1, "location");
    put_str(&entry, 2, "weights.bin");
    put_msg(&w, 13, &entry);
    put_int(&w, 14, 1);
  }
  put_msg(&g, 5, &w);
  int64_t bd[1] = {3};
  pbuf b = tensor("B", bd, 1, B, 3);
  put_msg(&g, 5, &b);
  int64_t xd[2] = {-1, 4}, yd[2] = {-1, 3};
  pbuf x = value_info("x", xd, 2), y = value_info("y", yd, 2);
  put_msg(&g, 11, &x);
  if (!p->no_output)
    put_msg(&g, 12, &y);
  put_int(&m, 1, 8); /* ir_version */
  put_str(&opset, 1, "");
  put_int(&opset, 2, p->opset);
  put_msg(&m, 8, &opset);
  put_msg(&m, 7, &g); /* the graph last: any cut ends inside it */
  return m;
}

/* ------------------------------------------------------------- checks */

static void expect_status(nnlib_status want, const pbuf *bytes) {
  nnlib_model *m = (nnlib_model *)&m; /* must come back NULL */
  ASSERT_STATUS(want, nnlib_model_load_onnx_buffer(&m, bytes->b, bytes->n,
                                                   NULL));
  assert_null(m);
}

static void predicts_like_loops(void **state) {
  (void)state;
  parts p = good_parts();
  pbuf bytes = model_bytes(&p);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, NULL));
  float xs[2][4] = {{1, 2, 3, 4}, {-1, 0.5f, 2, -3}};
  int64_t shape[2] = {2, 4}, yshape[2] = {2, 3};
  nnlib_tensor *x = NULL, *y = NULL;
  ASSERT_OK(nnlib_tensor_create(&x, shape, 2));
  ASSERT_OK(nnlib_tensor_create(&y, yshape, 2));
  memcpy(nnlib_tensor_get_data(x), xs, sizeof xs);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  for (int n = 0; n < 2; n++)
    for (int o = 0; o < 3; o++) {
      double z = B[o];
      for (int i = 0; i < 4; i++)
        z += (double)W[o * 4 + i] * xs[n][i];
      ASSERT_NEAR(nnlib_tensor_get_data(y)[n * 3 + o], z > 0 ? z : 0, 1e-5);
    }
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

static void truncated_at_every_byte(void **state) {
  (void)state;
  parts p = good_parts();
  pbuf bytes = model_bytes(&p);
  for (size_t cut = 0; cut < bytes.n; cut++) {
    nnlib_model *m = NULL;
    nnlib_status st = nnlib_model_load_onnx_buffer(&m, bytes.b, cut, NULL);
    if (st != NNLIB_ERR_CORRUPT_FILE)
      fail_msg("cut at %zu of %zu: %s (%s)", cut, bytes.n,
               nnlib_status_string(st), nnlib_last_error_message());
    assert_null(m);
  }
}

static void bad_dims(void **state) {
  (void)state;
  parts p = good_parts();
  p.w_dims[0] = (int64_t)1 << 40; /* no overflow, far more than the data */
  pbuf bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  p.w_dims[1] = (int64_t)1 << 40; /* 2^80: the product overflows */
  bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_TOO_LARGE, &bytes);
  ts_expect_message("overflows");
  p.w_dims[0] = -3; /* negative (a varint of ten bytes) */
  p.w_dims[1] = 4;
  bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  ts_expect_message("negative");
}

static void short_initializer(void **state) {
  (void)state;
  parts p = good_parts();
  p.short_init = true;
  pbuf bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  ts_expect_message("raw_data of 44 bytes");
}

static void graph_errors(void **state) {
  (void)state;
  parts p = good_parts();
  p.cycle = true;
  pbuf bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  ts_expect_message("cycle");
  p = good_parts();
  p.dangling = true;
  bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  ts_expect_message("'nowhere' is made by no node");
  p = good_parts();
  p.no_output = true;
  bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  ts_expect_message("no output");
}

static void unsupported(void **state) {
  (void)state;
  parts p = good_parts();
  p.unknown_op = true;
  pbuf bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_UNSUPPORTED, &bytes);
  ts_expect_message("FrobnicateOp");
  ts_expect_message("ONNX node 1");
  p = good_parts();
  p.external = true;
  bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_UNSUPPORTED, &bytes);
  ts_expect_message("external");
  p = good_parts();
  p.opset = 18;
  bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_UNSUPPORTED_VERSION, &bytes);
  ts_expect_message("opset 18");
  p.opset = 0;
  bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_UNSUPPORTED_VERSION, &bytes);
  /* Gemm and Relu mean at opsets 7 to 17 what they mean at 13 */
  for (int64_t opset = 7; opset <= 17; opset++) {
    p.opset = opset;
    bytes = model_bytes(&p);
    nnlib_model *m = NULL;
    ASSERT_OK(nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, NULL));
    nnlib_model_free(m);
  }
  /* Gemm 6: broadcast defaults to 0, C [3] is then not the full [N, 3] */
  p.opset = 6;
  bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_UNSUPPORTED_VERSION, &bytes);
  ts_expect_message("broadcast = 0");
  ts_expect_message("opset 6");
  /* Gemm 1..5 (and Relu) are older definitions still */
  p.opset = 5;
  bytes = model_bytes(&p);
  expect_status(NNLIB_ERR_UNSUPPORTED_VERSION, &bytes);
  ts_expect_message("Gemm at opset 5");
}

/* Broken nn.MultiheadAttention subgraphs (tests/make_onnx_fixtures.py
 * writes them with python3-onnx from torch's export): each is
 * NNLIB_ERR_UNSUPPORTED naming the node that does not fit, *out NULL. */
static void expect_fixture(const char *name, nnlib_status want,
                           const char *node, const char *why) {
  char path[1024];
  const char *root = getenv("NNLIB_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/tests/fixtures/onnx/%s.onnx",
           root ? root : "..", name);
  nnlib_model *m = (nnlib_model *)&m;
  nnlib_status st = nnlib_model_load_onnx(&m, path, NULL);
  if (st != want)
    fail_msg("%s: %s (%s), want %s", name, nnlib_status_string(st),
             nnlib_last_error_message(), nnlib_status_string(want));
  assert_null(m);
  ts_expect_message(node);
  ts_expect_message(why);
}

static void broken_attention(void **state) {
  (void)state;
  /* q's Reshape target [T, N*2, 2]: 2 heads of 2 are not D = 8 */
  expect_fixture("bad_attention_heads", NNLIB_ERR_UNSUPPORTED,
                 "'/mha/Reshape' (Reshape)",
                 "q, k and v are reshaped into [T, N*H, D/H]");
  /* Q / 3 instead of Q / sqrt(2) */
  expect_fixture("bad_attention_scale", NNLIB_ERR_UNSUPPORTED,
                 "'/mha/Softmax' (Softmax)",
                 "not scaled by 1/sqrt(head size)");
  /* an arbitrary float mask */
  expect_fixture("bad_attention_mask", NNLIB_ERR_UNSUPPORTED,
                 "'/mha/Add_2' (Add)", "not the causal mask");
  /* W_in a graph input, not an initializer */
  expect_fixture("bad_attention_weights", NNLIB_ERR_UNSUPPORTED,
                 "'/mha/MatMul' (MatMul)",
                 "is a graph tensor from outside the attention subgraph");
}

/* torch's opset-14 LayerNorm subgraph with one thing changed is not a
 * layer normalisation: its nodes map one by one and the first one nnlib
 * has no layer for is refused, named. */
static void broken_layernorm(void **state) {
  (void)state;
  const char *names[4] = {"bad_layernorm_pow",  /* (x - mean)^3 */
                          "bad_layernorm_eps",  /* epsilon 0 */
                          "bad_layernorm_axes", /* a variance over axis 0 */
                          "bad_layernorm_outside"}; /* x - mean read after */
  for (size_t k = 0; k < 4; k++)
    expect_fixture(names[k], NNLIB_ERR_UNSUPPORTED,
                   "'/1/ReduceMean' (ReduceMean)",
                   "operator 'ReduceMean' has no nnlib layer");
  /* a scale of one row per sample [5, 8]: the layernorm is read without
   * it, and the Mul by that constant is refused */
  expect_fixture("bad_layernorm_scale", NNLIB_ERR_UNSUPPORTED,
                 "'/1/Mul' (Mul)", "input 1 must be a tensor computed");
}

/* A layer normalisation pattern in a graph that names one output twice
 * (the Pow and the Div both make '/1/Pow_output_0') and whose epsilon is
 * no constant (found by fuzz_onnx; the file is its regression input): the
 * matcher once read the pruned epsilon through NULL; a name two nodes make
 * is now refused before any matcher runs. */
static void layernorm_output_named_twice(void **state) {
  (void)state;
  char path[1024];
  const char *root = getenv("NNLIB_SOURCE_DIR");
  snprintf(path, sizeof path,
           "%s/fuzz/regressions/onnx/layernorm-output-named-twice",
           root ? root : "..");
  nnlib_model *m = (nnlib_model *)&m;
  ASSERT_STATUS(NNLIB_ERR_CORRUPT_FILE, nnlib_model_load_onnx(&m, path, NULL));
  assert_null(m);
  ts_expect_message("ONNX: two nodes make the output '/1/Pow_output_0' "
                    "(ONNX names one tensor once)");
}

static void arguments_and_files(void **state) {
  (void)state;
  parts p = good_parts();
  pbuf bytes = model_bytes(&p);
  nnlib_model *m = NULL;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_load_onnx_buffer(NULL, bytes.b, bytes.n, NULL));
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_load_onnx(&m, NULL, NULL));
  ASSERT_STATUS(NNLIB_ERR_IO,
                nnlib_model_load_onnx(&m, "/nonexistent/model.onnx", NULL));
  assert_null(m);
  /* a directory opens on Linux and sized as LONG_MAX once asked the
   * allocator for 2^63 bytes: the .nnl loader's NNLIB_ERR_IO instead, the
   * optimizer freed */
  nnlib_onnx_options d;
  ASSERT_OK(nnlib_onnx_options_init(&d));
  d.loss = NNLIB_LOSS_MSE;
  ASSERT_OK(nnlib_sgd_create(&d.optimizer, 0.1f, 0.0f, 0, 0.0f));
  m = (nnlib_model *)&m;
  ASSERT_STATUS(NNLIB_ERR_IO, nnlib_model_load_onnx(&m, "/tmp", &d));
  ts_expect_message("nnlib_model_load_onnx: /tmp is not a regular file");
  assert_null(m);
  /* the optimizer is taken also on failure (valgrind sees a leak if not) */
  nnlib_onnx_options o;
  ASSERT_OK(nnlib_onnx_options_init(&o));
  assert_int_equal(o.max_batch, 64);
  o.loss = NNLIB_LOSS_MSE;
  ASSERT_OK(nnlib_sgd_create(&o.optimizer, 0.1f, 0.0f, 0, 0.0f));
  p.unknown_op = true;
  bytes = model_bytes(&p);
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED,
                nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, &o));
  assert_null(m);
  /* a loss that is no nnlib_loss, or an optimizer without a loss: the
   * documented INVALID_ARGUMENT before any byte is read (a path that does
   * not exist is not opened), the optimizer freed */
  for (int k = 0; k < 4; k++) {
    o.loss = k % 2 ? NNLIB_LOSS_NONE : (nnlib_loss)99;
    ASSERT_OK(nnlib_sgd_create(&o.optimizer, 0.1f, 0.0f, 0, 0.0f));
    m = (nnlib_model *)&m;
    ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                  k < 2 ? nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, &o)
                        : nnlib_model_load_onnx(&m, "/nonexistent/m.onnx", &o));
    ts_expect_message(k % 2 ? "nnlib_onnx_options: an optimizer with loss "
                              "NNLIB_LOSS_NONE"
                            : "nnlib_onnx_options: loss 99 is no nnlib_loss");
    assert_null(m);
  }
  o.loss = NNLIB_LOSS_MSE;
  /* from a file, trainable with the defaults' plain SGD */
  p = good_parts();
  bytes = model_bytes(&p);
  char path[] = "/tmp/nnlib_onnx_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(bytes.b, 1, bytes.n, f), bytes.n);
  fclose(f);
  o.optimizer = NULL;
  ASSERT_OK(nnlib_model_load_onnx(&m, path, &o));
  remove(path);
  float xs[4] = {1, 2, 3, 4}, ts[3] = {0, 0, 0};
  nnlib_tensor *x = ts_tensor2(1, 4, xs), *t = ts_tensor2(1, 3, ts);
  float loss = 0;
  ASSERT_OK(nnlib_model_step(m, x, t, &loss));
  assert_true(loss > 0);
  nnlib_tensor_free(x);
  nnlib_tensor_free(t);
  nnlib_model_free(m);
}

/* ------------------------------------------------ outputs, time-major */

/* NodeProto with any inputs ("" for an absent one) and outputs. */
static pbuf node_io(const char *op, const char *const *ins, size_t nin,
                    const char *const *outs, size_t nout) {
  pbuf n = {{0}, 0};
  for (size_t k = 0; k < nin; k++)
    put_str(&n, 1, ins[k]);
  for (size_t k = 0; k < nout; k++)
    put_str(&n, 2, outs[k]);
  put_str(&n, 4, op);
  return n;
}

static pbuf model_of(const pbuf *g, int64_t opset) {
  pbuf m = {{0}, 0}, o = {{0}, 0};
  put_int(&m, 1, 8);
  put_str(&o, 1, "");
  put_int(&o, 2, opset);
  put_msg(&m, 8, &o);
  put_msg(&m, 7, g);
  return m;
}

/* x [N, 4] -> Gemm(W, C, transB) -> y with C = `op` (Flatten at axis 1,
 * or Concat of z twice along axis 1) of the zero-element initializer z of
 * dims zd (no data). */
static pbuf gemm_bias_of_empty(const char *op, const int64_t *zd,
                               size_t zrank) {
  pbuf g = {{0}, 0};
  bool cat = strcmp(op, "Concat") == 0;
  pbuf fold = node(op, "z", cat ? "z" : NULL, NULL, "C");
  attr_int(&fold, "axis", 1);
  pbuf gemm = node("Gemm", "x", "W", "C", "y");
  attr_int(&gemm, "transB", 1);
  put_msg(&g, 1, &fold);
  put_msg(&g, 1, &gemm);
  int64_t wd[2] = {3, 4}, xd[2] = {-1, 4}, yd[2] = {-1, 3};
  pbuf w = tensor("W", wd, 2, W, 12), z = tensor("z", zd, zrank, NULL, 0);
  put_msg(&g, 5, &w);
  put_msg(&g, 5, &z);
  pbuf x = value_info("x", xd, 2), y = value_info("y", yd, 2);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, 13);
}

/* A tensor of no elements whose other dims multiply past int64 ([0, 2^62,
 * 2^62]) is refused where it is read, before Flatten or Gather multiply
 * them (signed overflow once); dims that fit ([0, 2^62]) but add up past
 * int64 in a Concat are refused there. */
static void empty_tensor_huge_dims(void **state) {
  (void)state;
  const int64_t huge[3] = {0, (int64_t)1 << 62, (int64_t)1 << 62};
  pbuf bytes = gemm_bias_of_empty("Flatten", huge, 3);
  expect_status(NNLIB_ERR_TOO_LARGE, &bytes);
  ts_expect_message("ONNX: tensor 'z': the product of its dims overflows");
  const int64_t wide[2] = {0, (int64_t)1 << 62};
  bytes = gemm_bias_of_empty("Concat", wide, 2);
  expect_status(NNLIB_ERR_TOO_LARGE, &bytes);
  ts_expect_message("ONNX node 0 'Concat' (Concat): the concatenated axis "
                    "overflows");
}

static nnlib_status load_output(nnlib_model **m, const pbuf *bytes,
                                const char *output) {
  nnlib_onnx_options o;
  ASSERT_OK(nnlib_onnx_options_init(&o));
  assert_null(o.output);
  o.max_batch = 4;
  o.output = output;
  return nnlib_model_load_onnx_buffer(m, bytes->b, bytes->n, &o);
}

/* x [N, 4] -> Gemm -> h; y = Relu(h), s = Sigmoid(h); outputs h, y, s. */
static pbuf three_outputs(void) {
  pbuf g = {{0}, 0};
  pbuf gemm = node("Gemm", "x", "W", "B", "h");
  attr_int(&gemm, "transB", 1);
  put_msg(&g, 1, &gemm);
  pbuf relu = node("Relu", "h", NULL, NULL, "y");
  pbuf sig = node("Sigmoid", "h", NULL, NULL, "s");
  put_msg(&g, 1, &relu);
  put_msg(&g, 1, &sig);
  int64_t wd[2] = {3, 4}, bd[1] = {3}, xd[2] = {-1, 4}, yd[2] = {-1, 3};
  pbuf w = tensor("W", wd, 2, W, 12), b = tensor("B", bd, 1, B, 3);
  put_msg(&g, 5, &w);
  put_msg(&g, 5, &b);
  pbuf x = value_info("x", xd, 2);
  put_msg(&g, 11, &x);
  const char *names[3] = {"h", "y", "s"};
  for (int k = 0; k < 3; k++) {
    pbuf v = value_info(names[k], yd, 2);
    put_msg(&g, 12, &v);
  }
  return model_of(&g, 13);
}

/* nnlib_onnx_options.output picks one graph output; only the nodes it
 * needs are imported (Sigmoid would be a dead end when y is chosen). */
static void output_option(void **state) {
  (void)state;
  pbuf bytes = three_outputs();
  nnlib_model *m = (nnlib_model *)&m;
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED, load_output(&m, &bytes, NULL));
  ts_expect_message("the graph has 3 outputs ('h', 'y', 's'); an nnlib "
                    "model computes one: choose it with "
                    "nnlib_onnx_options.output");
  assert_null(m);
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT, load_output(&m, &bytes, "z"));
  ts_expect_message("output 'z' is not an output of the graph ('h', 'y', "
                    "'s')");
  assert_null(m);
  const float xs[8] = {1, -2, 0.5f, 3, -1, 0.25f, 2, -0.5f};
  const char *const pick[3] = {"h", "y", "s"};
  for (int k = 0; k < 3; k++) {
    ASSERT_OK(load_output(&m, &bytes, pick[k]));
    assert_int_equal(nnlib_model_get_layer_count(m), k == 0 ? 1 : 2);
    nnlib_tensor *x = ts_tensor2(2, 4, xs), *y = ts_tensor2(2, 3, NULL);
    ASSERT_OK(nnlib_model_predict(m, x, y));
    for (int s = 0; s < 2; s++)
      for (int j = 0; j < 3; j++) {
        double h = B[j];
        for (int i = 0; i < 4; i++)
          h += (double)W[j * 4 + i] * xs[s * 4 + i];
        double want = k == 0 ? h : k == 1 ? (h > 0 ? h : 0)
                                          : 1.0 / (1.0 + exp(-h));
        ASSERT_NEAR(nnlib_tensor_get_data(y)[s * 3 + j], want, 1e-5);
      }
    nnlib_tensor_free(x);
    nnlib_tensor_free(y);
    nnlib_model_free(m);
  }
  /* an options struct of 1.4's size (no output field) reads as NULL */
  nnlib_onnx_options o;
  ASSERT_OK(nnlib_onnx_options_init_size(&o, offsetof(nnlib_onnx_options,
                                                      output)));
  o.output = "y"; /* beyond the size given: not read */
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED,
                nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, &o));
  ts_expect_message("the graph has 3 outputs");
}

enum { RT = 3, RF = 2, RH = 2 }; /* steps, features, hidden */
static const float RW[RH * RF] = {0.5f, -0.25f, 0.75f, 0.1f};
static const float RR[RH * RH] = {-0.4f, 0.3f, 0.2f, 0.6f};
static const float RB[2 * RH] = {0.05f, -0.1f, 0.2f, 0.15f};

/* X [T, N, F] (a graph input, batch at axis 1) -> RNN of layout 0 ->
 * outputs Y [T, 1, N, H] and Y_h [1, N, H]; a LayerNormalization of X's
 * last axis, with Mean among the outputs. */
static pbuf time_major_rnn(void) {
  pbuf g = {{0}, 0};
  const char *ins[4] = {"X", "W", "R", "B"}, *outs[2] = {"Y", "Y_h"};
  pbuf rnn = node_io("RNN", ins, 4, outs, 2);
  attr_int(&rnn, "hidden_size", RH);
  put_msg(&g, 1, &rnn);
  int64_t wd[3] = {1, RH, RF}, rd[3] = {1, RH, RH}, bd[2] = {1, 2 * RH};
  pbuf w = tensor("W", wd, 3, RW, RH * RF), r = tensor("R", rd, 3, RR, 4);
  pbuf b = tensor("B", bd, 2, RB, 2 * RH);
  put_msg(&g, 5, &w);
  put_msg(&g, 5, &r);
  put_msg(&g, 5, &b);
  int64_t xd[3] = {RT, -1, RF}, yd[4] = {RT, 1, -1, RH}, hd[3] = {1, -1, RH};
  pbuf x = value_info("X", xd, 3), y = value_info("Y", yd, 4);
  pbuf yh = value_info("Y_h", hd, 3);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  put_msg(&g, 12, &yh);
  return model_of(&g, 14);
}

/* h_t = tanh(W x_t + Wb + R h_{t-1} + Rb) for sample s of x [N, T, F]. */
static void rnn_loop(const float *x, int s, double out[RT][RH]) {
  double h[RH] = {0, 0};
  for (int t = 0; t < RT; t++) {
    double next[RH];
    for (int j = 0; j < RH; j++) {
      double a = (double)RB[j] + RB[RH + j];
      for (int i = 0; i < RF; i++)
        a += (double)RW[j * RF + i] * x[(s * RT + t) * RF + i];
      for (int i = 0; i < RH; i++)
        a += (double)RR[j * RH + i] * h[i];
      next[j] = tanh(a);
    }
    for (int j = 0; j < RH; j++)
      h[j] = out[t][j] = next[j];
  }
}

/* The time-major graph input becomes a batch-first model input [N, T, F];
 * Y [T, 1, N, H] comes back as [N, T, H] and Y_h [1, N, H] as [N, H]. */
static void time_major_input_and_outputs(void **state) {
  (void)state;
  pbuf bytes = time_major_rnn();
  const float xs[2 * RT * RF] = {1, -1, 0.5f, 2, -0.5f, 0.25f,
                                 -2, 1.5f, 0.1f, -0.3f, 0.7f, 0.9f};
  for (int last = 0; last < 2; last++) {
    nnlib_model *m = NULL;
    ASSERT_OK(load_output(&m, &bytes, last ? "Y_h" : "Y"));
    int64_t in[NNLIB_MAX_RANK], outd[NNLIB_MAX_RANK];
    size_t rank = 0, orank = 0;
    ASSERT_OK(nnlib_model_get_input_shape(m, in, NNLIB_MAX_RANK, &rank));
    assert_int_equal(rank, 2);
    assert_int_equal(in[0], RT);
    assert_int_equal(in[1], RF);
    ASSERT_OK(nnlib_model_get_output_shape(m, outd, NNLIB_MAX_RANK, &orank));
    assert_int_equal(orank, last ? 1 : 2);
    nnlib_tensor *x = NULL, *y = NULL;
    ASSERT_OK(nnlib_tensor_wrap(&x, (float *)xs, (int64_t[]){2, RT, RF}, 3));
    int64_t per = last ? RH : RT * RH;
    y = ts_tensor2(2, per, NULL);
    ASSERT_OK(nnlib_model_predict(m, x, y));
    for (int s = 0; s < 2; s++) {
      double want[RT][RH];
      rnn_loop(xs, s, want);
      for (int64_t k = 0; k < per; k++)
        ASSERT_NEAR(nnlib_tensor_get_data(y)[s * per + k],
                    last ? want[RT - 1][k] : want[k / RH][k % RH], 1e-6);
    }
    nnlib_tensor_free(x);
    nnlib_tensor_free(y);
    nnlib_model_free(m);
  }
}

/* LayerNormalization's Mean and InvStdDev: not computed by nnlib's
 * layernorm; Y is. */
static void layernorm_statistics(void **state) {
  (void)state;
  pbuf g = {{0}, 0};
  const char *ins[3] = {"x", "S", "Bn"}, *outs[3] = {"Y", "Mean", "Inv"};
  pbuf ln = node_io("LayerNormalization", ins, 3, outs, 3);
  put_msg(&g, 1, &ln);
  const char *rins[1] = {"Mean"}, *routs[1] = {"r"};
  pbuf relu = node_io("Relu", rins, 1, routs, 1);
  put_msg(&g, 1, &relu);
  int64_t sd[1] = {4}, xd[2] = {-1, 4}, md[2] = {-1, 1};
  const float ones[4] = {1, 1, 1, 1}, zeros[4] = {0, 0, 0, 0};
  pbuf sc = tensor("S", sd, 1, ones, 4), bb = tensor("Bn", sd, 1, zeros, 4);
  put_msg(&g, 5, &sc);
  put_msg(&g, 5, &bb);
  pbuf x = value_info("x", xd, 2), y = value_info("Y", xd, 2);
  pbuf mean = value_info("Mean", md, 2), inv = value_info("Inv", md, 2);
  pbuf r = value_info("r", md, 2);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  put_msg(&g, 12, &mean);
  put_msg(&g, 12, &inv);
  put_msg(&g, 12, &r);
  pbuf bytes = model_of(&g, 17);
  nnlib_model *m = NULL;
  ASSERT_OK(load_output(&m, &bytes, "Y"));
  nnlib_model_free(m);
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED, load_output(&m, &bytes, "Mean"));
  ts_expect_message("graph output 'Mean' is LayerNormalization's Mean "
                    "(nnlib's layernorm outputs only Y");
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED, load_output(&m, &bytes, "Inv"));
  ts_expect_message("LayerNormalization's InvStdDev");
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED, load_output(&m, &bytes, "r"));
  ts_expect_message("(Relu): input 0 is LayerNormalization's Mean");
  assert_null(m);
}

/* ------------------------------------------------------------ pools */

/* AttributeProto of INTS (type 7, ints field 8) or STRING (3, s field 4). */
static void attr_ints(pbuf *n, const char *name, const int64_t *v,
                      size_t count) {
  pbuf a = {{0}, 0};
  put_str(&a, 1, name);
  for (size_t k = 0; k < count; k++)
    put_int(&a, 8, v[k]);
  put_int(&a, 20, 7);
  put_msg(n, 5, &a);
}

static void attr_str(pbuf *n, const char *name, const char *v) {
  pbuf a = {{0}, 0};
  put_str(&a, 1, name);
  put_str(&a, 4, v);
  put_int(&a, 20, 3);
  put_msg(n, 5, &a);
}

/* x [N, 1, 7, 6] -> one pool node y (its attributes written by `attrs`),
 * at opset 17; W [1, 1, 3, 3] is there for Conv. */
typedef void (*attrs_fn)(pbuf *n);
static pbuf pool_model(const char *op, attrs_fn attrs) {
  pbuf g = {{0}, 0};
  bool conv = strcmp(op, "Conv") == 0;
  pbuf n = node(op, "x", conv ? "W" : NULL, NULL, "y");
  int64_t k[2] = {3, 3};
  if (!conv)
    attr_ints(&n, "kernel_shape", k, 2);
  attrs(&n);
  put_msg(&g, 1, &n);
  int64_t wd[4] = {1, 1, 3, 3};
  const float w[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  pbuf wt = tensor("W", wd, 4, w, 9);
  if (conv)
    put_msg(&g, 5, &wt);
  int64_t xd[4] = {-1, 1, 7, 6}, yd[4] = {-1, 1, -1, -1};
  pbuf x = value_info("x", xd, 4), y = value_info("y", yd, 4);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, 17);
}

static void every_option(pbuf *n) {
  const int64_t s[2] = {2, 2}, pads[4] = {0, 1, 2, 0}, d[2] = {1, 2};
  attr_ints(n, "strides", s, 2);
  attr_ints(n, "pads", pads, 4);
  attr_ints(n, "dilations", d, 2);
  attr_int(n, "ceil_mode", 1);
}
static void same_lower(pbuf *n) {
  const int64_t s[2] = {2, 1};
  attr_ints(n, "strides", s, 2);
  attr_str(n, "auto_pad", "SAME_LOWER");
}
static void pads_one(pbuf *n) {
  const int64_t pads[4] = {1, 1, 1, 1};
  attr_ints(n, "pads", pads, 4);
}
static void no_attrs(pbuf *n) { (void)n; }
static void no_pads_include(pbuf *n) { attr_int(n, "count_include_pad", 1); }
static void pads_one_include(pbuf *n) {
  pads_one(n);
  attr_int(n, "count_include_pad", 1);
}
static void dilated(pbuf *n) {
  const int64_t d[2] = {2, 2};
  attr_ints(n, "dilations", d, 2);
}
static void pads_three(pbuf *n) {
  const int64_t pads[4] = {3, 0, 0, 0};
  attr_ints(n, "pads", pads, 4);
}
static void pads_uneven(pbuf *n) {
  const int64_t pads[4] = {1, 0, 0, 0};
  attr_ints(n, "pads", pads, 4);
}
static void same_upper(pbuf *n) {
  const int64_t s[2] = {2, 2};
  attr_ints(n, "strides", s, 2);
  attr_str(n, "auto_pad", "SAME_UPPER");
}

static void huge_dilation(pbuf *n) {
  const int64_t d[2] = {(int64_t)1 << 62, 1};
  attr_ints(n, "dilations", d, 2);
  attr_str(n, "auto_pad", "SAME_UPPER");
}
static void huge_stride(pbuf *n) {
  const int64_t s[2] = {INT64_MAX, 1};
  attr_ints(n, "strides", s, 2);
  attr_str(n, "auto_pad", "SAME_LOWER");
}

static void expect_pool_spec(const char *op, attrs_fn attrs,
                             const char *want) {
  pbuf bytes = pool_model(op, attrs);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, NULL));
  char spec[256];
  ASSERT_OK(nnlib_model_get_spec(m, spec, sizeof spec, NULL));
  /* the whole item: the text ends there or another item follows */
  const char *at = strstr(spec, want);
  if (at == NULL || (at[strlen(want)] != '\0' && at[strlen(want)] != ','))
    fail_msg("%s: description %s lacks the item %s", op, spec, want);
  nnlib_model_free(m);
}

static void expect_pool_refused(const char *op, attrs_fn attrs,
                                const char *text) {
  pbuf bytes = pool_model(op, attrs);
  expect_status(NNLIB_ERR_UNSUPPORTED, &bytes);
  ts_expect_message(text);
}

/* MaxPool and AveragePool attributes onto the pool layer's options (their
 * values are checked by the ONNX conformance cases and the export round
 * trip), and what is refused: a dilated AveragePool (opset 19), padding
 * beyond the window, Conv padding that differs between the sides, and
 * strides or dilations beyond the layers' range. */
static void pool_attributes(void **state) {
  (void)state;
  expect_pool_spec("MaxPool", every_option, "maxpool:3:s2:p0x1x2x0:d1x2:ceil");
  /* SAME_LOWER on 7 rows at stride 2: 4 outputs need 2 rows (1 + 1); on 6
   * columns at stride 1: 2 (the odd one first: here even) */
  expect_pool_spec("MaxPool", same_lower, "maxpool:3:s2x1:p1");
  /* SAME_UPPER on 7x6 at stride 2: rows 2 (1 + 1), columns 1 (0 + 1) */
  expect_pool_spec("MaxPool", same_upper, "maxpool:3:s2:p1x0x1x1");
  /* ONNX's count_include_pad defaults to 0 */
  expect_pool_spec("AveragePool", pads_one, "avgpool:3:s1:p1:exclude_pad");
  expect_pool_spec("AveragePool", pads_one_include, "avgpool:3:s1:p1");
  expect_pool_spec("AveragePool", no_pads_include, "avgpool:3:s1");
  /* without padding both divisors agree: the plain form */
  expect_pool_spec("AveragePool", no_attrs, "avgpool:3:s1");
  expect_pool_refused("AveragePool", dilated,
                      "attribute dilations: a dilated average (opset 19)");
  expect_pool_refused("MaxPool", pads_three,
                      "maxpool2d: padding 3x0, must be in 0..2x2");
  expect_pool_refused("Conv", pads_uneven,
                      "attribute pads: padding that differs between the "
                      "start and the end of an axis");
  expect_pool_refused("Conv", same_upper,
                      "attribute auto_pad: padding that differs");
  /* windows beyond the layers' range are refused before SAME padding is
   * computed from them (signed overflow once), saying so */
  expect_pool_refused("MaxPool", huge_dilation,
                      "(MaxPool): attribute dilations: 4611686018427387904 "
                      "is above 2147483647, the largest window nnlib's "
                      "layers take");
  expect_pool_refused("Conv", huge_dilation,
                      "attribute dilations: "
                      "4611686018427387904 is above");
  expect_pool_refused("MaxPool", huge_stride,
                      "attribute strides: 9223372036854775807 is above "
                      "2147483647");
}

/* ---------------------------------------------------- integer inputs */

/* A graph x of element type `elem` and shape xd read by the chain of
 * `count` nodes (each reading the previous value), the last one y. */
static pbuf integer_chain(int64_t elem, const int64_t *xd, size_t xrank,
                          pbuf *nodes, size_t count, int64_t yelem,
                          const int64_t *yd, size_t yrank) {
  pbuf g = {{0}, 0};
  for (size_t k = 0; k < count; k++)
    put_msg(&g, 1, &nodes[k]);
  pbuf x = typed_value_info("x", elem, xd, xrank);
  pbuf y = typed_value_info("y", yelem, yd, yrank);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, 14);
}

/* uint8 and int8 inputs are fed as floats where the operators reading
 * them give their integer results exactly in float32 (max pooling, relu,
 * flatten, a cast to float); arithmetic on them is refused, naming the
 * input, its type and the node. */
static void integer_inputs(void **state) {
  (void)state;
  /* int8 [N, 1, 4, 4] -> MaxPool 2x2 stride 2 -> Relu -> Flatten */
  pbuf pool[3] = {node("MaxPool", "x", NULL, NULL, "p"),
                  node("Relu", "p", NULL, NULL, "r"),
                  node("Flatten", "r", NULL, NULL, "y")};
  const int64_t two[2] = {2, 2};
  attr_ints(&pool[0], "kernel_shape", two, 2);
  attr_ints(&pool[0], "strides", two, 2);
  const int64_t xd[4] = {-1, 1, 4, 4}, yd[2] = {-1, 4};
  pbuf bytes = integer_chain(3, xd, 4, pool, 3, 3, yd, 2);
  nnlib_model *m = NULL;
  ASSERT_OK(load_output(&m, &bytes, NULL));
  float xs[2 * 16], want[2 * 4];
  for (int k = 0; k < 32; k++) /* int8 values, -128 and 127 among them */
    xs[k] = (float)((k * 37 + 11) % 256 - 128);
  for (int n = 0; n < 2; n++) /* the naive pool, then max(0, .) */
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 2; j++) {
        float best = -1000;
        for (int di = 0; di < 2; di++)
          for (int dj = 0; dj < 2; dj++)
            best = fmaxf(best, xs[n * 16 + (2 * i + di) * 4 + 2 * j + dj]);
        want[n * 4 + i * 2 + j] = fmaxf(best, 0.0f);
      }
  int64_t xdims[4] = {2, 1, 4, 4}, ydims[2] = {2, 4};
  nnlib_tensor *x = NULL, *y = NULL;
  ASSERT_OK(nnlib_tensor_create(&x, xdims, 4));
  ASSERT_OK(nnlib_tensor_create(&y, ydims, 2));
  memcpy(nnlib_tensor_get_data(x), xs, sizeof xs);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  assert_memory_equal(nnlib_tensor_get_data(y), want, sizeof want);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  /* uint8 [N, 3] -> Cast to float -> Sigmoid: float from the Cast on */
  pbuf cast[2] = {node("Cast", "x", NULL, NULL, "c"),
                  node("Sigmoid", "c", NULL, NULL, "y")};
  attr_int(&cast[0], "to", 1);
  const int64_t ud[2] = {-1, 3};
  bytes = integer_chain(2, ud, 2, cast, 2, 1, ud, 2);
  ASSERT_OK(load_output(&m, &bytes, NULL));
  int64_t udims[2] = {1, 3};
  ASSERT_OK(nnlib_tensor_create(&x, udims, 2));
  ASSERT_OK(nnlib_tensor_create(&y, udims, 2));
  const float us[3] = {0, 1, 255};
  memcpy(nnlib_tensor_get_data(x), us, sizeof us);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  for (int k = 0; k < 3; k++)
    assert_true(fabs(nnlib_tensor_get_data(y)[k] - 1 / (1 + exp(-us[k]))) <
                1e-6);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  /* uint8 -> Identity -> Add(i, i): uint8 addition wraps around */
  pbuf add[2] = {node("Identity", "x", NULL, NULL, "i"),
                 node("Add", "i", "i", NULL, "y")};
  bytes = integer_chain(2, ud, 2, add, 2, 2, ud, 2);
  m = (nnlib_model *)&m;
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED, load_output(&m, &bytes, NULL));
  ts_expect_message("graph input 'x' has element type uint8: node 1 'Add' "
                    "(Add) computes with its values");
  assert_null(m);
  /* int8 -> Cast to int64 */
  pbuf to_int = node("Cast", "x", NULL, NULL, "y");
  attr_int(&to_int, "to", 7);
  bytes = integer_chain(3, ud, 2, &to_int, 1, 7, ud, 2);
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED, load_output(&m, &bytes, NULL));
  ts_expect_message("graph input 'x' has element type int8: node 0 'Cast' "
                    "(Cast) casts it to another type than float");
  /* uint16 (4) is not read at all */
  pbuf relu = node("Relu", "x", NULL, NULL, "y");
  bytes = integer_chain(4, ud, 2, &relu, 1, 4, ud, 2);
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED, load_output(&m, &bytes, NULL));
  ts_expect_message("graph input 'x' has element type 4");
  assert_null(m);
}

/* ------------------------------------------------ whole-sample imports */

/* AttributeProto of FLOAT (type 1, f field 2: fixed32). */
static void attr_float(pbuf *n, const char *name, float v) {
  pbuf a = {{0}, 0};
  uint32_t bits;
  memcpy(&bits, &v, 4);
  put_str(&a, 1, name);
  put_varint(&a, 2 << 3 | 5);
  for (int j = 0; j < 4; j++)
    a.b[a.n++] = (unsigned char)(bits >> (8 * j));
  put_int(&a, 20, 1);
  put_msg(n, 5, &a);
}

static const float GB[8] = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f, 1.0f, -2.0f};
static const float GC[6] = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f};
static const float GX[12] = {1.0f, -2.0f, 0.5f,  3.0f,  -1.0f, 0.25f,
                             2.0f, -0.5f, 1.5f, -3.0f, 0.75f, -0.25f};

/* x [3, 4] (static) -> Gemm(B [4, 2], C [3, 2] varying along M, alpha
 * 0.5, beta 2) -> Sigmoid -> Flatten(axis 0) -> y [1, 6]: ONNX's axis 0
 * is mixed twice, by the bias and by the flatten. `x_dim0` -1 makes axis 0
 * symbolic; at opset 6 the Gemm has `broadcast` 0 (C of the full shape). */
static pbuf gemm_matrix_bias_flatten(int64_t x_dim0, int64_t opset) {
  pbuf g = {{0}, 0};
  pbuf gemm = node("Gemm", "x", "GB", "GC", "h");
  attr_float(&gemm, "alpha", 0.5f);
  attr_float(&gemm, "beta", 2.0f);
  pbuf sig = node("Sigmoid", "h", NULL, NULL, "s");
  pbuf flat = node("Flatten", "s", NULL, NULL, "y");
  attr_int(&flat, "axis", 0);
  put_msg(&g, 1, &gemm);
  put_msg(&g, 1, &sig);
  put_msg(&g, 1, &flat);
  int64_t bd[2] = {4, 2}, cd[2] = {3, 2}, xd[2] = {x_dim0, 4}, yd[2] = {1, 6};
  pbuf b = tensor("GB", bd, 2, GB, 8), c = tensor("GC", cd, 2, GC, 6);
  put_msg(&g, 5, &b);
  put_msg(&g, 5, &c);
  pbuf x = value_info("x", xd, 2), y = value_info("y", yd, 2);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, opset);
}

/* x [4, 3] -> Gemm(transA, B [2, 4] with transB, C [3, 1]) -> y [3, 2]. */
static pbuf gemm_trans_a(void) {
  pbuf g = {{0}, 0};
  pbuf gemm = node("Gemm", "x", "GB", "GC", "y");
  attr_int(&gemm, "transA", 1);
  attr_int(&gemm, "transB", 1);
  put_msg(&g, 1, &gemm);
  int64_t bd[2] = {2, 4}, cd[2] = {3, 1}, xd[2] = {4, 3}, yd[2] = {3, 2};
  pbuf b = tensor("GB", bd, 2, GB, 8), c = tensor("GC", cd, 2, GC, 3);
  put_msg(&g, 5, &b);
  put_msg(&g, 5, &c);
  pbuf x = value_info("x", xd, 2), y = value_info("y", yd, 2);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, 13);
}

/* x [2, 3, 2] -> Transpose(perm [2, 0, 1]) -> y [2, 2, 3]. */
static pbuf whole_transpose(void) {
  pbuf g = {{0}, 0};
  pbuf n = node("Transpose", "x", NULL, NULL, "y");
  const int64_t perm[3] = {2, 0, 1};
  attr_ints(&n, "perm", perm, 3);
  put_msg(&g, 1, &n);
  int64_t xd[3] = {2, 3, 2}, yd[3] = {2, 2, 3};
  pbuf x = value_info("x", xd, 3), y = value_info("y", yd, 3);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, 13);
}

/* x [1, 1, 4, 3] -> MaxPool 2x2 -> y: a batch-reading operator. */
static pbuf whole_maxpool(void) {
  pbuf g = {{0}, 0};
  pbuf n = node("MaxPool", "x", NULL, NULL, "y");
  int64_t k[2] = {2, 2};
  attr_ints(&n, "kernel_shape", k, 2);
  put_msg(&g, 1, &n);
  int64_t xd[4] = {1, 1, 4, 3}, yd[4] = {1, 1, 3, 2};
  pbuf x = value_info("x", xd, 4), y = value_info("y", yd, 4);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, 13);
}

static nnlib_status load_whole(nnlib_model **m, const pbuf *bytes) {
  nnlib_onnx_options o;
  ASSERT_OK(nnlib_onnx_options_init(&o));
  assert_int_equal(o.whole_sample, 0);
  o.max_batch = 1;
  o.whole_sample = 1;
  return nnlib_model_load_onnx_buffer(m, bytes->b, bytes->n, &o);
}

/* The model's input and output per-sample shapes are want_in, want_out. */
static void expect_shapes(const nnlib_model *m, const int64_t *want_in,
                          size_t in_rank, const int64_t *want_out,
                          size_t out_rank) {
  int64_t dims[8];
  size_t rank = 0;
  ASSERT_OK(nnlib_model_get_input_shape(m, dims, 8, &rank));
  assert_int_equal(rank, in_rank);
  assert_memory_equal(dims, want_in, in_rank * sizeof *dims);
  ASSERT_OK(nnlib_model_get_output_shape(m, dims, 8, &rank));
  assert_int_equal(rank, out_rank);
  assert_memory_equal(dims, want_out, out_rank * sizeof *dims);
}

/* One sample x [1, dims...] through m into y (count floats). */
static void predict_one(nnlib_model *m, const float *xs, const int64_t *dims,
                        size_t rank, float *y, int64_t count) {
  int64_t xd[8] = {1}, yd[2] = {1, count}, size = 1;
  for (size_t k = 0; k < rank; k++)
    size *= xd[k + 1] = dims[k];
  nnlib_tensor *x = NULL, *out = NULL;
  ASSERT_OK(nnlib_tensor_create(&x, xd, rank + 1));
  ASSERT_OK(nnlib_tensor_create(&out, yd, 2));
  memcpy(nnlib_tensor_get_data(x), xs, (size_t)size * sizeof *xs);
  ASSERT_OK(nnlib_model_predict(m, x, out));
  memcpy(y, nnlib_tensor_get_data(out), (size_t)count * sizeof *y);
  nnlib_tensor_free(x);
  nnlib_tensor_free(out);
}

/* whole_sample: the sample is x [3, 4] itself; y = Flatten(axis 0) of
 * sigmoid(alpha x B + beta C), the bias differing per row of x. */
static void whole_matrix_bias(int64_t opset) {
  pbuf bytes = gemm_matrix_bias_flatten(3, opset);
  nnlib_model *m = NULL;
  ASSERT_OK(load_whole(&m, &bytes));
  const int64_t in[2] = {3, 4}, out[1] = {6};
  expect_shapes(m, in, 2, out, 1); /* ONNX's [1, 6]: the same elements */
  float y[6];
  predict_one(m, GX, in, 2, y, 6);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++) {
      double h = 2.0 * GC[i * 2 + j];
      for (int k = 0; k < 4; k++)
        h += 0.5 * GX[i * 4 + k] * GB[k * 2 + j];
      ASSERT_NEAR(y[i * 2 + j], 1.0 / (1.0 + exp(-h)), 1e-6);
    }
  nnlib_model_free(m);
  /* without whole_sample the same graph varies C along the batch axis */
  nnlib_model *b = (nnlib_model *)&b;
  ASSERT_STATUS(opset < 7 ? NNLIB_ERR_UNSUPPORTED_VERSION
                          : NNLIB_ERR_UNSUPPORTED,
                nnlib_model_load_onnx_buffer(&b, bytes.b, bytes.n, NULL));
  ts_expect_message(opset < 7 ? "broadcast = 0 (C of the full [M, N] shape"
                              : "ONNX node 0 'Gemm' (Gemm): input C varies "
                                "along the batch axis");
  assert_null(b);
}

static void whole_matrix_bias_and_flatten(void **state) {
  (void)state;
  whole_matrix_bias(13);
  whole_matrix_bias(6); /* Gemm's broadcast 0, read in whole-sample mode */
}

/* transA = 1: x [4, 3] is read as its transpose [3, 4]; C [3, 1] adds
 * one value per row of the product. A Transpose permutes the sample's own
 * axes: y[i][j][k] = x[j][k][i] for perm [2, 0, 1]. */
static void whole_transposes(void **state) {
  (void)state;
  pbuf bytes = gemm_trans_a();
  nnlib_model *m = NULL;
  ASSERT_OK(load_whole(&m, &bytes));
  const int64_t in[2] = {4, 3}, out[2] = {3, 2};
  expect_shapes(m, in, 2, out, 2);
  float y[6];
  predict_one(m, GX, in, 2, y, 6);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++) {
      double h = GC[i]; /* y[i][j] = sum_k x[k][i] B[j][k] + C[i] */
      for (int k = 0; k < 4; k++)
        h += (double)GX[k * 3 + i] * GB[j * 4 + k];
      ASSERT_NEAR(y[i * 2 + j], h, 1e-5);
    }
  nnlib_model_free(m);
  nnlib_model *b = (nnlib_model *)&b;
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED,
                nnlib_model_load_onnx_buffer(&b, bytes.b, bytes.n, NULL));
  ts_expect_message("attribute transA: transA = 1 would put the batch axis "
                    "inside the product");
  pbuf perm = whole_transpose();
  ASSERT_OK(load_whole(&m, &perm));
  const int64_t pin[3] = {2, 3, 2}, pout[3] = {2, 2, 3};
  expect_shapes(m, pin, 3, pout, 3);
  float all[12];
  predict_one(m, GX, pin, 3, all, 12);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      for (int k = 0; k < 3; k++)
        assert_float_equal(all[(i * 2 + j) * 3 + k], GX[(j * 3 + k) * 2 + i],
                           0.0f);
  nnlib_model_free(m);
}

/* whole_sample's refusals, and option structs of 1.5's size (no
 * whole_sample field) read as before. */
static void whole_refusals_and_old_options(void **state) {
  (void)state;
  nnlib_model *m = (nnlib_model *)&m;
  pbuf symbolic = gemm_matrix_bias_flatten(-1, 13);
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED, load_whole(&m, &symbolic));
  ts_expect_message("ONNX: graph input 'x': axis 0 is symbolic or 0 "
                    "(whole-sample import needs every axis fixed)");
  assert_null(m);
  pbuf pool = whole_maxpool();
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED, load_whole(&m, &pool));
  ts_expect_message("ONNX node 0 'MaxPool' (MaxPool): input 0: whole-sample "
                    "import makes ONNX's axis 0 part of the sample");
  assert_null(m);
  pbuf bytes = gemm_matrix_bias_flatten(3, 13);
  nnlib_onnx_options o;
  ASSERT_OK(nnlib_onnx_options_init(&o));
  o.whole_sample = 2;
  ASSERT_STATUS(NNLIB_ERR_INVALID_ARGUMENT,
                nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, &o));
  ts_expect_message("nnlib_onnx_options: whole_sample 2, must be 0 or 1");
  assert_null(m);
  /* 1.5's struct: whole_sample lies beyond its size and is not read */
  size_t old = offsetof(nnlib_onnx_options, whole_sample);
  ASSERT_OK(nnlib_onnx_options_init_size(&o, old));
  assert_int_equal(o.struct_size, old);
  o.whole_sample = 1;
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED,
                nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, &o));
  ts_expect_message("input C varies along the batch axis");
  parts p = good_parts();
  pbuf small = model_bytes(&p);
  ASSERT_OK(nnlib_model_load_onnx_buffer(&m, small.b, small.n, &o));
  int64_t dims[2];
  size_t rank = 0;
  ASSERT_OK(nnlib_model_get_input_shape(m, dims, 2, &rank));
  assert_int_equal(rank, 1); /* [N, 4]: the batch first, as in 1.5 */
  assert_int_equal(dims[0], 4);
  nnlib_model_free(m);
}

/* -------------------------------------------------------- transposes */

/* TensorProto of int64 (data_type 7) values, raw little-endian. */
static pbuf tensor_i64(const char *name, const int64_t *values,
                       size_t count) {
  pbuf t = {{0}, 0};
  put_int(&t, 1, (int64_t)count);
  put_int(&t, 2, 7);
  put_str(&t, 8, name);
  unsigned char raw[256];
  assert_true(count * 8 <= sizeof raw);
  for (size_t k = 0; k < count; k++)
    for (int j = 0; j < 8; j++)
      raw[8 * k + (size_t)j] = (unsigned char)((uint64_t)values[k] >> (8 * j));
  put_bytes(&t, 9, raw, 8 * count);
  return t;
}

static void put_i64(pbuf *g, const char *name, int64_t a, int64_t b,
                    size_t count) {
  const int64_t v[2] = {a, b};
  pbuf t = tensor_i64(name, v, count);
  put_msg(g, 5, &t);
}

/* x [N, 2, 3, 4] -> Transpose(perm) -> y. */
static pbuf transpose_model(const int64_t *perm) {
  pbuf g = {{0}, 0};
  pbuf n = node("Transpose", "x", NULL, NULL, "y");
  attr_ints(&n, "perm", perm, 4);
  put_msg(&g, 1, &n);
  int64_t xd[4] = {-1, 2, 3, 4}, yd[4] = {-1, -1, -1, -1};
  pbuf x = value_info("x", xd, 4), y = value_info("y", yd, 4);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, 17);
}

/* x [N, 2, 3, 4] reshaped as torch's flatten(2) writes it, with the
 * target from Shape(x) through two Slices ([N] = shape[0:1], and [2] =
 * shape[-3:-5:-2], a negative step whose end clamps to -1) and a Concat
 * with -1: [N, 2, 12] (or [N, 12, -1] = [N, 12, 2] with `split`, which
 * cuts nnlib's [3, 4] across); then Transpose [0, 2, 1] -> y. */
static pbuf flatten2_transpose(bool split) {
  pbuf g = {{0}, 0};
  pbuf shape = node("Shape", "x", NULL, NULL, "shape");
  const char *a[3] = {"shape", "zero", "one"};
  const char *b[5] = {"shape", "minus3", "minus5", "zero", "minus2"};
  const char *o[1] = {"lead"}, *o2[1] = {"second"};
  pbuf s0 = node_io("Slice", a, 3, o, 1), s1 = node_io("Slice", b, 5, o2, 1);
  const char *c[3] = {"lead", split ? "twelve" : "second", "minus1"};
  const char *co[1] = {"target"};
  pbuf cat = node_io("Concat", c, 3, co, 1);
  attr_int(&cat, "axis", 0);
  pbuf r = node("Reshape", "x", "target", NULL, "r");
  pbuf t = node("Transpose", "r", NULL, NULL, "y");
  const int64_t perm[3] = {0, 2, 1};
  attr_ints(&t, "perm", perm, 3);
  pbuf nodes[6] = {shape, s0, s1, cat, r, t};
  for (int k = 0; k < 6; k++)
    put_msg(&g, 1, &nodes[k]);
  put_i64(&g, "zero", 0, 0, 1);
  put_i64(&g, "one", 1, 0, 1);
  put_i64(&g, "minus3", -3, 0, 1);
  put_i64(&g, "minus5", -5, 0, 1);
  put_i64(&g, "minus2", -2, 0, 1);
  put_i64(&g, "minus1", -1, 0, 1);
  put_i64(&g, "twelve", 12, 0, 1);
  int64_t xd[4] = {-1, 2, 3, 4}, yd[3] = {-1, -1, -1};
  pbuf x = value_info("x", xd, 4), y = value_info("y", yd, 3);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, 17);
}

/* The model's description is `spec`, and its prediction on x [2, 2, 3, 4]
 * (x[s, c, h, w] = its flat index) is y[s, k] = x[s, from(k)]. */
static void expect_transposed(nnlib_model *m, const char *spec,
                              int64_t (*from)(int64_t k)) {
  char text[128];
  ASSERT_OK(nnlib_model_get_spec(m, text, sizeof text, NULL));
  assert_string_equal(text, spec);
  nnlib_tensor *x = NULL, *y = ts_tensor2(2, 24, NULL);
  ASSERT_OK(nnlib_tensor_create(&x, (int64_t[]){2, 2, 3, 4}, 4));
  for (int k = 0; k < 48; k++)
    nnlib_tensor_get_data(x)[k] = (float)k;
  ASSERT_OK(nnlib_model_predict(m, x, y));
  for (int64_t s = 0; s < 2; s++)
    for (int64_t k = 0; k < 24; k++)
      assert_true(nnlib_tensor_get_data(y)[s * 24 + k] ==
                  (float)(s * 24 + from(k)));
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
}

/* y [w, c, h] of perm [0, 3, 1, 2]: element k of y is x[c, h, w]. */
static int64_t channels_first(int64_t k) {
  int64_t w = k / 6, c = k / 3 % 2, h = k % 3;
  return c * 12 + h * 4 + w;
}

/* y [12, 2] of x [2, 12] transposed: y[j, c] = x[c, j]. */
static int64_t flattened_transposed(int64_t k) {
  return (k % 2) * 12 + k / 2;
}

/* A Transpose that keeps the batch axis first is a transpose layer, also
 * after a Reshape whose merged axes nnlib's node keeps apart (each ONNX
 * axis moves as its run of node axes: flatten(2) then transpose(1, 2) is
 * transpose:1x2x0 of [2, 3, 4]); refused: a perm that moves the batch axis
 * and reorders the others, one that is no permutation, and a Reshape that
 * cuts nnlib's axes across. */
static void transposes(void **state) {
  (void)state;
  const int64_t perm[4] = {0, 3, 1, 2};
  pbuf bytes = transpose_model(perm);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, NULL));
  expect_transposed(m, "transpose:2x0x1", channels_first);
  nnlib_model_free(m);
  bytes = flatten2_transpose(false);
  ASSERT_OK(nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, NULL));
  expect_transposed(m, "transpose:1x2x0", flattened_transposed);
  nnlib_model_free(m);
  const int64_t moves_batch[4] = {2, 0, 1, 3}, twice[4] = {0, 1, 1, 2};
  bytes = transpose_model(moves_batch);
  expect_status(NNLIB_ERR_UNSUPPORTED, &bytes);
  ts_expect_message("(Transpose): attribute perm moves the batch axis and "
                    "reorders the others");
  bytes = transpose_model(twice);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  ts_expect_message("(Transpose): perm is not a permutation of 0 .. 3");
  bytes = flatten2_transpose(true);
  expect_status(NNLIB_ERR_UNSUPPORTED, &bytes);
  ts_expect_message("(Transpose): input data 'r' is [12, 2] per sample in "
                    "ONNX but [2, 3, 4] in nnlib");
}

/* A Slice of a constant that leaves out its starts (an empty input name,
 * found by fuzz_onnx) is CORRUPT_FILE, not a read through NULL. */
static void slice_without_starts(void **state) {
  (void)state;
  pbuf g = {{0}, 0};
  pbuf shape = node("Shape", "x", NULL, NULL, "shape");
  const char *in[3] = {"shape", "", "one"}, *out[1] = {"lead"};
  pbuf slice = node_io("Slice", in, 3, out, 1);
  pbuf r = node("Reshape", "x", "lead", NULL, "y");
  put_msg(&g, 1, &shape);
  put_msg(&g, 1, &slice);
  put_msg(&g, 1, &r);
  put_i64(&g, "one", 1, 0, 1);
  int64_t xd[4] = {-1, 2, 3, 4}, yd[1] = {-1};
  pbuf x = value_info("x", xd, 4), y = value_info("y", yd, 1);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  pbuf bytes = model_of(&g, 17);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  ts_expect_message("(Slice): no Slice's starts");
}

/* x [N, 4] -> Gemm(W, C, transB) -> y, C = Slice(B, starts [-1], ends
 * [end], axes [0], steps [-1]): B reversed for an end below -3 (ONNX's
 * "to the beginning" going backwards, INT64_MIN as its spec suggests).
 * `neg` makes the ends Neg(end) instead. */
static pbuf gemm_reversed_bias(int64_t end, bool neg) {
  pbuf g = {{0}, 0};
  const char *in[5] = {"B", "start", neg ? "negated" : "end", "axis", "step"};
  const char *out[1] = {"C"};
  if (neg) {
    pbuf n = node("Neg", "end", NULL, NULL, "negated");
    put_msg(&g, 1, &n);
  }
  pbuf slice = node_io("Slice", in, 5, out, 1);
  pbuf gemm = node("Gemm", "x", "W", "C", "y");
  attr_int(&gemm, "transB", 1);
  put_msg(&g, 1, &slice);
  put_msg(&g, 1, &gemm);
  int64_t wd[2] = {3, 4}, bd[1] = {3}, xd[2] = {-1, 4}, yd[2] = {-1, 3};
  pbuf w = tensor("W", wd, 2, W, 12), b = tensor("B", bd, 1, B, 3);
  put_msg(&g, 5, &w);
  put_msg(&g, 5, &b);
  put_i64(&g, "start", -1, 0, 1);
  put_i64(&g, "end", end, 0, 1);
  put_i64(&g, "axis", 0, 0, 1);
  put_i64(&g, "step", -1, 0, 1);
  pbuf x = value_info("x", xd, 2), y = value_info("y", yd, 2);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, 13);
}

/* x [N, 3, 4] -> Reshape to the constant [lead, d1] -> y. */
static pbuf reshape_to(int64_t lead, int64_t d1) {
  pbuf g = {{0}, 0};
  pbuf r = node("Reshape", "x", "shape", NULL, "y");
  put_msg(&g, 1, &r);
  put_i64(&g, "shape", lead, d1, 2);
  int64_t xd[3] = {-1, 3, 4}, yd[2] = {-1, d1};
  pbuf x = value_info("x", xd, 3), y = value_info("y", yd, 2);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, 13);
}

/* A file's INT64_MIN is a value, not the batch size a Shape gives (once
 * the same int64 marked both): Slice's ends INT64_MIN reverses the bias
 * (the prediction against numpy's x W^T + B[::-1]), Neg of it overflows,
 * and a Reshape target [INT64_MIN, 12] is no ONNX shape. */
static void int64_min_is_a_value(void **state) {
  (void)state;
  static const float xs[8] = {1, 2, 3, 4, -1, 0.5f, 2, -3};
  static const double want[6] = {7.55000001,  5.3,  -1.30000004,
                                 -6.19999999, 3.05, 3.57500004};
  pbuf bytes = gemm_reversed_bias(INT64_MIN, false);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, NULL));
  nnlib_tensor *x = ts_tensor2(2, 4, xs), *y = ts_tensor2(2, 3, NULL);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  for (int k = 0; k < 6; k++)
    ASSERT_NEAR(nnlib_tensor_get_data(y)[k], want[k], 1e-5);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  bytes = gemm_reversed_bias(INT64_MIN, true);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  ts_expect_message("ONNX node 0 'Neg' (Neg): integer overflow");
  bytes = reshape_to(INT64_MIN, 12);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  ts_expect_message("(Reshape): input shape: value -9223372036854775808 "
                    "(ONNX allows no dim below -1)");
  bytes = reshape_to(-2, 12);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  ts_expect_message("input shape: value -2 (ONNX allows no dim below -1)");
}

/* Reshape [N, 3, 4] -> [-1, 12] keeps the batch; -> [-1, 6] is valid
 * ONNX ([2N, 6]) that changes the batch size: NNLIB_ERR_UNSUPPORTED saying
 * so (it once read as a shape mismatch, as a corrupt file would). */
static void reshape_changing_the_batch(void **state) {
  (void)state;
  pbuf bytes = reshape_to(-1, 12);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_load_onnx_buffer(&m, bytes.b, bytes.n, NULL));
  nnlib_model_free(m);
  bytes = reshape_to(-1, 6);
  expect_status(NNLIB_ERR_UNSUPPORTED, &bytes);
  ts_expect_message("ONNX node 0 'Reshape' (Reshape): input shape: the "
                    "reshape would change the batch size (a leading -1 with "
                    "6 values after it, where a sample holds 12; nnlib "
                    "keeps the batch)");
  bytes = reshape_to(0, 6); /* [N, 6] of 12N elements: a corrupt file */
  expect_status(NNLIB_ERR_SHAPE_MISMATCH, &bytes);
}

/* OOM at every allocation of an import: NNLIB_ERR_OUT_OF_MEMORY, *out
 * NULL, and every block freed; then the same import succeeds. */
static void oom_at_every_allocation(const pbuf *bytes,
                                    const nnlib_onnx_options *o) {
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_load_onnx_buffer(&m, bytes->b, bytes->n, o));
  nnlib_model_free(m);
  long total = stats.allocs;
  ts_alloc_uninstall();
  assert_true(total > 5);
  for (long k = 1; k <= total; k++) {
    ts_alloc_stats s = {0};
    s.fail_at = k;
    ts_alloc_install(&s);
    m = (nnlib_model *)&m;
    nnlib_status st = nnlib_model_load_onnx_buffer(&m, bytes->b, bytes->n, o);
    long live = s.live;
    ts_alloc_uninstall();
    if (st != NNLIB_ERR_OUT_OF_MEMORY || m != NULL || live != 0)
      fail_msg("allocation %ld of %ld failed: %s (%s), %ld blocks live", k,
               total, nnlib_status_string(st), nnlib_last_error_message(),
               live);
  }
}

/* ------------------------------------------- Softmax's function body */

/* x [N, 2, 3] -> Softmax's function body over `sum_axis` (ReduceMax over
 * `max_axis`) -> y; at opset 13 ReduceSum's axes are an int64 input (an
 * initializer), before as an attribute. `read_sub` adds z = y + d, a read
 * of the Sub's result from outside the body, and makes z the output. */
static pbuf softmax_body(int64_t opset, int64_t max_axis, int64_t sum_axis,
                         bool read_sub) {
  pbuf g = {{0}, 0};
  pbuf max = node("ReduceMax", "x", NULL, NULL, "m");
  attr_ints(&max, "axes", &max_axis, 1);
  attr_int(&max, "keepdims", 1);
  pbuf sub = node("Sub", "x", "m", NULL, "d");
  pbuf exp = node("Exp", "d", NULL, NULL, "e");
  pbuf sum = node("ReduceSum", "e", opset >= 13 ? "A" : NULL, NULL, "s");
  if (opset < 13)
    attr_ints(&sum, "axes", &sum_axis, 1);
  attr_int(&sum, "keepdims", 1);
  pbuf div = node("Div", "e", "s", NULL, "y");
  put_msg(&g, 1, &max);
  put_msg(&g, 1, &sub);
  put_msg(&g, 1, &exp);
  put_msg(&g, 1, &sum);
  put_msg(&g, 1, &div);
  if (read_sub) {
    pbuf add = node("Add", "y", "d", NULL, "z");
    put_msg(&g, 1, &add);
  }
  if (opset >= 13)
    put_i64(&g, "A", sum_axis, 0, 1);
  int64_t xd[3] = {-1, 2, 3};
  pbuf x = value_info("x", xd, 3), y = value_info(read_sub ? "z" : "y", xd, 3);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, opset);
}

/* The body over the last axis (given as -1 or 2) is one softmax layer:
 * predictions against a naive loop exp(x - max) / sum; over another axis,
 * or with the Sub's result read outside, it is not, and the ReduceMax is
 * refused, named. Allocation failures at every allocation of its import
 * leave nothing behind. */
static void softmax_function_body(void **state) {
  (void)state;
  const float xs[12] = {1.0f, -2.0f, 0.5f, 30.0f, 31.0f, 29.5f,
                        -1.0f, 0.0f, 1.0f, 2.0f, 2.0f, -3.0f};
  const pbuf good[2] = {softmax_body(13, -1, -1, false),
                        softmax_body(11, 2, 2, false)};
  for (size_t v = 0; v < 2; v++) {
    nnlib_model *m = NULL;
    ASSERT_OK(load_output(&m, &good[v], NULL));
    nnlib_tensor *x = NULL, *y = NULL;
    const int64_t dims[3] = {2, 2, 3};
    ASSERT_OK(nnlib_tensor_wrap(&x, (float *)xs, dims, 3));
    ASSERT_OK(nnlib_tensor_create(&y, dims, 3));
    ASSERT_OK(nnlib_model_predict(m, x, y));
    for (int row = 0; row < 4; row++) {
      const float *r = xs + 3 * row;
      double top = fmax(fmax(r[0], r[1]), r[2]), sum = 0.0;
      for (int k = 0; k < 3; k++)
        sum += exp(r[k] - top);
      for (int k = 0; k < 3; k++)
        ASSERT_NEAR(nnlib_tensor_get_data(y)[3 * row + k],
                    exp(r[k] - top) / sum, 1e-6);
    }
    nnlib_tensor_free(x);
    nnlib_tensor_free(y);
    nnlib_model_free(m);
  }
  const pbuf broken[3] = {
      softmax_body(13, -1, 1, false), /* the sum over axis 1 */
      softmax_body(11, 1, 1, false),  /* a softmax over axis 1 */
      softmax_body(13, -1, -1, true), /* d also read by the Add */
  };
  for (size_t v = 0; v < 3; v++) {
    expect_status(NNLIB_ERR_UNSUPPORTED, &broken[v]);
    ts_expect_message("ONNX node 0 'ReduceMax' (ReduceMax): operator "
                      "'ReduceMax' has no nnlib layer");
  }
  oom_at_every_allocation(&good[0], NULL);
}

/* x [N, 2, 3] (or [2, 2, 3] for a whole-sample import) -> Softmax(axis)
 * at opset 11 -> y. */
static pbuf softmax11(int64_t axis, bool whole) {
  pbuf g = {{0}, 0};
  pbuf sm = node("Softmax", "x", NULL, NULL, "y");
  attr_int(&sm, "axis", axis);
  put_msg(&g, 1, &sm);
  int64_t xd[3] = {whole ? 2 : -1, 2, 3};
  pbuf x = value_info("x", xd, 3), y = value_info("y", xd, 3);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  return model_of(&g, 11);
}

/* Softmax-11 of SX [2, 2, 3] by numpy from the ONNX spec (the input
 * coerced to 2-D at axis, [prod(d0..d(a-1)), prod(da..)], softmax over
 * the second): SM_LAST at axis 2 (each row of 3), SM_SAMPLE at axis 1
 * (each [2, 3] of axis 0), SM_ALL at axis 0 (all 12). */
static const float SX[12] = {1.0f,  -2.0f, 0.5f, 30.0f, 31.0f, 29.5f,
                             -1.0f, 0.0f,  1.0f, 2.0f,  2.0f,  -3.0f};
static const double SM_LAST[12] = {0.603748896,  0.0300588876, 0.366192216,
                                   0.231223898,  0.628531719,  0.140244383,
                                   0.0900305732, 0.244728471,  0.665240956,
                                   0.498321169,  0.498321169,  0.00335766163};
static const double SM_SAMPLE[12] = {
    5.88156285e-14, 2.92825772e-15, 3.5673482e-14, 0.231223898,
    0.628531719,    0.140244383,    0.019450051,   0.0528707201,
    0.143717518,    0.390664717,    0.390664717,   0.00263227815};
static const double SM_ALL[12] = {
    5.88156285e-14, 2.92825772e-15, 3.5673482e-14,  0.231223898,
    0.628531719,    0.140244383,    7.95982974e-15, 2.16370606e-14,
    5.88156285e-14, 1.59877454e-13, 1.59877454e-13, 1.07724581e-15};

static void expect_softmax11(int64_t axis, bool whole, const double *want) {
  pbuf bytes = softmax11(axis, whole);
  nnlib_model *m = NULL;
  if (whole)
    ASSERT_OK(load_whole(&m, &bytes));
  else
    ASSERT_OK(load_output(&m, &bytes, NULL));
  const int64_t dims[3] = {whole ? 1 : 2, 2, 3}, wd[4] = {1, 2, 2, 3};
  nnlib_tensor *x = NULL, *y = NULL;
  ASSERT_OK(
      nnlib_tensor_wrap(&x, (float *)SX, whole ? wd : dims, whole ? 4 : 3));
  y = ts_tensor2(whole ? 1 : 2, whole ? 12 : 6, NULL);
  ASSERT_OK(nnlib_model_predict(m, x, y));
  for (int k = 0; k < 12; k++)
    ASSERT_NEAR(nnlib_tensor_get_data(y)[k], want[k], 1e-6);
  nnlib_tensor_free(x);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
}

/* Softmax before opset 13 over the last axis of a rank-3 input is over
 * that axis alone (it once flattened the sample first), over the first
 * axis of the sample it is over the whole sample; in batch-first and
 * whole-sample imports. An axis between is refused. */
static void softmax_opset11_axes(void **state) {
  (void)state;
  expect_softmax11(2, false, SM_LAST);
  expect_softmax11(-1, false, SM_LAST);
  expect_softmax11(1, false, SM_SAMPLE);
  expect_softmax11(2, true, SM_LAST);
  expect_softmax11(0, true, SM_ALL);
  pbuf bytes = softmax11(1, true);
  nnlib_model *m = (nnlib_model *)&m;
  ASSERT_STATUS(NNLIB_ERR_UNSUPPORTED, load_whole(&m, &bytes));
  ts_expect_message("axis 1 at opset 11: Softmax before opset 13 runs over "
                    "all axes from `axis` on");
  assert_null(m);
}

/* The small model, and a whole-sample import (the matrix bias's table). */
static void out_of_memory_everywhere(void **state) {
  (void)state;
  parts p = good_parts();
  pbuf bytes = model_bytes(&p);
  oom_at_every_allocation(&bytes, NULL);
  pbuf whole = gemm_matrix_bias_flatten(3, 13);
  nnlib_onnx_options o;
  ASSERT_OK(nnlib_onnx_options_init(&o));
  o.whole_sample = 1;
  oom_at_every_allocation(&whole, &o);
}

/* x [N, 4] -> Relu -> r, and a Concat of no inputs as the output y. */
static void concat_of_nothing(void **state) {
  (void)state;
  pbuf g = {{0}, 0};
  pbuf relu = node("Relu", "x", NULL, NULL, "r");
  const char *out[1] = {"y"};
  pbuf cat = node_io("Concat", NULL, 0, out, 1);
  attr_int(&cat, "axis", 1);
  put_msg(&g, 1, &relu);
  put_msg(&g, 1, &cat);
  int64_t xd[2] = {-1, 4}, yd[2] = {-1, 4};
  pbuf x = value_info("x", xd, 2), y = value_info("y", yd, 2);
  put_msg(&g, 11, &x);
  put_msg(&g, 12, &y);
  pbuf bytes = model_of(&g, 17);
  expect_status(NNLIB_ERR_CORRUPT_FILE, &bytes);
  ts_expect_message("no inputs");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(predicts_like_loops),
      cmocka_unit_test(truncated_at_every_byte),
      cmocka_unit_test(bad_dims),
      cmocka_unit_test(short_initializer),
      cmocka_unit_test(empty_tensor_huge_dims),
      cmocka_unit_test(graph_errors),
      cmocka_unit_test(concat_of_nothing),
      cmocka_unit_test(unsupported),
      cmocka_unit_test(broken_attention),
      cmocka_unit_test(arguments_and_files),
      cmocka_unit_test(output_option),
      cmocka_unit_test(time_major_input_and_outputs),
      cmocka_unit_test(layernorm_statistics),
      cmocka_unit_test(broken_layernorm),
      cmocka_unit_test(integer_inputs),
      cmocka_unit_test(pool_attributes),
      cmocka_unit_test(whole_matrix_bias_and_flatten),
      cmocka_unit_test(whole_transposes),
      cmocka_unit_test(whole_refusals_and_old_options),
      cmocka_unit_test(transposes),
      cmocka_unit_test(slice_without_starts),
      cmocka_unit_test(int64_min_is_a_value),
      cmocka_unit_test(reshape_changing_the_batch),
      cmocka_unit_test(layernorm_output_named_twice),
      cmocka_unit_test(softmax_function_body),
      cmocka_unit_test(softmax_opset11_axes),
      cmocka_unit_test(out_of_memory_everywhere),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
