/* export_sequence.c - the ONNX form of the recurrent and text layer kinds.
 * A sample is [T, F] (nnlib), so a batch is [N, T, F] (ONNX):
 *
 *   rnn, lstm, gru  Transpose(perm 1,0,2) to [T, N, F] -> RNN / LSTM / GRU
 *                   (layout 0, forward, hidden_size H; ONNX Runtime has no
 *                   batch-first layout) with the weights' gates reordered
 *                   from PyTorch's to ONNX's (lstm i f g o -> i o f c, gru
 *                   r z n -> z r h, GRU's linear_before_reset 1, or 0 for
 *                   a gru of the lbr0 form, rnn's
 *                   Relu or Tanh); B = [b_ih | b_hh] when there are biases.
 *                   Every step: Y [T, 1, N, H] -> Squeeze(1) ->
 *                   Transpose(1,0,2) = [N, T, H]; the last step only:
 *                   Y_h [1, N, H] -> Squeeze(0) = [N, H].
 *   embedding       Gather(weight [V, D], ids [N, T] int32, axis 0)
 *   positional      Add(x, weight[0 .. T)) (the first T rows, a constant)
 *   layernorm       LayerNormalization(axis -1, epsilon); without affine
 *                   the scale is a constant of ones and there is no bias
 *   linear          MatMul(x, weight^T [in, out]) [-> Add(bias)]
 *   attention       [Q K V] = MatMul(x, in_proj_weight^T) [+ in_proj_bias]
 *                   -> Split(axis -1, 3 x D), each -> Reshape [N, T, h, hd]
 *                   -> Transpose to [N, h, T, hd] (K to [N, h, hd, T]);
 *                   P = Softmax(MatMul(Q, K^T) * 1/sqrt(hd) [+ mask], -1)
 *                   with the causal mask an additive [T, T] constant (-inf
 *                   above the diagonal); O = MatMul(P, V) -> Transpose to
 *                   [N, T, h, hd] -> Reshape [N, T, D] -> MatMul(O,
 *                   out_proj.weight^T) [+ out_proj.bias]. Dropout is
 *                   inference's: none. */
#include "onnx/export.h"

#include <math.h>

/* A copy of weight [G H, cols] as ONNX's [1, G H, cols] with its gate
 * blocks of H rows in ONNX's order: block k is nnlib's block order[k]. */
static const char *gate_weight(ox_graph *g, char *name, const char *what,
                               const nnlib__param *p, const int *order,
                               int64_t gates, int64_t hidden) {
  int64_t cols = p->shape.rank == 2 ? p->shape.dims[1] : 1;
  int64_t dims[3] = {1, gates * hidden, cols};
  unsigned char *out = ox_init_f32(g, ox_sub(g, name, what), dims, 3);
  if (out == NULL)
    return name;
  size_t block = (size_t)(hidden * cols);
  for (int64_t k = 0; k < gates; k++) {
    const float *src = p->value.data + (size_t)order[k] * block;
    for (size_t i = 0; i < block; i++)
      pb_put_f32le(out + 4 * ((size_t)k * block + i), src[i]);
  }
  return name;
}

/* B [1, 2 G H] = [b_ih | b_hh], each with its gates reordered. */
static const char *gate_bias(ox_graph *g, char *name, const int *order,
                             int64_t gates, int64_t hidden) {
  int64_t dims[2] = {1, 2 * gates * hidden};
  unsigned char *out = ox_init_f32(g, ox_sub(g, name, "B"), dims, 2);
  if (out == NULL)
    return name;
  for (size_t half = 0; half < 2; half++) {
    const float *bias = g->layer->params[2 + half].value.data;
    for (int64_t k = 0; k < gates; k++)
      for (int64_t i = 0; i < hidden; i++)
        pb_put_f32le(out + 4 * (size_t)((int64_t)half * gates * hidden +
                                        k * hidden + i),
                     bias[order[k] * hidden + i]);
  }
  return name;
}

static void transpose(ox_graph *g, const char *x, const int64_t *perm,
                      size_t rank, const char *out) {
  ox_begin(g, "Transpose", &x, 1, out);
  ox_attr_ints(g, "perm", perm, rank);
  ox_end(g);
}

/* Squeeze(x, axes = [axis]) (opset 13: the axes are an input). */
static void squeeze(ox_graph *g, const char *x, int64_t axis, char *axes,
                    const char *out) {
  ox_init_i64(g, ox_sub(g, axes, axis == 0 ? "axes0" : "axes1"), &axis, 1);
  ox_binary(g, "Squeeze", x, axes, out);
}

nnlib_status ox_export_recurrent(ox_graph *g) {
  static const int lstm_order[4] = {0, 3, 1, 2}; /* i o f c from i f g o */
  static const int gru_order[3] = {1, 0, 2};     /* z r h from r z n */
  static const int rnn_order[1] = {0};
  static const int64_t swap01[3] = {1, 0, 2};
  char names[8][OX_NAME];
  nnlib_layer_kind kind = g->layer->ops->kind;
  (void)ox_cfg_i64(g); /* input_size as created */
  int64_t hidden = ox_cfg_i64(g);
  bool with_bias = ox_cfg_u32(g) != 0;
  bool sequences = ox_cfg_u32(g) != 0;
  nnlib_activation f =
      kind == NNLIB_LAYER_RNN ? (nnlib_activation)ox_cfg_u32(g) : NNLIB_ACT_TANH;
  /* gru: a config field after the shared ones only for linear_before_reset
   * 0 (gru.c); none is PyTorch's form, 1 */
  int64_t reset_linear_first =
      kind == NNLIB_LAYER_GRU && g->config.left >= 4 ? ox_cfg_u32(g) : 1;
  const char *op = kind == NNLIB_LAYER_LSTM ? "LSTM"
                   : kind == NNLIB_LAYER_GRU ? "GRU" : "RNN";
  const int *order = kind == NNLIB_LAYER_LSTM ? lstm_order
                     : kind == NNLIB_LAYER_GRU ? gru_order : rnn_order;
  int64_t gates = kind == NNLIB_LAYER_LSTM ? 4 : kind == NNLIB_LAYER_GRU ? 3 : 1;

  transpose(g, g->in[0], swap01, 3, ox_sub(g, names[0], "time_major"));
  const char *in[4] = {
      names[0],
      gate_weight(g, names[1], "W", &g->layer->params[0], order, gates, hidden),
      gate_weight(g, names[2], "R", &g->layer->params[1], order, gates, hidden),
      with_bias ? gate_bias(g, names[3], order, gates, hidden) : NULL};
  const char *outs[2] = {sequences ? ox_sub(g, names[4], "Y") : "",
                         sequences ? "" : ox_sub(g, names[4], "Y_h")};
  /* outputs Y, Y_h: only the one used (Y skipped as "") */
  ox_begin_outputs(g, op, in, with_bias ? 4 : 3, outs, sequences ? 1 : 2);
  ox_attr_int(g, "hidden_size", hidden);
  if (kind == NNLIB_LAYER_GRU)
    ox_attr_int(g, "linear_before_reset", reset_linear_first);
  if (kind == NNLIB_LAYER_RNN) {
    const char *activations = f == NNLIB_ACT_RELU ? "Relu" : "Tanh";
    ox_attr_strings1(g, "activations", activations);
  }
  ox_end(g);
  if (sequences) {
    squeeze(g, names[4], 1, names[5], ox_sub(g, names[6], "Y_squeezed"));
    transpose(g, names[6], swap01, 3, g->out);
  } else {
    squeeze(g, names[4], 0, names[5], g->out);
  }
  return NNLIB_OK;
}

nnlib_status ox_export_embedding(ox_graph *g) {
  char weight[OX_NAME];
  (void)ox_cfg_i64(g); /* vocab_size, dim: the weight's shape */
  (void)ox_cfg_i64(g);
  const char *in[2] = {ox_param(g, weight, 0), g->in[0]};
  ox_begin(g, "Gather", in, 2, g->out);
  ox_attr_int(g, "axis", 0);
  ox_end(g);
  return NNLIB_OK;
}

/* Positions 0 .. T-1 of the table: a [T, D] constant added to [N, T, D]. */
nnlib_status ox_export_positional(ox_graph *g) {
  char rows[OX_NAME];
  (void)ox_cfg_i64(g); /* max_positions */
  const nnlib__shape *in = &g->layer->in_shape;
  int64_t dims[2] = {in->dims[0], in->dims[1]};
  snprintf(rows, OX_NAME, "%s.weight", g->out);
  ox_init_copy(g, rows, dims, 2, g->layer->params[0].value.data);
  ox_binary(g, "Add", g->in[0], rows, g->out);
  return NNLIB_OK;
}

nnlib_status ox_export_layernorm(ox_graph *g) {
  char scale[OX_NAME], bias[OX_NAME];
  float epsilon = ox_cfg_f32(g);
  bool affine = ox_cfg_u32(g) != 0;
  const nnlib__shape *s = &g->layer->in_shape;
  const char *in[3] = {g->in[0], scale, affine ? bias : NULL};
  if (affine) {
    ox_param(g, scale, 0);
    ox_param(g, bias, 1);
  } else {
    int64_t d = s->dims[s->rank - 1];
    unsigned char *ones = ox_init_f32(g, ox_sub(g, scale, "ones"), &d, 1);
    for (int64_t i = 0; ones != NULL && i < d; i++)
      pb_put_f32le(ones + 4 * i, 1.0f);
  }
  ox_begin(g, "LayerNormalization", in, affine ? 3 : 2, g->out);
  ox_attr_int(g, "axis", -1);
  ox_attr_float(g, "epsilon", epsilon);
  ox_end(g);
  return NNLIB_OK;
}

/* weight [rows, cols] as its transpose [cols, rows], for MatMul(x, W^T). */
static const char *transposed(ox_graph *g, char *name, const char *what,
                              const nnlib__param *p) {
  int64_t rows = p->shape.dims[0], cols = p->shape.dims[1];
  int64_t dims[2] = {cols, rows};
  unsigned char *out = ox_init_f32(g, ox_sub(g, name, what), dims, 2);
  for (int64_t i = 0; out != NULL && i < rows; i++)
    for (int64_t j = 0; j < cols; j++)
      pb_put_f32le(out + 4 * (size_t)(j * rows + i),
                   p->value.data[i * cols + j]);
  return name;
}

/* y = x W^T [+ b] over the last axis: MatMul, then Add when biased. */
static void affine_map(ox_graph *g, const char *x, size_t weight, bool bias,
                       const char *what, const char *out) {
  char w[OX_NAME], b[OX_NAME], product[OX_NAME], tag[48];
  snprintf(tag, sizeof tag, "%s_weight_t", what);
  transposed(g, w, tag, &g->layer->params[weight]);
  snprintf(tag, sizeof tag, "%s_matmul", what);
  ox_binary(g, "MatMul", x, w, bias ? ox_sub(g, product, tag) : out);
  if (bias)
    ox_binary(g, "Add", product, ox_param(g, b, weight + 1), out);
}

nnlib_status ox_export_linear(ox_graph *g) {
  (void)ox_cfg_i64(g); /* out_features */
  bool with_bias = ox_cfg_u32(g) != 0;
  affine_map(g, g->in[0], 0, with_bias, "linear", g->out);
  return NNLIB_OK;
}

/* [N, T, D] -> [N, h, T, hd] (or [N, h, hd, T] for the keys). */
static void heads_of(ox_graph *g, const char *x, const char *shape,
                     const char *what, bool keys) {
  static const int64_t to_heads[4] = {0, 2, 1, 3}, to_keys[4] = {0, 2, 3, 1};
  char split[OX_NAME], out[OX_NAME], tag[32];
  snprintf(tag, sizeof tag, "%s_split_heads", what);
  ox_binary(g, "Reshape", x, shape, ox_sub(g, split, tag));
  snprintf(tag, sizeof tag, "%s_heads", what);
  transpose(g, split, keys ? to_keys : to_heads, 4, ox_sub(g, out, tag));
}

/* The additive causal mask [T, T]: 0 on and below the diagonal, -inf above. */
static void causal_mask(ox_graph *g, char *name, int64_t t) {
  int64_t dims[2] = {t, t};
  unsigned char *p = ox_init_f32(g, ox_sub(g, name, "causal_mask"), dims, 2);
  for (int64_t i = 0; p != NULL && i < t; i++)
    for (int64_t j = 0; j < t; j++)
      pb_put_f32le(p + 4 * (size_t)(i * t + j), j > i ? -INFINITY : 0.0f);
}

nnlib_status ox_export_attention(ox_graph *g) {
  static const int64_t from_heads[4] = {0, 2, 1, 3};
  char n[16][OX_NAME];
  int64_t heads = ox_cfg_i64(g);
  bool causal = ox_cfg_u32(g) != 0;
  (void)ox_cfg_f32(g); /* dropout: training only */
  bool with_bias = ox_cfg_u32(g) != 0;
  int64_t t = g->layer->in_shape.dims[0], d = g->layer->in_shape.dims[1];
  int64_t hd = d / heads;

  affine_map(g, g->in[0], 0, with_bias, "in_proj", ox_sub(g, n[0], "qkv"));
  int64_t sizes[3] = {d, d, d}, head_shape[4] = {0, 0, heads, hd},
          joined[3] = {0, 0, d};
  ox_init_i64(g, ox_sub(g, n[1], "split_sizes"), sizes, 3);
  ox_init_i64(g, ox_sub(g, n[2], "head_shape"), head_shape, 4);
  ox_init_i64(g, ox_sub(g, n[3], "joined_shape"), joined, 3);
  const char *split_in[2] = {n[0], n[1]};
  const char *qkv[3] = {ox_sub(g, n[4], "q"), ox_sub(g, n[5], "k"),
                        ox_sub(g, n[6], "v")};
  ox_begin_outputs(g, "Split", split_in, 2, qkv, 3);
  ox_attr_int(g, "axis", -1);
  ox_end(g);
  heads_of(g, qkv[0], n[2], "q", false);
  heads_of(g, qkv[1], n[2], "k", true);
  heads_of(g, qkv[2], n[2], "v", false);

  ox_binary(g, "MatMul", ox_sub(g, n[7], "q_heads"), ox_sub(g, n[8], "k_heads"),
            ox_sub(g, n[9], "scores"));
  ox_init_scalar(g, ox_sub(g, n[10], "scale"), 1.0f / sqrtf((float)hd));
  ox_binary(g, "Mul", n[9], n[10], ox_sub(g, n[11], "scaled_scores"));
  const char *logits = n[11];
  if (causal) {
    causal_mask(g, n[12], t);
    ox_binary(g, "Add", n[11], n[12], ox_sub(g, n[13], "masked_scores"));
    logits = n[13];
  }
  ox_begin(g, "Softmax", &logits, 1, ox_sub(g, n[14], "weights"));
  ox_attr_int(g, "axis", -1);
  ox_end(g);
  ox_binary(g, "MatMul", n[14], ox_sub(g, n[15], "v_heads"),
            ox_sub(g, n[7], "attended"));
  transpose(g, n[7], from_heads, 4, ox_sub(g, n[8], "attended_positions"));
  ox_binary(g, "Reshape", n[8], n[3], ox_sub(g, n[9], "joined"));
  affine_map(g, n[9], with_bias ? 2 : 1, with_bias, "out_proj", g->out);
  return NNLIB_OK;
}
