/* train.c - running a compiled model: forward, loss and backward over one
 * batch, the optimizer step, predict and evaluate (fit is in fit.c).
 * Nothing here allocates. */
#include "nnlib_internal.h"
#include "numerics.h"

#include <math.h>
#include <string.h>

nnlib_status nnlib__check_input(const nnlib_model *m, const nnlib_tensor *x,
                                int64_t limit, int64_t *n, int64_t *steps) {
  NNLIB_CHECK_ARG(x != NULL, "input tensor is NULL");
  /* sequences [N, T, F]: name a wrong length or feature count first */
  int64_t t = 0;
  NNLIB_TRY(nnlib__recurrent_check_input(m, x, &t));
  int64_t batch = x->shape[0];
  int64_t per_sample = x->size / batch;
  int64_t expected = t > 0 ? t * m->input_shape.dims[1] : m->input_size;
  if (per_sample != expected)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "input has %lld features per sample, model expects "
                        "%lld",
                        (long long)per_sample, (long long)expected);
  if (limit > 0 && batch > limit)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "batch of %lld samples exceeds the compiled maximum "
                        "batch of %lld",
                        (long long)batch, (long long)limit);
  *n = batch;
  if (steps != NULL)
    *steps = t;
  return NNLIB_OK;
}

int64_t nnlib__input_stride(const nnlib_tensor *x) {
  return x->size / x->shape[0];
}

int64_t nnlib__size_at_steps(const nnlib_model *m, size_t i,
                             const nnlib__shape *s, int64_t planned,
                             int64_t steps) {
  if (steps == 0 || i >= m->seq_layers || s->rank != 2)
    return planned;
  return steps * s->dims[1]; /* [T, width] per sample at T = steps */
}

int64_t nnlib__output_size_at(const nnlib_model *m, int64_t steps) {
  size_t last = m->layer_count - 1;
  return nnlib__size_at_steps(m, last, &m->layers[last]->out_shape,
                              m->output_size, steps);
}

nnlib_status nnlib__check_target(const nnlib_model *m, const nnlib_tensor *t,
                                 int64_t n, int64_t steps, bool *is_index) {
  int64_t k = nnlib__output_size_at(m, steps);
  NNLIB_CHECK_ARG(t != NULL, "target tensor is NULL");
  if (t->shape[0] != n)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "target has %lld samples, input has %lld",
                        (long long)t->shape[0], (long long)n);
  *is_index = false;
  if (t->size == n * k)
    return NNLIB_OK;
  if (m->loss == NNLIB_LOSS_SOFTMAX_CE && t->size == n) {
    *is_index = true;
    return NNLIB_OK;
  }
  return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                      "target has %lld values per sample, model outputs %lld%s",
                      (long long)(t->size / n), (long long)k,
                      m->loss == NNLIB_LOSS_SOFTMAX_CE
                          ? " (or 1 class index)"
                          : "");
}

static nnlib_status run_layers(const nnlib_model *m, const nnlib__buffers *b,
                               const float *x, int64_t n, nnlib__rng *rng,
                               const float **out) {
  const float *in = x;
  for (size_t i = 0; i < m->layer_count; i++) {
    nnlib_layer *l = m->layers[i];
    if (l->fused_away)
      continue;
    nnlib__run run = {rng != NULL, b->workspace[i], rng, false, 0.0f,
                      i < m->seq_layers ? b->steps : 0};
    /* profiled only on the model's own buffers: the caller owns the model */
    bool timed = m->profiling && b == &m->bufs;
    nnlib__profile_mark mark = {0.0, 0.0};
    if (timed)
      mark = nnlib__profile_start();
    NNLIB_TRY(l->ops->forward(l, &run, in, b->acts[i], n));
    if (timed)
      nnlib__profile_stop(l, false, mark);
    if (m->check_numerics)
      NNLIB_TRY(
          nnlib__numerics_after_forward(m, i, in, b->acts[i], n, b->steps));
    in = b->acts[i];
  }
  *out = in;
  return NNLIB_OK;
}

nnlib_status nnlib__model_run_forward(nnlib_model *m, const float *x,
                                      int64_t n, bool training,
                                      const float **out) {
  return run_layers(m, &m->bufs, x, n, training ? &m->rng : NULL, out);
}

nnlib_status nnlib__model_run_inference(const nnlib_model *m,
                                        const nnlib__buffers *b,
                                        const float *x, int64_t n,
                                        const float **out) {
  return run_layers(m, b, x, n, NULL, out);
}

nnlib_status nnlib__model_run_backward(nnlib_model *m, const float *x,
                                       const float *target,
                                       bool target_is_index, int64_t n,
                                       double *loss) {
  return nnlib__model_run_backward_mode(m, x, target, target_is_index, n,
                                        true, loss);
}

nnlib_status nnlib__model_run_backward_mode(nnlib_model *m, const float *x,
                                            const float *target,
                                            bool target_is_index, int64_t n,
                                            bool training, double *loss) {
  const float *y = m->bufs.acts[m->layer_count - 1];
  float *dy = m->grad_a;
  NNLIB_TRY(nnlib__loss(m->loss, y, target, target_is_index, dy, n,
                        nnlib__output_size_at(m, m->bufs.steps), loss));
  /* a fused update changes the weights during backward: check first */
  if (m->sgd_fused && !isfinite((float)*loss))
    return nnlib__error(NNLIB_ERR_NUMERICAL,
                        "the loss is %g: the weights were left untouched "
                        "(learning rate too high, or NaN/Inf in the data?)",
                        *loss);
  for (size_t i = m->layer_count; i-- > 0;) {
    nnlib_layer *l = m->layers[i];
    if (l->fused_away)
      continue;
    const float *in = i == 0 ? x : m->bufs.acts[i - 1];
    nnlib__run run = {training,     m->bufs.workspace[i],
                      training ? &m->rng : NULL,
                      m->sgd_fused, m->sgd_lr,
                      i < m->seq_layers ? m->bufs.steps : 0};
    nnlib__profile_mark mark = {0.0, 0.0};
    if (m->profiling)
      mark = nnlib__profile_start();
    /* the first layer's input gradient is never used (input_grads[0] is
     * NULL); others may land over this layer's output (model.c) */
    float *dx = m->input_grads[i];
    NNLIB_TRY(l->ops->backward(l, &run, in, m->bufs.acts[i], dy, dx, n));
    if (m->profiling)
      nnlib__profile_stop(l, true, mark);
    if (m->check_numerics)
      NNLIB_TRY(nnlib__numerics_after_backward(m, i, dx, n, m->bufs.steps));
    dy = dx;
  }
  return NNLIB_OK;
}

nnlib_status nnlib__check_trainable(const nnlib_model *m, const char *what) {
  NNLIB_TRY(nnlib__check_compiled(m, what));
  if (m->loss == NNLIB_LOSS_NONE)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "%s: the model was compiled without a loss", what);
  return NNLIB_OK;
}

/* forward + loss + backward on raw buffers; loss must be finite */
static nnlib_status gradients(nnlib_model *m, const float *x, const float *t,
                              bool is_index, int64_t n, double *loss) {
  const float *out;
  NNLIB_TRY(nnlib__model_run_forward(m, x, n, true, &out));
  NNLIB_TRY(nnlib__model_run_backward(m, x, t, is_index, n, loss));
  /* as the float the caller gets: a double loss over FLT_MAX is Inf too */
  if (!isfinite((float)*loss))
    return nnlib__error(NNLIB_ERR_NUMERICAL,
                        "the loss is %g: the weights were left untouched "
                        "(learning rate too high, or NaN/Inf in the data?)",
                        *loss);
  return NNLIB_OK;
}

/* Plain SGD can be folded into backward (p -= lr g inside each layer's
 * weight-gradient GEMM, no separate pass over parameters and gradients)
 * when every layer with parameters supports it. */
static bool sgd_fusable(const nnlib_model *m, float *lr) {
  if (!nnlib__optimizer_is_plain_sgd(m->optimizer, lr))
    return false;
  for (size_t i = 0; i < m->layer_count; i++) {
    const nnlib_layer *l = m->layers[i];
    if (l->param_count > 0 && !l->ops->fuses_sgd)
      return false;
  }
  return true;
}

/* One plain-SGD step with the update fused into backward. The gradient
 * tensors are not written (nnlib_model_backward still fills them). */
static nnlib_status fused_sgd_batch(nnlib_model *m, const float *x,
                                    const float *t, bool is_index, int64_t n,
                                    float lr, double *loss) {
  m->sgd_fused = true;
  m->sgd_lr = lr;
  nnlib_status st = gradients(m, x, t, is_index, n, loss);
  m->sgd_fused = false;
  if (st == NNLIB_OK)
    nnlib__optimizer_count_update(m->optimizer);
  return st;
}

nnlib_status nnlib__train_batch(nnlib_model *m, const float *x, const float *t,
                               bool is_index, int64_t n, double *loss) {
  float lr;
  /* the numerics check reads the gradients, which fused SGD never writes */
  if (!m->check_numerics && sgd_fusable(m, &lr))
    return fused_sgd_batch(m, x, t, is_index, n, lr, loss);
  NNLIB_TRY(gradients(m, x, t, is_index, n, loss));
  nnlib__optimizer_update(m->optimizer, m->params, m->grads, m->param_size);
  return m->check_numerics ? nnlib__numerics_after_update(m) : NNLIB_OK;
}

static nnlib_status batch_args(nnlib_model *m, const nnlib_tensor *x,
                               const nnlib_tensor *target, int64_t *n,
                               bool *is_index, const char *what) {
  NNLIB_TRY(nnlib__check_trainable(m, what));
  NNLIB_TRY(nnlib__check_input(m, x, m->max_batch, n, &m->bufs.steps));
  return nnlib__check_target(m, target, *n, m->bufs.steps, is_index);
}

nnlib_status nnlib_model_forward(nnlib_model *m, const nnlib_tensor *x,
                                 const nnlib_tensor **output) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_forward"));
  NNLIB_CHECK_ARG(output != NULL, "nnlib_model_forward: output is NULL");
  int64_t n = 0;
  NNLIB_TRY(nnlib__check_input(m, x, m->max_batch, &n, &m->bufs.steps));
  const float *out;
  NNLIB_TRY(nnlib__model_run_forward(m, x->data, n, true, &out));
  const nnlib__shape *s = &m->layers[m->layer_count - 1]->out_shape;
  int64_t shape[NNLIB_MAX_RANK];
  shape[0] = n;
  size_t rank = s->rank + 1 > NNLIB_MAX_RANK ? NNLIB_MAX_RANK : s->rank + 1;
  for (size_t i = 1; i < rank; i++)
    shape[i] = s->dims[i - 1];
  if (m->bufs.steps > 0 && m->seq_layers == m->layer_count && s->rank == 2)
    shape[1] = m->bufs.steps; /* a sequence output [T', H] */
  nnlib__tensor_view(&m->output_view, (float *)out, shape, rank);
  *output = &m->output_view;
  return NNLIB_OK;
}

nnlib_status nnlib_model_backward(nnlib_model *m, const nnlib_tensor *x,
                                  const nnlib_tensor *target, float *loss) {
  int64_t n = 0;
  bool is_index = false;
  NNLIB_TRY(batch_args(m, x, target, &n, &is_index, "nnlib_model_backward"));
  double l;
  nnlib_status st = gradients(m, x->data, target->data, is_index, n, &l);
  if (loss != NULL)
    *loss = (float)l;
  return st;
}

nnlib_status nnlib_model_step(nnlib_model *m, const nnlib_tensor *x,
                              const nnlib_tensor *target, float *loss) {
  int64_t n = 0;
  bool is_index = false;
  NNLIB_TRY(batch_args(m, x, target, &n, &is_index, "nnlib_model_step"));
  if (m->optimizer == NULL)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_model_step: the model has no optimizer");
  double l = NAN;
  nnlib_status st =
      nnlib__train_batch(m, x->data, target->data, is_index, n, &l);
  if (loss != NULL)
    *loss = (float)l;
  return st;
}

nnlib_status nnlib_optimizer_step(nnlib_model *m) {
  NNLIB_TRY(nnlib__check_trainable(m, "nnlib_optimizer_step"));
  if (m->optimizer == NULL)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "nnlib_optimizer_step: the model has no optimizer");
  nnlib__optimizer_update(m->optimizer, m->params, m->grads, m->param_size);
  return m->check_numerics ? nnlib__numerics_after_update(m) : NNLIB_OK;
}

/* ------------------------------------------------- predict and evaluate */

nnlib_status nnlib__model_predict(const nnlib_model *m, nnlib__buffers *b,
                                  const nnlib_tensor *x, nnlib_tensor *y) {
  NNLIB_CHECK_ARG(y != NULL, "predict: output tensor is NULL");
  int64_t samples = 0;
  NNLIB_TRY(nnlib__check_input(m, x, 0, &samples, &b->steps));
  int64_t stride = nnlib__input_stride(x);
  int64_t k = nnlib__output_size_at(m, b->steps);
  if (y->size != samples * k)
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "predict: output tensor has %lld elements, %lld "
                        "samples of %lld outputs need %lld",
                        (long long)y->size, (long long)samples, (long long)k,
                        (long long)(samples * k));
  for (int64_t start = 0; start < samples; start += m->max_batch) {
    int64_t n = samples - start < m->max_batch ? samples - start : m->max_batch;
    const float *out;
    NNLIB_TRY(
        nnlib__model_run_inference(m, b, x->data + start * stride, n, &out));
    memcpy(y->data + start * k, out, (size_t)(n * k) * sizeof(float));
  }
  return NNLIB_OK;
}

nnlib_status nnlib_model_predict(nnlib_model *m, const nnlib_tensor *x,
                                 nnlib_tensor *y) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_predict"));
  return nnlib__model_predict(m, &m->bufs, x, y);
}

static int64_t argmax(const float *v, int64_t k) {
  int64_t best = 0;
  for (int64_t i = 1; i < k; i++)
    if (v[i] > v[best])
      best = i;
  return best;
}

/* Correct predictions among n rows of outputs y against targets t. */
static int64_t count_correct(const nnlib_model *m, const float *y,
                             const float *t, bool is_index, int64_t n,
                             int64_t k) {
  int64_t correct = 0;
  for (int64_t i = 0; i < n; i++) {
    const float *yr = y + i * k;
    if (k == 1) {
      float threshold = m->loss == NNLIB_LOSS_BCE_LOGITS ? 0.0f : 0.5f;
      correct += (yr[0] > threshold) == (t[i] > 0.5f);
    } else if (is_index) {
      correct += argmax(yr, k) == (int64_t)t[i];
    } else {
      correct += argmax(yr, k) == argmax(t + i * k, k);
    }
  }
  return correct;
}

nnlib_status nnlib_model_evaluate(nnlib_model *m, const nnlib_tensor *x,
                                  const nnlib_tensor *target, float *loss,
                                  float *accuracy) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_evaluate"));
  int64_t samples = 0;
  bool is_index = false;
  NNLIB_TRY(nnlib__check_input(m, x, 0, &samples, &m->bufs.steps));
  NNLIB_TRY(
      nnlib__check_target(m, target, samples, m->bufs.steps, &is_index));
  int64_t k = nnlib__output_size_at(m, m->bufs.steps);
  int64_t stride = nnlib__input_stride(x);
  if (loss != NULL && m->loss == NNLIB_LOSS_NONE)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "evaluate: the model was compiled without a loss");
  int64_t t_stride = is_index ? 1 : k, correct = 0;
  double loss_sum = 0.0;
  for (int64_t start = 0; start < samples; start += m->max_batch) {
    int64_t n = samples - start < m->max_batch ? samples - start : m->max_batch;
    const float *out, *t = target->data + start * t_stride;
    NNLIB_TRY(nnlib__model_run_forward(m, x->data + start * stride, n,
                                       false, &out));
    if (loss != NULL) {
      double l;
      NNLIB_TRY(nnlib__loss(m->loss, out, t, is_index, NULL, n, k, &l));
      loss_sum += l * (double)n;
    }
    correct += count_correct(m, out, t, is_index, n, k);
  }
  if (loss != NULL)
    *loss = (float)(loss_sum / (double)samples);
  if (accuracy != NULL)
    *accuracy = (float)((double)correct / (double)samples);
  return NNLIB_OK;
}
