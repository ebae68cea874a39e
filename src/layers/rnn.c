/* rnn.c - the Elman recurrent layer of torch.nn.RNN (one layer):
 *
 *   h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),  f = tanh or relu
 *
 * forward:  P = X W_ih^T           [N*T, F] x [F, H]   one GEMM, all steps
 *           per step t: P_t += h_{t-1} W_hh^T  [N, H] x [H, H]  one GEMM
 *                       h_t = f(P_t + b)       fused pass (b = b_ih + b_hh)
 * backward (t = T-1 .. 0):
 *           dA_t = (dY_t + carry) * f'(h_t)    fused pass, in place of h_t
 *           carry = dA_t W_hh                  [N, H] x [H, H]  one GEMM
 *           then dX, dW_ih, dW_hh, db over all steps (recurrent.c)
 *
 * A step's cells run over ranges of samples on nnlib's threads
 * (nnlib__recurrent_pass); the GEMMs between them on the calling thread.
 */
/* no FMA contraction, so every clone of a cell gives the same bits
 * (recurrent.h) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "recurrent.h"

#include <string.h>

static const char *rnn_name(const nnlib_layer *l) {
  (void)l;
  return "rnn";
}

static nnlib_status rnn_plan(nnlib_layer *l, const nnlib__shape *in,
                             int64_t max_batch) {
  NNLIB_TRY(nnlib__recurrent_plan(l, in, max_batch));
  nnlib__recurrent *r = (nnlib__recurrent *)l;
  int64_t th = r->steps * r->hidden;
  r->area_per_sample[RNN_WS_GATES] = th;
  r->area_per_sample[RNN_WS_HPREV] = th;
  r->area_per_sample[RNN_WS_CARRY_H] = r->hidden;
  r->area_fixed[RNN_WS_BIAS] = r->hidden;
  return nnlib__recurrent_plan_workspace(l);
}

/* h = f(a + b) over one row, into a (kept for backward) and h; relu as
 * z < 0 ? 0 : z lets NaN through. One loop per f, so each vectorises. */
NNLIB__GATE_CLONES
static void rnn_cell(nnlib_activation act, float *restrict a,
                     const float *restrict b, float *restrict h,
                     int64_t width) {
  if (act == NNLIB_ACT_RELU) {
    for (int64_t j = 0; j < width; j++) {
      float z = a[j] + b[j];
      a[j] = h[j] = nnlib__select_f(z < 0.0f, 0.0f, z);
    }
  } else {
    for (int64_t j = 0; j < width; j++)
      a[j] = h[j] = nnlib__tanh_gate(a[j] + b[j]);
  }
}

/* One step t of the layer, what a range of its samples needs. */
typedef struct rnn_step {
  const nnlib_layer *l;
  float *gates, *hprev, *y, *carry, *bias;
  const float *dy, *zeros; /* backward only */
  int64_t t, steps;
} rnn_step;

static void cells_forward(void *ctx, int64_t begin, int64_t end) {
  const rnn_step *p = ctx;
  const nnlib__recurrent *r = (const nnlib__recurrent *)p->l;
  int64_t hsz = r->hidden, t = p->t, steps = p->steps;
  for (int64_t s = begin; s < end; s++) {
    float *h = nnlib__recurrent_h_slot(p->l, p->hprev, p->y, s, t, steps);
    rnn_cell(r->nonlinearity, p->gates + (s * steps + t) * hsz, p->bias, h,
             hsz);
    nnlib__recurrent_h_share(p->l, p->hprev, p->y, s, t, steps);
  }
}

static nnlib_status rnn_forward(nnlib_layer *l, const nnlib__run *run,
                                const float *x, float *y, int64_t n) {
  const nnlib__recurrent *r = (const nnlib__recurrent *)l;
  int64_t hsz = r->hidden, steps = nnlib__recurrent_steps(l, run);
  NNLIB_TRY(nnlib__recurrent_check_state(l, n));
  rnn_step step = {.l = l,
                   .gates = nnlib__recurrent_area(l, run, RNN_WS_GATES),
                   .hprev = nnlib__recurrent_area(l, run, RNN_WS_HPREV),
                   .y = y,
                   .bias = nnlib__recurrent_area(l, run, RNN_WS_BIAS),
                   .steps = steps};
  nnlib__recurrent_bias_sum(l, step.bias);
  NNLIB_TRY(nnlib__recurrent_project_inputs(l, x, step.gates, n, steps));
  nnlib__recurrent_load_initial(l, run, false, step.hprev, steps * hsz, n);
  bool zero_start = nnlib__recurrent_starts_at_zero(l, run);
  const float *w_hh_t =
      nnlib__recurrent_w_hh_t(l, run, steps - (zero_start ? 1 : 0));
  int64_t cost = hsz * (r->nonlinearity == NNLIB_ACT_RELU
                            ? RNN_COST_GATE
                            : RNN_COST_GATE + RNN_COST_NONLINEAR);
  for (int64_t t = 0; t < steps; t++) {
    /* a zero h_{-1} adds nothing */
    if (t > 0 || !zero_start)
      NNLIB_TRY(nnlib__recurrent_step_product(l, w_hh_t, step.hprev, t, 0, hsz,
                                              1.0f, step.gates, n, steps));
    step.t = t;
    nnlib__recurrent_pass(n, cost, cells_forward, &step);
  }
  nnlib__recurrent_save_state(l, run, y, NULL, n, steps);
  return NNLIB_OK;
}

/* a = (dy + carry) f'(h), from h in a: relu' = (h > 0), tanh' = 1 - h^2 */
NNLIB__VECTOR_CLONES
static void rnn_cell_backward(nnlib_activation act, float *restrict a,
                              const float *restrict dy,
                              const float *restrict carry, int64_t width) {
  if (act == NNLIB_ACT_RELU) {
    for (int64_t j = 0; j < width; j++)
      a[j] = nnlib__select_f(a[j] > 0.0f, carry[j] + dy[j], 0.0f);
  } else {
    for (int64_t j = 0; j < width; j++)
      a[j] = (carry[j] + dy[j]) * (1.0f - a[j] * a[j]);
  }
}

static void cells_backward(void *ctx, int64_t begin, int64_t end) {
  const rnn_step *p = ctx;
  const nnlib__recurrent *r = (const nnlib__recurrent *)p->l;
  int64_t hsz = r->hidden, t = p->t, steps = p->steps;
  for (int64_t s = begin; s < end; s++)
    rnn_cell_backward(
        r->nonlinearity, p->gates + (s * steps + t) * hsz,
        nnlib__recurrent_dy_at(p->l, p->dy, p->zeros, s, t, steps),
        p->carry + s * hsz, hsz);
}

static nnlib_status rnn_backward(nnlib_layer *l, const nnlib__run *run,
                                 const float *x, const float *y, float *dy,
                                 float *dx, int64_t n) {
  (void)y;
  const nnlib__recurrent *r = (const nnlib__recurrent *)l;
  int64_t hsz = r->hidden, steps = nnlib__recurrent_steps(l, run);
  rnn_step step = {.l = l,
                   .gates = nnlib__recurrent_area(l, run, RNN_WS_GATES),
                   .hprev = nnlib__recurrent_area(l, run, RNN_WS_HPREV),
                   .carry = nnlib__recurrent_area(l, run, RNN_WS_CARRY_H),
                   .dy = dy,
                   .zeros = nnlib__recurrent_zeros(l, run),
                   .steps = steps};
  memset(step.carry, 0, (size_t)(n * hsz) * sizeof(float));
  for (int64_t t = steps; t-- > 0;) {
    step.t = t;
    nnlib__recurrent_pass(n, hsz * RNN_COST_GATE, cells_backward, &step);
    if (t > 0)
      NNLIB_TRY(nnlib__recurrent_carry_product(l, step.gates, t, 0.0f,
                                               step.carry, n, steps));
  }
  return nnlib__recurrent_finish_backward(l, run, x, step.gates, step.gates,
                                          step.hprev, NULL, NULL, dx, n);
}

static const nnlib__layer_ops rnn_ops = {
    .kind = NNLIB_LAYER_RNN,
    .plan = rnn_plan,
    .init = nnlib__recurrent_init,
    .forward = rnn_forward,
    .backward = rnn_backward,
    .destroy = nnlib__recurrent_destroy,
    .name = rnn_name,
    .decodes = true, /* the cache carries h between calls */
    .fuses_sgd = true,
};

nnlib_status nnlib_rnn_create(nnlib_layer **out, int64_t input_size,
                              int64_t hidden_size,
                              nnlib_activation nonlinearity, int with_bias,
                              int return_sequences) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_rnn_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(nonlinearity == NNLIB_ACT_TANH ||
                      nonlinearity == NNLIB_ACT_RELU,
                  "rnn: nonlinearity is %d, must be NNLIB_ACT_TANH (%d) or "
                  "NNLIB_ACT_RELU (%d)",
                  (int)nonlinearity, (int)NNLIB_ACT_TANH, (int)NNLIB_ACT_RELU);
  nnlib__recurrent_args a = {input_size, hidden_size, with_bias,
                             return_sequences};
  NNLIB_TRY(nnlib__recurrent_create(out, &rnn_ops, "rnn", 1, &a));
  ((nnlib__recurrent *)*out)->nonlinearity = nonlinearity;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* "rnn:H" with options "tanh" (the default) or "relu", and "nobias" */
static nnlib_status rnn_parse_spec(const nnlib__spec_item *item,
                                   nnlib_layer **out) {
  nnlib__recurrent_args a;
  unsigned rest;
  NNLIB_TRY(nnlib__spec_fields(item, 2, 4));
  NNLIB_TRY(nnlib__recurrent_parse_common(item, &a, &rest));
  nnlib_activation act = NNLIB_ACT_TANH;
  int chosen = 0;
  for (size_t f = 2; f < item->field_count; f++) {
    if (!(rest & (1u << f)))
      continue;
    bool relu = nnlib__spec_field_is(item, f, "relu");
    if ((!relu && !nnlib__spec_field_is(item, f, "tanh")) || chosen++ > 0)
      return nnlib__spec_error(item, "the options of rnn are one of \"tanh\" "
                                     "or \"relu\", and \"nobias\"");
    act = relu ? NNLIB_ACT_RELU : NNLIB_ACT_TANH;
  }
  return nnlib_rnn_create(out, 0, a.hidden_size, act, a.with_bias,
                          a.return_sequences);
}

/* config: the shared 24 bytes, then u32 nonlinearity (nnlib_activation) */
static void rnn_write_config(const nnlib_layer *l, nnlib__writer *w) {
  nnlib__recurrent_write_config(l, w);
  nnlib__put_u32(w, (uint32_t)((const nnlib__recurrent *)l)->nonlinearity);
}

static nnlib_status rnn_read_config(nnlib__reader *r, nnlib_layer **out) {
  nnlib__recurrent_args a;
  uint32_t act;
  NNLIB_TRY(nnlib__recurrent_read_config(r, "rnn", &a));
  NNLIB_TRY(nnlib__get_u32(r, &act));
  if (act != NNLIB_ACT_TANH && act != NNLIB_ACT_RELU)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "rnn: nonlinearity %u is neither tanh (%d) nor relu "
                        "(%d)",
                        act, (int)NNLIB_ACT_TANH, (int)NNLIB_ACT_RELU);
  return nnlib_rnn_create(out, a.input_size, a.hidden_size,
                          (nnlib_activation)act, a.with_bias,
                          a.return_sequences);
}

const nnlib__layer_codec nnlib__rnn_codec = {
    .kind = NNLIB_LAYER_RNN,
    .spec_names = {"rnn"},
    .parse_spec = rnn_parse_spec,
    .write_spec = nnlib__recurrent_write_spec,
    .write_config = rnn_write_config,
    .read_config = rnn_read_config,
};
