/* gru.c - the gated recurrent unit of torch.nn.GRU (one layer), gates in
 * PyTorch's order r, z, n:
 *
 *   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
 *   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
 *   n = tanh(W_in x + b_in + r (W_hn h + b_hn))
 *   h_t = (1 - z) n + z h_{t-1}
 *
 * The reset gate multiplies W_hn h + b_hn, so that part of the recurrent
 * product cannot be added into the input projection; it is kept per step
 * (area HIDDEN, whose r and z columns only backward uses).
 *
 * forward:  P = X W_ih^T            [N*T, F] x [F, 3H]  one GEMM, all steps
 *           per step t: P_rz += h_{t-1} W_h{r,z}^T  [N, H] x [H, 2H]  (beta 1)
 *                       Q_n = h_{t-1} W_hn^T        [N, H] x [H, H]   (beta 0)
 *                       r, z, n, h_t           one fused pass (Q_n += b_hn
 *                       is kept for backward)
 *           The r and z products add into P: a beta-0 product has OpenBLAS
 *           zero its output first, a pass over memory as long as the cell's
 *           reading it back (7% of the benchmark GRU's inference step for
 *           all of Q). The sum rounds once either way: the same bits.
 * backward (t = T-1 .. 0), with dh = dY_t + carry:
 *           dpre_n = dh (1 - z) (1 - n^2)
 *           dpre_z = dh (h_{t-1} - n) z (1 - z)
 *           dpre_r = dpre_n (W_hn h + b_hn) r (1 - r)
 *           dQ_n   = dpre_n r      (the hidden side of n differs from the
 *                                   input side; r and z are the same)
 *           carry  = dh z + dQ_t W_hh    [N, 3H] x [3H, H]  one GEMM
 *           (the cell pass also adds dpre and dQ_n into the sample's step
 *           sums), then dX = dP W_ih, dW_ih = dP^T X, dW_hh = dQ^T Hprev
 *           over all steps, db from the step sums (recurrent.c)
 *
 * linear_before_reset = 0 (ONNX's default GRU; the above is ONNX's 1): the
 * reset gate multiplies h before W_hn,
 *
 *   n = tanh(W_in x + b_in + W_hn (r h) + b_hn)
 *
 * so the hidden side of n needs r first. Per step: P_rz += h W_h{r,z}^T
 * ([N, H] x [H, 2H], beta 1), the r and z pass (which keeps r h, area
 * RESET_H), Q_n = (r h) W_hn^T ([N, H] x [H, H]), then the n and h pass.
 * Backward:
 *           dpre_n, dpre_z as above, dQ_n = dpre_n
 *           d(rh)  = dpre_n W_hn          [N, H] x [H, H]  (area D_RESET_H)
 *           dpre_r = d(rh) h_{t-1} r (1 - r)
 *           carry  = dh z + d(rh) r + dQ_{r,z} W_h{r,z}  [N, 2H] x [2H, H]
 *           dW_hn  = dQ_n^T (r h), the other rows of dW_hh as above.
 *
 * On several threads linear_before_reset 1 runs its steps in lanes, forward
 * and backward (nnlib__recurrent_run_steps): each thread the products and
 * cells of every step for its range of the batch. Otherwise, and always
 * for linear_before_reset 0, a step's cell passes split over the threads
 * (nnlib__recurrent_pass) between products on the calling thread.
 */
/* no FMA contraction, so every clone of a cell gives the same bits
 * (recurrent.h) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "recurrent.h"

#include <string.h>

static const char *gru_name(const nnlib_layer *l) {
  (void)l;
  return "gru";
}

static nnlib_status gru_plan(nnlib_layer *l, const nnlib__shape *in,
                             int64_t max_batch) {
  NNLIB_TRY(nnlib__recurrent_plan(l, in, max_batch));
  nnlib__recurrent *r = (nnlib__recurrent *)l;
  int64_t th = r->steps * r->hidden;
  r->area_per_sample[RNN_WS_GATES] = 3 * th;
  r->area_per_sample[RNN_WS_HIDDEN] = 3 * th;
  r->area_per_sample[RNN_WS_HPREV] = th;
  r->area_per_sample[RNN_WS_CARRY_H] = r->hidden;
  r->area_fixed[RNN_WS_BIAS] = 4 * r->hidden;
  r->area_per_sample[RNN_WS_STEP_SUMS] = nnlib__recurrent_step_sums_width(l);
  if (!r->linear_before_reset) {
    r->area_per_sample[RNN_WS_RESET_H] = th;
    r->area_per_sample[RNN_WS_D_RESET_H] = r->hidden;
  }
  return nnlib__recurrent_plan_workspace(l);
}

/* The biases as the cell adds them: [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]
 * (4H floats; zeros without bias). */
static void gru_bias(const nnlib_layer *l, float *bias, int64_t width) {
  const float *bi = nnlib__recurrent_b_ih(l), *bh = nnlib__recurrent_b_hh(l);
  if (bi == NULL) {
    memset(bias, 0, (size_t)(4 * width) * sizeof(float));
    return;
  }
  for (int64_t j = 0; j < 2 * width; j++)
    bias[j] = bi[j] + bh[j];
  memcpy(bias + 2 * width, bi + 2 * width, (size_t)width * sizeof(float));
  memcpy(bias + 3 * width, bh + 2 * width, (size_t)width * sizeof(float));
}

/* One step of one sample: p [3H] (pre-activations in, the hidden side
 * of r and z included; r z n out), q [3H] hidden side of n in its last H
 * (W_hn h_{t-1} in; q_n + b_hn out). r and z
 * first (one sigmoid block of 2H), then n and h_t: in one loop n waited
 * for r (an e^x and a division each), which bounded the loop by latency;
 * this way the iterations are independent. The same bits. */
NNLIB__GATE_CLONES
static void gru_cell(float *restrict p, float *restrict q,
                     const float *restrict bias, const float *restrict hprev,
                     float *restrict h, int64_t width) {
  float *pr = p, *pz = pr + width, *pn = pz + width;
  float *qn = q + 2 * width;
  const float *bn = bias + 2 * width, *bhn = bias + 3 * width;
  for (int64_t j = 0; j < 2 * width; j++) /* r and z */
    pr[j] = nnlib__sigmoid_gate(pr[j] + bias[j]);
  for (int64_t j = 0; j < width; j++) {
    float hn = qn[j] + bhn[j];
    float n = nnlib__tanh_gate(pn[j] + bn[j] + pr[j] * hn);
    pn[j] = n;
    qn[j] = hn;
    h[j] = (1.0f - pz[j]) * n + pz[j] * hprev[j];
  }
}

typedef struct gru_areas {
  float *p, *q, *hprev, *carry, *bias;
  float *rh, *drh;     /* linear_before_reset 0 only */
  float *sums;         /* backward's step sums, zeroed by it */
  const float *w_hh_t; /* forward's (nnlib__recurrent_w_hh_t; NULL: none) */
} gru_areas;

static gru_areas areas_of(const nnlib_layer *l, const nnlib__run *run) {
  gru_areas a = {nnlib__recurrent_area(l, run, RNN_WS_GATES),
                 nnlib__recurrent_area(l, run, RNN_WS_HIDDEN),
                 nnlib__recurrent_area(l, run, RNN_WS_HPREV),
                 nnlib__recurrent_area(l, run, RNN_WS_CARRY_H),
                 nnlib__recurrent_area(l, run, RNN_WS_BIAS),
                 nnlib__recurrent_area(l, run, RNN_WS_RESET_H),
                 nnlib__recurrent_area(l, run, RNN_WS_D_RESET_H),
                 NULL,
                 NULL};
  return a;
}

/* One step t of the layer, what a range of its samples needs. */
typedef struct gru_step {
  const nnlib_layer *l;
  const gru_areas *a;
  float *y;
  const float *dy, *zeros; /* backward only */
  int64_t t, steps;
} gru_step;

/* Runs `fn` over the samples of step t (work `per_unit` RNN_COST_* per
 * hidden unit). */
static void gru_pass(gru_step *step, int64_t t, int64_t n, int64_t per_unit,
                     nnlib__range_fn fn) {
  step->t = t;
  nnlib__recurrent_pass(
      n, ((const nnlib__recurrent *)step->l)->hidden * per_unit, fn, step);
}

/* The rows of step t of sample s in [N, T, width] arrays: its hidden-unit
 * offset (s T + t) H. */
static int64_t unit_at(const gru_step *p, int64_t s) {
  return (s * p->steps + p->t) * ((const nnlib__recurrent *)p->l)->hidden;
}

/* Q_n at step t = 0 for every sample (a zero h_{-1}; the r and z sides
 * add nothing to P) */
static void zero_step(float *q, int64_t t, int64_t steps, int64_t hsz,
                      int64_t n) {
  for (int64_t s = 0; s < n; s++)
    memset(q + (s * steps + t) * 3 * hsz + 2 * hsz, 0,
           (size_t)hsz * sizeof(float));
}

static void cells_reset_after(void *ctx, int64_t begin, int64_t end) {
  const gru_step *p = ctx;
  const gru_areas *a = p->a;
  int64_t hsz = ((const nnlib__recurrent *)p->l)->hidden;
  for (int64_t s = begin; s < end; s++) {
    int64_t at = unit_at(p, s);
    if (s + 1 < end) /* the next sample's n block */
      nnlib__recurrent_prefetch(a->p + 3 * unit_at(p, s + 1) + 2 * hsz, hsz);
    gru_cell(a->p + 3 * at, a->q + 3 * at, a->bias, a->hprev + at,
             nnlib__recurrent_h_slot(p->l, a->hprev, p->y, s, p->t, p->steps),
             hsz);
    nnlib__recurrent_h_share(p->l, a->hprev, p->y, s, p->t, p->steps);
  }
}

/* The steps of linear_before_reset 1: P_rz += h_{t-1} W_h{r,z}^T and Q_n =
 * h_{t-1} W_hn^T, then one pass. */
static void reset_after_calls(void *ctx, int64_t t, int64_t s0, int64_t m,
                              nnlib__gemm_call *calls) {
  const gru_step *p = ctx;
  int64_t hsz = ((const nnlib__recurrent *)p->l)->hidden;
  const float *w_hh_t = p->a->w_hh_t;
  calls[0] = nnlib__recurrent_step_call(
      p->l, w_hh_t, p->a->hprev, t, 0, 2 * hsz, 1.0f, p->a->p, s0, m, p->steps);
  calls[1] = nnlib__recurrent_step_call(p->l, w_hh_t, p->a->hprev, t, 2 * hsz,
                                        hsz, 0.0f, p->a->q, s0, m, p->steps);
}

/* Step t's cells over samples [begin, end) (lanes run different steps at
 * once: each its own copy of the step). */
static void reset_after_cells(void *ctx, int64_t t, int64_t begin,
                              int64_t end) {
  gru_step step = *(const gru_step *)ctx;
  step.t = t;
  cells_reset_after(&step, begin, end);
}

static nnlib_status steps_reset_after(nnlib_layer *l, const nnlib__run *run,
                                      const gru_areas *a, float *y, int64_t n,
                                      int64_t steps) {
  int64_t hsz = ((const nnlib__recurrent *)l)->hidden;
  int64_t cost = hsz * (3 * RNN_COST_GATE + 3 * RNN_COST_NONLINEAR);
  gru_step step = {l, a, y, NULL, NULL, 0, steps};
  /* a zero h_{-1} adds nothing: step 0's cells alone, on Q_n = 0 */
  int64_t first = nnlib__recurrent_starts_at_zero(l, run) ? 1 : 0;
  if (first == 1 && steps > 0) {
    zero_step(a->q, 0, steps, hsz, n);
    gru_pass(&step, 0, n, 3 * RNN_COST_GATE + 3 * RNN_COST_NONLINEAR,
             cells_reset_after);
  }
  nnlib__recurrent_stepper run_steps = {
      n,    first, steps, false, 2, reset_after_calls, reset_after_cells,
      cost, &step};
  return nnlib__recurrent_run_steps(&run_steps);
}

/* linear_before_reset 0, first pass of one sample: r and z (into p's r and
 * z blocks, which hold both sides' products; one sigmoid block of 2H) and
 * r h_{t-1} (into rh). */
NNLIB__GATE_CLONES
static void gru_reset_update(float *restrict p, const float *restrict bias,
                             const float *restrict hprev, float *restrict rh,
                             int64_t width) {
  for (int64_t j = 0; j < 2 * width; j++)
    p[j] = nnlib__sigmoid_gate(p[j] + bias[j]);
  for (int64_t j = 0; j < width; j++)
    rh[j] = p[j] * hprev[j];
}

/* linear_before_reset 0, second pass: n = tanh(p_n + b_in + Q_n + b_hn)
 * with Q_n = W_hn (r h), into p's n block, and h_t. */
NNLIB__GATE_CLONES
static void gru_new_state(float *restrict p, const float *restrict q,
                          const float *restrict bias,
                          const float *restrict hprev, float *restrict h,
                          int64_t width) {
  const float *pz = p + width, *qn = q + 2 * width;
  float *pn = p + 2 * width;
  const float *bn = bias + 2 * width, *bhn = bias + 3 * width;
  for (int64_t j = 0; j < width; j++) {
    float n = nnlib__tanh_gate(pn[j] + bn[j] + qn[j] + bhn[j]);
    pn[j] = n;
    h[j] = (1.0f - pz[j]) * n + pz[j] * hprev[j];
  }
}

static void cells_reset_update(void *ctx, int64_t begin, int64_t end) {
  const gru_step *p = ctx;
  const gru_areas *a = p->a;
  int64_t hsz = ((const nnlib__recurrent *)p->l)->hidden;
  for (int64_t s = begin; s < end; s++) {
    int64_t at = unit_at(p, s);
    gru_reset_update(a->p + 3 * at, a->bias, a->hprev + at, a->rh + at, hsz);
  }
}

static void cells_new_state(void *ctx, int64_t begin, int64_t end) {
  const gru_step *p = ctx;
  const gru_areas *a = p->a;
  int64_t hsz = ((const nnlib__recurrent *)p->l)->hidden;
  for (int64_t s = begin; s < end; s++) {
    int64_t at = unit_at(p, s);
    if (s + 1 < end) /* the next sample's n block */
      nnlib__recurrent_prefetch(a->p + 3 * unit_at(p, s + 1) + 2 * hsz, hsz);
    gru_new_state(
        a->p + 3 * at, a->q + 3 * at, a->bias, a->hprev + at,
        nnlib__recurrent_h_slot(p->l, a->hprev, p->y, s, p->t, p->steps), hsz);
    nnlib__recurrent_h_share(p->l, a->hprev, p->y, s, p->t, p->steps);
  }
}

/* The steps of linear_before_reset 0 (see the top of the file). */
static nnlib_status steps_reset_first(nnlib_layer *l, const nnlib__run *run,
                                      const gru_areas *a, float *y, int64_t n,
                                      int64_t steps) {
  int64_t hsz = ((const nnlib__recurrent *)l)->hidden;
  bool zero_start = nnlib__recurrent_starts_at_zero(l, run);
  gru_step step = {l, a, y, NULL, NULL, 0, steps};
  for (int64_t t = 0; t < steps; t++) {
    bool from_zero = t == 0 && zero_start; /* h_{-1} = 0: Q_n = 0, r h = 0 */
    if (from_zero)
      zero_step(a->q, t, steps, hsz, n);
    else
      NNLIB_TRY(nnlib__recurrent_step_product(l, a->w_hh_t, a->hprev, t, 0,
                                              2 * hsz, 1.0f, a->p, n, steps));
    gru_pass(&step, t, n, 3 * RNN_COST_GATE + 2 * RNN_COST_NONLINEAR,
             cells_reset_update);
    if (!from_zero)
      NNLIB_TRY(nnlib__recurrent_step_product(l, a->w_hh_t, a->rh, t, 2 * hsz,
                                              hsz, 0.0f, a->q, n, steps));
    gru_pass(&step, t, n, 2 * RNN_COST_GATE + RNN_COST_NONLINEAR,
             cells_new_state);
  }
  return NNLIB_OK;
}

static nnlib_status gru_forward(nnlib_layer *l, const nnlib__run *run,
                                const float *x, float *y, int64_t n) {
  const nnlib__recurrent *r = (const nnlib__recurrent *)l;
  int64_t hsz = r->hidden, steps = nnlib__recurrent_steps(l, run);
  NNLIB_TRY(nnlib__recurrent_check_state(l, n));
  gru_areas a = areas_of(l, run);
  gru_bias(l, a.bias, hsz);
  NNLIB_TRY(nnlib__recurrent_project_inputs(l, x, a.p, n, steps));
  a.w_hh_t = nnlib__recurrent_w_hh_t(
      l, run, steps - (nnlib__recurrent_starts_at_zero(l, run) ? 1 : 0));
  nnlib__recurrent_load_initial(l, run, false, a.hprev, steps * hsz, n);
  if (r->linear_before_reset)
    NNLIB_TRY(steps_reset_after(l, run, &a, y, n, steps));
  else
    NNLIB_TRY(steps_reset_first(l, run, &a, y, n, steps));
  nnlib__recurrent_save_state(l, run, y, NULL, n, steps);
  return NNLIB_OK;
}

/* One step of one sample backwards (see the top of the file): p and q get
 * dL/d(pre) of the input and hidden sides, carry gets dh z; the sums [4H]
 * get the three blocks of p and q's n block added. */
NNLIB__VECTOR_CLONES
static void gru_cell_backward(float *restrict p, float *restrict q,
                              const float *restrict hprev,
                              const float *restrict dy, float *restrict carry,
                              float *restrict sums, int64_t width) {
  float *pr = p, *pz = pr + width, *pn = pz + width;
  float *qr = q, *qz = qr + width, *qn = qz + width;
  float *sr = sums, *sz = sr + width, *sn = sz + width, *sqn = sn + width;
  NNLIB__INDEPENDENT_ITERATIONS
  for (int64_t j = 0; j < width; j++) {
    float dh = carry[j] + dy[j];
    float r = pr[j], z = pz[j], n = pn[j], hn = qn[j];
    float dn = dh * (1.0f - z) * (1.0f - n * n);
    float dz = dh * (hprev[j] - n) * z * (1.0f - z);
    float dr = dn * hn * r * (1.0f - r);
    float dqn = dn * r;
    pr[j] = dr;
    pz[j] = dz;
    pn[j] = dn;
    qr[j] = dr;
    qz[j] = dz;
    qn[j] = dqn;
    sr[j] += dr;
    sz[j] += dz;
    sn[j] += dn;
    sqn[j] += dqn;
    carry[j] = dh * z;
  }
}

static void cells_back_reset_after(void *ctx, int64_t begin, int64_t end) {
  const gru_step *p = ctx;
  const gru_areas *a = p->a;
  int64_t hsz = ((const nnlib__recurrent *)p->l)->hidden;
  for (int64_t s = begin; s < end; s++) {
    int64_t at = unit_at(p, s);
    gru_cell_backward(
        a->p + 3 * at, a->q + 3 * at, a->hprev + at,
        nnlib__recurrent_dy_at(p->l, p->dy, p->zeros, s, p->t, p->steps),
        a->carry + s * hsz, a->sums + s * 4 * hsz, hsz);
  }
}

static void back_reset_after_calls(void *ctx, int64_t t, int64_t s0, int64_t m,
                                   nnlib__gemm_call *calls) {
  const gru_step *p = ctx;
  calls[0] = nnlib__recurrent_carry_call(p->l, p->a->q, t, 1.0f, p->a->carry,
                                         s0, m, p->steps);
}

static void back_reset_after_cells(void *ctx, int64_t t, int64_t begin,
                                   int64_t end) {
  gru_step step = *(const gru_step *)ctx;
  step.t = t;
  cells_back_reset_after(&step, begin, end);
}

static nnlib_status back_reset_after(nnlib_layer *l, const nnlib__run *run,
                                     const gru_areas *a, const float *dy,
                                     int64_t n, int64_t steps) {
  gru_step step = {l, a, NULL, dy, nnlib__recurrent_zeros(l, run), 0, steps};
  /* steps T-1 .. 1: cells, then carry = dh z (written by the cells) + dQ_t
   * W_hh; then step 0's cells */
  int64_t cost = ((const nnlib__recurrent *)l)->hidden * 6 * RNN_COST_GATE;
  nnlib__recurrent_stepper run_steps = {n,
                                        1,
                                        steps,
                                        true,
                                        1,
                                        back_reset_after_calls,
                                        back_reset_after_cells,
                                        cost,
                                        &step};
  NNLIB_TRY(nnlib__recurrent_run_steps(&run_steps));
  if (steps > 0)
    gru_pass(&step, 0, n, 6 * RNN_COST_GATE, cells_back_reset_after);
  return NNLIB_OK;
}

/* linear_before_reset 0, first backward pass of one sample: dpre_n and
 * dpre_z (both sides: dQ_n = dpre_n; and into the sums [3H]), carry = dh
 * z. r stays in p's r block for the second pass. */
NNLIB__VECTOR_CLONES
static void gru_back_new_update(float *restrict p, float *restrict q,
                                const float *restrict hprev,
                                const float *restrict dy, float *restrict carry,
                                float *restrict sums, int64_t width) {
  float *pz = p + width, *pn = p + 2 * width;
  float *qz = q + width, *qn = q + 2 * width;
  float *sz = sums + width, *sn = sums + 2 * width;
  NNLIB__INDEPENDENT_ITERATIONS
  for (int64_t j = 0; j < width; j++) {
    float dh = carry[j] + dy[j];
    float z = pz[j], n = pn[j];
    float dn = dh * (1.0f - z) * (1.0f - n * n);
    float dz = dh * (hprev[j] - n) * z * (1.0f - z);
    pz[j] = dz;
    pn[j] = dn;
    qz[j] = dz;
    qn[j] = dn;
    sz[j] += dz;
    sn[j] += dn;
    carry[j] = dh * z;
  }
}

/* Second pass: dpre_r = d(rh) h_{t-1} r (1 - r) (into the sums' r
 * block); carry += d(rh) r. */
NNLIB__VECTOR_CLONES
static void gru_back_reset(float *restrict p, float *restrict q,
                           const float *restrict hprev,
                           const float *restrict drh, float *restrict carry,
                           float *restrict sums, int64_t width) {
  for (int64_t j = 0; j < width; j++) {
    float r = p[j];
    float dr = drh[j] * hprev[j] * r * (1.0f - r);
    p[j] = dr;
    q[j] = dr;
    sums[j] += dr;
    carry[j] += drh[j] * r;
  }
}

static void cells_back_new_update(void *ctx, int64_t begin, int64_t end) {
  const gru_step *p = ctx;
  const gru_areas *a = p->a;
  int64_t hsz = ((const nnlib__recurrent *)p->l)->hidden;
  for (int64_t s = begin; s < end; s++) {
    int64_t at = unit_at(p, s);
    gru_back_new_update(
        a->p + 3 * at, a->q + 3 * at, a->hprev + at,
        nnlib__recurrent_dy_at(p->l, p->dy, p->zeros, s, p->t, p->steps),
        a->carry + s * hsz, a->sums + s * 3 * hsz, hsz);
  }
}

static void cells_back_reset(void *ctx, int64_t begin, int64_t end) {
  const gru_step *p = ctx;
  const gru_areas *a = p->a;
  int64_t hsz = ((const nnlib__recurrent *)p->l)->hidden;
  for (int64_t s = begin; s < end; s++) {
    int64_t at = unit_at(p, s);
    gru_back_reset(a->p + 3 * at, a->q + 3 * at, a->hprev + at,
                   a->drh + s * hsz, a->carry + s * hsz, a->sums + s * 3 * hsz,
                   hsz);
  }
}

static nnlib_status back_reset_first(nnlib_layer *l, const nnlib__run *run,
                                     const gru_areas *a, const float *dy,
                                     int64_t n, int64_t steps) {
  int64_t hsz = ((const nnlib__recurrent *)l)->hidden, gh = 3 * hsz;
  const float *w_hh = nnlib__recurrent_w_hh(l);
  gru_step step = {l, a, NULL, dy, nnlib__recurrent_zeros(l, run), 0, steps};
  for (int64_t t = steps; t-- > 0;) {
    gru_pass(&step, t, n, 4 * RNN_COST_GATE, cells_back_new_update);
    /* d(rh) [N, H] = dpre_n [N, H] x W_hn [H, H] */
    NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__NO_TRANS, n, hsz, hsz, 1.0f,
                          a->p + t * gh + 2 * hsz, steps * gh,
                          w_hh + 2 * hsz * hsz, hsz, 0.0f, a->drh, hsz));
    gru_pass(&step, t, n, 3 * RNN_COST_GATE, cells_back_reset);
    /* carry += dQ_{r,z} [N, 2H] x W_h{r,z} [2H, H] */
    if (t > 0)
      NNLIB_TRY(nnlib__gemm(NNLIB__NO_TRANS, NNLIB__NO_TRANS, n, hsz, 2 * hsz,
                            1.0f, a->q + t * gh, steps * gh, w_hh, hsz, 1.0f,
                            a->carry, hsz));
  }
  return NNLIB_OK;
}

static nnlib_status gru_backward(nnlib_layer *l, const nnlib__run *run,
                                 const float *x, const float *y, float *dy,
                                 float *dx, int64_t n) {
  (void)y;
  const nnlib__recurrent *r = (const nnlib__recurrent *)l;
  int64_t hsz = r->hidden, steps = nnlib__recurrent_steps(l, run);
  gru_areas a = areas_of(l, run);
  memset(a.carry, 0, (size_t)(n * hsz) * sizeof(float));
  a.sums = nnlib__recurrent_step_sums(l, run, n);
  if (r->linear_before_reset)
    NNLIB_TRY(back_reset_after(l, run, &a, dy, n, steps));
  else
    NNLIB_TRY(back_reset_first(l, run, &a, dy, n, steps));
  return nnlib__recurrent_finish_backward(l, run, x, a.p, a.q, a.hprev,
                                          r->linear_before_reset ? NULL : a.rh,
                                          a.sums, dx, n);
}

static const nnlib__layer_ops gru_ops = {
    .kind = NNLIB_LAYER_GRU,
    .plan = gru_plan,
    .init = nnlib__recurrent_init,
    .forward = gru_forward,
    .backward = gru_backward,
    .destroy = nnlib__recurrent_destroy,
    .name = gru_name,
    .decodes = true, /* the cache carries h between calls */
    .fuses_sgd = true,
};

nnlib_status nnlib__gru_create(nnlib_layer **out, int64_t input_size,
                               int64_t hidden_size, int with_bias,
                               int return_sequences, bool linear_before_reset) {
  nnlib__recurrent_args a = {input_size, hidden_size, with_bias,
                             return_sequences};
  NNLIB_TRY(nnlib__recurrent_create(out, &gru_ops, "gru", 3, &a));
  ((nnlib__recurrent *)*out)->linear_before_reset = linear_before_reset;
  return NNLIB_OK;
}

nnlib_status nnlib_gru_create(nnlib_layer **out, int64_t input_size,
                              int64_t hidden_size, int with_bias,
                              int return_sequences) {
  return nnlib__gru_create(out, input_size, hidden_size, with_bias,
                           return_sequences, true);
}

/* ------------------------- model description and model file (codec) */

/* "gru:H" with the options "nobias" and "lbr0" (linear_before_reset 0),
 * each at most once, in any order */
static nnlib_status gru_parse_spec(const nnlib__spec_item *item,
                                   nnlib_layer **out) {
  nnlib__recurrent_args a;
  unsigned rest;
  NNLIB_TRY(nnlib__spec_fields(item, 2, 4));
  NNLIB_TRY(nnlib__recurrent_parse_common(item, &a, &rest));
  bool reset_first = false;
  for (size_t f = 2; f < item->field_count; f++) {
    if (!(rest & (1u << f)))
      continue;
    if (!nnlib__spec_field_is(item, f, "lbr0") || reset_first)
      return nnlib__spec_error(item, "the options of gru are \"nobias\" and "
                                     "\"lbr0\" (linear_before_reset 0), each "
                                     "at most once");
    reset_first = true;
  }
  return nnlib__gru_create(out, 0, a.hidden_size, a.with_bias,
                           a.return_sequences, !reset_first);
}

/* config: the shared 24 bytes; with linear_before_reset 0 only, then u32
 * linear_before_reset = 0 (28 bytes), so files of PyTorch's form stay as
 * they were. */
static void gru_write_config(const nnlib_layer *l, nnlib__writer *w) {
  nnlib__recurrent_write_config(l, w);
  if (!((const nnlib__recurrent *)l)->linear_before_reset)
    nnlib__put_u32(w, 0u);
}

static nnlib_status gru_read_config(nnlib__reader *r, nnlib_layer **out) {
  nnlib__recurrent_args a;
  NNLIB_TRY(nnlib__recurrent_read_config(r, "gru", &a));
  bool lbr = true;
  if (r->left > 0) {
    uint32_t v;
    NNLIB_TRY(nnlib__get_u32(r, &v));
    if (v != 0)
      return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                          "gru: linear_before_reset %u; the field is written "
                          "only for 0 (1, PyTorch's form, has no field)",
                          v);
    lbr = false;
  }
  return nnlib__gru_create(out, a.input_size, a.hidden_size, a.with_bias,
                           a.return_sequences, lbr);
}

const nnlib__layer_codec nnlib__gru_codec = {
    .kind = NNLIB_LAYER_GRU,
    .spec_names = {"gru"},
    .parse_spec = gru_parse_spec,
    .write_spec = nnlib__recurrent_write_spec,
    .write_config = gru_write_config,
    .read_config = gru_read_config,
};
