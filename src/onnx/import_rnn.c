/* import_rnn.c - ONNX's LSTM, GRU and RNN onto nnlib's recurrent layers.
 *
 * What maps: one forward direction, no peepholes, no sequence_lens, the
 * default activations (RNN: Tanh or Relu), no clip, LSTM input_forget 0,
 * GRU linear_before_reset 1 (PyTorch's form, nnlib's gru) or 0 (ONNX's
 * default: nnlib's gru with the "lbr0" option), an initial state that is
 * absent or zeros (constant zeros, or the ConstantOfShape of a batch-sized
 * shape that torch.onnx.export writes).
 *
 * Layouts. ONNX's X is [T, batch, F] (layout 0) or [batch, T, F] (layout
 * 1); nnlib's samples are [T, F], batch first. The time-major X of layout
 * 0 is a view with batch_axis 1 of batch-first data: the Transpose of a
 * batch-first tensor (import_ops.c), or a graph input [T, batch, F] read
 * only as such an X, which the model takes batch first ([batch, T, F];
 * import_outputs.c). Y is [T, 1, batch, H]
 * (layout 0) or [batch, T, 1, H]; Y_h [1, batch, H] or [batch, 1, H]. Both
 * stay views of one layer not yet made (NNLIB__VALUE_RECURRENT): the first
 * reader decides whether the layer returns the sequence (Y read, after the
 * Squeeze and Transpose torch writes) or only its last step (Y_h read, or
 * a Gather of index -1 along Y's time axis). Reading both is refused:
 * nnlib's layer gives one or the other.
 *
 * Weights. ONNX's W [1, G*H, F], R [1, G*H, H] and B [1, 2*G*H] = [Wb | Rb]
 * hold gate blocks i o f c (LSTM), z r h (GRU); nnlib's (PyTorch's) are
 * i f g o and r z n: nnlib's block b is ONNX's block order[b]. */
#include "onnx/import.h"

#include <stdio.h>
#include <string.h>

typedef nnlib__onnx_import imp;
typedef nnlib__onnx_node onode;
typedef nnlib__onnx_value oval;

/* nnlib block b <- ONNX block order[b] */
static const int lstm_order[4] = {0, 2, 3, 1}; /* i f g o <- i o f c */
static const int gru_order[3] = {1, 0, 2};     /* r z n <- z r h */
static const int rnn_order[1] = {0};

static nnlib_status refuse(imp *im, const char *what, const char *why) {
  return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED, "%s: %s", what,
                                why);
}

static bool str_list_is(const nnlib__onnx_attr *a, const char *const *want,
                        size_t count) {
  if (a->list_overflow || a->string_count != count)
    return false;
  for (size_t k = 0; k < count; k++)
    if (!nnlib__onnx_str_is(a->strings[k], want[k]))
      return false;
  return true;
}

/* The attributes nnlib's layers fix; rnn's activation into *act. */
static nnlib_status check_attributes(imp *im, const onode *n,
                                     nnlib_layer_kind kind,
                                     nnlib_activation *act) {
  const nnlib__onnx_attr *dir = nnlib__onnx_find_attr(n, "direction");
  if (dir != NULL && !nnlib__onnx_str_is(dir->s, "forward"))
    return refuse(im, "attribute direction",
                  "only the forward direction maps (nnlib's recurrent "
                  "layers run one way)");
  const char *unsupported[3] = {"clip", "activation_alpha",
                                "activation_beta"};
  for (int k = 0; k < 3; k++)
    if (nnlib__onnx_find_attr(n, unsupported[k]) != NULL)
      return refuse(im, unsupported[k], "nnlib's cells have no such "
                                        "parameter");
  if (kind == NNLIB_LAYER_LSTM && nnlib__onnx_attr_int(n, "input_forget", 0))
    return refuse(im, "attribute input_forget", "coupled gates are not "
                                                "nnlib's LSTM");
  int64_t lbr = nnlib__onnx_attr_int(n, "linear_before_reset", 0);
  if (kind == NNLIB_LAYER_GRU && lbr != 0 && lbr != 1)
    return refuse(im, "attribute linear_before_reset", "must be 0 or 1");
  const nnlib__onnx_attr *a = nnlib__onnx_find_attr(n, "activations");
  static const char *const lstm_acts[3] = {"Sigmoid", "Tanh", "Tanh"};
  static const char *const gru_acts[2] = {"Sigmoid", "Tanh"};
  static const char *const tanh_act[1] = {"Tanh"};
  static const char *const relu_act[1] = {"Relu"};
  *act = NNLIB_ACT_TANH;
  if (a == NULL)
    return NNLIB_OK;
  bool ok = false;
  if (kind == NNLIB_LAYER_LSTM)
    ok = str_list_is(a, lstm_acts, 3);
  else if (kind == NNLIB_LAYER_GRU)
    ok = str_list_is(a, gru_acts, 2);
  else if (str_list_is(a, relu_act, 1))
    ok = true, *act = NNLIB_ACT_RELU;
  else
    ok = str_list_is(a, tanh_act, 1);
  return ok ? NNLIB_OK
            : refuse(im, "attribute activations",
                     "only the default activations (RNN: Tanh or Relu) "
                     "map");
}

/* Absent, constant zeros, or zeros of a batch-sized shape. */
static nnlib_status zero_state(imp *im, const onode *n, size_t k,
                               const char *what) {
  oval *v = nnlib__onnx_input(im, n, k);
  if (v == NULL || v->kind == NNLIB__VALUE_ZEROS)
    return NNLIB_OK;
  bool zeros = v->kind == NNLIB__VALUE_CONST;
  for (int64_t e = 0; zeros && e < v->count; e++)
    zeros = v->dtype == NNLIB__ONNX_FLOAT ? v->f[e] == 0.0f : v->i[e] == 0;
  return zeros ? NNLIB_OK
               : refuse(im, what,
                        "only an absent or all-zero initial state maps (an "
                        "imported layer starts every sequence from zeros)");
}

/* A float constant of exactly `rank` dims `want`. */
static nnlib_status weight(imp *im, const onode *n, size_t k, const char *what,
                           const int64_t *want, size_t rank, oval **out) {
  oval *v = nnlib__onnx_input(im, n, k);
  if (v == NULL)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "input %zu (%s) is missing", k, what);
  if (v->kind != NNLIB__VALUE_CONST || v->dtype != NNLIB__ONNX_FLOAT)
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "input %zu (%s) must be a float initializer "
                                  "or constant (nnlib learns it as a "
                                  "parameter)",
                                  k, what);
  bool fits = v->rank == rank;
  for (size_t d = 0; fits && d < rank; d++)
    fits = v->dims[d] == want[d];
  if (!fits)
    return nnlib__onnx_node_error(
        im, NNLIB_ERR_SHAPE_MISMATCH,
        "input %zu (%s) must be [%lld, %lld%s%lld] (one direction)", k, what,
        (long long)want[0], (long long)want[1], rank > 2 ? ", " : "",
        rank > 2 ? (long long)want[2] : 0LL);
  *out = v;
  return NNLIB_OK;
}

/* rows gate blocks of `h` rows of `width` floats, reordered. */
static float *reorder(imp *im, const float *src, const int *order,
                      int64_t gates, int64_t h, int64_t width) {
  float *dst = nnlib__onnx_arena(im, (size_t)(gates * h * width), sizeof *dst);
  if (dst != NULL)
    for (int64_t b = 0; b < gates; b++)
      memcpy(dst + b * h * width, src + order[b] * h * width,
             (size_t)(h * width) * sizeof *dst);
  return dst;
}

/* X as a batch-first nnlib node of sample [T, F]; layout 0 needs the
 * time-major view (batch at axis 1), layout 1 batch first. */
static nnlib_status sequence_input(imp *im, const onode *n, int64_t layout,
                                   oval **out) {
  oval *x = nnlib__onnx_input(im, n, 0);
  if (x == NULL)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "input 0 (X) is missing");
  if ((x->kind != NNLIB__VALUE_NODE && x->kind != NNLIB__VALUE_MATMUL &&
       x->kind != NNLIB__VALUE_RECURRENT) ||
      x->ids)
    return refuse(im, "input X", "must be a float tensor computed from the "
                                 "graph's inputs");
  NNLIB_TRY(nnlib__onnx_materialize(im, x));
  size_t want_batch = layout == 0 ? 1 : 0;
  if (x->batch_axis != want_batch || x->shape.rank != 2)
    return refuse(im, "input X",
                  layout == 0
                      ? "layout 0 reads [T, batch, F]: nnlib maps it only "
                        "as the Transpose of a batch-first [batch, T, F] "
                        "tensor (a graph input's first axis is the batch)"
                      : "layout 1 reads [batch, T, F]");
  if (!nnlib__shape_equal(&im->model->nodes[x->node].shape, &x->shape))
    return refuse(im, "input X", "its nnlib shape is not [T, F] (a reshape "
                                 "nnlib has no layer for)");
  *out = x;
  return NNLIB_OK;
}

static nnlib_status define_outputs(imp *im, const onode *n,
                                   nnlib__onnx_rnn *r, int64_t layout) {
  bool any = false;
  for (size_t k = 0; k < n->output_count && k < 3; k++) {
    if (n->outputs[k].n == 0)
      continue;
    oval *v = NULL;
    NNLIB_TRY(nnlib__onnx_define(im, n->outputs[k], &v));
    any = true;
    if (k == 2) { /* Y_c: nnlib's LSTM keeps its cell state inside */
      v->kind = NNLIB__VALUE_UNUSABLE;
      v->unusable = "an LSTM's cell state Y_c (nnlib's LSTM keeps it "
                    "inside)";
      continue;
    }
    v->kind = NNLIB__VALUE_RECURRENT;
    v->rnn = r;
    v->rnn_last = k == 1;
    if (k == 0) { /* [T, 1, batch, H] or [batch, T, 1, H] */
      v->batch_axis = layout == 0 ? 2 : 0;
      v->shape = (nnlib__shape){3, {r->steps, 1, r->hidden}};
    } else { /* [1, batch, H] or [batch, 1, H] */
      v->batch_axis = layout == 0 ? 1 : 0;
      v->shape = (nnlib__shape){2, {1, r->hidden}};
    }
  }
  for (size_t k = 3; k < n->output_count; k++)
    if (n->outputs[k].n > 0)
      return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                    "more than three outputs");
  if (!any)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "no output");
  return NNLIB_OK;
}

nnlib_status nnlib__onnx_map_recurrent(nnlib__onnx_import *im,
                                       const nnlib__onnx_node *n,
                                       nnlib_layer_kind kind) {
  int64_t gates = kind == NNLIB_LAYER_LSTM ? 4 : kind == NNLIB_LAYER_GRU ? 3
                                                                         : 1;
  const int *order = kind == NNLIB_LAYER_LSTM  ? lstm_order
                     : kind == NNLIB_LAYER_GRU ? gru_order
                                               : rnn_order;
  nnlib_activation act = NNLIB_ACT_TANH;
  if (im->whole) /* X [T, batch, F] or [batch, T, F]: a batch axis */
    return refuse(im, "input X",
                  "whole-sample import makes every axis of X part of the "
                  "sample, and nnlib's recurrent layers read a batch of "
                  "[T, F] sequences (import without whole_sample)");
  NNLIB_TRY(check_attributes(im, n, kind, &act));
  int64_t layout = nnlib__onnx_attr_int(n, "layout", 0);
  if (layout != 0 && layout != 1)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE, "layout %lld",
                                  (long long)layout);
  if (nnlib__onnx_input(im, n, 4) != NULL)
    return refuse(im, "input sequence_lens",
                  "per-sample lengths inside a batch do not map (nnlib "
                  "runs every sample of a batch to the same length)");
  if (kind == NNLIB_LAYER_LSTM && nnlib__onnx_input(im, n, 7) != NULL)
    return refuse(im, "input P", "peepholes: nnlib's LSTM has none");
  NNLIB_TRY(zero_state(im, n, 5, "input initial_h"));
  if (kind == NNLIB_LAYER_LSTM)
    NNLIB_TRY(zero_state(im, n, 6, "input initial_c"));
  oval *x = NULL, *w = NULL, *rw = NULL, *b = NULL;
  NNLIB_TRY(sequence_input(im, n, layout, &x));
  int64_t steps = x->shape.dims[0], features = x->shape.dims[1];
  oval *w_any = nnlib__onnx_input(im, n, 1);
  if (w_any == NULL || w_any->kind != NNLIB__VALUE_CONST || w_any->rank != 3 ||
      w_any->dims[1] % gates != 0 || w_any->dims[1] < gates)
    return refuse(im, "input W", "must be a constant [1, G*H, F]");
  int64_t hidden = w_any->dims[1] / gates;
  if (nnlib__onnx_attr_int(n, "hidden_size", hidden) != hidden)
    return nnlib__onnx_node_error(im, NNLIB_ERR_SHAPE_MISMATCH,
                                  "hidden_size %lld, W holds %lld",
                                  (long long)nnlib__onnx_attr_int(
                                      n, "hidden_size", hidden),
                                  (long long)hidden);
  int64_t wd[3] = {1, gates * hidden, features};
  int64_t rd[3] = {1, gates * hidden, hidden}, bd[2] = {1, 2 * gates * hidden};
  NNLIB_TRY(weight(im, n, 1, "W", wd, 3, &w));
  NNLIB_TRY(weight(im, n, 2, "R", rd, 3, &rw));
  if (nnlib__onnx_input(im, n, 3) != NULL)
    NNLIB_TRY(weight(im, n, 3, "B", bd, 2, &b));
  nnlib__onnx_rnn *r = nnlib__onnx_arena(im, 1, sizeof *r);
  if (r == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  r->kind = kind;
  r->act = act;
  r->steps = steps;
  r->features = features;
  r->hidden = hidden;
  r->linear_before_reset =
      nnlib__onnx_attr_int(n, "linear_before_reset", 0) != 0;
  r->input_node = x->node;
  r->onnx_node = im->current;
  r->w_ih = reorder(im, w->f, order, gates, hidden, features);
  r->w_hh = reorder(im, rw->f, order, gates, hidden, hidden);
  if (r->w_ih == NULL || r->w_hh == NULL)
    return NNLIB_ERR_OUT_OF_MEMORY;
  if (b != NULL) {
    r->b_ih = reorder(im, b->f, order, gates, hidden, 1);
    r->b_hh = reorder(im, b->f + gates * hidden, order, gates, hidden, 1);
    if (r->b_ih == NULL || r->b_hh == NULL)
      return NNLIB_ERR_OUT_OF_MEMORY;
  }
  return define_outputs(im, n, r, layout);
}

static nnlib_status create_layer(imp *im, const nnlib__onnx_rnn *r,
                                 bool sequences, nnlib_layer **l) {
  int bias = r->b_ih != NULL, seq = sequences ? 1 : 0;
  nnlib_status st =
      r->kind == NNLIB_LAYER_LSTM
          ? nnlib_lstm_create(l, r->features, r->hidden, bias, seq)
      : r->kind == NNLIB_LAYER_GRU
          ? nnlib__gru_create(l, r->features, r->hidden, bias, seq,
                              r->linear_before_reset)
          : nnlib_rnn_create(l, r->features, r->hidden, r->act, bias, seq);
  if (st == NNLIB_ERR_INVALID_ARGUMENT || st == NNLIB_ERR_TOO_LARGE) {
    char detail[300];
    snprintf(detail, sizeof detail, "%s", nnlib_last_error_message());
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED, "%s", detail);
  }
  NNLIB_TRY(st);
  int64_t g = r->kind == NNLIB_LAYER_LSTM ? 4 : r->kind == NNLIB_LAYER_GRU ? 3
                                                                           : 1;
  int64_t gh = g * r->hidden;
  st = nnlib__onnx_add_fill(im, *l, false, 0, r->w_ih, gh * r->features);
  if (st == NNLIB_OK)
    st = nnlib__onnx_add_fill(im, *l, false, 1, r->w_hh, gh * r->hidden);
  if (st == NNLIB_OK && bias)
    st = nnlib__onnx_add_fill(im, *l, false, 2, r->b_ih, gh);
  if (st == NNLIB_OK && bias)
    st = nnlib__onnx_add_fill(im, *l, false, 3, r->b_hh, gh);
  if (st != NNLIB_OK) {
    nnlib_layer_free(*l);
    *l = NULL;
  }
  return st;
}

nnlib_status nnlib__onnx_make_recurrent(nnlib__onnx_import *im,
                                        nnlib__onnx_value *v) {
  nnlib__onnx_rnn *r = v->rnn;
  bool sequences = !v->rnn_last;
  size_t saved = im->current;
  if (r->made && r->sequences != sequences) {
    im->current = r->onnx_node;
    nnlib_status st = refuse(
        im, "outputs Y and Y_h",
        "both are read, and nnlib's layer returns either the sequence or "
        "its last step");
    im->current = saved;
    return st;
  }
  if (!r->made) {
    im->current = r->onnx_node;
    nnlib_layer *l = NULL;
    nnlib_status st = create_layer(im, r, sequences, &l);
    oval made;
    memset(&made, 0, sizeof made);
    if (st == NNLIB_OK)
      st = nnlib__onnx_apply(im, l, &r->input_node, 1, &made);
    im->current = saved;
    NNLIB_TRY(st);
    r->made = true;
    r->sequences = sequences;
    r->node = made.node;
  }
  v->kind = NNLIB__VALUE_NODE;
  v->node = r->node;
  return NNLIB_OK;
}

/* Gather(Y, -1 or T-1) along Y's time axis: the last step, a view of the
 * same layer returning only that step. Gather(Y or Y_h, 0 or -1) along a
 * unit axis (the direction axis, as in torch's h[-1]) only drops or keeps
 * that axis. *done false when this Gather is neither. */
nnlib_status nnlib__onnx_gather_last_step(nnlib__onnx_import *im,
                                          const nnlib__onnx_node *n,
                                          nnlib__onnx_value *x, bool *done) {
  *done = false;
  oval *idx = nnlib__onnx_input(im, n, 1);
  if (x->kind != NNLIB__VALUE_RECURRENT || idx == NULL ||
      idx->kind != NNLIB__VALUE_CONST || idx->dtype != NNLIB__ONNX_INT64 ||
      idx->count != 1 || idx->rank > 1)
    return NNLIB_OK;
  int64_t steps = x->rnn->steps, full = (int64_t)x->shape.rank + 1;
  int64_t axis = nnlib__onnx_attr_int(n, "axis", 0);
  if (axis < 0)
    axis += full;
  if (axis < 0 || axis >= full || axis == (int64_t)x->batch_axis)
    return NNLIB_OK;
  size_t at = (size_t)axis - (axis > (int64_t)x->batch_axis ? 1 : 0);
  int64_t i = idx->i[0];
  bool unit = x->shape.dims[at] == 1 && (i == 0 || i == -1);
  bool last = !x->rnn_last && at == 0 && x->shape.rank >= 2 &&
              x->shape.dims[0] == steps && (i == -1 || i == steps - 1);
  if (!unit && !last)
    return NNLIB_OK;
  oval *out = NULL;
  if (n->output_count != 1 || n->outputs[0].n == 0)
    return nnlib__onnx_node_error(im, NNLIB_ERR_CORRUPT_FILE,
                                  "needs one output");
  NNLIB_TRY(nnlib__onnx_define(im, n->outputs[0], &out));
  nnlib__onnx_str name = out->name;
  *out = *x;
  out->name = name;
  out->rnn_last = x->rnn_last || last;
  if (idx->rank == 0) { /* the axis goes */
    memmove(out->shape.dims + at, out->shape.dims + at + 1,
            (out->shape.rank - 1 - at) * sizeof *out->shape.dims);
    out->shape.rank--;
    if (axis < (int64_t)x->batch_axis)
      out->batch_axis--;
  } else {
    out->shape.dims[at] = 1;
  }
  if (out->shape.rank < 1)
    return nnlib__onnx_node_error(im, NNLIB_ERR_UNSUPPORTED,
                                  "a result with no axis per sample");
  *done = true;
  return NNLIB_OK;
}
