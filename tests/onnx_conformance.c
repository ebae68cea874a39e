/* onnx_conformance - ONNX's own backend test cases through the importer:
 * for every directory of the list below under the ONNX test data
 * (/usr/share/libonnx-testdata/data, or argv[1]), imports model.onnx, feeds
 * test_data_set_N/input_K.pb and compares the prediction with output_0.pb:
 * |got - want| <= 1e-5 |want| + 1e-5 (relative 1e-5 with an absolute floor
 * of 1e-5 for values near zero). Prints one line per case and
 * "passed=N skipped=M failed=K"; exits 1 when a listed case fails.
 *
 * ONNX node tests feed weights as graph inputs; nnlib learns weights as
 * parameters, so the inputs after the first `data` ones are given to the
 * importer as initializers: their TensorProto bytes are appended to the
 * model as a second graph field holding only initializers, which protobuf
 * merges into the first (repeated fields append). The importer sees a graph
 * input that has an initializer, which ONNX defines as a default value.
 * The TensorProto reader here is written apart from the library's.
 *
 * A graph of several outputs (LayerNormalization's Y, Mean, InvStdDev;
 * the batchwise recurrent tests' Y and Y_h) is imported once per output,
 * choosing it with nnlib_onnx_options.output, and each is compared with
 * its output_K.pb. Outputs nnlib does not compute (LayerNormalization's
 * Mean and InvStdDev) are listed per case: their import must be refused
 * (NNLIB_ERR_UNSUPPORTED naming them), and the line of the case says so.
 *
 * Time-major cases (the flag TIME_MAJOR below: an LSTM, GRU or RNN of
 * layout 0 reading the graph input X [T, N, F]): the model takes X batch
 * first, so the runner feeds input 0 permuted to [N, T, F]; its Y
 * [T, 1, N, H] comes back as [N, T, H] and is compared element by element
 * with the permutation undone, Y_h [1, N, H] as [N, H] (the same order).
 * docs/ONNX.md documents the mapping.
 *
 * Whole-sample cases (the flag WHOLE: operators that mix ONNX's axis 0,
 * such as Gemm's transA, a matrix C, Flatten at any axis, or inputs of
 * rank 1): imported with nnlib_onnx_options.whole_sample, each data input
 * fed as one sample [1, ...dims], the output compared element by element.
 *
 * Node tests record the opset at which their operator last changed (Relu
 * at 14, Softplus at 1, MaxPool at 12) and the pytorch-converted cases are
 * opset 6 models: they are imported as they are. Which older opsets the
 * importer reads, and the older definitions it reads or refuses, is the
 * importer's business (src/onnx/import_opset.c, docs/ONNX.md). */
#include <nnlib.h>

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TIME_MAJOR = 1, WHOLE = 2 }; /* flags: see the top of the file */

typedef struct case_entry {
  const char *dir;
  int data_inputs;     /* graph inputs fed as data; the rest are weights */
  const char *skip;    /* NULL: must pass; else why it is skipped */
  int flags;
  /* graph outputs nnlib does not compute ("Mean InvStdDev"), each refused
   * on import, and why (printed) */
  const char *not_computed, *why_not;
} case_entry;

#define LN_STATS                                                               \
  NULL, 0, "Mean InvStdDev",                                                   \
      "nnlib's layernorm outputs only Y (its statistics stay inside)"
#define LN_MORE "normalises over more than the last axis"
#define LN_BATCH "normalises over the batch axis (axis 0)"

/* Entries give flags and the outputs not computed only where they apply;
 * the fields left out are zero. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const case_entry cases[] = {
    /* Gemm */
    {"node/test_gemm_all_attributes", 1, NULL, WHOLE},
    {"node/test_gemm_alpha", 1, NULL},
    {"node/test_gemm_beta", 1, NULL},
    {"node/test_gemm_default_matrix_bias", 1, NULL, WHOLE},
    {"node/test_gemm_default_no_bias", 1, NULL},
    {"node/test_gemm_default_scalar_bias", 1, NULL},
    {"node/test_gemm_default_single_elem_vector_bias", 1, NULL},
    {"node/test_gemm_default_vector_bias", 1, NULL},
    {"node/test_gemm_default_zero_bias", 1, NULL},
    {"node/test_gemm_transposeA", 1, NULL, WHOLE},
    {"node/test_gemm_transposeB", 1, NULL},
    {"node/test_matmul_2d", 1, NULL},
    {"node/test_matmul_3d", 1, "B [2, 4, 3] is a batched product: no layer"},
    {"node/test_matmul_4d", 1, "B [1, 2, 4, 3] is a batched product: no "
                               "layer"},
    /* Conv */
    {"node/test_basic_conv_with_padding", 1, NULL},
    {"node/test_basic_conv_without_padding", 1, NULL},
    {"node/test_conv_with_autopad_same", 1, NULL},
    /* pads [1, 0, 1, 0]: each axis the same on both sides */
    {"node/test_conv_with_strides_and_asymmetric_padding", 1, NULL},
    {"node/test_conv_with_strides_no_padding", 1, NULL},
    {"node/test_conv_with_strides_padding", 1, NULL},
    {"node/test_basic_convinteger", 1,
     "ConvInteger: integer convolution, nnlib is float32"},
    /* pools */
    {"node/test_maxpool_2d_ceil", 1, NULL},
    {"node/test_maxpool_2d_default", 1, NULL},
    {"node/test_maxpool_2d_dilations", 1, NULL},
    {"node/test_maxpool_2d_pads", 1, NULL},
    {"node/test_maxpool_2d_precomputed_pads", 1, NULL},
    {"node/test_maxpool_2d_precomputed_same_upper", 1, NULL},
    {"node/test_maxpool_2d_precomputed_strides", 1, NULL},
    {"node/test_maxpool_2d_same_lower", 1, NULL},
    {"node/test_maxpool_2d_same_upper", 1, NULL},
    {"node/test_maxpool_2d_strides", 1, NULL},
    /* uint8 x read as floats (max pooling is exact in float32) */
    {"node/test_maxpool_2d_uint8", 1, NULL},
    {"node/test_averagepool_2d_ceil", 1, NULL},
    {"node/test_averagepool_2d_default", 1, NULL},
    {"node/test_averagepool_2d_pads", 1, NULL},
    {"node/test_averagepool_2d_pads_count_include_pad", 1, NULL},
    {"node/test_averagepool_2d_precomputed_pads", 1, NULL},
    {"node/test_averagepool_2d_precomputed_pads_count_include_pad", 1, NULL},
    {"node/test_averagepool_2d_precomputed_same_upper", 1, NULL},
    {"node/test_averagepool_2d_precomputed_strides", 1, NULL},
    {"node/test_averagepool_2d_same_lower", 1, NULL},
    {"node/test_averagepool_2d_same_upper", 1, NULL},
    {"node/test_averagepool_2d_strides", 1, NULL},
    {"node/test_globalaveragepool", 1, NULL},
    {"node/test_globalaveragepool_precomputed", 1, NULL},
    /* batch normalisation, layer normalisation */
    {"node/test_batchnorm_epsilon", 1, NULL},
    {"node/test_batchnorm_example", 1, NULL},
    {"node/test_batchnorm_epsilon_training_mode", 1,
     "training_mode = 1 (only inference batchnorm is imported)"},
    {"node/test_batchnorm_example_training_mode", 1,
     "training_mode = 1 (only inference batchnorm is imported)"},
    {"node/test_layer_normalization_2d_axis1", 1, LN_STATS},
    {"node/test_layer_normalization_2d_axis_negative_1", 1, LN_STATS},
    {"node/test_layer_normalization_3d_axis2_epsilon", 1, LN_STATS},
    {"node/test_layer_normalization_3d_axis_negative_1_epsilon", 1, LN_STATS},
    {"node/test_layer_normalization_4d_axis3", 1, LN_STATS},
    {"node/test_layer_normalization_4d_axis_negative_1", 1, LN_STATS},
    {"node/test_layer_normalization_default_axis", 1, LN_STATS},
    {"node/test_layer_normalization_2d_axis0", 1, LN_BATCH},
    {"node/test_layer_normalization_3d_axis0_epsilon", 1, LN_BATCH},
    {"node/test_layer_normalization_4d_axis0", 1, LN_BATCH},
    {"node/test_layer_normalization_2d_axis_negative_2", 1, LN_BATCH},
    {"node/test_layer_normalization_3d_axis_negative_3_epsilon", 1, LN_BATCH},
    {"node/test_layer_normalization_4d_axis_negative_4", 1, LN_BATCH},
    {"node/test_layer_normalization_3d_axis1_epsilon", 1, LN_MORE},
    {"node/test_layer_normalization_3d_axis_negative_2_epsilon", 1, LN_MORE},
    {"node/test_layer_normalization_4d_axis1", 1, LN_MORE},
    {"node/test_layer_normalization_4d_axis2", 1, LN_MORE},
    {"node/test_layer_normalization_4d_axis_negative_2", 1, LN_MORE},
    {"node/test_layer_normalization_4d_axis_negative_3", 1, LN_MORE},
    /* the function body in primitive operators, read as one layernorm */
    {"node/test_layer_normalization_2d_axis1_expanded", 1, LN_STATS},
    {"node/test_layer_normalization_4d_axis_negative_1_expanded", 1,
     LN_STATS},
    {"node/test_layer_normalization_default_axis_expanded", 1, LN_STATS},
    {"node/test_layer_normalization_2d_axis_negative_1_expanded", 1,
     LN_STATS},
    {"node/test_layer_normalization_3d_axis2_epsilon_expanded", 1, LN_STATS},
    {"node/test_layer_normalization_3d_axis_negative_1_epsilon_expanded", 1,
     LN_STATS},
    {"node/test_layer_normalization_4d_axis3_expanded", 1, LN_STATS},
    {"node/test_layer_normalization_2d_axis0_expanded", 1, LN_BATCH},
    {"node/test_layer_normalization_3d_axis0_epsilon_expanded", 1, LN_BATCH},
    {"node/test_layer_normalization_4d_axis0_expanded", 1, LN_BATCH},
    {"node/test_layer_normalization_2d_axis_negative_2_expanded", 1,
     LN_BATCH},
    {"node/test_layer_normalization_3d_axis_negative_3_epsilon_expanded", 1,
     LN_BATCH},
    {"node/test_layer_normalization_4d_axis_negative_4_expanded", 1,
     LN_BATCH},
    /* axis 1: the body flattens at axis 1 (Flatten keeps the batch apart)
     * and normalises each whole sample over its last axis, a layernorm;
     * the LayerNormalization operator at axis 1 is refused above */
    {"node/test_layer_normalization_3d_axis1_epsilon_expanded", 1, LN_STATS},
    {"node/test_layer_normalization_3d_axis_negative_2_epsilon_expanded", 1,
     LN_STATS},
    {"node/test_layer_normalization_4d_axis1_expanded", 1, LN_STATS},
    {"node/test_layer_normalization_4d_axis_negative_3_expanded", 1,
     LN_STATS},
    {"node/test_layer_normalization_4d_axis2_expanded", 1, LN_MORE},
    {"node/test_layer_normalization_4d_axis_negative_2_expanded", 1,
     LN_MORE},
    /* activations */
    {"node/test_relu", 1, NULL},
    {"node/test_sigmoid", 1, NULL},
    {"node/test_sigmoid_example", 1, NULL, WHOLE},
    {"node/test_tanh", 1, NULL},
    {"node/test_tanh_example", 1, NULL, WHOLE},
    {"node/test_leakyrelu", 1, NULL},
    {"node/test_leakyrelu_default", 1, NULL},
    {"node/test_leakyrelu_example", 1, NULL, WHOLE},
    {"node/test_softplus", 1, NULL},
    {"node/test_softplus_example", 1, NULL, WHOLE},
    {"node/test_softmax_axis_2", 1, NULL},
    {"node/test_softmax_default_axis", 1, NULL},
    {"node/test_softmax_example", 1, NULL},
    {"node/test_softmax_large_number", 1, NULL},
    {"node/test_softmax_negative_axis", 1, NULL},
    {"node/test_softmax_axis_0", 1, "softmax over the batch axis"},
    {"node/test_softmax_axis_1", 1, "softmax over another than the last axis"},
    /* the function body (ReduceMax, Sub, Exp, ReduceSum, Div) read as one
     * softmax */
    {"node/test_softmax_axis_2_expanded", 1, NULL},
    {"node/test_softmax_default_axis_expanded", 1, NULL},
    {"node/test_softmax_example_expanded", 1, NULL},
    {"node/test_softmax_large_number_expanded", 1, NULL},
    {"node/test_softmax_negative_axis_expanded", 1, NULL},
    {"node/test_softmax_axis_0_expanded", 1, "softmax over the batch axis"},
    {"node/test_softmax_axis_1_expanded", 1,
     "softmax over another than the last axis"},
    /* flatten, merges */
    {"node/test_flatten_axis1", 1, NULL},
    {"node/test_flatten_default_axis", 1, NULL},
    {"node/test_flatten_negative_axis3", 1, NULL},
    {"node/test_flatten_axis0", 1, NULL, WHOLE},
    {"node/test_flatten_axis2", 1, NULL, WHOLE},
    {"node/test_flatten_axis3", 1, NULL, WHOLE},
    {"node/test_flatten_negative_axis1", 1, NULL, WHOLE},
    {"node/test_flatten_negative_axis2", 1, NULL, WHOLE},
    {"node/test_flatten_negative_axis4", 1, NULL, WHOLE},
    {"node/test_add", 2, NULL},
    {"node/test_mul", 2, NULL},
    {"node/test_add_bcast", 2, "broadcasting merges: nnlib's add needs equal "
                               "shapes"},
    {"node/test_concat_2d_axis_1", 2, NULL},
    {"node/test_concat_3d_axis_1", 2, NULL},
    {"node/test_concat_3d_axis_2", 2, NULL},
    {"node/test_concat_3d_axis_negative_1", 2, NULL},
    {"node/test_concat_2d_axis_0", 2, NULL, WHOLE},
    /* recurrent: W, R, B are graph inputs with data (given as
     * initializers); Y is '' (absent) where only Y_h is an output. The
     * seq_length cases are two-step sequences (no sequence_lens input). */
    {"node/test_lstm_defaults", 1, NULL, TIME_MAJOR},
    {"node/test_lstm_with_initial_bias", 1, NULL, TIME_MAJOR},
    {"node/test_lstm_batchwise", 1, NULL},
    {"node/test_lstm_with_peepholes", 1,
     "peepholes and sequence_lens: nnlib's LSTM has neither"},
    {"node/test_gru_defaults", 1, NULL, TIME_MAJOR},
    {"node/test_gru_with_initial_bias", 1, NULL, TIME_MAJOR},
    {"node/test_gru_seq_length", 1, NULL, TIME_MAJOR},
    {"node/test_gru_batchwise", 1, NULL},
    {"node/test_rnn_seq_length", 1, NULL, TIME_MAJOR},
    {"node/test_simple_rnn_defaults", 1, NULL, TIME_MAJOR},
    {"node/test_simple_rnn_with_initial_bias", 1, NULL, TIME_MAJOR},
    {"node/test_simple_rnn_batchwise", 1, NULL},
    /* pytorch-converted */
    {"pytorch-converted/test_Linear", 1, NULL},
    {"pytorch-converted/test_Linear_no_bias", 1, NULL},
    {"pytorch-converted/test_Conv2d", 1, NULL},
    {"pytorch-converted/test_Conv2d_no_bias", 1, NULL},
    {"pytorch-converted/test_Conv2d_padding", 1, NULL},
    {"pytorch-converted/test_Conv2d_strided", 1, NULL},
    {"pytorch-converted/test_Conv2d_dilated", 1, NULL},
    {"pytorch-converted/test_MaxPool2d", 1, NULL},
    {"pytorch-converted/test_AvgPool2d", 1, NULL},
    {"pytorch-converted/test_AvgPool2d_stride", 1, NULL},
    {"pytorch-converted/test_BatchNorm2d_eval", 1, NULL},
    {"pytorch-converted/test_BatchNorm2d_momentum_eval", 1, NULL},
    {"pytorch-converted/test_Embedding", 1, NULL},
    {"pytorch-converted/test_LeakyReLU", 1, NULL},
    {"pytorch-converted/test_LeakyReLU_with_negval", 1, NULL},
    {"pytorch-converted/test_ReLU", 1, NULL},
    {"pytorch-converted/test_Sigmoid", 1, NULL},
    {"pytorch-converted/test_Tanh", 1, NULL},
    {"pytorch-converted/test_Softmax", 1, NULL},
    {"pytorch-converted/test_Softplus", 1, NULL},
};
#pragma GCC diagnostic pop

/* Skipped cases whose import must fail with NNLIB_ERR_UNSUPPORTED(_VERSION)
 * and this text in the message: the reason given above is the importer's. */
static const struct {
  const char *dir, *text;
} refusals[] = {
    {"node/test_lstm_with_peepholes", "input sequence_lens"},
    {"node/test_layer_normalization_4d_axis1", "the last axis only"},
    {"node/test_softmax_axis_1", "runs over the last axis only"},
    {"node/test_layer_normalization_4d_axis2_expanded",
     "only axis 1 keeps the batch axis apart"},
    {"node/test_layer_normalization_2d_axis0_expanded",
     "only axis 1 keeps the batch axis apart"},
    {"node/test_softmax_axis_0_expanded", "'ReduceMax' has no nnlib layer"},
    {"node/test_softmax_axis_1_expanded", "'ReduceMax' has no nnlib layer"},
    {"node/test_basic_convinteger", "tensor 'w' of data type 2"},
};

static const char *refusal_of(const char *dir) {
  for (size_t k = 0; k < sizeof refusals / sizeof refusals[0]; k++)
    if (strcmp(refusals[k].dir, dir) == 0)
      return refusals[k].text;
  return NULL;
}

/* -------------------------------------------------------------- bytes */

typedef struct bytes {
  unsigned char *p;
  size_t n;
} bytes;

static bool read_all(const char *path, bytes *out) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return false;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  out->p = malloc(size > 0 ? (size_t)size : 1);
  out->n = size > 0 ? (size_t)size : 0;
  bool ok = out->p != NULL && fread(out->p, 1, out->n, f) == out->n;
  fclose(f);
  return ok;
}

static bool append(bytes *b, const void *p, size_t n) {
  unsigned char *g = realloc(b->p, b->n + n + 1);
  if (g == NULL)
    return false;
  memcpy(g + b->n, p, n);
  b->p = g;
  b->n += n;
  return true;
}

static bool append_varint(bytes *b, uint64_t v) {
  unsigned char buf[10];
  size_t n = 0;
  do {
    buf[n] = (unsigned char)(v & 0x7f);
    v >>= 7;
    if (v)
      buf[n] |= 0x80;
    n++;
  } while (v);
  return append(b, buf, n);
}

/* ------------------------------------------------- a minimal reader */

typedef struct wire {
  const unsigned char *p, *end;
} wire;

static bool varint(wire *w, uint64_t *v) {
  *v = 0;
  for (int s = 0; s < 64 && w->p < w->end; s += 7) {
    unsigned char b = *w->p++;
    *v |= (uint64_t)(b & 0x7f) << s;
    if (!(b & 0x80))
      return true;
  }
  return false;
}

/* Next field: number, wire type, and either value or [data, len). */
static bool field(wire *w, uint32_t *num, int *type, uint64_t *value,
                  const unsigned char **data, size_t *len) {
  uint64_t key;
  if (w->p >= w->end || !varint(w, &key))
    return false;
  *num = (uint32_t)(key >> 3);
  *type = (int)(key & 7);
  switch (*type) {
  case 0:
    return varint(w, value);
  case 1:
  case 5: {
    size_t n = *type == 1 ? 8 : 4;
    if ((size_t)(w->end - w->p) < n)
      return false;
    *value = 0;
    for (size_t k = 0; k < n; k++)
      *value |= (uint64_t)w->p[k] << (8 * k);
    w->p += n;
    return true;
  }
  case 2:
    if (!varint(w, value) || *value > (uint64_t)(w->end - w->p))
      return false;
    *data = w->p;
    *len = (size_t)*value;
    w->p += *len;
    return true;
  default:
    return false;
  }
}

typedef struct tensor_pb {
  int64_t dims[8];
  size_t rank;
  int type;
  double *values;
  int64_t count;
} tensor_pb;

static void store_value(tensor_pb *t, int64_t k, uint64_t bits) {
  float f;
  double d;
  uint32_t u = (uint32_t)bits;
  switch (t->type) {
  case 1:
    memcpy(&f, &u, 4);
    t->values[k] = f;
    break;
  case 11:
    memcpy(&d, &bits, 8);
    t->values[k] = d;
    break;
  case 6:
    t->values[k] = (double)(int32_t)u;
    break;
  case 2: /* uint8 and int8: fed as floats (make_input), exact */
    t->values[k] = (double)(uint8_t)u;
    break;
  case 3:
    t->values[k] = (double)(int8_t)u;
    break;
  default:
    t->values[k] = (double)(int64_t)bits;
    break;
  }
}

static bool read_tensor(const bytes *b, tensor_pb *t) {
  memset(t, 0, sizeof *t);
  wire w = {b->p, b->p + b->n};
  uint32_t num;
  int type;
  uint64_t v;
  const unsigned char *data = NULL, *raw = NULL;
  size_t len = 0, raw_len = 0;
  while (field(&w, &num, &type, &v, &data, &len)) {
    if (num == 1 && type == 0 && t->rank < 8)
      t->dims[t->rank++] = (int64_t)v;
    else if (num == 1 && type == 2) {
      wire p = {data, data + len};
      while (p.p < p.end && varint(&p, &v) && t->rank < 8)
        t->dims[t->rank++] = (int64_t)v;
    } else if (num == 2)
      t->type = (int)v;
    else if (num == 9)
      raw = data, raw_len = len;
  }
  t->count = 1;
  for (size_t k = 0; k < t->rank; k++)
    t->count *= t->dims[k];
  t->values = calloc((size_t)t->count + 1, sizeof *t->values);
  size_t width = t->type == 1 || t->type == 6   ? 4
                 : t->type == 2 || t->type == 3 ? 1
                                                : 8;
  if (raw != NULL) {
    if (raw_len != (size_t)t->count * width)
      return false;
    for (int64_t k = 0; k < t->count; k++) {
      uint64_t bits = 0;
      for (size_t j = 0; j < width; j++)
        bits |= (uint64_t)raw[(size_t)k * width + j] << (8 * j);
      store_value(t, k, bits);
    }
    return true;
  }
  /* float_data 4 (packed fixed32), int64_data 7 / int32_data 5 (varints) */
  w.p = b->p;
  int64_t k = 0;
  while (field(&w, &num, &type, &v, &data, &len)) {
    if (num != 4 && num != 5 && num != 7 && num != 10)
      continue;
    if (type != 2) {
      if (k < t->count)
        store_value(t, k++, v);
      continue;
    }
    wire p = {data, data + len};
    while (p.p < p.end && k < t->count) {
      if (num == 4 || num == 10) {
        size_t n = num == 4 ? 4 : 8;
        uint64_t bits = 0;
        for (size_t j = 0; j < n; j++)
          bits |= (uint64_t)p.p[j] << (8 * j);
        p.p += n;
        store_value(t, k++, bits);
      } else if (varint(&p, &v)) {
        store_value(t, k++, v);
      }
    }
  }
  return k == t->count;
}

/* Names of the model's graph inputs (graph field 11) or outputs (12):
 * ModelProto field 7, then that field, then the ValueInfoProto's name 1. */
static size_t value_names(const bytes *model, uint32_t which,
                          char names[][128], size_t max) {
  wire w = {model->p, model->p + model->n};
  uint32_t num;
  int type;
  uint64_t v;
  const unsigned char *data = NULL;
  size_t len = 0, count = 0;
  while (field(&w, &num, &type, &v, &data, &len)) {
    if (num != 7 || type != 2)
      continue;
    wire g = {data, data + len};
    while (field(&g, &num, &type, &v, &data, &len)) {
      if (num != which || type != 2 || count >= max)
        continue;
      wire vi = {data, data + len};
      const unsigned char *s = NULL;
      size_t sl = 0;
      names[count][0] = 0;
      while (field(&vi, &num, &type, &v, &s, &sl))
        if (num == 1 && type == 2) {
          size_t n = sl < 127 ? sl : 127;
          memcpy(names[count], s, n);
          names[count][n] = 0;
        }
      count++;
    }
  }
  return count;
}

/* Appends graph { initializer { <tensor bytes> name: <name> } }. */
static bool append_initializer(bytes *model, const bytes *tensor,
                               const char *name) {
  bytes t = {NULL, 0}, g = {NULL, 0};
  size_t nl = strlen(name);
  bool ok = append(&t, tensor->p, tensor->n) && append_varint(&t, 8 << 3 | 2) &&
            append_varint(&t, nl) && append(&t, name, nl) &&
            append_varint(&g, 5 << 3 | 2) && append_varint(&g, t.n) &&
            append(&g, t.p, t.n) && append_varint(model, 7 << 3 | 2) &&
            append_varint(model, g.n) && append(model, g.p, g.n);
  free(t.p);
  free(g.p);
  return ok;
}

/* ------------------------------------------------------------- a case */

static bool close_enough(double got, double want) {
  return fabs(got - want) <= 1e-5 * fabs(want) + 1e-5;
}

/* Set while a skipped case runs whose import must be refused. */
static const char *expected_refusal;

/* Whether `name` is one of the space-separated words of `list`. */
static bool listed(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; p != NULL && *p;) {
    const char *end = strchr(p, ' ');
    size_t w = end ? (size_t)(end - p) : strlen(p);
    if (w == n && strncmp(p, name, n) == 0)
      return true;
    p = end ? end + 1 : NULL;
  }
  return false;
}

/* What one test_data_set feeds: the model bytes with the weight inputs
 * appended as initializers, and the data inputs. */
typedef struct set_data {
  bytes model;
  tensor_pb inputs[16];
  size_t loaded;
  char outputs[8][128];
  size_t output_count;
} set_data;

static bool load_set(const char *dir, const char *set, const bytes *model_in,
                     const case_entry *c, set_data *d) {
  char path[1200], names[16][128]; /* dir (< 900) + set (< 256) + file */
  memset(d, 0, sizeof *d);
  append(&d->model, model_in->p, model_in->n);
  size_t count = value_names(model_in, 11, names, 16);
  d->output_count = value_names(model_in, 12, d->outputs, 8);
  for (size_t k = 0; k < count; k++) {
    bytes b = {NULL, 0};
    snprintf(path, sizeof path, "%s/%s/input_%zu.pb", dir, set, k);
    if (!read_all(path, &b))
      break;
    bool ok = read_tensor(&b, &d->inputs[d->loaded]);
    d->loaded++;
    if (ok && (int)k >= c->data_inputs)
      ok = append_initializer(&d->model, &b, names[k]);
    free(b.p);
    if (!ok) {
      printf("  cannot read %s\n", path);
      return false;
    }
  }
  return true;
}

static void free_set(set_data *d) {
  for (size_t k = 0; k < d->loaded; k++)
    free(d->inputs[k].values);
  free(d->model.p);
}

/* Data input k as a tensor; time-major X [T, N, F] as [N, T, F]; a
 * whole-sample input as the one sample [1, ...dims]. */
static nnlib_status make_input(const tensor_pb *t, bool time_major,
                               bool whole, nnlib_tensor **x) {
  bool ids = t->type == 7 || t->type == 6;
  int64_t dims[9] = {1};
  size_t rank = t->rank + (whole ? 1 : 0);
  memcpy(dims + (whole ? 1 : 0), t->dims, t->rank * sizeof *dims);
  if (time_major)
    dims[0] = t->dims[1], dims[1] = t->dims[0];
  nnlib_status st = ids ? nnlib_tensor_create_int32(x, dims, rank)
                        : nnlib_tensor_create(x, dims, rank);
  if (st != NNLIB_OK)
    return st;
  for (int64_t e = 0; e < t->count; e++) {
    int64_t to = e;
    if (time_major) { /* e = (step, sample, f) -> (sample, step, f) */
      int64_t f = t->dims[2], step = e / (t->dims[1] * f);
      int64_t sample = e / f % t->dims[1];
      to = (sample * t->dims[0] + step) * f + e % f;
    }
    if (ids)
      nnlib_tensor_get_data_int32(*x)[to] = (int32_t)t->values[e];
    else
      nnlib_tensor_get_data(*x)[to] = (float)t->values[e];
  }
  return NNLIB_OK;
}

/* Where ONNX's element e of the output is in nnlib's: the same, except a
 * time-major Y [T, 1, N, H], which nnlib gives as [N, T, H]. */
static int64_t got_index(const tensor_pb *want, bool time_major, int64_t e) {
  if (!time_major || want->rank != 4)
    return e;
  int64_t t = want->dims[0], n = want->dims[2], h = want->dims[3];
  int64_t step = e / (n * h), sample = e / h % n;
  return (sample * t + step) * h + e % h;
}

static int compare(const float *got, const tensor_pb *want, bool time_major,
                   const char *name) {
  for (int64_t e = 0; e < want->count; e++) {
    int64_t g = got_index(want, time_major, e);
    if (!close_enough(got[g], want->values[e])) {
      printf("  %s element %lld: got %.9g, want %.9g\n", name, (long long)e,
             got[g], want->values[e]);
      return 1;
    }
  }
  return 0;
}

/* Imports with output k chosen (NULL for a graph of one output). */
static nnlib_status import(const set_data *d, const char *output,
                           int64_t max_batch, bool whole, nnlib_model **m) {
  nnlib_onnx_options o;
  nnlib_onnx_options_init(&o);
  o.max_batch = max_batch;
  o.output = output;
  o.whole_sample = whole;
  return nnlib_model_load_onnx_buffer(m, d->model.p, d->model.n, &o);
}

/* An output nnlib does not compute: the import must refuse it, naming it. */
static int expect_not_computed(const set_data *d, const char *name,
                               int64_t max_batch) {
  nnlib_model *m = NULL;
  nnlib_status st = import(d, name, max_batch, false, &m);
  bool refused = st == NNLIB_ERR_UNSUPPORTED &&
                 strstr(nnlib_last_error_message(), name) != NULL;
  if (!refused)
    printf("  output %s: want a refusal naming it, got %s: %s\n", name,
           nnlib_status_string(st), nnlib_last_error_message());
  nnlib_model_free(m);
  return refused ? 0 : 1;
}

/* Output k of one test_data_set: 0 pass, 1 fail (message printed). */
static int check_output(const char *dir, const char *set, const set_data *d,
                        const case_entry *c, size_t k, int64_t max_batch) {
  char path[1200];
  const char *name = d->output_count > 1 ? d->outputs[k] : NULL;
  bool time_major = (c->flags & TIME_MAJOR) != 0;
  bool whole = (c->flags & WHOLE) != 0;
  bytes out = {NULL, 0};
  tensor_pb want;
  snprintf(path, sizeof path, "%s/%s/output_%zu.pb", dir, set, k);
  if (!read_all(path, &out) || !read_tensor(&out, &want)) {
    free(out.p);
    printf("  cannot read %s\n", path);
    return 1;
  }
  free(out.p);
  nnlib_model *m = NULL;
  nnlib_tensor *x[16] = {NULL}, *y = NULL;
  int rc = 1;
  nnlib_status st = import(d, name, max_batch, whole, &m);
  if (st != NNLIB_OK) {
    printf("  import%s%s: %s\n", name ? " of " : "", name ? name : "",
           nnlib_last_error_message());
    goto done;
  }
  for (int i = 0; i < c->data_inputs && (size_t)i < d->loaded; i++)
    if (st == NNLIB_OK)
      st = make_input(&d->inputs[i], time_major && i == 0, whole, &x[i]);
  int64_t yshape[1] = {want.count};
  if (st == NNLIB_OK)
    st = nnlib_tensor_create(&y, yshape, 1);
  if (st == NNLIB_OK)
    st = nnlib_model_predict_inputs(m, (const nnlib_tensor *const *)x,
                                    (size_t)c->data_inputs, y);
  if (st != NNLIB_OK)
    printf("  predict: %s\n", nnlib_last_error_message());
  else
    rc = compare(nnlib_tensor_get_data(y), &want, time_major,
                 d->outputs[k]);
done:
  for (size_t i = 0; i < 16; i++)
    nnlib_tensor_free(x[i]);
  nnlib_tensor_free(y);
  nnlib_model_free(m);
  free(want.values);
  return rc;
}

/* A skipped case whose import must be refused with expected_refusal. */
static int check_refusal(const set_data *d, int64_t max_batch) {
  nnlib_model *m = NULL;
  nnlib_status st =
      import(d, d->output_count > 1 ? d->outputs[0] : NULL, max_batch, false,
             &m);
  bool refused =
      (st == NNLIB_ERR_UNSUPPORTED || st == NNLIB_ERR_UNSUPPORTED_VERSION) &&
      strstr(nnlib_last_error_message(), expected_refusal);
  if (!refused)
    printf("  want a refusal with '%s', got %s: %s\n", expected_refusal,
           nnlib_status_string(st), nnlib_last_error_message());
  nnlib_model_free(m);
  return refused ? 0 : 1;
}

/* One test_data_set: 0 pass, 1 fail (messages printed). */
static int run_set(const char *dir, const char *set, const bytes *model_in,
                   const case_entry *c) {
  set_data d;
  int rc = 1;
  if (!load_set(dir, set, model_in, c, &d) || d.loaded == 0 ||
      d.output_count == 0) {
    free_set(&d);
    return 1;
  }
  const tensor_pb *x0 = &d.inputs[0];
  int64_t max_batch = x0->rank == 0 || (c->flags & WHOLE)     ? 1
                      : (c->flags & TIME_MAJOR) && x0->rank > 1 ? x0->dims[1]
                                                                : x0->dims[0];
  if (expected_refusal != NULL) {
    rc = check_refusal(&d, max_batch);
  } else {
    rc = 0;
    for (size_t k = 0; k < d.output_count; k++)
      rc |= listed(c->not_computed, d.outputs[k])
                ? expect_not_computed(&d, d.outputs[k], max_batch)
                : check_output(dir, set, &d, c, k, max_batch);
  }
  free_set(&d);
  return rc;
}

/* Runs every test_data_set of the case; *outputs gets the names of the
 * outputs checked ("Y, Y_h"). */
static int run_case(const char *root, const case_entry *c, char *checked,
                    size_t size) {
  char dir[900], path[1024];
  snprintf(dir, sizeof dir, "%s/%s", root, c->dir);
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  bytes model;
  checked[0] = 0;
  if (!read_all(path, &model)) {
    printf("  cannot read %s\n", path);
    return 1;
  }
  char outputs[8][128];
  size_t count = value_names(&model, 12, outputs, 8), used = 0;
  for (size_t k = 0; k < count; k++)
    if (!listed(c->not_computed, outputs[k]) && used < size)
      used += (size_t)snprintf(checked + used, size - used, "%s%s",
                               used ? ", " : "", outputs[k]);
  int rc = 0, sets = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    if (strncmp(e->d_name, "test_data_set_", 14) == 0) {
      rc |= run_set(dir, e->d_name, &model, c);
      sets++;
    }
  if (d != NULL)
    closedir(d);
  free(model.p);
  return sets > 0 ? rc : 1;
}

/* " (outputs Y, Y_h; time-major ...; Mean, InvStdDev not computed: ...)" */
static void print_notes(const case_entry *c, const char *checked) {
  bool several = strchr(checked, ',') != NULL || c->not_computed != NULL;
  if (!several && !(c->flags & (TIME_MAJOR | WHOLE)))
    return;
  printf(" (");
  if (several)
    printf("output%s %s checked", strchr(checked, ',') ? "s" : "", checked);
  if (c->flags & TIME_MAJOR)
    printf("%sX [T, N, F] fed as [N, T, F]", several ? "; " : "");
  if (c->flags & WHOLE)
    printf("%swhole_sample: inputs fed as [1, ...shape]", several ? "; " : "");
  if (c->not_computed != NULL)
    printf("; %s not computed, refused as expected: %s", c->not_computed,
           c->why_not);
  printf(")");
}

int main(int argc, char **argv) {
  const char *root =
      argc > 1 ? argv[1] : "/usr/share/libonnx-testdata/data";
  /* ONNX_CONFORMANCE_TRY_SKIPPED=1 also runs the skipped cases and reports
   * how they fare, without failing (to see what a change unlocks). */
  bool try_skipped = getenv("ONNX_CONFORMANCE_TRY_SKIPPED") != NULL;
  int passed = 0, skipped = 0, failed = 0;
  char checked[256];
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const case_entry *c = &cases[k];
    if (c->skip != NULL && refusal_of(c->dir) != NULL && !try_skipped) {
      expected_refusal = refusal_of(c->dir);
      int rc = run_case(root, c, checked, sizeof checked);
      expected_refusal = NULL;
      printf("%s %s: %s (refused as expected)\n", rc == 0 ? "skip" : "FAIL",
             c->dir, c->skip);
      skipped += rc == 0;
      failed += rc != 0;
      continue;
    }
    if (c->skip != NULL) {
      skipped++;
      if (try_skipped) {
        int rc = run_case(root, c, checked, sizeof checked);
        printf("skip %s (%s)%s\n", c->dir, c->skip,
               rc == 0 ? " [would pass]" : "");
      } else {
        printf("skip %s: %s\n", c->dir, c->skip);
      }
      continue;
    }
    int rc = run_case(root, c, checked, sizeof checked);
    printf("%s %s", rc == 0 ? "pass" : "FAIL", c->dir);
    print_notes(c, checked);
    printf("\n");
    if (rc == 0)
      passed++;
    else
      failed++;
  }
  printf("passed=%d skipped=%d failed=%d\n", passed, skipped, failed);
  return failed == 0 ? 0 : 1;
}
