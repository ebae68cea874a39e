/* import_opset.c - which opsets each operator is read at.
 *
 * A model imports the default domain at one opset; each of its nodes then
 * means the newest definition of its operator at or below that opset.
 * nnlib maps operators as opset 13 to 17 define them. An older opset is
 * read when every operator of the model is in the table below at or above
 * its `oldest` opset: from `same` on, the definition equals opset 13's as
 * far as the mapping is concerned (later versions added element types,
 * negative axes or optional inputs that an older file cannot use); between
 * `oldest` and `same` the older form differs and the mapping reads it
 * (import_ops.c, import_fold.c, import_rnn.c check nnlib__onnx_opset):
 *
 *   Softmax < 13     coerces the input to 2-D at `axis` (default 1): the
 *                    last axis, or all of a sample (a flatten first)
 *   Gemm < 7         `broadcast` (default 0: C of the full [M, N] shape,
 *                    read only in whole-sample mode)
 *   Add ... Div < 7  `broadcast`/`axis`: `axis` is refused
 *   Dropout < 7      `is_test` must be 1 (else it trains)
 *   BatchNorm < 9    `spatial` must be 1; before 7 `is_test` must be 1
 *   (Un)Squeeze < 13 the axes in an attribute
 *   Split < 13       the sizes in an attribute
 *   ReduceSum < 13   the axes in an attribute (read in Softmax's function
 *                    body, import_softmax.c)
 *   Conv, MaxPool, AveragePool < 11: SAME_UPPER/LOWER auto_pad refused
 *                    (opset 11 redefined it with strides)
 *
 * Below `oldest` (Relu, Sigmoid, Tanh, LeakyRelu, Exp, Gemm, Add, Mul, Sub,
 * Div, Sqrt, Reciprocal, BatchNormalization and Dropout before 6 had
 * `consumed_inputs`; Reshape before 5 took its shape as an attribute;
 * Pow before 7 broadcast from an `axis`; LSTM, GRU, RNN before 7 had
 * other attributes) and for operators that did not exist yet (Expand
 * before 8, Erf before 9, LayerNormalization before 17) the import fails
 * with NNLIB_ERR_UNSUPPORTED_VERSION naming the operator and the opset.
 * Opsets above 17 are refused for the whole model (import.c). */
#include "onnx/import.h"

typedef struct opset_entry {
  const char *op;
  int oldest; /* the oldest opset read */
  int same;   /* from here on, opset 13's definition */
} opset_entry;

static const opset_entry table[] = {
    {"Relu", 6, 6},
    {"Sigmoid", 6, 6},
    {"Tanh", 6, 6},
    {"LeakyRelu", 6, 6},
    {"Softplus", 1, 1},
    {"Softmax", 1, 13},
    {"Erf", 9, 9},
    {"Exp", 6, 6},
    {"Greater", 7, 7},
    {"Neg", 6, 6},
    {"Gemm", 6, 7},
    {"MatMul", 1, 1},
    {"Add", 6, 7},
    {"Sub", 6, 7},
    {"Mul", 6, 7},
    {"Div", 6, 7},
    {"Concat", 4, 4},
    {"Identity", 1, 1},
    {"Dropout", 6, 7},
    {"Cast", 6, 6},
    {"Flatten", 1, 1},
    {"Reshape", 5, 5},
    {"Squeeze", 1, 13},
    {"Unsqueeze", 1, 13},
    {"Transpose", 1, 1},
    {"Slice", 10, 10},
    {"Split", 2, 13},
    {"Conv", 1, 11},
    {"MaxPool", 1, 11},
    {"AveragePool", 1, 11},
    {"GlobalAveragePool", 1, 1},
    {"BatchNormalization", 6, 9},
    {"LayerNormalization", 17, 17},
    {"Gather", 1, 1},
    {"Constant", 1, 1},
    {"Shape", 1, 1},
    {"Size", 1, 1},
    {"ReduceMean", 1, 1},
    {"ReduceMax", 1, 1},
    {"ReduceSum", 1, 13},
    {"Sqrt", 6, 6},
    {"Reciprocal", 6, 6},
    {"Pow", 7, 7},
    {"Expand", 8, 8},
    {"ConstantOfShape", 9, 9},
    {"LSTM", 7, 7},
    {"GRU", 7, 7},
    {"RNN", 7, 7},
};

int64_t nnlib__onnx_opset(const nnlib__onnx_import *im) {
  return im->onnx->opset;
}

static bool op_is(const nnlib__onnx_node *n, const char *a, const char *b) {
  return nnlib__onnx_str_is(n->op_type, a) ||
         (b != NULL && nnlib__onnx_str_is(n->op_type, b));
}

static nnlib_status old_form(const nnlib__onnx_import *im,
                             const nnlib__onnx_node *n, const char *what) {
  return nnlib__onnx_node_error(
      im, NNLIB_ERR_UNSUPPORTED_VERSION,
      "%s at opset %lld (the older definition of %.*s; nnlib reads it only "
      "where it means what opset 13's does)",
      what, (long long)im->onnx->opset, (int)(n->op_type.n > 40 ? 40 : n->op_type.n),
      n->op_type.p);
}

static bool same_auto_pad(const nnlib__onnx_node *n) {
  const nnlib__onnx_attr *a = nnlib__onnx_find_attr(n, "auto_pad");
  return a != NULL && (nnlib__onnx_str_is(a->s, "SAME_UPPER") ||
                       nnlib__onnx_str_is(a->s, "SAME_LOWER"));
}

/* The attributes of older definitions that change the meaning. */
static nnlib_status check_old_attributes(const nnlib__onnx_import *im,
                                         const nnlib__onnx_node *n) {
  int64_t opset = im->onnx->opset;
  if (opset >= 13)
    return NNLIB_OK;
  if (opset < 7 && (op_is(n, "Add", "Sub") || op_is(n, "Mul", "Div")) &&
      nnlib__onnx_find_attr(n, "axis") != NULL)
    return old_form(im, n, "attribute axis (broadcasting from an axis)");
  /* a full C maps only in whole-sample mode (as a matrix bias) */
  if (opset < 7 && op_is(n, "Gemm", NULL) && n->input_count > 2 &&
      n->inputs[2].n > 0 && nnlib__onnx_attr_int(n, "broadcast", 0) == 0 &&
      !im->whole)
    return old_form(im, n, "broadcast = 0 (C of the full [M, N] shape, "
                           "which varies along the batch axis)");
  if (opset < 7 && op_is(n, "Dropout", NULL) &&
      nnlib__onnx_attr_int(n, "is_test", 0) == 0)
    return old_form(im, n, "is_test = 0 (training-mode dropout)");
  if (op_is(n, "BatchNormalization", NULL)) {
    if (opset < 9 && nnlib__onnx_attr_int(n, "spatial", 1) != 1)
      return old_form(im, n, "spatial = 0 (statistics per activation)");
    if (opset < 7 && nnlib__onnx_attr_int(n, "is_test", 0) == 0)
      return old_form(im, n, "is_test = 0 (training-mode statistics)");
  }
  if (opset < 11 && (op_is(n, "Conv", "MaxPool") ||
                     op_is(n, "AveragePool", NULL)) &&
      same_auto_pad(n))
    return old_form(im, n, "auto_pad SAME_UPPER/SAME_LOWER (defined with "
                           "strides only from opset 11)");
  return NNLIB_OK;
}

nnlib_status nnlib__onnx_check_opset(const nnlib__onnx_import *im,
                                     const nnlib__onnx_node *n) {
  int64_t opset = im->onnx->opset;
  for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
    if (!nnlib__onnx_str_is(n->op_type, table[k].op))
      continue;
    if (opset >= table[k].same)
      return NNLIB_OK;
    if (opset >= table[k].oldest)
      return check_old_attributes(im, n);
    return nnlib__onnx_node_error(
        im, NNLIB_ERR_UNSUPPORTED_VERSION,
        "%s at opset %lld: nnlib reads %s from opset %d on (an older "
        "definition)",
        table[k].op, (long long)opset, table[k].op, table[k].oldest);
  }
  return NNLIB_OK;
}
