/* Model files of format version 2 (docs/FILE_FORMAT.md, section GRPH):
 * graph models (a residual block, a model with an image and a vector
 * input) saved and loaded predict bit-identically, keep their nodes and
 * names, re-save to the same bytes and resume training exactly; a chain
 * model is still written as version 1, byte for byte as the layout 1.2
 * wrote, and a file written by nnlib 1.0 loads; GRPH's bytes are the
 * documented ones; every rule of the graph check has a crafted file (a
 * valid one with one field changed and its checksums repaired) with its
 * status and a message naming the node, loaded from memory and from disk
 * under a counting allocator (*out stays NULL, nothing leaks); and loading
 * a version-2 file under allocation failure injection. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "file_parts.h"
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */



/* sections of a version-2 file */
enum { HEAD = 0, GRPH = 1, ARCH = 2, PARM = 3, OPTM = 4 };

typedef ts_file_parts parts;




static unsigned char *save_bytes(const nnlib_model *m, unsigned flags,
                                 size_t *size) {
  void *data = NULL;
  ASSERT_OK(nnlib_model_save_to_buffer(&data, size, m, flags));
  return data;
}

/* The layer's node: applies it and returns the handle. */
static nnlib_node apply(nnlib_model *m, nnlib_layer *l, const nnlib_node *in,
                        size_t count) {
  nnlib_node node = 0;
  ASSERT_OK(nnlib_model_apply(m, l, in, count, &node));
  return node;
}

static nnlib_node apply1(nnlib_model *m, nnlib_layer *l, nnlib_node in) {
  return apply(m, l, &in, 1);
}

static nnlib_node apply2(nnlib_model *m, nnlib_layer *l, nnlib_node a,
                         nnlib_node b) {
  nnlib_node in[2] = {a, b};
  return apply(m, l, in, 2);
}

static nnlib_node input(nnlib_model *m, const int64_t *shape, size_t rank,
                        const char *name) {
  nnlib_node node = 0;
  ASSERT_OK(nnlib_model_input(m, shape, rank, &node));
  if (name != NULL)
    ASSERT_OK(nnlib_model_set_node_name(m, node, name));
  return node;
}

static nnlib_layer *dense(int64_t in, int64_t out) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_dense_create(&l, in, out, 1));
  return l;
}

static nnlib_layer *act(nnlib_activation kind) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_activation_create(&l, kind, 0.0f));
  return l;
}

static nnlib_layer *add_layer(void) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_add_create(&l));
  return l;
}

static nnlib_layer *concat_layer(int axis) {
  nnlib_layer *l = NULL;
  ASSERT_OK(nnlib_concat_create(&l, axis));
  return l;
}

static nnlib_optimizer *adam(void) {
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_ADAM));
  o.learning_rate = 0.01f;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  return opt;
}

static nnlib_optimizer *sgd_momentum(void) {
  nnlib_optimizer_options o;
  ASSERT_OK(nnlib_optimizer_options_init(&o, NNLIB_OPT_SGD));
  o.learning_rate = 0.05f;
  o.momentum = 0.9f;
  nnlib_optimizer *opt = NULL;
  ASSERT_OK(nnlib_optimizer_create(&opt, &o));
  return opt;
}

/* ------------------------------------------------------- test models */

/* x [6] -> dense 6 -> relu -> dense 6 -> add(x, .) "sum" -> dense 3
 * "logits", softmax cross-entropy, Adam. Nodes: 0 x, 1 dense, 2 relu,
 * 3 dense, 4 add, 5 dense. */
static nnlib_model *residual_model(void) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  const int64_t shape[1] = {6};
  nnlib_node x = input(m, shape, 1, "x");
  nnlib_node h = apply1(m, dense(6, 6), x);
  h = apply1(m, act(NNLIB_ACT_RELU), h);
  h = apply1(m, dense(6, 6), h);
  nnlib_node sum = apply2(m, add_layer(), x, h);
  ASSERT_OK(nnlib_model_set_node_name(m, sum, "sum"));
  nnlib_node y = apply1(m, dense(6, 3), sum);
  ASSERT_OK(nnlib_model_set_node_name(m, y, "logits"));
  ASSERT_OK(nnlib_model_compile_graph(m, 4, NNLIB_LOSS_SOFTMAX_CE, adam(),
                                      11));
  return m;
}

/* img [1, 5, 5] -> conv 2x3x3 p1 -> relu -> flatten -> dense 4 "f";
 * vec [3]; concat(f, vec) -> dense 2; MSE, SGD with momentum. */
static nnlib_model *two_input_model(void) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  const int64_t image[3] = {1, 5, 5}, vector[1] = {3};
  nnlib_node img = input(m, image, 3, "img");
  nnlib_node vec = input(m, vector, 1, "vec");
  nnlib_conv2d_options co;
  ASSERT_OK(nnlib_conv2d_options_init(&co));
  co.padding_h = co.padding_w = 1;
  nnlib_layer *conv = NULL, *flatten = NULL;
  ASSERT_OK(nnlib_conv2d_create(&conv, 2, 3, 3, &co));
  ASSERT_OK(nnlib_flatten_create(&flatten));
  nnlib_node h = apply1(m, conv, img);
  h = apply1(m, act(NNLIB_ACT_RELU), h);
  h = apply1(m, flatten, h);
  nnlib_node f = apply1(m, dense(0, 4), h);
  ASSERT_OK(nnlib_model_set_node_name(m, f, "f"));
  nnlib_node cat = apply2(m, concat_layer(0), f, vec);
  apply1(m, dense(0, 2), cat);
  ASSERT_OK(nnlib_model_compile_graph(m, 3, NNLIB_LOSS_MSE, sgd_momentum(),
                                      5));
  return m;
}

/* The crafted files' model: inputs a [4] and b [4]; nodes 0 a, 1 b,
 * 2 dense(a) (layer 0), 3 add(2, b) "s" (layer 1), 4 relu(3) (layer 2),
 * 5 concat(4, a) (layer 3), 6 dense 3 (layer 4), the output. MSE, Adam. */
static nnlib_model *crafted_model(void) {
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  const int64_t shape[1] = {4};
  nnlib_node a = input(m, shape, 1, "a");
  nnlib_node b = input(m, shape, 1, "b");
  nnlib_node d = apply1(m, dense(4, 4), a);
  nnlib_node s = apply2(m, add_layer(), d, b);
  ASSERT_OK(nnlib_model_set_node_name(m, s, "s"));
  nnlib_node r = apply1(m, act(NNLIB_ACT_RELU), s);
  nnlib_node cat = apply2(m, concat_layer(0), r, a);
  apply1(m, dense(8, 3), cat);
  ASSERT_OK(nnlib_model_compile_graph(m, 2, NNLIB_LOSS_MSE, adam(), 9));
  return m;
}

/* One tensor per model input, [n, input shape], pseudo-random; *count
 * gets the input count. Free with free_inputs. */
static nnlib_tensor **make_inputs(nnlib_model *m, int64_t n, uint32_t seed,
                                  size_t *count) {
  *count = nnlib_model_get_input_count(m);
  nnlib_tensor **xs = calloc(*count, sizeof *xs);
  for (size_t k = 0; k < *count; k++) {
    int64_t shape[NNLIB_MAX_RANK + 1];
    size_t rank = 0;
    ASSERT_OK(nnlib_model_get_input_shape_at(m, k, shape + 1, NNLIB_MAX_RANK,
                                             &rank));
    shape[0] = n;
    ASSERT_OK(nnlib_tensor_create(&xs[k], shape, rank + 1));
    ts_fill_uniform(nnlib_tensor_get_data(xs[k]), nnlib_tensor_get_size(xs[k]),
                    -2.0f, 2.0f, &seed);
  }
  return xs;
}

static void free_inputs(nnlib_tensor **xs, size_t count) {
  for (size_t k = 0; k < count; k++)
    nnlib_tensor_free(xs[k]);
  free(xs);
}

static nnlib_tensor *make_output(nnlib_model *m, int64_t n) {
  int64_t shape[NNLIB_MAX_RANK + 1];
  size_t rank = 0;
  ASSERT_OK(nnlib_model_get_output_shape(m, shape + 1, NNLIB_MAX_RANK, &rank));
  shape[0] = n;
  nnlib_tensor *y = NULL;
  ASSERT_OK(nnlib_tensor_create(&y, shape, rank + 1));
  return y;
}

/* One-hot targets: sample i is class i mod classes. */
static nnlib_tensor *make_target(nnlib_model *m, int64_t n) {
  nnlib_tensor *t = make_output(m, n);
  int64_t per = nnlib_tensor_get_size(t) / n;
  float *td = nnlib_tensor_get_data(t);
  for (int64_t i = 0; i < n; i++)
    td[i * per + i % per] = 1.0f;
  return t;
}

/* Predictions on the given inputs, into a malloc'd array of *size floats. */
static float *predict(nnlib_model *m, nnlib_tensor **xs, size_t count,
                      int64_t n, size_t *size) {
  nnlib_tensor *y = make_output(m, n);
  ASSERT_OK(nnlib_model_predict_inputs(m, (const nnlib_tensor *const *)xs,
                                       count, y));
  *size = (size_t)nnlib_tensor_get_size(y);
  float *copy = malloc(*size * sizeof *copy);
  memcpy(copy, nnlib_tensor_get_data(y), *size * sizeof *copy);
  nnlib_tensor_free(y);
  return copy;
}

static void step(nnlib_model *m, nnlib_tensor **xs, size_t count,
                 nnlib_tensor *t) {
  ASSERT_OK(nnlib_model_step_inputs(m, (const nnlib_tensor *const *)xs, count,
                                    t, NULL));
}

/* Node index of a handle (the low 32 bits, FILE_FORMAT.md / nnlib.h). */
static uint32_t node_index(nnlib_node node) { return (uint32_t)node; }

/* The graphs of a and b are the same: nodes, their layers' kinds, inputs,
 * names, the output; the inputs' shapes. */
static void assert_same_graph(nnlib_model *a, nnlib_model *b) {
  assert_int_equal(nnlib_model_get_node_count(a),
                   nnlib_model_get_node_count(b));
  assert_int_equal(nnlib_model_get_input_count(a),
                   nnlib_model_get_input_count(b));
  for (size_t v = 0; v < nnlib_model_get_node_count(a); v++) {
    nnlib_node_info na = {.struct_size = sizeof na};
    nnlib_node_info nb = {.struct_size = sizeof nb};
    ASSERT_OK(nnlib_model_get_node(a, v, &na));
    ASSERT_OK(nnlib_model_get_node(b, v, &nb));
    assert_int_equal(node_index(na.node), v);
    assert_int_equal(node_index(nb.node), v);
    if (na.name == NULL)
      assert_null(nb.name);
    else
      assert_string_equal(na.name, nb.name);
    assert_int_equal(na.layer_index, nb.layer_index);
    assert_int_equal(na.input_index, nb.input_index);
    assert_int_equal(na.is_output, nb.is_output);
    assert_int_equal(na.layer == NULL, nb.layer == NULL);
    if (na.layer != NULL)
      assert_int_equal(nnlib_layer_get_kind(na.layer),
                       nnlib_layer_get_kind(nb.layer));
    assert_int_equal(na.input_count, nb.input_count);
    for (size_t k = 0; k < na.input_count; k++)
      assert_int_equal(node_index(na.inputs[k]), node_index(nb.inputs[k]));
  }
  for (size_t k = 0; k < nnlib_model_get_input_count(a); k++) {
    int64_t da[NNLIB_MAX_RANK], db[NNLIB_MAX_RANK];
    size_t ra = 0, rb = 0;
    ASSERT_OK(nnlib_model_get_input_shape_at(a, k, da, NNLIB_MAX_RANK, &ra));
    ASSERT_OK(nnlib_model_get_input_shape_at(b, k, db, NNLIB_MAX_RANK, &rb));
    assert_int_equal(ra, rb);
    assert_memory_equal(da, db, ra * sizeof *da);
  }
}

/* The name of node v of m, or NULL. */
static const char *node_name(nnlib_model *m, size_t v) {
  nnlib_node_info info = {.struct_size = sizeof info};
  ASSERT_OK(nnlib_model_get_node(m, v, &info));
  return info.name;
}

/* A parameter's values (borrowed). */
static const float *param(nnlib_model *m, size_t layer, size_t index) {
  nnlib_tensor *t = NULL;
  ASSERT_OK(nnlib_layer_get_param(nnlib_model_get_layer(m, layer), index, &t,
                                  NULL));
  return nnlib_tensor_get_data(t);
}

/* y = W x + b for one sample, W [out, in] row-major (naive loop). */
static void naive_dense(const float *w, const float *b, const float *x,
                        int in, int out, double *y) {
  for (int o = 0; o < out; o++) {
    double s = b[o];
    for (int i = 0; i < in; i++)
      s += (double)w[o * in + i] * x[i];
    y[o] = s;
  }
}

/* |a - b| within 1e-5 of max(1, |b|). */
static void assert_close(const float *got, const double *want, int n) {
  for (int i = 0; i < n; i++)
    if (!(fabs(got[i] - want[i]) <= 1e-5 * fmax(1.0, fabs(want[i]))))
      fail_msg("output %d: %.9g, reference %.9g", i, (double)got[i], want[i]);
}

/* ------------------------------------------------------- round trips */

/* Two training steps on a, then save (with the optimizer) -> load: the
 * same graph and predictions to the bit; load -> save: the same bytes; one
 * more step on each: the same files again. Returns the loaded model. */
static nnlib_model *round_trip(nnlib_model *a, int64_t batch) {
  size_t count, size_a, size_b, n1, n2;
  nnlib_tensor **xs = make_inputs(a, batch, 99, &count);
  nnlib_tensor **more = make_inputs(a, 7, 7, &count);
  nnlib_tensor *t = make_target(a, batch);
  step(a, xs, count, t);
  step(a, xs, count, t);
  unsigned char *f1 = save_bytes(a, NNLIB_SAVE_OPTIMIZER, &n1);
  assert_int_equal(ts_rd32(f1 + 8), 2);  /* format version */
  assert_int_equal(ts_rd32(f1 + 12), 5); /* HEAD GRPH ARCH PARM OPTM */
  nnlib_model *b = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&b, f1, n1));
  assert_same_graph(a, b);
  /* 7 samples: more than the maximum batch, predicted in chunks */
  float *ya = predict(a, more, count, 7, &size_a);
  float *yb = predict(b, more, count, 7, &size_b);
  assert_int_equal(size_a, size_b);
  assert_memory_equal(ya, yb, size_a * sizeof *ya);
  unsigned char *f2 = save_bytes(b, NNLIB_SAVE_OPTIMIZER, &n2);
  assert_int_equal(n1, n2);
  assert_memory_equal(f1, f2, n1);
  nnlib_free(f2);
  /* resumed training is exact */
  step(a, xs, count, t);
  step(b, xs, count, t);
  unsigned char *fa = save_bytes(a, NNLIB_SAVE_OPTIMIZER, &n1);
  unsigned char *fb = save_bytes(b, NNLIB_SAVE_OPTIMIZER, &n2);
  assert_int_equal(n1, n2);
  assert_memory_equal(fa, fb, n1);
  nnlib_free(fa);
  nnlib_free(fb);
  nnlib_free(f1);
  free(ya);
  free(yb);
  free_inputs(xs, count);
  free_inputs(more, count);
  nnlib_tensor_free(t);
  return b;
}

/* The residual block, reloaded, computes
 * y = W5 (x + W3 relu(W1 x + b1) + b3) + b5 (naive loops on its loaded
 * parameters): the file kept which node reads which. */
static void test_residual_round_trip(void **s) {
  (void)s;
  nnlib_model *a = residual_model();
  nnlib_model *b = round_trip(a, 4);
  assert_string_equal(node_name(b, 0), "x");
  assert_null(node_name(b, 1));
  assert_string_equal(node_name(b, 4), "sum");
  assert_string_equal(node_name(b, 5), "logits");
  size_t count;
  nnlib_tensor **xs = make_inputs(b, 5, 3, &count);
  size_t size;
  float *y = predict(b, xs, count, 5, &size);
  assert_int_equal(size, 5 * 3);
  const float *x = nnlib_tensor_get_data(xs[0]);
  for (int i = 0; i < 5; i++) {
    double h[6], c[6], want[3];
    float hf[6], sum[6];
    naive_dense(param(b, 0, 0), param(b, 0, 1), x + 6 * i, 6, 6, h);
    for (int j = 0; j < 6; j++)
      hf[j] = h[j] > 0 ? (float)h[j] : 0.0f;
    naive_dense(param(b, 2, 0), param(b, 2, 1), hf, 6, 6, c);
    for (int j = 0; j < 6; j++)
      sum[j] = (float)(x[6 * i + j] + c[j]);
    naive_dense(param(b, 4, 0), param(b, 4, 1), sum, 6, 3, want);
    assert_close(y + 3 * i, want, 3);
  }
  free(y);
  free_inputs(xs, count);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

/* An image input and a vector input joined by concat. */
static void test_two_input_round_trip(void **s) {
  (void)s;
  nnlib_model *a = two_input_model();
  nnlib_model *b = round_trip(a, 3);
  assert_int_equal(nnlib_model_get_input_count(b), 2);
  assert_string_equal(node_name(b, 0), "img");
  assert_string_equal(node_name(b, 1), "vec");
  assert_string_equal(node_name(b, 5), "f");
  int64_t dims[NNLIB_MAX_RANK];
  size_t rank = 0;
  ASSERT_OK(nnlib_model_get_input_shape_at(b, 0, dims, NNLIB_MAX_RANK, &rank));
  assert_int_equal(rank, 3);
  assert_int_equal(dims[0], 1);
  assert_int_equal(dims[1], 5);
  assert_int_equal(dims[2], 5);
  ASSERT_OK(nnlib_model_get_input_shape_at(b, 1, dims, NNLIB_MAX_RANK, &rank));
  assert_int_equal(rank, 1);
  assert_int_equal(dims[0], 3);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

/* The crafted files' model, reloaded: y = W4 [relu(W0 a + b0 + b), a] + b4
 * (naive loops). */
static void test_crafted_model_reference(void **s) {
  (void)s;
  nnlib_model *a = crafted_model();
  nnlib_model *b = round_trip(a, 2);
  size_t count, size;
  nnlib_tensor **xs = make_inputs(b, 3, 8, &count);
  float *y = predict(b, xs, count, 3, &size);
  const float *xa = nnlib_tensor_get_data(xs[0]);
  const float *xb = nnlib_tensor_get_data(xs[1]);
  for (int i = 0; i < 3; i++) {
    double d[4], want[3];
    float cat[8];
    naive_dense(param(b, 0, 0), param(b, 0, 1), xa + 4 * i, 4, 4, d);
    for (int j = 0; j < 4; j++) {
      float sum = (float)d[j] + xb[4 * i + j];
      cat[j] = sum > 0 ? sum : 0.0f;
      cat[4 + j] = xa[4 * i + j];
    }
    naive_dense(param(b, 4, 0), param(b, 4, 1), cat, 8, 3, want);
    assert_close(y + 3 * i, want, 3);
  }
  free(y);
  free_inputs(xs, count);
  nnlib_model_free(a);
  nnlib_model_free(b);
}

/* ------------------------------------------------- chains: version 1 */

/* Bytes in the order a file has them. */
typedef struct bytes {
  unsigned char d[1024];
  size_t n;
} bytes;

static void put32(bytes *b, uint32_t v) {
  ts_wr32(b->d + b->n, v);
  b->n += 4;
}
static void put64(bytes *b, uint64_t v) {
  ts_wr64(b->d + b->n, v);
  b->n += 8;
}
static void put_raw(bytes *b, const void *p, size_t n) {
  memcpy(b->d + b->n, p, n);
  b->n += n;
}
/* little-endian IEEE-754, value by value */
static void put_floats(bytes *b, const float *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t bits;
    memcpy(&bits, &v[i], 4);
    put32(b, bits);
  }
}
/* tag, u64 length, payload, u32 crc of the three */
static void put_section(bytes *b, const char *tag, const bytes *payload) {
  size_t start = b->n;
  put_raw(b, tag, 4);
  put64(b, payload->n);
  put_raw(b, payload->d, payload->n);
  put32(b, ts_crc32_ieee(b->d + start, b->n - start));
}

/* "dense:3,relu" over [2], batch 4, MSE, seed 77, written field by field
 * as version 1 lays it out (the generator state taken from the file). */
static void expected_chain_file(nnlib_model *m, const unsigned char *rng,
                                bytes *file) {
  bytes head = {{0}, 0}, arch = {{0}, 0}, parm = {{0}, 0};
  put32(&head, NNLIB_VERSION_NUMBER);
  put32(&head, NNLIB_LOSS_MSE);
  put32(&head, 1);   /* input rank */
  put64(&head, 2);   /* input [2] */
  put64(&head, 4);   /* maximum batch */
  put64(&head, 77);  /* seed */
  put_raw(&head, rng, 32);
  put32(&head, 2);   /* layers */
  put64(&head, 9);   /* parameters */
  put32(&arch, NNLIB_LAYER_DENSE);
  put32(&arch, 20);
  put64(&arch, 0);   /* in_features: taken at compile */
  put64(&arch, 3);
  put32(&arch, 1);   /* bias */
  put32(&arch, NNLIB_LAYER_ACTIVATION);
  put32(&arch, 8);
  put32(&arch, NNLIB_ACT_RELU);
  put32(&arch, 0);   /* +0.0f */
  put32(&parm, 2);   /* weight, bias */
  put32(&parm, 2);
  put64(&parm, 3);
  put64(&parm, 2);
  put_floats(&parm, param(m, 0, 0), 6);
  put32(&parm, 1);
  put64(&parm, 3);
  put_floats(&parm, param(m, 0, 1), 3);
  put32(&parm, 0);   /* no buffers */
  put32(&parm, 0);   /* relu: nothing */
  put32(&parm, 0);
  file->n = 0;
  put_raw(file, "NNLIBMDL", 8);
  put32(file, 1);    /* version */
  put32(file, 3);    /* sections */
  put64(file, 0);    /* size, below */
  put_section(file, "HEAD", &head);
  put_section(file, "ARCH", &arch);
  put_section(file, "PARM", &parm);
  ts_wr64(file->d + 16, file->n + 4);
  put32(file, ts_crc32_ieee(file->d, file->n));
}

/* A chain is written as version 1, every byte where 1.2 put it: the model
 * of test_serialize's documented layout, byte for byte against a file
 * assembled here from its fields. */
static void test_chain_writes_version_1(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  ASSERT_OK(nnlib_model_add_spec(m, "dense:3,relu"));
  int64_t in = 2;
  ASSERT_OK(nnlib_model_compile(m, &in, 1, 4, NNLIB_LOSS_MSE, NULL, 77));
  size_t n;
  unsigned char *d = save_bytes(m, 0, &n);
  assert_int_equal(ts_rd32(d + 8), 1);
  bytes want;
  expected_chain_file(m, d + TS_PREAMBLE + 12 + 36, &want);
  assert_int_equal(n, want.n);
  assert_memory_equal(d, want.d, n);
  nnlib_model_file_info info = {.struct_size = sizeof info};
  ASSERT_OK(nnlib_model_file_get_info(d, n, &info));
  assert_int_equal(info.format_version, 1);
  nnlib_free(d);
  nnlib_model_free(m);
}

/* A chain from an explicitly declared input is a chain too (version 1);
 * a chain with a named node needs version 2 to keep the name. */
static void test_chain_versions(void **s) {
  (void)s;
  for (int named = 0; named <= 1; named++) {
    nnlib_model *m = NULL;
    ASSERT_OK(nnlib_model_create(&m));
    const int64_t shape[1] = {2};
    nnlib_node x = input(m, shape, 1, NULL);
    nnlib_node h = apply1(m, dense(0, 3), x);
    apply1(m, act(NNLIB_ACT_RELU), h);
    if (named)
      ASSERT_OK(nnlib_model_set_node_name(m, h, "hidden"));
    ASSERT_OK(nnlib_model_compile_graph(m, 4, NNLIB_LOSS_MSE, NULL, 77));
    size_t n, n2, count, sa, sb;
    unsigned char *d = save_bytes(m, 0, &n);
    assert_int_equal(ts_rd32(d + 8), named ? 2 : 1);
    nnlib_model *b = NULL;
    ASSERT_OK(nnlib_model_load_buffer(&b, d, n));
    if (named)
      assert_string_equal(node_name(b, 1), "hidden");
    nnlib_tensor **xs = make_inputs(m, 5, 4, &count);
    float *ya = predict(m, xs, count, 5, &sa);
    float *yb = predict(b, xs, count, 5, &sb);
    assert_int_equal(sa, sb);
    assert_memory_equal(ya, yb, sa * sizeof *ya);
    unsigned char *d2 = save_bytes(b, 0, &n2);
    assert_int_equal(n, n2);
    assert_memory_equal(d, d2, n);
    free(ya);
    free(yb);
    free_inputs(xs, count);
    nnlib_free(d);
    nnlib_free(d2);
    nnlib_model_free(m);
    nnlib_model_free(b);
  }
}

/* fuzz/corpus/model_load/adamw-not-saved, as nnlib 1.0 wrote it: dense
 * 4 -> 2, tanh; input [4], batch 3, MSE, seed 42, no optimizer. */
static const unsigned char file_from_1_0[] = {
  0x4e, 0x4e, 0x4c, 0x49, 0x42, 0x4d, 0x44, 0x4c, 0x01, 0x00, 0x00, 0x00,
  0x03, 0x00, 0x00, 0x00, 0x20, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x48, 0x45, 0x41, 0x44, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x10, 0x27, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
  0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0xb3, 0x5c, 0x27, 0x55, 0x1a, 0x54, 0xf3, 0x3f, 0xe8, 0xde, 0x4e, 0x93,
  0xaf, 0x04, 0xb9, 0x05, 0xe8, 0xa2, 0x44, 0x35, 0x4d, 0x75, 0x7e, 0x98,
  0x83, 0x24, 0x18, 0x1e, 0xd0, 0xd5, 0xec, 0x9c, 0x02, 0x00, 0x00, 0x00,
  0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd1, 0x25, 0xc8, 0x68,
  0x41, 0x52, 0x43, 0x48, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
  0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd4, 0x99, 0xac, 0xea,
  0x50, 0x41, 0x52, 0x4d, 0x58, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0xd5, 0xcd, 0x54, 0xbf, 0xba, 0xde, 0x78, 0xbe, 0xc1, 0xd9, 0xb7, 0x3e,
  0x42, 0x2f, 0x59, 0x3f, 0x9c, 0x0e, 0x7c, 0x3f, 0x66, 0xd9, 0x09, 0x3f,
  0xab, 0x01, 0xe0, 0x3e, 0x61, 0x75, 0x33, 0x3f, 0x01, 0x00, 0x00, 0x00,
  0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x6f, 0x12, 0x83, 0x3a,
  0x6f, 0x12, 0x83, 0x3a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x57, 0xc9, 0x6e, 0x41, 0x31, 0x80, 0x93, 0xe5
};

/* It loads, predicts tanh(W x + b) of its own weights (naive loops), and
 * saves to the same bytes but the writing library's version in HEAD. */
static void test_file_from_1_0(void **s) {
  (void)s;
  size_t n = sizeof file_from_1_0;
  nnlib_model_file_info info = {.struct_size = sizeof info};
  ASSERT_OK(nnlib_model_file_get_info(file_from_1_0, n, &info));
  assert_int_equal(info.format_version, 1);
  assert_int_equal(info.library_version, 10000);
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_load_buffer(&m, file_from_1_0, n));
  assert_int_equal(nnlib_model_get_input_count(m), 1);
  size_t count, size;
  nnlib_tensor **xs = make_inputs(m, 5, 21, &count);
  float *y = predict(m, xs, count, 5, &size);
  const float *x = nnlib_tensor_get_data(xs[0]);
  for (int i = 0; i < 5; i++) {
    double want[2];
    naive_dense(param(m, 0, 0), param(m, 0, 1), x + 4 * i, 4, 2, want);
    for (int j = 0; j < 2; j++)
      want[j] = tanh(want[j]);
    assert_close(y + 2 * i, want, 2);
  }
  size_t n2, n3;
  unsigned char *again = save_bytes(m, 0, &n2);
  parts p;
  ts_split_file(file_from_1_0, n, &p);
  ts_wr32(p.payload[HEAD], NNLIB_VERSION_NUMBER);
  unsigned char *want = ts_join_file(&p, &n3);
  assert_int_equal(n2, n3);
  assert_memory_equal(again, want, n2);
  free(want);
  ts_free_parts(&p);
  nnlib_free(again);
  free(y);
  free_inputs(xs, count);
  nnlib_model_free(m);
}

/* ------------------------------------------------------ GRPH, crafted */

/* A graph as GRPH holds it, for crafting files. */
typedef struct tnode {
  uint32_t kind; /* 0 input, 1 layer; anything else is written as is */
  uint32_t layer;
  uint32_t count;
  uint32_t in[3];
  const char *name; /* NULL: unnamed */
} tnode;

typedef struct tgraph {
  uint32_t input_count;
  uint32_t rank[2];
  int64_t dims[2][3];
  uint32_t node_count;
  size_t written; /* nodes encoded */
  tnode node[8];
  uint32_t output;
  size_t trailing; /* zero bytes after the output */
} tgraph;

/* crafted_model()'s graph */
static const tgraph crafted_graph = {
    2, {1, 1}, {{4}, {4}}, 7, 7,
    {{0, 0, 0, {0}, "a"},
     {0, 0, 0, {0}, "b"},
     {1, 0, 1, {0}, NULL},
     {1, 1, 2, {2, 1}, "s"},
     {1, 2, 1, {3}, NULL},
     {1, 3, 2, {4, 0}, NULL},
     {1, 4, 1, {5}, NULL}},
    6, 0};

/* Encodes g as FILE_FORMAT.md lays GRPH out; returns the length. */
static size_t encode_graph(const tgraph *g, unsigned char *out) {
  size_t n = 0;
  ts_wr32(out + n, g->input_count), n += 4;
  for (uint32_t k = 0; k < g->input_count && k < 2; k++) {
    ts_wr32(out + n, g->rank[k]), n += 4;
    for (uint32_t i = 0; i < g->rank[k] && i < 3; i++)
      ts_wr64(out + n, (uint64_t)g->dims[k][i]), n += 8;
  }
  ts_wr32(out + n, g->node_count), n += 4;
  for (size_t v = 0; v < g->written; v++) {
    const tnode *node = &g->node[v];
    ts_wr32(out + n, node->kind), n += 4;
    if (node->kind == 1) {
      ts_wr32(out + n, node->layer), n += 4;
      ts_wr32(out + n, node->count), n += 4;
      for (uint32_t k = 0; k < node->count && k < 3; k++)
        ts_wr32(out + n, node->in[k]), n += 4;
    }
    size_t length = node->name ? strlen(node->name) : 0;
    ts_wr32(out + n, (uint32_t)length), n += 4;
    memcpy(out + n, node->name ? node->name : "", length);
    n += length;
  }
  ts_wr32(out + n, g->output), n += 4;
  memset(out + n, 0, g->trailing);
  return n + g->trailing;
}

/* The documented example: input x [4] (named), a dense layer of 4 on it,
 * an add of both; HEAD of version 2 at its documented offsets. */
static void test_graph_layout(void **s) {
  (void)s;
  nnlib_model *m = NULL;
  ASSERT_OK(nnlib_model_create(&m));
  const int64_t shape[1] = {4};
  nnlib_node x = input(m, shape, 1, "x");
  nnlib_node d = apply1(m, dense(0, 4), x);
  apply2(m, add_layer(), x, d);
  ASSERT_OK(nnlib_model_compile_graph(m, 2, NNLIB_LOSS_NONE, NULL, 3));
  size_t n;
  unsigned char *f = save_bytes(m, 0, &n);
  assert_int_equal(ts_rd32(f + 8), 2);
  assert_int_equal(ts_rd32(f + 12), 4);
  assert_int_equal(ts_rd64(f + 16), n);
  assert_int_equal(ts_rd32(f + n - 4), ts_crc32_ieee(f, n - 4));
  parts p;
  ts_split_file(f, n, &p);
  assert_memory_equal(p.tag[HEAD], "HEAD", 4);
  assert_memory_equal(p.tag[GRPH], "GRPH", 4);
  assert_memory_equal(p.tag[ARCH], "ARCH", 4);
  assert_memory_equal(p.tag[PARM], "PARM", 4);
  const unsigned char *h = p.payload[HEAD];
  assert_int_equal(p.length[HEAD], 68);
  assert_int_equal(ts_rd32(h), NNLIB_VERSION_NUMBER);
  assert_int_equal(ts_rd32(h + 4), NNLIB_LOSS_NONE);
  assert_int_equal(ts_rd64(h + 8), 2);  /* maximum batch */
  assert_int_equal(ts_rd64(h + 16), 3); /* seed */
  assert_int_equal(ts_rd32(h + 56), 2); /* layers */
  assert_int_equal(ts_rd64(h + 60), 20); /* 4x4 + 4 */
  const unsigned char *g = p.payload[GRPH];
  assert_int_equal(p.length[GRPH], 77);
  assert_int_equal(ts_rd32(g + 16), 3);  /* node count */
  assert_int_equal(g[28], 'x');       /* node 0's name */
  assert_int_equal(ts_rd32(g + 29), 1);  /* node 1: a layer */
  assert_int_equal(ts_rd32(g + 49 + 8), 2); /* node 2 reads two nodes */
  assert_int_equal(ts_rd32(g + 73), 2);  /* the output */
  tgraph doc = {1, {1}, {{4}}, 3, 3,
                {{0, 0, 0, {0}, "x"}, {1, 0, 1, {0}, NULL},
                 {1, 1, 2, {0, 1}, NULL}},
                2, 0};
  unsigned char want[128];
  assert_int_equal(encode_graph(&doc, want), 77);
  assert_memory_equal(g, want, 77);
  const unsigned char *a = p.payload[ARCH];
  assert_int_equal(ts_rd32(a), NNLIB_LAYER_DENSE);
  assert_int_equal(ts_rd32(a + 28), NNLIB_LAYER_ADD);
  assert_int_equal(ts_rd32(a + 32), 0); /* add: no config */
  ts_free_parts(&p);
  nnlib_free(f);
  nnlib_model_free(m);
}

/* The header summary of a version-2 file: input 0's shape, the layers. */
static void test_file_info(void **s) {
  (void)s;
  nnlib_model *m = two_input_model();
  size_t n;
  unsigned char *f = save_bytes(m, NNLIB_SAVE_OPTIMIZER, &n);
  nnlib_model_file_info info;
  memset(&info, 0xab, sizeof info);
  info.struct_size = sizeof info;
  ASSERT_OK(nnlib_model_file_get_info(f, n, &info));
  assert_int_equal(info.format_version, 2);
  assert_int_equal(info.library_version, NNLIB_VERSION_NUMBER);
  assert_int_equal(info.file_size, n);
  assert_int_equal(info.loss, NNLIB_LOSS_MSE);
  assert_int_equal(info.input_rank, 3);
  assert_int_equal(info.input_shape[0], 1);
  assert_int_equal(info.input_shape[1], 5);
  assert_int_equal(info.input_shape[2], 5);
  assert_int_equal(info.max_batch, 3);
  assert_int_equal(info.seed, 5);
  assert_int_equal(info.layer_count, 6);
  /* conv 2x1x3x3 + 2, dense 50 -> 4, dense 7 -> 2 */
  assert_int_equal(info.param_count, 20 + 204 + 16);
  assert_int_equal(info.has_optimizer, 1);
  assert_int_equal(info.optimizer_kind, NNLIB_OPT_SGD);
  nnlib_free(f);
  nnlib_model_free(m);
}

static char tmpdir[64];

static int make_tmpdir(void **s) {
  (void)s;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/nnlib-graph-XXXXXX");
  return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int remove_tmpdir(void **s) {
  (void)s;
  char path[128];
  snprintf(path, sizeof path, "%s/crafted.nnl", tmpdir);
  unlink(path);
  return rmdir(tmpdir);
}

/* One load under the counting allocator: the status, a message containing
 * needle, *out NULL on failure (a model on success, freed), no block left
 * allocated. From a path when path is not NULL. */
static void expect_load(const char *path, const unsigned char *d, size_t n,
                        nnlib_status want, const char *needle) {
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  nnlib_model *m = (nnlib_model *)&stats; /* must be overwritten */
  nnlib_clear_error();
  nnlib_status st = path != NULL ? nnlib_model_load(&m, path)
                                 : nnlib_model_load_buffer(&m, d, n);
  if (st == NNLIB_OK)
    nnlib_model_free(m);
  ts_alloc_uninstall();
  if (st != want)
    fail_msg("%s: got %s, expected %s: %s", path ? path : "buffer",
             nnlib_status_string(st), nnlib_status_string(want),
             nnlib_last_error_message());
  if (st != NNLIB_OK) {
    assert_null(m);
    ts_expect_message(needle);
  }
  if (stats.live != 0)
    fail_msg("%ld blocks leaked (%s)", stats.live, nnlib_last_error_message());
}

/* Loads d from memory and from a file (left as it was). */
static void expect_both(const unsigned char *d, size_t n, nnlib_status want,
                        const char *needle) {
  expect_load(NULL, d, n, want, needle);
  char path[128];
  snprintf(path, sizeof path, "%s/crafted.nnl", tmpdir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(d, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
  expect_load(path, NULL, 0, want, needle);
  unsigned char back[4096];
  f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fread(back, 1, sizeof back, f), n);
  fclose(f);
  assert_memory_equal(back, d, n);
}

typedef void (*graph_edit)(tgraph *g);

static void g_none(tgraph *g) { (void)g; }
static void g_ref_range(tgraph *g) { g->node[2].in[0] = 9; }
static void g_ref_later(tgraph *g) { g->node[3].in[1] = 4; }
static void g_ref_self(tgraph *g) { g->node[3].in[1] = 3; }
static void g_reads_none(tgraph *g) { g->node[2].count = 0; }
static void g_layer_twice(tgraph *g) { g->node[4].layer = 1; }
static void g_layer_order(tgraph *g) {
  g->node[2].layer = 1;
  g->node[3].layer = 0;
}
static void g_layer_range(tgraph *g) { g->node[6].layer = 5; }
static void g_unused_input(tgraph *g) { g->node[3].in[1] = 2; }
static void g_merge_one(tgraph *g) { g->node[5].count = 1; }
static void g_dense_two(tgraph *g) {
  g->node[6].count = 2;
  g->node[6].in[1] = 4;
}
static void g_output_range(tgraph *g) { g->output = 7; }
static void g_output_input(tgraph *g) { g->output = 0; }
static void g_not_reaching(tgraph *g) { g->output = 5; }
static void g_name_digit(tgraph *g) { g->node[4].name = "4x"; }
static void g_name_char(tgraph *g) { g->node[4].name = "a-b"; }
static void g_name_long(tgraph *g) {
  g->node[4].name = "abcdefghijklmnopqrstuvwxyz_01234"; /* 32 */
}
static void g_name_31(tgraph *g) {
  g->node[4].name = "_bcdefghijklmnopqrstuvwxyz_0123"; /* 31: fine */
}
static void g_name_twice(tgraph *g) { g->node[4].name = "a"; }
static void g_shapes(tgraph *g) { g->dims[1][0] = 5; }
static void g_kind7(tgraph *g) { g->node[2].kind = 7; }
static void g_extra_input(tgraph *g) { g->node[2].kind = 0; }
static void g_node_count(tgraph *g) { g->node_count = 8; }
static void g_inputs0(tgraph *g) { g->input_count = 0; }
static void g_inputs_many(tgraph *g) { g->input_count = 65537; }
static void g_input_rank0(tgraph *g) { g->rank[1] = 0; }
static void g_trailing(tgraph *g) { g->trailing = 3; }
static void g_same_input_twice(tgraph *g) {
  /* concat(relu, relu): a node may be read twice; input a still feeds
   * node 2 and the dense after the concat still gets 8 features */
  g->node[5].in[1] = 4;
}

typedef struct graph_case {
  const char *name;
  graph_edit edit;
  nnlib_status want;
  const char *needle;
} graph_case;

static const graph_case graph_cases[] = {
    {"unchanged", g_none, NNLIB_OK, ""},
    {"reference out of range", g_ref_range, NNLIB_ERR_CORRUPT_FILE,
     "node 2 (layer 0) reads node 9, the graph has 7 nodes"},
    {"reference to a later node", g_ref_later, NNLIB_ERR_CORRUPT_FILE,
     "node 3 (layer 1) reads node 4, which comes after it"},
    {"reference to itself", g_ref_self, NNLIB_ERR_CORRUPT_FILE,
     "node 3 (layer 1) reads itself"},
    {"reads no node", g_reads_none, NNLIB_ERR_CORRUPT_FILE,
     "node 2 (layer 0) reads no node"},
    {"two nodes, one layer", g_layer_twice, NNLIB_ERR_CORRUPT_FILE,
     "node 4 (layer 1): node 3 already uses layer 1"},
    {"layers out of order", g_layer_order, NNLIB_ERR_CORRUPT_FILE,
     "node 2 (layer 1): layers are stored in the order of their nodes, "
     "this node's is layer 0"},
    {"layer out of range", g_layer_range, NNLIB_ERR_CORRUPT_FILE,
     "node 6 (layer 5): layer 5, the file has 5 layers"},
    {"unused input", g_unused_input, NNLIB_ERR_CORRUPT_FILE,
     "node 1 'b' (input 1) is never used"},
    {"merge of one input", g_merge_one, NNLIB_ERR_CORRUPT_FILE,
     "node 5 (concat) reads 1 node, concat reads at least 2"},
    {"dense of two inputs", g_dense_two, NNLIB_ERR_CORRUPT_FILE,
     "node 6 (dense) reads 2 nodes, dense reads exactly one"},
    {"output out of range", g_output_range, NNLIB_ERR_CORRUPT_FILE,
     "the output is node 7, the graph has 7 nodes"},
    {"output an input", g_output_input, NNLIB_ERR_CORRUPT_FILE,
     "the output is node 0 'a' (input 0), a model input"},
    {"node not reaching the output", g_not_reaching, NNLIB_ERR_CORRUPT_FILE,
     "node 6 (layer 4) does not reach the output, node 5"},
    {"name starting with a digit", g_name_digit, NNLIB_ERR_CORRUPT_FILE,
     "node 4 (layer 2): name \"4x\" is not"},
    {"name with a dash", g_name_char, NNLIB_ERR_CORRUPT_FILE,
     "node 4 (layer 2): name \"a-b\" is not"},
    {"name of 32", g_name_long, NNLIB_ERR_CORRUPT_FILE,
     "node 4 (layer 2) has a name of 32 bytes, at most 31"},
    {"name of 31", g_name_31, NNLIB_OK, ""},
    {"name twice", g_name_twice, NNLIB_ERR_CORRUPT_FILE,
     "node 4 'a' (layer 2): node 0 has the same name"},
    {"shapes that do not chain", g_shapes, NNLIB_ERR_CORRUPT_FILE,
     "node 3 's' (add)"},
    {"node kind 7", g_kind7, NNLIB_ERR_CORRUPT_FILE, "node 2 has kind 7"},
    {"an input too many", g_extra_input, NNLIB_ERR_CORRUPT_FILE,
     "node 2 is a model input, the graph declares 2 inputs"},
    {"node count", g_node_count, NNLIB_ERR_CORRUPT_FILE,
     "8 nodes, expected 7 (2 inputs and 5 layers)"},
    {"no input", g_inputs0, NNLIB_ERR_CORRUPT_FILE,
     "0 inputs, must be in 1..65536"},
    {"65537 inputs", g_inputs_many, NNLIB_ERR_CORRUPT_FILE,
     "65537 inputs, must be in 1..65536"},
    {"input rank 0", g_input_rank0, NNLIB_ERR_CORRUPT_FILE,
     "input 1 rank 0, must be in 1..7"},
    {"trailing bytes", g_trailing, NNLIB_ERR_CORRUPT_FILE,
     "3 trailing bytes in the graph section"},
    {"one node read twice", g_same_input_twice, NNLIB_OK,
     ""},
};

/* crafted_model() saved with its optimizer, GRPH replaced by the edited
 * graph, the checksums repaired. */
static unsigned char *crafted_file(graph_edit edit, size_t *size) {
  nnlib_model *m = crafted_model();
  size_t n;
  unsigned char *d = save_bytes(m, NNLIB_SAVE_OPTIMIZER, &n);
  parts p;
  ts_split_file(d, n, &p);
  assert_int_equal(p.count, 5);
  tgraph g = crafted_graph;
  unsigned char encoded[512];
  size_t length = encode_graph(&g, encoded);
  /* the test's encoding of the unchanged graph is the library's */
  assert_int_equal(length, p.length[GRPH]);
  assert_memory_equal(encoded, p.payload[GRPH], length);
  edit(&g);
  length = encode_graph(&g, encoded);
  free(p.payload[GRPH]);
  p.payload[GRPH] = malloc(length);
  memcpy(p.payload[GRPH], encoded, length);
  p.length[GRPH] = length;
  unsigned char *f = ts_join_file(&p, size);
  ts_free_parts(&p);
  nnlib_free(d);
  nnlib_model_free(m);
  return f;
}

/* Every graph rule: one crafted file each, its status and a message naming
 * the node, from memory and from disk, *out NULL, no leak. */
static void test_crafted_graphs(void **s) {
  (void)s;
  for (size_t i = 0; i < sizeof graph_cases / sizeof graph_cases[0]; i++) {
    print_message("crafted: %s\n", graph_cases[i].name);
    size_t n;
    unsigned char *f = crafted_file(graph_cases[i].edit, &n);
    expect_both(f, n, graph_cases[i].want, graph_cases[i].needle);
    free(f);
  }
}

/* The container around GRPH: a newer version, GRPH missing, a version-1
 * file claiming version 2, GRPH in a version-1 file. */
static void test_crafted_container(void **s) {
  (void)s;
  size_t n, m;
  unsigned char *f = crafted_file(g_none, &n);
  ts_wr32(f + 8, 4);
  ts_wr32(f + n - 4, ts_crc32_ieee(f, n - 4));
  expect_both(f, n, NNLIB_ERR_UNSUPPORTED_VERSION,
              "format version 4; this library");
  ts_wr32(f + 8, 2);
  parts p;
  ts_split_file(f, n, &p); /* without GRPH */
  free(p.payload[GRPH]);
  memmove(&p.payload[GRPH], &p.payload[GRPH + 1], 3 * sizeof p.payload[0]);
  memmove(&p.length[GRPH], &p.length[GRPH + 1], 3 * sizeof p.length[0]);
  memmove(&p.tag[GRPH], &p.tag[GRPH + 1], 3 * sizeof p.tag[0]);
  p.count = 4;
  unsigned char *no_graph = ts_join_file(&p, &m);
  expect_both(no_graph, m, NNLIB_ERR_CORRUPT_FILE,
              "section 2 is \"ARCH\", expected \"GRPH\"");
  ts_wr32(no_graph + 8, 1); /* and as version 1: a v1 HEAD is 12 bytes more */
  ts_wr32(no_graph + m - 4, ts_crc32_ieee(no_graph, m - 4));
  expect_both(no_graph, m, NNLIB_ERR_CORRUPT_FILE, "model file:");
  free(no_graph);
  ts_free_parts(&p);
  ts_wr32(f + 8, 1); /* five sections in a version-1 file */
  ts_wr32(f + n - 4, ts_crc32_ieee(f, n - 4));
  expect_both(f, n, NNLIB_ERR_CORRUPT_FILE, "5 sections, expected 3 or 4");
  free(f);
  /* a chain's version-1 file read as version 2 */
  nnlib_model *chain = ts_model(4, 2, NNLIB_LOSS_MSE, NULL, 1,
                                ts_dense(4, 3, 1), NULL);
  f = save_bytes(chain, 0, &n);
  unsigned char *copy = malloc(n);
  memcpy(copy, f, n);
  ts_wr32(copy + 8, 2);
  ts_wr32(copy + n - 4, ts_crc32_ieee(copy, n - 4));
  expect_both(copy, n, NNLIB_ERR_CORRUPT_FILE, "3 sections, expected 4 or 5");
  free(copy);
  nnlib_free(f);
  nnlib_model_free(chain);
}

/* ------------------------------------------ allocation failure injection */

static const unsigned char *oom_file;
static size_t oom_size;

/* Loads oom_file and predicts one batch; frees everything; the first
 * status that is not NNLIB_OK. */
static nnlib_status load_and_predict(void) {
  nnlib_model *m = (nnlib_model *)&oom_size;
  nnlib_status st = nnlib_model_load_buffer(&m, oom_file, oom_size);
  if (st != NNLIB_OK) {
    assert_null(m);
    return st;
  }
  size_t count = nnlib_model_get_input_count(m);
  nnlib_tensor *xs[4] = {NULL}, *y = NULL;
  for (size_t k = 0; k < count && st == NNLIB_OK; k++) {
    int64_t shape[NNLIB_MAX_RANK + 1];
    size_t rank = 0;
    ASSERT_OK(nnlib_model_get_input_shape_at(m, k, shape + 1, NNLIB_MAX_RANK,
                                             &rank));
    shape[0] = 2;
    st = nnlib_tensor_create(&xs[k], shape, rank + 1);
  }
  if (st == NNLIB_OK) {
    int64_t shape[NNLIB_MAX_RANK + 1];
    size_t rank = 0;
    ASSERT_OK(nnlib_model_get_output_shape(m, shape + 1, NNLIB_MAX_RANK,
                                           &rank));
    shape[0] = 2;
    st = nnlib_tensor_create(&y, shape, rank + 1);
  }
  if (st == NNLIB_OK)
    st = nnlib_model_predict_inputs(m, (const nnlib_tensor *const *)xs, count,
                                    y);
  for (size_t k = 0; k < count; k++)
    nnlib_tensor_free(xs[k]);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  return st;
}

/* As tests/test_oom.c: every allocation failing once (transient), and
 * from there on (persistent): NNLIB_ERR_OUT_OF_MEMORY with a message or
 * success, never a leak. */
static void inject(const char *name) {
  ts_alloc_stats stats = {0};
  ts_alloc_install(&stats);
  nnlib_status st = load_and_predict();
  ts_alloc_uninstall();
  if (st != NNLIB_OK)
    fail_msg("%s fails without injection: %s", name,
             nnlib_last_error_message());
  assert_int_equal(stats.live, 0);
  long total = stats.allocs, failures = 0;
  assert_true(total > 0);
  for (int persistent = 0; persistent <= 1; persistent++)
    for (long k = 1; k <= total; k++) {
      stats.fail_at = k;
      ts_alloc_install(&stats);
      ts_alloc_fail_persistent(persistent);
      nnlib_clear_error();
      st = load_and_predict();
      long live = stats.live;
      ts_alloc_uninstall();
      if (st != NNLIB_OK && st != NNLIB_ERR_OUT_OF_MEMORY)
        fail_msg("%s: failing allocation %ld of %ld gave %s: %s", name, k,
                 total, nnlib_status_string(st), nnlib_last_error_message());
      if (st != NNLIB_OK && nnlib_last_error_message()[0] == '\0')
        fail_msg("%s: allocation %ld: no message", name, k);
      if (live != 0)
        fail_msg("%s: failing allocation %ld of %ld (%s) leaked %ld blocks",
                 name, k, total, persistent ? "persistent" : "transient",
                 live);
      failures += st == NNLIB_ERR_OUT_OF_MEMORY;
    }
  assert_true(failures >= total);
  print_message("%s: %ld allocations, %ld of %ld injected runs out of "
                "memory\n",
                name, total, failures, 2 * total);
}

static void test_oom_load(void **s) {
  (void)s;
  nnlib_model *models[2] = {residual_model(), two_input_model()};
  const char *names[2] = {"residual", "two inputs"};
  for (int i = 0; i < 2; i++) {
    size_t n;
    unsigned char *f = save_bytes(models[i], NNLIB_SAVE_OPTIMIZER, &n);
    unsigned char *copy = malloc(n);
    memcpy(copy, f, n);
    nnlib_free(f);
    oom_file = copy;
    oom_size = n;
    inject(names[i]);
    free(copy);
    nnlib_model_free(models[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_residual_round_trip),
      cmocka_unit_test(test_two_input_round_trip),
      cmocka_unit_test(test_crafted_model_reference),
      cmocka_unit_test(test_chain_writes_version_1),
      cmocka_unit_test(test_chain_versions),
      cmocka_unit_test(test_file_from_1_0),
      cmocka_unit_test(test_graph_layout),
      cmocka_unit_test(test_file_info),
      cmocka_unit_test(test_crafted_graphs),
      cmocka_unit_test(test_crafted_container),
      cmocka_unit_test(test_oom_load),
  };
  return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
