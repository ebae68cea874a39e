/* gradcheck.c - backpropagated gradients against central finite differences
 *   g_fd = (L(p + h e) - L(p - h e)) / 2h
 * per scalar, or along one random direction d for all parameters at once:
 *   g_bp . d  against  (L(p + h d) - L(p - h d)) / 2h                      */
#include "nnlib_internal.h"

#include <math.h>
#include <string.h>

nnlib_status nnlib_gradcheck_options_init_size(nnlib_gradcheck_options *o,
                                               size_t struct_size) {
  nnlib_gradcheck_options d;
  memset(&d, 0, sizeof d);
  d.step = 1e-2f;
  d.random_direction = 0;
  d.seed = 1;
  return nnlib__init_options(o, struct_size, &d, sizeof d,
                             "nnlib_gradcheck_options_init");
}

/* The entry point of programs built against 1.0-1.2 headers (the header's
 * macro of this name passes the caller's sizeof instead); the parentheses
 * keep the macro out. */
nnlib_status(nnlib_gradcheck_options_init)(nnlib_gradcheck_options *o) {
  return nnlib_gradcheck_options_init_size(
      o, NNLIB__SIZE_THROUGH(nnlib_gradcheck_options, inference));
}

typedef struct probe {
  nnlib_model *m;
  nnlib__batch batch; /* training set by the inference option */
  nnlib__rng start;   /* every pass draws from here: one dropout mask */
} probe;

static nnlib_status loss_at(const probe *p, double *loss) {
  const float *out;
  const nnlib__batch *b = &p->batch;
  p->m->rng = p->start;
  NNLIB_TRY(nnlib__forward(p->m, &p->m->bufs, b,
                           b->training ? &p->m->rng : NULL, &out));
  return nnlib__batch_loss(p->m, out, b, NULL, loss);
}

static double rel_error(double diff_sq, double a_sq, double b_sq) {
  double denom = sqrt(a_sq) + sqrt(b_sq);
  return sqrt(diff_sq) / (denom > 1e-12 ? denom : 1e-12);
}

/* Worst normwise relative error over the parameter tensors. */
static nnlib_status check_every_scalar(const probe *p, const float *g_bp,
                                       float h, double *worst) {
  nnlib_model *m = p->m;
  *worst = 0.0;
  int64_t offset = 0;
  for (size_t li = 0; li < m->layer_count; li++) {
    const nnlib_layer *l = m->layers[li];
    for (size_t pi = 0; pi < l->param_count; pi++) {
      int64_t size = l->params[pi].size;
      double diff_sq = 0.0, a_sq = 0.0, b_sq = 0.0;
      for (int64_t j = offset; j < offset + size; j++) {
        float saved = m->params[j];
        double plus = 0.0, minus = 0.0; /* read only once both are in */
        m->params[j] = saved + h;
        nnlib_status st = loss_at(p, &plus);
        m->params[j] = saved - h;
        if (st == NNLIB_OK)
          st = loss_at(p, &minus);
        m->params[j] = saved;
        NNLIB_TRY(st);
        double fd = (plus - minus) / (2.0 * (double)h);
        diff_sq += (g_bp[j] - fd) * (g_bp[j] - fd);
        a_sq += (double)g_bp[j] * g_bp[j];
        b_sq += fd * fd;
      }
      double e = rel_error(diff_sq, a_sq, b_sq);
      if (e > *worst || isnan(e))
        *worst = e;
      offset += size;
    }
  }
  return NNLIB_OK;
}

static nnlib_status check_direction(const probe *p, const float *g_bp,
                                    float *saved, float h, uint64_t seed,
                                    double *err) {
  nnlib_model *m = p->m;
  int64_t size = m->param_size;
  nnlib__rng rng;
  nnlib__rng_seed(&rng, seed);
  /* direction of +-1 entries: every parameter moves by exactly h */
  float *dir = saved + size;
  double analytic = 0.0;
  for (int64_t j = 0; j < size; j++) {
    dir[j] = (nnlib__rng_next(&rng) >> 63) ? 1.0f : -1.0f;
    analytic += (double)g_bp[j] * dir[j];
  }
  double plus = 0.0, minus = 0.0; /* read only once both are in */
  for (int64_t j = 0; j < size; j++)
    m->params[j] = saved[j] + h * dir[j];
  nnlib_status st = loss_at(p, &plus);
  for (int64_t j = 0; j < size; j++)
    m->params[j] = saved[j] - h * dir[j];
  if (st == NNLIB_OK)
    st = loss_at(p, &minus);
  memcpy(m->params, saved, (size_t)size * sizeof(float));
  NNLIB_TRY(st);
  double fd = (plus - minus) / (2.0 * (double)h);
  *err = rel_error((analytic - fd) * (analytic - fd), analytic * analytic,
                   fd * fd);
  return NNLIB_OK;
}

nnlib_status nnlib_model_gradcheck_inputs(
    nnlib_model *m, const nnlib_tensor *const *x, size_t count,
    const nnlib_tensor *target, const nnlib_gradcheck_options *options,
    double *max_rel_error) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_gradcheck"));
  NNLIB_CHECK_ARG(max_rel_error != NULL, "gradcheck: max_rel_error is NULL");
  if (m->loss == NNLIB_LOSS_NONE)
    return nnlib__error(NNLIB_ERR_WRONG_STATE,
                        "gradcheck: the model was compiled without a loss");
  nnlib_gradcheck_options o;
  nnlib_gradcheck_options_init(&o);
  NNLIB_TRY(nnlib__read_options(&o, sizeof o, options,
                                "nnlib_gradcheck_options"));
  NNLIB_CHECK_ARG(isfinite(o.step) && o.step > 0.0f,
                  "gradcheck: step %g must be > 0", (double)o.step);
  NNLIB_CHECK_ARG(o.inference == 0 || o.inference == 1,
                  "gradcheck: inference is %d, must be 0 or 1", o.inference);
  probe p;
  p.m = m;
  p.start = m->rng;
  NNLIB_TRY(nnlib__check_inputs(m, x, count, m->max_batch, &p.batch));
  NNLIB_TRY(nnlib__check_target(m, target, &p.batch));
  p.batch.training = o.inference == 0;
  /* g_bp, the saved parameters, the direction, the caller's gradients,
   * the saved layer buffers */
  size_t floats = (size_t)m->param_size * 4 + (size_t)m->layer_state_size;
  float *work = nnlib__calloc(floats + 1, sizeof(float));
  if (work == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "gradcheck: no memory");
  m->forward_n = 0; /* the check's passes spend a pending forward */
  /* the caller's input gradients stay: the check's backward computes none */
  float **input_grads = m->input_grads;
  int64_t input_grads_n = m->input_grads_n;
  m->input_grads = NULL;
  float *grads = work + (size_t)m->param_size * 3;
  size_t grad_bytes = (size_t)m->param_size * sizeof(float);
  if (grad_bytes > 0) /* a backward before the check may be applied after */
    memcpy(grads, m->grads, grad_bytes);
  float *state = grads + m->param_size;
  size_t state_bytes = (size_t)m->layer_state_size * sizeof(float);
  if (state_bytes > 0) /* training passes move running statistics */
    memcpy(state, m->layer_state, state_bytes);
  double loss;
  const float *out;
  m->rng = p.start;
  nnlib_status st = nnlib__forward(m, &m->bufs, &p.batch,
                                   p.batch.training ? &m->rng : NULL, &out);
  if (st == NNLIB_OK)
    st = nnlib__backward(m, &p.batch, NULL, &loss);
  if (st == NNLIB_OK) {
    float *g_bp = work, *saved = work + m->param_size;
    memcpy(g_bp, m->grads, (size_t)m->param_size * sizeof(float));
    memcpy(saved, m->params, (size_t)m->param_size * sizeof(float));
    st = o.random_direction
             ? check_direction(&p, g_bp, saved, o.step, o.seed, max_rel_error)
             : check_every_scalar(&p, g_bp, o.step, max_rel_error);
  }
  m->rng = p.start;
  m->input_grads = input_grads;
  m->input_grads_n = input_grads_n;
  if (grad_bytes > 0)
    memcpy(m->grads, grads, grad_bytes);
  if (state_bytes > 0)
    memcpy(m->layer_state, state, state_bytes);
  nnlib__free(work);
  return st;
}

nnlib_status nnlib_model_gradcheck(nnlib_model *m, const nnlib_tensor *x,
                                   const nnlib_tensor *target,
                                   const nnlib_gradcheck_options *options,
                                   double *max_rel_error) {
  return nnlib_model_gradcheck_inputs(m, &x, 1, target, options,
                                      max_rel_error);
}
