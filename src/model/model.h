/* model.h - the model: its graph of nodes, buffers, the data of one call,
 * and the calls that compile and run it. Above the layers, the losses and
 * the optimizers. */
#ifndef NNLIB_MODEL_H
#define NNLIB_MODEL_H

#include "layers/layer.h"
#include "loss/loss.h"
#include "optim/optim.h"

/* -------------------------------------------------------------- model */

/* A node of the model's graph: a model input (layer NULL) or a layer
 * applied to earlier nodes. Nodes are made in order and read only nodes
 * made before them, so node order is a topological order: forward runs it
 * front to back, backward back to front. */
typedef struct nnlib__node {
  nnlib_layer *layer;     /* NULL: a model input; else owned by the model */
  size_t *inputs;         /* input_count node indices, each below this
                             node's; owned */
  nnlib_node *handles;    /* the same as handles, for nnlib_model_get_node */
  size_t input_count;
  int64_t input_index;    /* model input number, or -1 */
  int64_t layer_index;    /* index in nnlib_model's layers, or -1 */
  char *name;             /* owned; NULL when unnamed */
  nnlib__shape shape;     /* per-sample output: an input's declared shape,
                             a layer's from plan */
  int64_t size;           /* floats per sample of the output */
  /* set by compile */
  size_t readers;         /* layers that read this node */
  size_t last_reader;     /* the highest-numbered of them */
  bool at_steps;          /* its output is a sequence [T', F] when a call
                             runs shorter sequences */
  bool runs_at_steps;     /* a layer that gets run.steps in such a call */
  bool holds_ids;         /* a model input of int32 token ids (read by
                             embedding layers only) */
  /* Inference folding (compile.c, fold_into_convolutions): a convolution
   * node runs its group, itself then a batchnorm and/or an activation
   * that each are the only reader of the node before, in one pass when a
   * call folds (nnlib__batch.folded); the group's other nodes are
   * `folded` and do not run then. fold_root is the group's convolution
   * (v itself outside a group), fold_output the group's last node (v
   * itself but for a convolution that folds). */
  bool folded;
  size_t fold_root, fold_output;
} nnlib__node;

/* "node 4 (dense)" or the node's name, for messages; returns buf. */
const char *nnlib__node_label(const nnlib_model *m, size_t v, char *buf,
                              size_t size);

/* What one pass over the graph writes. acts[v] is the output of node v (NULL
 * for a model input: the call's data; a fused dense+activation pair shares
 * one), workspace[v] its layer's scratch, grads[v] dL/d(output of v) (only
 * in the model's training set). Where these lie is planned by liveness
 * (plan.c): a buffer is reused once its last reader has run. The model has
 * one set for training; each nnlib_workspace has an inference set of its
 * own, so threads can run inference on one model at once. */
typedef struct nnlib__buffers {
  float **acts;
  float **workspace;
  float **grads;      /* NULL in an inference set */
  const float **xs;   /* a merge layer's input pointers (the widest fan-in) */
  float **dxs;        /* and its input-gradient pointers */
  float *accum;       /* fan-out: a later reader's dx before it is added */
  float *block;       /* owns every buffer above, one allocation */
  void *pointers;     /* owns the pointer arrays */
} nnlib__buffers;

/* Allocates a set for the model's plan (max batch): training (acts kept
 * for backward, gradients) or inference only. Frees with _free. */
nnlib_status nnlib__buffers_alloc(const nnlib_model *m, nnlib__buffers *b,
                                  bool training);
void nnlib__buffers_free(nnlib__buffers *b);
/* Floats the buffer set of the model's plan holds (the memory benchmark). */
int64_t nnlib__buffers_floats(const nnlib_model *m, bool training);

/* The data of one call: everything a pass needs besides the model and its
 * buffers, so that nothing travels through model fields. */
#define NNLIB__MAX_INPUTS 64 /* model inputs (documented in nnlib.h) */
typedef struct nnlib__batch {
  const float *x[NNLIB__MAX_INPUTS]; /* one per model input, n samples each */
  const float *target;    /* NULL for a pass without a loss */
  bool target_is_index;   /* class indices, target_rows per sample */
  bool target_is_int32;   /* ... stored as int32 */
  int64_t target_rows;    /* 1, or T for logits [T, V] per sample */
  int64_t n;
  int64_t steps;          /* sequence length when shorter than planned */
  bool training;          /* training mode (dropout, batch statistics) */
  bool folded;            /* inference that backpropagates nothing
                             (predict, evaluate): fold groups run as one
                             pass (nnlib__node's folded) */
  bool sgd_fused;         /* plain SGD folded into backward (nnlib__run) */
  float sgd_lr;
  /* Decoding (generate.c): every layer runs `steps` positions from
   * `position`, with caches[v] its cache (caches NULL: none). */
  bool decoding;
  int64_t position;
  float *const *caches;
} nnlib__batch;

struct nnlib_model {
  nnlib__node *nodes;
  size_t node_count, node_capacity;
  /* The layers of layer nodes in node order: nnlib_model_get_layer's
   * numbering, the order of the flat parameters and of model files. */
  nnlib_layer **layers;
  size_t layer_count, layer_capacity;
  size_t *inputs;         /* node index of each model input */
  size_t input_count, input_capacity;
  bool implicit_input;    /* input 0 was made by nnlib_model_add; compile
                             gives its shape */
  bool branched;          /* some node breaks the chain shape (see
                             nnlib__model_is_chain) */
  size_t output;          /* output node (after compile, or when set) */
  bool output_set;
  uint32_t tag;           /* the high half of this model's nnlib_node values */
  bool compiled;
  nnlib__shape input_shape; /* input 0's, after compile */
  int64_t input_size, output_size;
  int64_t max_batch;
  /* Calls may run sequences shorter than planned ([N, T', F], T' < T):
   * one rank-2 input read only by recurrent layers up to ones returning
   * their last step, or forming the output (nnlib__node's at_steps). */
  bool takes_shorter;
  nnlib_loss loss;
  nnlib_optimizer *optimizer;
  nnlib__rng rng;
  uint64_t seed;
  /* Flat buffers: every parameter and gradient lives in one block each, so
   * optimizers and reductions walk one array. */
  float *params, *grads;
  int64_t param_size;
  /* every layer's buffers (batchnorm running statistics), one block too */
  float *layer_state;
  int64_t layer_state_size;
  nnlib__buffers bufs;      /* activations, workspaces, gradients */
  /* nnlib_model_set_input_gradients: one buffer per input, and views */
  float **input_grads;
  nnlib_tensor *input_grad_views;
  int64_t input_grads_n;    /* batch of the last backward; 0: none yet */
  /* the batch of the last nnlib_model_forward, for backward_output; 0
   * once any other call has used the buffers */
  int64_t forward_n, forward_steps;
  const float *forward_x[NNLIB__MAX_INPUTS]; /* that pass's input data */
  nnlib_tensor output_view;
  bool profiling; /* nnlib_model_set_profiling (profile.c) */
  bool check_numerics; /* nnlib_model_set_check_numerics (numerics.c) */
  /* set before compile: fold nothing into convolutions (the passes as they
   * ran before folding; internal tests compare against them) */
  bool no_folding;
  /* set before compile: fuse no 2x2 pool into a batchnorm (internal tests
   * compare the fused passes against the pool's own) */
  bool no_pool_fusion;
};

/* A fused group (compile.c, fuse_pairs) is a layer node and the one or two
 * nodes after it that its passes run (layer.h, fused_activation and
 * fused_pool). The group's first node, whose layer runs for node v: */
static inline size_t nnlib__fused_root(const nnlib_model *m, size_t v) {
  while (m->nodes[v].layer != NULL && m->nodes[v].layer->fused_away)
    v--;
  return v;
}

/* The group's last node, for its first node v (v itself outside a group):
 * the node whose output and gradient the group's passes write and read. */
static inline size_t nnlib__fused_last(const nnlib_model *m, size_t v) {
  const nnlib_layer *l = m->nodes[v].layer;
  if (l == NULL)
    return v;
  return v + (l->fused_pool != NULL ? 2 : l->fused_activation != NULL ? 1 : 0);
}

/* nnlib_model_compile; without init_weights the parameters and layer
 * buffers stay zero (the model-file loader fills every one of them, so
 * drawing initial weights first would be wasted work). input_shape NULL:
 * every input was declared with its shape. */
nnlib_status nnlib__model_compile(nnlib_model *m, const int64_t *input_shape,
                                  size_t input_rank, int64_t max_batch,
                                  nnlib_loss loss, nnlib_optimizer *opt,
                                  uint64_t seed, bool init_weights);
/* Frees everything compile allocated; the model is uncompiled again. */
void nnlib__model_release(nnlib_model *m);
/* Graph building for the description parser and the model-file loader:
 * nnlib_model_input and nnlib_model_apply by node index. On failure
 * apply frees the layer. */
nnlib_status nnlib__model_add_input(nnlib_model *m, const nnlib__shape *shape,
                                    size_t *node);
nnlib_status nnlib__model_apply(nnlib_model *m, nnlib_layer *layer,
                                const size_t *inputs, size_t count,
                                size_t *node);
nnlib_status nnlib__model_set_output(nnlib_model *m, size_t node);
nnlib_status nnlib__model_set_name(nnlib_model *m, size_t node,
                                   const char *name, size_t length);
/* The node named name[0..length), or -1. */
int64_t nnlib__model_find_name(const nnlib_model *m, const char *name,
                               size_t length);
/* Drops the nodes from `count` on (and their layers): how a description
 * that fails to parse leaves the model as it was. Uncompiled models only. */
void nnlib__model_truncate(nnlib_model *m, size_t count);
/* The model is a chain: one input, every layer reads the node before it
 * and the output is the newest node (1.2's models and files). */
bool nnlib__model_is_chain(const nnlib_model *m);

/* The model is compiled (with a loss for _trainable; `what` names the
 * call in messages). */
nnlib_status nnlib__check_compiled(const nnlib_model *m, const char *what);
nnlib_status nnlib__check_trainable(const nnlib_model *m, const char *what);
/* Checks a call's data tensors against the model: count equal to the
 * input count, each of rank >= 1 with the input's per-sample size, one N
 * for all, 1 <= N <= limit (limit 0: no limit). Fills batch->x, n and
 * steps (the sequence length when shorter than planned, else 0). */
nnlib_status nnlib__check_inputs(const nnlib_model *m,
                                 const nnlib_tensor *const *x, size_t count,
                                 int64_t limit, nnlib__batch *batch);
/* Floats per sample of input k in a call at sequence length steps. */
int64_t nnlib__input_stride(const nnlib_model *m, size_t k, int64_t steps);
/* Floats per sample of node v's output in a call at `steps` (0: planned). */
int64_t nnlib__node_size_at(const nnlib_model *m, size_t v, int64_t steps);
/* Floats per sample of the model's output in a call at `steps`. */
int64_t nnlib__output_size_at(const nnlib_model *m, int64_t steps);
/* Checks a target tensor for the batch and sets target and its kind. */
nnlib_status nnlib__check_target(const nnlib_model *m, const nnlib_tensor *t,
                                 nnlib__batch *batch);
/* Target elements per sample of the batch (its stride). */
int64_t nnlib__target_stride(const nnlib_model *m, const nnlib__batch *b);
/* The loss of output y (n = b->n samples) against the batch's target,
 * dL/dy into dy unless NULL. */
nnlib_status nnlib__batch_loss(const nnlib_model *m, const float *y,
                               const nnlib__batch *b, float *dy,
                               double *loss);

/* The passes (train.c). Forward over batch with a buffer set (in
 * inference mode it reads the model only; rng is the model's in training
 * mode, NULL in inference); *out is the output node's buffer. */
nnlib_status nnlib__forward(const nnlib_model *m, const nnlib__buffers *b,
                            const nnlib__batch *batch, nnlib__rng *rng,
                            const float **out);
/* Backward after a forward over the same batch on the model's own
 * buffers: from the loss of the batch's target (*loss gets it), or from
 * dy_out, a caller's dL/dy, when it is not NULL. */
nnlib_status nnlib__backward(nnlib_model *m, const nnlib__batch *batch,
                             const float *dy_out, double *loss);
/* forward + loss + backward in training mode; the loss must be finite. */
nnlib_status nnlib__gradients(nnlib_model *m, const nnlib__batch *batch,
                              double *loss);
/* One optimizer step: forward, loss, backward and the update (fused into
 * backward for plain SGD). */
nnlib_status nnlib__train_batch(nnlib_model *m, nnlib__batch *batch,
                                double *loss);
/* Inference over any number of samples, in chunks, with a buffer set. */
nnlib_status nnlib__model_predict(const nnlib_model *m, nnlib__buffers *b,
                                  const nnlib_tensor *const *x, size_t count,
                                  nnlib_tensor *y);
/* chunk = samples [start, start + n) of whole. */
void nnlib__batch_chunk(const nnlib_model *m, const nnlib__batch *whole,
                        int64_t start, int64_t n, nnlib__batch *chunk);

/* The description item transformer:D:HEADS[:mlpM][:causal][:dropoutR]
 * (spec_transformer.c): a pre-norm block applied to node x, made of
 * ordinary nodes; *out is its last. */
nnlib_status nnlib__spec_transformer(nnlib_model *m,
                                     const nnlib__spec_item *item, size_t x,
                                     size_t *out);

/* Shorter sequences (sequence.c): marks at_steps and runs_at_steps and
 * sets m->takes_shorter; checks a [N, T', F] input against it. */
void nnlib__plan_sequences(nnlib_model *m);
nnlib_status nnlib__check_sequence_input(const nnlib_model *m, size_t k,
                                         const nnlib_tensor *x,
                                         int64_t *shorter);

#endif /* NNLIB_MODEL_H */
