/* import.h - what the importer's files share (import.c: the graph walk,
 * values and entry points; import_ops.c: operators onto layers;
 * import_fold.c: constants folded at import; import_opset.c: which opsets
 * each operator is read at; import_rnn.c: LSTM, GRU and RNN;
 * import_gelu.c: the GELU and step subgraphs; import_attention.c: the
 * nn.MultiheadAttention subgraph; import_layernorm.c: layer normalisation
 * in primitive operators; import_softmax.c: Softmax's function body;
 * import_integers.c: uint8 and int8 inputs).
 * Private to src/onnx/. */
#ifndef NNLIB_ONNX_IMPORT_H
#define NNLIB_ONNX_IMPORT_H

#include "onnx/onnx.h"

/* The batch size, not known at import, in the dims the importer builds
 * (a graph tensor's full ONNX shape, zeros of a batch-sized shape): no dim
 * a file gives is negative, so none reads as this. In int64 constants,
 * whose elements a file may set to any value, INT64_MIN included, the
 * value's `batch` marks say which elements are the batch size instead. */
#define NNLIB__ONNX_BATCH INT64_MIN

typedef enum nnlib__onnx_value_kind {
  NNLIB__VALUE_UNDEFINED = 0,
  NNLIB__VALUE_CONST,  /* known at import: an initializer or folded */
  NNLIB__VALUE_NODE,   /* a tensor of the nnlib graph, [batch, shape...] */
  NNLIB__VALUE_MATMUL, /* x W not yet made into a layer: an Add of a bias
                          may follow */
  NNLIB__VALUE_RECURRENT, /* an output (Y or Y_h) of an LSTM, GRU or RNN
                             whose layer is made when it is read: as a
                             sequence, or only the last step (import_rnn.c) */
  NNLIB__VALUE_ZEROS,  /* zeros of a shape that holds the batch size
                          (ConstantOfShape of a Shape): read only as a
                          recurrent layer's initial state */
  NNLIB__VALUE_UNUSABLE /* an output nnlib does not make (an LSTM's Y_c,
                           LayerNormalization's Mean): refused where it is
                           read, and as the graph output */
} nnlib__onnx_value_kind;

/* The recurrent layer behind NNLIB__VALUE_RECURRENT values (import_rnn.c):
 * everything nnlib_lstm/gru/rnn_create and the fills need, and the node
 * once the layer is made (with return_sequences as the first reader
 * asked). */
typedef struct nnlib__onnx_rnn {
  nnlib_layer_kind kind;   /* NNLIB_LAYER_LSTM, GRU or RNN */
  nnlib_activation act;    /* rnn: tanh or relu */
  int64_t steps, features, hidden;
  bool linear_before_reset; /* gru: ONNX's attribute (0: the reset gate
                               before R_h, nnlib's "lbr0") */
  float *w_ih, *w_hh, *b_ih, *b_hh; /* nnlib's layouts; biases NULL: none */
  size_t input_node;
  size_t onnx_node;        /* for messages */
  bool made, sequences;
  size_t node;
} nnlib__onnx_rnn;

typedef struct nnlib__onnx_value {
  nnlib__onnx_str name;
  nnlib__onnx_value_kind kind;
  /* CONST: dtype FLOAT (f) or INT64 (i), `count` elements of `dims` */
  int32_t dtype;
  size_t rank;
  int64_t dims[NNLIB__ONNX_MAX_RANK];
  int64_t count;
  float *f;
  int64_t *i;
  /* int64 CONST: per element, whether it is the batch size (from a Shape
   * of a graph tensor; its i holds NNLIB__ONNX_BATCH, a value no check
   * takes for a size, but only this mark says so). NULL: none is.
   * Reshape keeps the batch axis where it finds it; arithmetic on it is
   * refused. */
  bool *batch;
  /* NODE: the nnlib node and ONNX's per-sample shape (without the batch
   * axis), which may differ from the node's by unit axes or a reshape of
   * the same elements; layers that care check (nnlib__onnx_need_shape). */
  size_t node;
  nnlib__shape shape;
  bool ids;           /* an int64 graph input: token ids for an embedding */
  /* UNUSABLE: what the value is, for messages ("an LSTM's cell state Y_c
   * (...)") */
  const char *unusable;
  /* NODE, RECURRENT: where the batch axis is in ONNX's full shape, which
   * is `shape` with the batch inserted at this axis. 0 except for the
   * time-major views around recurrent operators ([T, batch, F]): a
   * Transpose that moves only the batch axis changes it, nothing else
   * reads such a view. The data stays nnlib's, batch first. */
  size_t batch_axis;
  /* RECURRENT: the layer, and whether this is Y (the sequence) or Y_h */
  nnlib__onnx_rnn *rnn;
  bool rnn_last;
  /* MATMUL: input node, W already as nnlib's [out, in] */
  size_t mm_input;
  nnlib__shape mm_shape; /* of the input value */
  float *mm_weight;
  int64_t mm_in, mm_out;
  size_t mm_onnx_node; /* for messages */
} nnlib__onnx_value;

/* Whether element k of constant v is the batch size (see `batch`). */
static inline bool nnlib__onnx_is_batch(const nnlib__onnx_value *v, int64_t k) {
  return v->batch != NULL && v->batch[k];
}

/* A parameter or buffer tensor to fill once the model is compiled. */
typedef struct nnlib__onnx_fill {
  nnlib_layer *layer;
  bool buffer;        /* l->buffers[index], else l->params[index] */
  size_t index;
  const float *data;  /* owned by the importer's arena */
  int64_t count;
} nnlib__onnx_fill;

typedef struct nnlib__onnx_import {
  const nnlib__onnx_model *onnx;
  nnlib_model *model;
  int64_t max_batch;
  /* nnlib_onnx_options.whole_sample: every graph tensor's ONNX shape is
   * its whole per-sample shape (no batch axis, batch_axis stays 0) */
  bool whole;
  nnlib__onnx_value *values;
  size_t value_count, value_capacity;
  size_t *table;      /* hash of names -> value index + 1 (0: empty) */
  size_t table_size;  /* a power of two */
  nnlib__onnx_fill *fills;
  size_t fill_count, fill_capacity;
  void **arena;       /* every block the importer allocated */
  size_t arena_count, arena_capacity;
  size_t current;     /* the ONNX node being mapped, for messages */
  size_t output;      /* the graph output the model computes (index) */
  bool *done;         /* per ONNX node: mapped, folded or absorbed; a node
                         the chosen output does not need starts done */
  size_t left;        /* nodes not done */
  /* Readers of each name (node inputs, and 1 for a graph output), for
   * subgraph patterns: a hash of names like `table`. */
  nnlib__onnx_str *reader_names;
  size_t *reader_counts, *first_reader;
  size_t reader_table_size;
} nnlib__onnx_import;

/* FNV-1a of a name, and name equality (the importer's hash tables). */
uint64_t nnlib__onnx_hash(nnlib__onnx_str s);
bool nnlib__onnx_same(nnlib__onnx_str a, nnlib__onnx_str b);

/* Which graph output the model computes (import_outputs.c): `name` (NULL:
 * the only one) into im->output. NNLIB_ERR_INVALID_ARGUMENT for a name
 * that is not a graph output, NNLIB_ERR_UNSUPPORTED for several outputs
 * and no name. */
nnlib_status nnlib__onnx_choose_output(nnlib__onnx_import *im,
                                       const char *name);
/* Allocates im->done and marks done every node the chosen output does not
 * depend on: those nodes are neither mapped nor counted as readers. */
nnlib_status nnlib__onnx_prune(nnlib__onnx_import *im);
/* Whether graph input `info` is time-major: rank 3 and read only, by the
 * nodes the output needs, as X of LSTM, GRU or RNN nodes of layout 0
 * ([T, batch, F]). Such an input becomes a batch-first model input. */
bool nnlib__onnx_time_major_input(const nnlib__onnx_import *im,
                                  const nnlib__onnx_value_info *info);

/* Whether uint8 or int8 graph input `info` can be read as floats: every
 * node the output needs that reads it (or an integer value made from it)
 * is MaxPool, Relu, Identity, Flatten or Reshape reading it as data, or a
 * Cast to float; else NNLIB_ERR_UNSUPPORTED naming the input, its type and
 * the node (import_integers.c). */
nnlib_status nnlib__onnx_check_integer_input(
    nnlib__onnx_import *im, const nnlib__onnx_value_info *info);
/* ONNX's full shape of graph tensor v into full (returns its rank): the
 * per-sample shape with NNLIB__ONNX_BATCH inserted at v->batch_axis, or
 * in whole-sample mode the per-sample shape itself. */
size_t nnlib__onnx_full_dims(const nnlib__onnx_import *im,
                             const nnlib__onnx_value *v, int64_t *full);

/* Memory that lives until the import ends. NULL with OUT_OF_MEMORY set. */
void *nnlib__onnx_arena(nnlib__onnx_import *im, size_t count, size_t size);
/* The value named s, or NULL. */
nnlib__onnx_value *nnlib__onnx_find(nnlib__onnx_import *im, nnlib__onnx_str s);
/* A fresh value for node output `s` (CORRUPT_FILE if defined already). */
nnlib_status nnlib__onnx_define(nnlib__onnx_import *im, nnlib__onnx_str s,
                                nnlib__onnx_value **out);
/* Records a tensor to copy into a layer after compile. */
nnlib_status nnlib__onnx_add_fill(nnlib__onnx_import *im, nnlib_layer *l,
                                  bool buffer, size_t index,
                                  const float *data, int64_t count);
/* The error status with "ONNX node K 'name' (Op): " before the message. */
nnlib_status nnlib__onnx_node_error(const nnlib__onnx_import *im,
                                    nnlib_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
#ifdef __clang_analyzer__ /* the contract shown, as core.h's nnlib__error */
#define nnlib__onnx_node_error(im, status, ...)                                \
  (nnlib__onnx_node_error((im), (status), __VA_ARGS__), (status))
#endif
/* Applies a layer (taken, also on failure) to `count` value nodes: plans
 * it over their shapes, applies it, and defines `out` as a NODE. */
nnlib_status nnlib__onnx_apply(nnlib__onnx_import *im, nnlib_layer *l,
                               const size_t *inputs, size_t count,
                               nnlib__onnx_value *out);
/* The value named s if it is a float graph tensor a subgraph matcher can
 * start from: a layer's output or a pending MatMul, batch first, of a
 * known per-sample shape; else NULL. */
nnlib__onnx_value *nnlib__onnx_float_tensor(nnlib__onnx_import *im,
                                            nnlib__onnx_str s);
/* The end of a subgraph matcher: layer l (made with status `made`; taken,
 * also on failure) applied to x, its result the value `name` with x's
 * per-sample shape, and the `count` nodes of `chain` marked done. */
nnlib_status nnlib__onnx_apply_matched(nnlib__onnx_import *im, nnlib_layer *l,
                                       nnlib_status made,
                                       nnlib__onnx_value *x,
                                       nnlib__onnx_str name,
                                       const size_t *chain, size_t count);
/* Makes a MATMUL value into its layer (no bias); NODE values pass. */
nnlib_status nnlib__onnx_materialize(nnlib__onnx_import *im,
                                     nnlib__onnx_value *v);
/* A graph tensor whose nnlib node has ONNX's per-sample shape: flattens
 * where ONNX's is rank 1, else NNLIB_ERR_UNSUPPORTED naming `what`. */
nnlib_status nnlib__onnx_need_shape(nnlib__onnx_import *im,
                                    nnlib__onnx_value *v, const char *what);

/* NNLIB_ERR_UNSUPPORTED_VERSION naming the operator and the opset when
 * node n's operator is not read at the model's opset (import_opset.c);
 * operators nnlib does not know pass (they are refused as UNSUPPORTED). */
nnlib_status nnlib__onnx_check_opset(const nnlib__onnx_import *im,
                                     const nnlib__onnx_node *n);
/* The model's opset of the default domain. */
int64_t nnlib__onnx_opset(const nnlib__onnx_import *im);

/* How many node inputs (and graph outputs) read the name s; the first
 * reading node in *first (when one does). */
size_t nnlib__onnx_readers(const nnlib__onnx_import *im, nnlib__onnx_str s,
                           size_t *first);

/* LSTM, GRU and RNN (import_rnn.c); Gather of the last step of a
 * recurrent sequence; a RECURRENT value made into its layer. */
nnlib_status nnlib__onnx_map_recurrent(nnlib__onnx_import *im,
                                       const nnlib__onnx_node *n,
                                       nnlib_layer_kind kind);
nnlib_status nnlib__onnx_gather_last_step(nnlib__onnx_import *im,
                                          const nnlib__onnx_node *n,
                                          nnlib__onnx_value *x, bool *done);
nnlib_status nnlib__onnx_make_recurrent(nnlib__onnx_import *im,
                                        nnlib__onnx_value *v);
/* Node k and the nodes after it as one GELU (Erf or Tanh form, torch's or
 * nnlib's ending) or step (Cast of Greater than 0) of a graph tensor, when
 * they are that subgraph; *matched false otherwise (import_gelu.c). */
nnlib_status nnlib__onnx_match_gelu(nnlib__onnx_import *im, size_t k,
                                    bool *matched);

/* Node k (a Transpose [1, 0, 2] of a batch-first [T, D] tensor that a
 * MatMul reads) and the nodes after it as one nn.MultiheadAttention
 * subgraph of torch's export, made into an attention layer; *matched
 * false when node k does not start one (import_attention.c). */
nnlib_status nnlib__onnx_match_attention(nnlib__onnx_import *im, size_t k,
                                         bool *matched);

/* Node k and the nodes around it as one layer normalisation over the last
 * axis in primitive operators (torch's export at opsets 13 to 16, or
 * LayerNormalization's function body), made into a layernorm layer; the
 * function body's Mean and InvStdDev become values nnlib does not make.
 * *matched false when node k is not in such a subgraph
 * (import_layernorm.c). */
nnlib_status nnlib__onnx_match_layernorm(nnlib__onnx_import *im, size_t k,
                                         bool *matched);

/* Node k (a ReduceMax) and the nodes after it as Softmax's function body
 * over the last axis (ReduceMax, Sub, Exp, ReduceSum, Div), made into a
 * softmax activation; *matched false when they are not that subgraph
 * (import_softmax.c). */
nnlib_status nnlib__onnx_match_softmax(nnlib__onnx_import *im, size_t k,
                                       bool *matched);

/* Maps node k (import_ops.c). */
nnlib_status nnlib__onnx_map_node(nnlib__onnx_import *im, size_t k);
/* Folds node k when every input is constant and the op is one of the
 * shape-computing ones; *folded false when it is not such a node
 * (import_fold.c). */
nnlib_status nnlib__onnx_fold_node(nnlib__onnx_import *im, size_t k,
                                   bool *folded);
/* Sets a CONST value from an ONNX tensor (checks dims and data). */
nnlib_status nnlib__onnx_const_from_tensor(nnlib__onnx_import *im,
                                           const nnlib__onnx_tensor *t,
                                           nnlib__onnx_value *v);
/* A CONST of `count` elements of dtype, arena data allocated. */
nnlib_status nnlib__onnx_const_alloc(nnlib__onnx_import *im,
                                     nnlib__onnx_value *v, int32_t dtype,
                                     const int64_t *dims, size_t rank);

/* Shape helpers shared by folding and the graph-tensor forms of the same
 * ops: (Un)Squeeze's new dims, their axes input, Reshape's target. */
nnlib_status nnlib__onnx_squeeze_shape(nnlib__onnx_import *im, bool unsqueeze,
                                       const int64_t *dims, size_t rank,
                                       const int64_t *axes, size_t naxes,
                                       int64_t *out, size_t *out_rank);
nnlib_status nnlib__onnx_axes(nnlib__onnx_import *im,
                              const nnlib__onnx_node *n, int64_t *axes,
                              size_t *count);
nnlib_status nnlib__onnx_reshape_dims(nnlib__onnx_import *im,
                                      const nnlib__onnx_node *n,
                                      const int64_t *in, size_t in_rank,
                                      int64_t in_count, const int64_t *spec,
                                      size_t rank, int64_t *out);

/* Attribute lookup on the current node. */
const nnlib__onnx_attr *nnlib__onnx_find_attr(const nnlib__onnx_node *n,
                                         const char *name);
int64_t nnlib__onnx_attr_int(const nnlib__onnx_node *n, const char *name,
                             int64_t fallback);
float nnlib__onnx_attr_float(const nnlib__onnx_node *n, const char *name,
                             float fallback);
/* The input slot k of the node, or NULL when absent (empty name). */
nnlib__onnx_value *nnlib__onnx_input(nnlib__onnx_import *im,
                                     const nnlib__onnx_node *n, size_t k);

#endif /* NNLIB_ONNX_IMPORT_H */
