/* train.c - the public calls that run a compiled model on data: check the
 * data against the model's inputs, gather it into one nnlib__batch, and
 * run the passes (passes.c) for forward, backward, step, predict and
 * evaluate (fit is in fit.c). Nothing here allocates. */
#include "nnlib_internal.h"
#include "numerics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------- checking data */

static nnlib_status check_count(const nnlib_model *m,
                                const nnlib_tensor *const *x, size_t count) {
  NNLIB_CHECK_ARG(x != NULL, "input tensor list is NULL");
  if (count != m->input_count)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "%zu input tensor%s given, the model has %zu input%s",
                        count, count == 1 ? "" : "s", m->input_count,
                        m->input_count == 1 ? "" : "s");
  for (size_t k = 0; k < count; k++)
    NNLIB_CHECK_ARG(x[k] != NULL, "input tensor %zu is NULL", k);
  return NNLIB_OK;
}

/* "input" for a one-input model, else "input 1 ('vec')" or "input 1". */
static const char *input_label(const nnlib_model *m, size_t k, char *buf,
                               size_t size) {
  const char *name = m->nodes[m->inputs[k]].name;
  if (m->input_count == 1)
    snprintf(buf, size, "input");
  else if (name != NULL)
    snprintf(buf, size, "input %zu ('%s')", k, name);
  else
    snprintf(buf, size, "input %zu", k);
  return buf;
}

static const char *dtype_name(nnlib_dtype dtype) {
  return dtype == NNLIB_DTYPE_INT32 ? "int32" : "float32";
}

static nnlib_status check_one_input(const nnlib_model *m, size_t k,
                                    const nnlib_tensor *x, int64_t *steps) {
  char label[64];
  nnlib_dtype want = m->nodes[m->inputs[k]].holds_ids ? NNLIB_DTYPE_INT32
                                                      : NNLIB_DTYPE_FLOAT32;
  if (x->dtype != want)
    return nnlib__error(NNLIB_ERR_DTYPE,
                        "%s is a %s tensor, the model takes %s%s",
                        input_label(m, k, label, sizeof label),
                        dtype_name(x->dtype), dtype_name(want),
                        want == NNLIB_DTYPE_INT32
                            ? " token ids (nnlib_tensor_create_int32)"
                            : " features");
  /* sequences [N, T, F]: name a wrong length or feature count first */
  int64_t t = 0;
  NNLIB_TRY(nnlib__check_sequence_input(m, k, x, &t));
  int64_t per_sample = x->size / x->shape[0];
  int64_t expected = nnlib__input_stride(m, k, t);
  if (want == NNLIB_DTYPE_INT32 && per_sample > expected)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "%s has %lld token ids per sample, longer than the "
                        "compiled context of %lld",
                        input_label(m, k, label, sizeof label),
                        (long long)per_sample, (long long)expected);
  if (per_sample != expected)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "%s has %lld features per sample, model expects "
                        "%lld",
                        input_label(m, k, label, sizeof label),
                        (long long)per_sample, (long long)expected);
  if (t > 0)
    *steps = t;
  return NNLIB_OK;
}

nnlib_status nnlib__check_inputs(const nnlib_model *m,
                                 const nnlib_tensor *const *x, size_t count,
                                 int64_t limit, nnlib__batch *batch) {
  NNLIB_TRY(check_count(m, x, count));
  memset(batch, 0, sizeof *batch);
  int64_t n = x[0]->shape[0];
  for (size_t k = 0; k < count; k++) {
    char label[64];
    if (x[k]->shape[0] != n)
      return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                          "%s has %lld samples, input 0 has %lld",
                          input_label(m, k, label, sizeof label),
                          (long long)x[k]->shape[0], (long long)n);
    NNLIB_TRY(check_one_input(m, k, x[k], &batch->steps));
    batch->x[k] = x[k]->data;
  }
  if (limit > 0 && n > limit)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "batch of %lld samples exceeds the compiled maximum "
                        "batch of %lld",
                        (long long)n, (long long)limit);
  batch->n = n;
  return NNLIB_OK;
}

/* Index targets are checked with the target, before anything runs: a
 * pass that stopped at the loss would have drawn dropout masks from the
 * model's generator, fit would have trained on the batches before, and
 * evaluate without a loss would count a wrong index as a wrong answer. */
static nnlib_status check_class_indices(const nnlib_model *m,
                                        const nnlib__batch *b) {
  if (!b->target_is_index)
    return NNLIB_OK;
  int64_t k = nnlib__output_size_at(m, b->steps) / b->target_rows;
  nnlib__target t = {b->target, true, b->target_is_int32};
  return nnlib__check_index_targets(&t, b->n * b->target_rows, k);
}

nnlib_status nnlib__check_target(const nnlib_model *m, const nnlib_tensor *t,
                                 nnlib__batch *batch) {
  int64_t n = batch->n, k = nnlib__output_size_at(m, batch->steps);
  NNLIB_CHECK_ARG(t != NULL, "target tensor is NULL");
  if (t->shape[0] != n)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "target has %lld samples, input has %lld",
                        (long long)t->shape[0], (long long)n);
  batch->target = t->data;
  batch->target_is_index = false;
  batch->target_is_int32 = t->dtype == NNLIB_DTYPE_INT32;
  batch->target_rows = 1;
  bool ce = m->loss == NNLIB_LOSS_SOFTMAX_CE;
  if (t->size == n * k && !batch->target_is_int32)
    return NNLIB_OK;
  /* logits [T, V] per sample: T class indices, one per position */
  const nnlib__shape *out = &m->nodes[m->output].shape;
  int64_t rows = out->rank >= 2 ? k / out->dims[out->rank - 1] : 1;
  if (ce && (t->size == n || t->size == n * rows)) {
    batch->target_is_index = true;
    batch->target_rows = t->size / n;
    return check_class_indices(m, batch);
  }
  if (batch->target_is_int32 && !ce)
    return nnlib__error(NNLIB_ERR_DTYPE,
                        "target is an int32 tensor: only softmax_ce takes "
                        "class indices, this loss takes float32 targets");
  return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                      "target has %lld values per sample, model outputs %lld%s",
                      (long long)(t->size / n), (long long)k,
                      ce ? (rows > 1 ? " (or 1 class index, or one per "
                                       "position)"
                                     : " (or 1 class index)")
                         : "");
}

int64_t nnlib__target_stride(const nnlib_model *m, const nnlib__batch *b) {
  return b->target_is_index ? b->target_rows
                            : nnlib__output_size_at(m, b->steps);
}

nnlib_status nnlib__batch_loss(const nnlib_model *m, const float *y,
                               const nnlib__batch *b, float *dy,
                               double *loss) {
  int64_t k = nnlib__output_size_at(m, b->steps), rows = b->n;
  if (b->target_is_index) { /* one softmax row per index */
    rows = b->n * b->target_rows;
    k /= b->target_rows;
  }
  nnlib__target t = {b->target, b->target_is_index, b->target_is_int32};
  return nnlib__loss(m->loss, y, t, dy, rows, k, loss);
}

void nnlib__batch_chunk(const nnlib_model *m, const nnlib__batch *whole,
                        int64_t start, int64_t n, nnlib__batch *chunk) {
  *chunk = *whole;
  for (size_t k = 0; k < m->input_count; k++)
    chunk->x[k] = whole->x[k] + start * nnlib__input_stride(m, k, whole->steps);
  if (whole->target != NULL)
    chunk->target = whole->target + start * nnlib__target_stride(m, whole);
  chunk->n = n;
}

nnlib_status nnlib__check_trainable(const nnlib_model *m, const char *what) {
  NNLIB_TRY(nnlib__check_compiled(m, what));
  if (m->loss == NNLIB_LOSS_NONE)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "%s: the model was compiled without a loss", what);
  return NNLIB_OK;
}

static nnlib_status batch_args(nnlib_model *m, const nnlib_tensor *const *x,
                               size_t count, const nnlib_tensor *target,
                               nnlib__batch *batch, const char *what) {
  NNLIB_TRY(nnlib__check_trainable(m, what));
  NNLIB_TRY(nnlib__check_inputs(m, x, count, m->max_batch, batch));
  NNLIB_TRY(nnlib__check_target(m, target, batch));
  batch->training = true;
  return NNLIB_OK;
}

/* --------------------------------------------- forward, backward, step */

nnlib_status nnlib_model_forward_inputs(nnlib_model *m,
                                        const nnlib_tensor *const *x,
                                        size_t count,
                                        const nnlib_tensor **output) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_forward"));
  NNLIB_CHECK_ARG(output != NULL, "nnlib_model_forward: output is NULL");
  nnlib__batch batch;
  NNLIB_TRY(nnlib__check_inputs(m, x, count, m->max_batch, &batch));
  m->forward_n = 0; /* a pass that runs spends the pending one */
  batch.training = true;
  const float *out;
  NNLIB_TRY(nnlib__forward(m, &m->bufs, &batch, &m->rng, &out));
  const nnlib__node *o = &m->nodes[m->output];
  int64_t shape[NNLIB_MAX_RANK];
  shape[0] = batch.n;
  size_t rank = o->shape.rank + 1 > NNLIB_MAX_RANK ? NNLIB_MAX_RANK
                                                   : o->shape.rank + 1;
  for (size_t i = 1; i < rank; i++)
    shape[i] = o->shape.dims[i - 1];
  if (batch.steps > 0 && o->at_steps)
    shape[1] = batch.steps; /* a sequence output [T', H] */
  nnlib__tensor_view(&m->output_view, (float *)out, shape, rank);
  *output = &m->output_view;
  m->forward_n = batch.n;
  m->forward_steps = batch.steps;
  memcpy(m->forward_x, batch.x, sizeof m->forward_x);
  return NNLIB_OK;
}

nnlib_status nnlib_model_forward(nnlib_model *m, const nnlib_tensor *x,
                                 const nnlib_tensor **output) {
  return nnlib_model_forward_inputs(m, &x, 1, output);
}

/* *loss after a pass: the loss on success and on NNLIB_ERR_NUMERICAL (the
 * loss computed: not finite when the loss failed, NaN when the numerics
 * check stopped the pass before the loss), untouched after any other
 * failure. */
static nnlib_status report_loss(nnlib_status st, double l, float *loss) {
  if (loss != NULL && (st == NNLIB_OK || st == NNLIB_ERR_NUMERICAL))
    *loss = (float)l;
  return st;
}

nnlib_status nnlib_model_backward_inputs(nnlib_model *m,
                                         const nnlib_tensor *const *x,
                                         size_t count,
                                         const nnlib_tensor *target,
                                         float *loss) {
  nnlib__batch batch;
  NNLIB_TRY(batch_args(m, x, count, target, &batch, "nnlib_model_backward"));
  m->forward_n = 0;
  double l = NAN;
  nnlib_status st = nnlib__gradients(m, &batch, &l);
  return report_loss(st, l, loss);
}

nnlib_status nnlib_model_backward(nnlib_model *m, const nnlib_tensor *x,
                                  const nnlib_tensor *target, float *loss) {
  return nnlib_model_backward_inputs(m, &x, 1, target, loss);
}

nnlib_status nnlib_model_step_inputs(nnlib_model *m,
                                     const nnlib_tensor *const *x,
                                     size_t count, const nnlib_tensor *target,
                                     float *loss) {
  nnlib__batch batch;
  NNLIB_TRY(batch_args(m, x, count, target, &batch, "nnlib_model_step"));
  if (m->optimizer == NULL)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_step: the model has no optimizer");
  m->forward_n = 0;
  double l = NAN;
  nnlib_status st = nnlib__train_batch(m, &batch, &l);
  return report_loss(st, l, loss);
}

nnlib_status nnlib_model_step(nnlib_model *m, const nnlib_tensor *x,
                              const nnlib_tensor *target, float *loss) {
  return nnlib_model_step_inputs(m, &x, 1, target, loss);
}

nnlib_status nnlib_model_apply_gradients(nnlib_model *m) {
  NNLIB_TRY(nnlib__check_trainable(m, "nnlib_model_apply_gradients"));
  if (m->optimizer == NULL)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_apply_gradients: the model has no "
                        "optimizer");
  nnlib__optimizer_update(m->optimizer, m->params, m->grads, m->param_size);
  return m->check_numerics ? nnlib__numerics_after_update(m) : NNLIB_OK;
}

/* The 1.0 name (deprecated: it acts on a model). */
nnlib_status nnlib_optimizer_step(nnlib_model *m) {
  return nnlib_model_apply_gradients(m);
}

nnlib_status nnlib_model_backward_output(nnlib_model *m,
                                         const nnlib_tensor *output_grad) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_backward_output"));
  NNLIB_CHECK_ARG(output_grad != NULL,
                  "nnlib_model_backward_output: output_grad is NULL");
  if (output_grad->dtype != NNLIB_DTYPE_FLOAT32)
    return nnlib__error(NNLIB_ERR_DTYPE,
                        "nnlib_model_backward_output: output_grad is int32, "
                        "gradients are float32");
  if (m->forward_n == 0)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_backward_output: no forward pass to go "
                        "back through (call nnlib_model_forward first; any "
                        "other call on the model spends it)");
  nnlib__batch batch;
  memset(&batch, 0, sizeof batch);
  memcpy(batch.x, m->forward_x, sizeof batch.x); /* backward reads them */
  batch.n = m->forward_n;
  batch.steps = m->forward_steps;
  batch.training = true;
  int64_t k = nnlib__output_size_at(m, batch.steps);
  if (output_grad->shape[0] != batch.n || output_grad->size != batch.n * k)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "nnlib_model_backward_output: output_grad has %lld "
                        "elements, the forward pass gave %lld samples of %lld "
                        "outputs",
                        (long long)output_grad->size, (long long)batch.n,
                        (long long)k);
  double unused;
  m->forward_n = 0; /* backward reuses spent activations: once only */
  return nnlib__backward(m, &batch, output_grad->data, &unused);
}

/* -------------------------------------------------------- input gradients */

nnlib_status nnlib_model_set_input_gradients(nnlib_model *m, int on) {
  NNLIB_CHECK_ARG(m != NULL, "nnlib_model_set_input_gradients: model is NULL");
  NNLIB_CHECK_ARG(on == 0 || on == 1,
                  "nnlib_model_set_input_gradients: on is %d, must be 0 or 1",
                  on);
  if (on == 0 || m->input_grads != NULL) {
    if (on == 0 && m->input_grads != NULL) {
      for (size_t k = 0; k < m->input_count; k++)
        nnlib__free(m->input_grads[k]);
      nnlib__free(m->input_grads);
      nnlib__free(m->input_grad_views);
      m->input_grads = NULL;
      m->input_grad_views = NULL;
    }
    m->input_grads_n = 0;
    return NNLIB_OK;
  }
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_set_input_gradients"));
  m->input_grads = nnlib__calloc(m->input_count, sizeof *m->input_grads);
  m->input_grad_views =
      nnlib__calloc(m->input_count, sizeof *m->input_grad_views);
  bool ok = m->input_grads != NULL && m->input_grad_views != NULL;
  for (size_t k = 0; ok && k < m->input_count; k++) {
    int64_t size = m->nodes[m->inputs[k]].size * m->max_batch;
    m->input_grads[k] = nnlib__calloc((size_t)size, sizeof(float));
    ok = m->input_grads[k] != NULL;
  }
  if (!ok) {
    if (m->input_grads == NULL) {
      nnlib__free(m->input_grad_views);
      m->input_grad_views = NULL;
    } else {
      nnlib_model_set_input_gradients(m, 0);
    }
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_model_set_input_gradients: no memory");
  }
  m->input_grads_n = 0;
  return NNLIB_OK;
}

nnlib_status nnlib_model_get_input_gradient(nnlib_model *m, size_t input,
                                            const nnlib_tensor **grad) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_get_input_gradient"));
  NNLIB_CHECK_ARG(grad != NULL, "nnlib_model_get_input_gradient: grad is NULL");
  if (input >= m->input_count)
    return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                        "nnlib_model_get_input_gradient: input %zu requested, "
                        "the model has %zu",
                        input, m->input_count);
  if (m->input_grads == NULL || m->input_grads_n == 0)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_get_input_gradient: %s",
                        m->input_grads == NULL
                            ? "input gradients are off (call "
                              "nnlib_model_set_input_gradients first)"
                            : "no backward pass ran since they were switched "
                              "on");
  const nnlib__shape *s = &m->nodes[m->inputs[input]].shape;
  int64_t shape[NNLIB_MAX_RANK];
  shape[0] = m->input_grads_n;
  for (size_t i = 0; i < s->rank; i++)
    shape[i + 1] = s->dims[i];
  nnlib__tensor_view(&m->input_grad_views[input], m->input_grads[input], shape,
                     s->rank + 1);
  *grad = &m->input_grad_views[input];
  return NNLIB_OK;
}

/* ------------------------------------------------- predict and evaluate */

/* predict's arguments: the inputs into *whole, and an output tensor of
 * their samples' outputs. */
static nnlib_status predict_args(const nnlib_model *m,
                                 const nnlib_tensor *const *x, size_t count,
                                 const nnlib_tensor *y, nnlib__batch *whole) {
  NNLIB_CHECK_ARG(y != NULL, "predict: output tensor is NULL");
  if (y->dtype != NNLIB_DTYPE_FLOAT32)
    return nnlib__error(NNLIB_ERR_DTYPE,
                        "predict: the output tensor is int32, outputs are "
                        "float32");
  NNLIB_TRY(nnlib__check_inputs(m, x, count, 0, whole));
  whole->folded = true; /* nothing goes back through this pass */
  int64_t samples = whole->n, k = nnlib__output_size_at(m, whole->steps);
  if (y->size != samples * k)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "predict: output tensor has %lld elements, %lld "
                        "samples of %lld outputs need %lld",
                        (long long)y->size, (long long)samples, (long long)k,
                        (long long)(samples * k));
  return NNLIB_OK;
}

/* The checked batch through the model, max_batch samples at a time. */
static nnlib_status predict_batch(const nnlib_model *m, nnlib__buffers *b,
                                  const nnlib__batch *whole, nnlib_tensor *y) {
  nnlib__batch chunk;
  int64_t samples = whole->n, k = nnlib__output_size_at(m, whole->steps);
  for (int64_t start = 0; start < samples; start += m->max_batch) {
    int64_t n = samples - start < m->max_batch ? samples - start : m->max_batch;
    nnlib__batch_chunk(m, whole, start, n, &chunk);
    const float *out;
    NNLIB_TRY(nnlib__forward(m, b, &chunk, NULL, &out));
    memcpy(y->data + start * k, out, (size_t)(n * k) * sizeof(float));
  }
  return NNLIB_OK;
}

nnlib_status nnlib__model_predict(const nnlib_model *m, nnlib__buffers *b,
                                  const nnlib_tensor *const *x, size_t count,
                                  nnlib_tensor *y) {
  nnlib__batch whole;
  NNLIB_TRY(predict_args(m, x, count, y, &whole));
  return predict_batch(m, b, &whole, y);
}

nnlib_status nnlib_model_predict_inputs(nnlib_model *m,
                                        const nnlib_tensor *const *x,
                                        size_t count, nnlib_tensor *y) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_predict"));
  nnlib__batch whole;
  NNLIB_TRY(predict_args(m, x, count, y, &whole));
  m->forward_n = 0; /* a pass that runs spends the pending one */
  return predict_batch(m, &m->bufs, &whole, y);
}

nnlib_status nnlib_model_predict(nnlib_model *m, const nnlib_tensor *x,
                                 nnlib_tensor *y) {
  return nnlib_model_predict_inputs(m, &x, 1, y);
}

static int64_t argmax(const float *v, int64_t k) {
  int64_t best = 0;
  for (int64_t i = 1; i < k; i++)
    if (v[i] > v[best])
      best = i;
  return best;
}

/* Correct predictions among the rows of outputs y against the batch's
 * targets: samples, or the positions of index targets over sequences. */
static int64_t count_correct(const nnlib_model *m, const float *y,
                             const nnlib__batch *b, int64_t k) {
  int64_t correct = 0;
  const float *t = b->target;
  if (b->target_is_index) {
    nnlib__target target = {t, true, b->target_is_int32};
    int64_t rows = b->n * b->target_rows, classes = k / b->target_rows;
    for (int64_t r = 0; r < rows; r++)
      correct += (double)argmax(y + r * classes, classes) ==
                 nnlib__target_index(&target, r);
    return correct;
  }
  for (int64_t i = 0; i < b->n; i++) {
    const float *yr = y + i * k;
    if (k == 1) {
      float threshold = m->loss == NNLIB_LOSS_BCE_LOGITS ? 0.0f : 0.5f;
      correct += (yr[0] > threshold) == (t[i] > 0.5f);
    } else {
      correct += argmax(yr, k) == argmax(t + i * k, k);
    }
  }
  return correct;
}

nnlib_status nnlib_model_evaluate_inputs(nnlib_model *m,
                                         const nnlib_tensor *const *x,
                                         size_t count,
                                         const nnlib_tensor *target,
                                         float *loss, float *accuracy) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_evaluate"));
  nnlib__batch whole, chunk;
  NNLIB_TRY(nnlib__check_inputs(m, x, count, 0, &whole));
  NNLIB_TRY(nnlib__check_target(m, target, &whole));
  whole.folded = true;
  if (loss != NULL && m->loss == NNLIB_LOSS_NONE)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "evaluate: the model was compiled without a loss");
  m->forward_n = 0;
  int64_t samples = whole.n, k = nnlib__output_size_at(m, whole.steps);
  int64_t correct = 0, rows = samples * (whole.target_is_index
                                             ? whole.target_rows
                                             : 1);
  double loss_sum = 0.0;
  for (int64_t start = 0; start < samples; start += m->max_batch) {
    int64_t n = samples - start < m->max_batch ? samples - start : m->max_batch;
    nnlib__batch_chunk(m, &whole, start, n, &chunk);
    const float *out;
    NNLIB_TRY(nnlib__forward(m, &m->bufs, &chunk, NULL, &out));
    if (loss != NULL) {
      double l;
      NNLIB_TRY(nnlib__batch_loss(m, out, &chunk, NULL, &l));
      loss_sum += l * (double)n;
    }
    correct += count_correct(m, out, &chunk, k);
  }
  if (loss != NULL)
    *loss = (float)(loss_sum / (double)samples);
  if (accuracy != NULL)
    *accuracy = (float)((double)correct / (double)rows);
  return NNLIB_OK;
}

nnlib_status nnlib_model_evaluate(nnlib_model *m, const nnlib_tensor *x,
                                  const nnlib_tensor *target, float *loss,
                                  float *accuracy) {
  return nnlib_model_evaluate_inputs(m, &x, 1, target, loss, accuracy);
}
