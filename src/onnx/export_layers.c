/* export_layers.c - the ONNX form of each feed-forward layer kind, and the
 * dispatch over every kind (the sequence and text layers are in
 * export_sequence.c). Batch axis first everywhere, so nnlib's per-sample
 * axis a is ONNX axis a + 1:
 *
 *   dense          [Flatten(axis 1) when the sample has rank > 1] ->
 *                  Gemm(x, weight [out, in], bias, transB = 1)
 *   identity, sigmoid, tanh, relu, softplus: the ONNX op of that name;
 *   leaky_relu     LeakyRelu(alpha = slope); softmax  Softmax(axis -1)
 *   step           Cast<float>(Greater(x, 0))          (1 where x > 0, else 0)
 *   gelu           x * 0.5 * (1 + Erf(x / sqrt 2))
 *   gelu_tanh      x * 0.5 * (1 + Tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 *   conv2d         Conv (pads [ph, pw, ph, pw], strides, dilations)
 *   maxpool2d      MaxPool (ONNX's padding never wins either): pads
 *                  [top, left, bottom, right], dilations, ceil_mode
 *   minpool2d      Neg -> MaxPool -> Neg: min(x) = -max(-x), and padding
 *                  never wins for the same reason
 *   avgpool2d      AveragePool with the layer's count_include_pad (1 by
 *                  default: padding counts), pads, ceil_mode
 *   global_avgpool GlobalAveragePool -> Flatten(axis 1): nnlib's output is [C]
 *   batchnorm      BatchNormalization (inference: the running statistics)
 *   dropout        Dropout(x, ratio = rate): the identity without
 *                  training_mode, as nnlib's dropout in inference
 *   flatten        Flatten(axis 1)
 *   transpose      Transpose(perm [0, p0 + 1, p1 + 1, ...]): the batch stays
 *   add, multiply  Add, Mul (a chain for more than two inputs)
 *   concat         Concat(axis + 1; the last axis stays -1) */
#include "onnx/export.h"

#include <math.h>

static nnlib_status export_dense(ox_graph *g) {
  char flat[OX_NAME], weight[OX_NAME], bias[OX_NAME];
  (void)ox_cfg_i64(g); /* in_features as created */
  (void)ox_cfg_i64(g); /* out_features: the weight's shape says it */
  bool with_bias = ox_cfg_u32(g) != 0;
  const char *x = g->in[0];
  if (g->layer->in_shape.rank > 1) {
    ox_begin(g, "Flatten", &x, 1, ox_sub(g, flat, "flat"));
    ox_attr_int(g, "axis", 1);
    ox_end(g);
    x = flat;
  }
  const char *in[3] = {x, ox_param(g, weight, 0),
                       with_bias ? ox_param(g, bias, 1) : NULL};
  ox_begin(g, "Gemm", in, with_bias ? 3 : 2, g->out);
  ox_attr_int(g, "transB", 1);
  ox_end(g);
  return NNLIB_OK;
}

/* y = Cast<float>(x > 0) */
static void export_step(ox_graph *g) {
  char zero[OX_NAME], positive[OX_NAME];
  ox_init_scalar(g, ox_sub(g, zero, "zero"), 0.0f);
  ox_binary(g, "Greater", g->in[0], zero, ox_sub(g, positive, "positive"));
  const char *in = positive;
  ox_begin(g, "Cast", &in, 1, g->out);
  ox_attr_int(g, "to", ONNX_FLOAT);
  ox_end(g);
}

/* y = (x * 0.5) * (1 + phi), phi = Erf(x / sqrt 2) or the tanh form. */
static void export_gelu(ox_graph *g, bool tanh_form) {
  char c[4][OX_NAME], t[7][OX_NAME];
  const char *x = g->in[0];
  ox_init_scalar(g, ox_sub(g, c[0], "half"), 0.5f);
  ox_init_scalar(g, ox_sub(g, c[1], "one"), 1.0f);
  if (!tanh_form) {
    ox_init_scalar(g, ox_sub(g, c[2], "sqrt2"), (float)sqrt(2.0));
    ox_binary(g, "Div", x, c[2], ox_sub(g, t[0], "scaled"));
    ox_unary(g, "Erf", t[0], ox_sub(g, t[1], "phi"));
  } else {
    ox_init_scalar(g, ox_sub(g, c[2], "cubic"), 0.044715f);
    ox_init_scalar(g, ox_sub(g, c[3], "sqrt_2_pi"),
                   (float)sqrt(2.0 / 3.14159265358979323846));
    ox_binary(g, "Mul", x, x, ox_sub(g, t[2], "x2"));
    ox_binary(g, "Mul", t[2], x, ox_sub(g, t[3], "x3"));
    ox_binary(g, "Mul", t[3], c[2], ox_sub(g, t[4], "cubic_term"));
    ox_binary(g, "Add", x, t[4], ox_sub(g, t[5], "inner"));
    ox_binary(g, "Mul", t[5], c[3], ox_sub(g, t[6], "scaled"));
    ox_unary(g, "Tanh", t[6], ox_sub(g, t[1], "phi"));
  }
  ox_binary(g, "Add", t[1], c[1], ox_sub(g, t[0], "one_plus_phi"));
  ox_binary(g, "Mul", x, c[0], ox_sub(g, t[2], "half_x"));
  ox_binary(g, "Mul", t[2], t[0], g->out);
}

static nnlib_status export_activation(ox_graph *g) {
  nnlib_activation kind = (nnlib_activation)ox_cfg_u32(g);
  float param = ox_cfg_f32(g);
  static const char *const plain[] = {
      [NNLIB_ACT_IDENTITY] = "Identity", [NNLIB_ACT_SIGMOID] = "Sigmoid",
      [NNLIB_ACT_TANH] = "Tanh",         [NNLIB_ACT_RELU] = "Relu",
      [NNLIB_ACT_SOFTPLUS] = "Softplus"};
  switch (kind) {
  case NNLIB_ACT_IDENTITY:
  case NNLIB_ACT_SIGMOID:
  case NNLIB_ACT_TANH:
  case NNLIB_ACT_RELU:
  case NNLIB_ACT_SOFTPLUS:
    ox_unary(g, plain[kind], g->in[0], g->out);
    return NNLIB_OK;
  case NNLIB_ACT_LEAKY_RELU:
    ox_begin(g, "LeakyRelu", g->in, 1, g->out);
    ox_attr_float(g, "alpha", param);
    ox_end(g);
    return NNLIB_OK;
  case NNLIB_ACT_SOFTMAX:
    ox_begin(g, "Softmax", g->in, 1, g->out);
    ox_attr_int(g, "axis", -1);
    ox_end(g);
    return NNLIB_OK;
  case NNLIB_ACT_STEP: export_step(g); return NNLIB_OK;
  case NNLIB_ACT_GELU: export_gelu(g, false); return NNLIB_OK;
  case NNLIB_ACT_GELU_TANH: export_gelu(g, true); return NNLIB_OK;
  }
  return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                      "ONNX export: node %zu (%s): activation kind %u has "
                      "no ONNX form",
                      g->v, g->out, (unsigned)kind);
}

static nnlib_status export_conv2d(ox_graph *g) {
  char weight[OX_NAME], bias[OX_NAME];
  int64_t c[10];
  for (int i = 0; i < 10; i++)
    c[i] = ox_cfg_i64(g); /* cin, cout, kh, kw, sh, sw, ph, pw, dh, dw */
  bool with_bias = ox_cfg_u32(g) != 0;
  const char *in[3] = {g->in[0], ox_param(g, weight, 0),
                       with_bias ? ox_param(g, bias, 1) : NULL};
  int64_t pads[4] = {c[6], c[7], c[6], c[7]};
  ox_begin(g, "Conv", in, with_bias ? 3 : 2, g->out);
  ox_attr_ints(g, "kernel_shape", &c[2], 2);
  ox_attr_ints(g, "strides", &c[4], 2);
  ox_attr_ints(g, "pads", pads, 4);
  ox_attr_ints(g, "dilations", &c[8], 2);
  ox_end(g);
  return NNLIB_OK;
}

/* The pool's config (pool2d.c): kernel, stride, top and left padding, and
 * the second part when the config has it. */
typedef struct pool_config {
  int64_t kernel[2], stride[2], pads[4], dilation[2]; /* pads t, l, b, r */
  bool ceil_mode, count_pad;
} pool_config;

static pool_config read_pool_config(ox_graph *g) {
  pool_config c;
  for (int i = 0; i < 2; i++)
    c.kernel[i] = ox_cfg_i64(g);
  for (int i = 0; i < 2; i++)
    c.stride[i] = ox_cfg_i64(g);
  c.pads[0] = ox_cfg_i64(g);
  c.pads[1] = ox_cfg_i64(g);
  c.pads[2] = c.pads[0], c.pads[3] = c.pads[1];
  c.dilation[0] = c.dilation[1] = 1;
  c.ceil_mode = false;
  c.count_pad = true;
  if (g->config.left > 0) { /* the options of 1.5 */
    c.pads[2] = ox_cfg_i64(g);
    c.pads[3] = ox_cfg_i64(g);
    c.dilation[0] = ox_cfg_i64(g);
    c.dilation[1] = ox_cfg_i64(g);
    c.ceil_mode = ox_cfg_u32(g) != 0;
    c.count_pad = ox_cfg_u32(g) != 0;
  }
  return c;
}

/* ceil_mode as every reader computes it. nnlib (PyTorch, ONNX Runtime)
 * drops a ceil-mode window that would start in the end padding; ONNX's
 * shape inference before 1.16 (python3-onnx 1.12's checker) does not. So
 * along an axis where ceil mode adds no window to floor mode's, the end
 * padding is lowered to what the last window needs, pe' = (out - 1) s +
 * span - in - pad_begin, where both formulas agree (every window then ends
 * inside the padded input, so an average's divisor is unchanged); and when
 * that holds on both axes, ceil_mode is left out. A stride longer than the
 * window can make pe' negative: that axis keeps its padding and the rule's
 * readers. */
static void portable_ceil(const ox_graph *g, pool_config *c) {
  if (!c->ceil_mode)
    return;
  bool adds = false;
  for (int d = 0; d < 2; d++) {
    int64_t in = g->layer->in_shape.dims[1 + d];
    int64_t out = g->layer->out_shape.dims[1 + d];
    int64_t span = c->dilation[d] * (c->kernel[d] - 1) + 1;
    int64_t room = in + c->pads[d] + c->pads[d + 2] - span;
    if (room / c->stride[d] + 1 != out) {
      adds = true; /* ceil mode's window is kept: the attribute stays */
      continue;
    }
    int64_t fit = (out - 1) * c->stride[d] + span - in - c->pads[d];
    if (fit >= 0 && fit < c->pads[d + 2])
      c->pads[d + 2] = fit;
  }
  c->ceil_mode = adds;
}

/* MaxPool or AveragePool of x into out with the layer's window. */
static void pool_node(ox_graph *g, const char *op, const pool_config *c,
                      const char *x, const char *out) {
  bool average = op[0] == 'A';
  ox_begin(g, op, &x, 1, out);
  ox_attr_ints(g, "kernel_shape", c->kernel, 2);
  ox_attr_ints(g, "strides", c->stride, 2);
  ox_attr_ints(g, "pads", c->pads, 4);
  if (!average && (c->dilation[0] != 1 || c->dilation[1] != 1))
    ox_attr_ints(g, "dilations", c->dilation, 2);
  if (c->ceil_mode)
    ox_attr_int(g, "ceil_mode", 1);
  if (average)
    ox_attr_int(g, "count_include_pad", c->count_pad ? 1 : 0);
  ox_end(g);
}

static nnlib_status export_pool(ox_graph *g, nnlib_layer_kind kind) {
  pool_config c = read_pool_config(g);
  portable_ceil(g, &c);
  if (kind == NNLIB_LAYER_MAXPOOL2D) {
    pool_node(g, "MaxPool", &c, g->in[0], g->out);
  } else if (kind == NNLIB_LAYER_AVGPOOL2D) {
    pool_node(g, "AveragePool", &c, g->in[0], g->out);
  } else {
    char neg[OX_NAME], pooled[OX_NAME];
    ox_unary(g, "Neg", g->in[0], ox_sub(g, neg, "neg"));
    pool_node(g, "MaxPool", &c, neg, ox_sub(g, pooled, "max_of_neg"));
    ox_unary(g, "Neg", pooled, g->out);
  }
  return NNLIB_OK;
}

static void flatten_node(ox_graph *g, const char *x, const char *out) {
  ox_begin(g, "Flatten", &x, 1, out);
  ox_attr_int(g, "axis", 1);
  ox_end(g);
}

static nnlib_status export_global_avgpool(ox_graph *g) {
  char pooled[OX_NAME];
  ox_unary(g, "GlobalAveragePool", g->in[0], ox_sub(g, pooled, "pooled"));
  flatten_node(g, pooled, g->out);
  return NNLIB_OK;
}

static nnlib_status export_batchnorm(ox_graph *g) {
  char p[4][OX_NAME];
  float momentum = ox_cfg_f32(g); /* training only; kept for the import */
  float epsilon = ox_cfg_f32(g);
  const nnlib_layer *l = g->layer;
  const char *in[5] = {g->in[0], ox_param(g, p[0], 0), ox_param(g, p[1], 1),
                       p[2], p[3]};
  for (size_t i = 0; i < 2; i++) {
    const nnlib__param *b = &l->buffers[i];
    snprintf(p[2 + i], OX_NAME, "%s.%s", g->out, b->name);
    ox_init_copy(g, p[2 + i], b->shape.dims, b->shape.rank, b->value.data);
  }
  ox_begin(g, "BatchNormalization", in, 5, g->out);
  ox_attr_float(g, "epsilon", epsilon);
  ox_attr_float(g, "momentum", 1.0f - momentum); /* ONNX's weighs the old */
  ox_end(g);
  return NNLIB_OK;
}

/* The rate rides along as Dropout's ratio, for the import to restore. */
static nnlib_status export_dropout(ox_graph *g) {
  char ratio[OX_NAME];
  ox_init_scalar(g, ox_sub(g, ratio, "ratio"), ox_cfg_f32(g));
  ox_binary(g, "Dropout", g->in[0], ratio, g->out);
  return NNLIB_OK;
}

/* Add or Mul over every input: a chain ((x0 op x1) op x2) ... */
static nnlib_status export_merge(ox_graph *g, const char *op) {
  char partial[2][OX_NAME];
  const char *acc = g->in[0];
  for (size_t i = 1; i < g->in_count; i++) {
    const char *out = g->out;
    if (i + 1 < g->in_count) {
      char what[32];
      snprintf(what, sizeof what, "partial%zu", i);
      out = ox_sub(g, partial[i % 2], what);
    }
    ox_binary(g, op, acc, g->in[i], out);
    acc = out;
  }
  return NNLIB_OK;
}

static nnlib_status export_concat(ox_graph *g) {
  int64_t axis = ox_cfg_i64(g);
  ox_begin(g, "Concat", g->in, g->in_count, g->out);
  ox_attr_int(g, "axis", axis < 0 ? -1 : axis + 1);
  ox_end(g);
  return NNLIB_OK;
}

/* The config is the rank and the per-sample perm; ONNX's perm covers the
 * batch axis too, which stays first. */
static nnlib_status export_transpose(ox_graph *g) {
  int64_t rank = ox_cfg_i64(g), perm[NNLIB_MAX_RANK];
  if (rank < 1 || rank >= NNLIB_MAX_RANK)
    return nnlib__error(NNLIB_ERR_INTERNAL,
                        "ONNX export: node %zu (%s): transpose of rank %lld",
                        g->v, g->out, (long long)rank);
  perm[0] = 0;
  for (int64_t k = 0; k < rank; k++)
    perm[k + 1] = ox_cfg_i64(g) + 1;
  ox_begin(g, "Transpose", g->in, 1, g->out);
  ox_attr_ints(g, "perm", perm, (size_t)rank + 1);
  ox_end(g);
  return NNLIB_OK;
}

nnlib_status ox_export_layer(ox_graph *g) {
  nnlib_layer_kind kind = g->layer->ops->kind;
  switch (kind) {
  case NNLIB_LAYER_DENSE: return export_dense(g);
  case NNLIB_LAYER_ACTIVATION: return export_activation(g);
  case NNLIB_LAYER_CONV2D: return export_conv2d(g);
  case NNLIB_LAYER_MAXPOOL2D:
  case NNLIB_LAYER_MINPOOL2D:
  case NNLIB_LAYER_AVGPOOL2D: return export_pool(g, kind);
  case NNLIB_LAYER_GLOBAL_AVGPOOL: return export_global_avgpool(g);
  case NNLIB_LAYER_BATCHNORM: return export_batchnorm(g);
  case NNLIB_LAYER_DROPOUT: return export_dropout(g);
  case NNLIB_LAYER_FLATTEN: flatten_node(g, g->in[0], g->out);
                            return NNLIB_OK;
  case NNLIB_LAYER_ADD: return export_merge(g, "Add");
  case NNLIB_LAYER_MULTIPLY: return export_merge(g, "Mul");
  case NNLIB_LAYER_CONCAT: return export_concat(g);
  case NNLIB_LAYER_RNN:
  case NNLIB_LAYER_LSTM:
  case NNLIB_LAYER_GRU: return ox_export_recurrent(g);
  case NNLIB_LAYER_EMBEDDING: return ox_export_embedding(g);
  case NNLIB_LAYER_POSITIONAL: return ox_export_positional(g);
  case NNLIB_LAYER_LAYERNORM: return ox_export_layernorm(g);
  case NNLIB_LAYER_LINEAR: return ox_export_linear(g);
  case NNLIB_LAYER_ATTENTION: return ox_export_attention(g);
  case NNLIB_LAYER_TRANSPOSE: return export_transpose(g);
  }
  return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                      "ONNX export: node %zu (%s): layer kind %u has no ONNX "
                      "form",
                      g->v, g->out, (unsigned)kind);
}
