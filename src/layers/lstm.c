/* lstm.c - the long short-term memory layer of torch.nn.LSTM (one layer),
 * gates in PyTorch's order i, f, g, o:
 *
 *   [i f g o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
 *   i, f, o = sigmoid(.), g = tanh(.)
 *   c_t = f c_{t-1} + i g,   h_t = o tanh(c_t)
 *
 * forward:  P = X W_ih^T           [N*T, F] x [F, 4H]  one GEMM, all steps
 *           per step t: P_t += h_{t-1} W_hh^T  [N, H] x [H, 4H]  one GEMM
 *                       (W_hh^T a copy: nnlib__recurrent_w_hh_t)
 *                       gates, c_t, tanh(c_t), h_t   one fused pass
 * backward (t = T-1 .. 0), with dh = dY_t + carry_h and
 *           dc = dh o (1 - tanh(c_t)^2) + carry_c:
 *           dpre_o = dh tanh(c_t) o (1 - o)   dpre_i = dc g i (1 - i)
 *           dpre_f = dc c_{t-1} f (1 - f)     dpre_g = dc i (1 - g^2)
 *           carry_c = dc f                    (fused pass, in place;
 *                                              dpre added into the
 *                                              sample's step sums)
 *           carry_h = dpre_t W_hh             [N, 4H] x [4H, H]  one GEMM
 *           then dX, dW_ih, dW_hh over all steps, db from the step sums
 *           of the N samples (recurrent.c)
 *
 * On several threads the steps run in lanes (nnlib__recurrent_run_steps):
 * each thread the products and cells of every step for its range of the
 * batch; otherwise a step's cells split over the threads
 * (nnlib__recurrent_pass) between products on the calling thread.
 */
/* no FMA contraction, so every clone of a cell gives the same bits
 * (recurrent.h) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "recurrent.h"

#include <string.h>

static const char *lstm_name(const nnlib_layer *l) {
  (void)l;
  return "lstm";
}

static nnlib_status lstm_plan(nnlib_layer *l, const nnlib__shape *in,
                              int64_t max_batch) {
  NNLIB_TRY(nnlib__recurrent_plan(l, in, max_batch));
  nnlib__recurrent *r = (nnlib__recurrent *)l;
  int64_t th = r->steps * r->hidden;
  r->area_per_sample[RNN_WS_GATES] = 4 * th;
  r->area_per_sample[RNN_WS_HPREV] = th;
  r->area_per_sample[RNN_WS_CELL] = th;
  r->area_per_sample[RNN_WS_TANH_C] = th;
  r->area_per_sample[RNN_WS_CPREV0] = r->hidden;
  r->area_per_sample[RNN_WS_CARRY_H] = r->hidden;
  r->area_per_sample[RNN_WS_CARRY_C] = r->hidden;
  r->area_fixed[RNN_WS_BIAS] = 4 * r->hidden;
  r->area_per_sample[RNN_WS_STEP_SUMS] = nnlib__recurrent_step_sums_width(l);
  return nnlib__recurrent_plan_workspace(l);
}

/* One step of one sample: gates [4H] (i f g o) pre-activations in,
 * activations out; c_t, tanh(c_t) and h_t from c_{t-1}. Two loops: the
 * four gates first (i and f as one sigmoid block of 2H), then the cell
 * state. In one loop each 16 units waited for a chain of two e^x and two
 * divisions (a gate, then tanh(c_t)), which bounded the loop by latency;
 * here every iteration is independent of the others, and the bits are
 * the same. */
NNLIB__GATE_CLONES
static void lstm_cell(float *restrict gates, const float *restrict bias,
                      const float *restrict cprev, float *restrict c,
                      float *restrict tc, float *restrict h, int64_t width) {
  float *gi = gates, *gf = gi + width, *gg = gf + width, *go = gg + width;
  for (int64_t j = 0; j < 2 * width; j++) /* i and f */
    gi[j] = nnlib__sigmoid_gate(gi[j] + bias[j]);
  for (int64_t j = 0; j < width; j++)
    gg[j] = nnlib__tanh_gate(gg[j] + bias[2 * width + j]);
  for (int64_t j = 0; j < width; j++)
    go[j] = nnlib__sigmoid_gate(go[j] + bias[3 * width + j]);
  for (int64_t j = 0; j < width; j++) {
    float cj = gf[j] * cprev[j] + gi[j] * gg[j];
    float t = nnlib__tanh_gate(cj);
    c[j] = cj;
    tc[j] = t;
    h[j] = go[j] * t;
  }
}

typedef struct lstm_areas {
  float *gates, *hprev, *cell, *tanh_c, *c0, *carry_h, *carry_c, *bias;
  float *step_sums;    /* backward's, zeroed by it */
  const float *w_hh_t; /* forward's (nnlib__recurrent_w_hh_t; NULL: none) */
} lstm_areas;

static lstm_areas areas_of(const nnlib_layer *l, const nnlib__run *run) {
  lstm_areas a = {
      nnlib__recurrent_area(l, run, RNN_WS_GATES),
      nnlib__recurrent_area(l, run, RNN_WS_HPREV),
      nnlib__recurrent_area(l, run, RNN_WS_CELL),
      nnlib__recurrent_area(l, run, RNN_WS_TANH_C),
      nnlib__recurrent_area(l, run, RNN_WS_CPREV0),
      nnlib__recurrent_area(l, run, RNN_WS_CARRY_H),
      nnlib__recurrent_area(l, run, RNN_WS_CARRY_C),
      nnlib__recurrent_area(l, run, RNN_WS_BIAS),
      NULL,
      NULL,
  };
  return a;
}

/* c_{t-1} of sample s: the previous step's cell, or the initial state */
static const float *cell_before(const nnlib__recurrent *r,
                                const lstm_areas *a, int64_t s, int64_t t,
                                int64_t steps) {
  if (t == 0)
    return a->c0 + s * r->hidden;
  return a->cell + (s * steps + t - 1) * r->hidden;
}

/* One step t of the layer, what a range of its samples needs. */
typedef struct lstm_step {
  const nnlib_layer *l;
  const lstm_areas *a;
  float *y;
  const float *dy, *zeros; /* backward only */
  int64_t t, steps;
} lstm_step;

static void cells_forward(void *ctx, int64_t begin, int64_t end) {
  const lstm_step *p = ctx;
  const nnlib__recurrent *r = (const nnlib__recurrent *)p->l;
  const lstm_areas *a = p->a;
  int64_t hsz = r->hidden, t = p->t, steps = p->steps;
  for (int64_t s = begin; s < end; s++) {
    int64_t at = (s * steps + t) * hsz;
    lstm_cell(a->gates + 4 * at, a->bias, cell_before(r, a, s, t, steps),
              a->cell + at, a->tanh_c + at,
              nnlib__recurrent_h_slot(p->l, a->hprev, p->y, s, t, steps), hsz);
    nnlib__recurrent_h_share(p->l, a->hprev, p->y, s, t, steps);
  }
}

/* Step t's product for samples [s0, s0 + m): P_t += h_{t-1} W_hh^T. */
static void step_calls(void *ctx, int64_t t, int64_t s0, int64_t m,
                       nnlib__gemm_call *calls) {
  const lstm_step *p = ctx;
  int64_t gh = 4 * ((const nnlib__recurrent *)p->l)->hidden;
  calls[0] = nnlib__recurrent_step_call(p->l, p->a->w_hh_t, p->a->hprev, t, 0,
                                        gh, 1.0f, p->a->gates, s0, m, p->steps);
}

/* Step t's cells over samples [begin, end) (lanes run different steps at
 * once: each its own copy of the step). */
static void step_cells(void *ctx, int64_t t, int64_t begin, int64_t end) {
  lstm_step step = *(const lstm_step *)ctx;
  step.t = t;
  cells_forward(&step, begin, end);
}

static nnlib_status lstm_forward(nnlib_layer *l, const nnlib__run *run,
                                 const float *x, float *y, int64_t n) {
  const nnlib__recurrent *r = (const nnlib__recurrent *)l;
  int64_t hsz = r->hidden, steps = nnlib__recurrent_steps(l, run);
  int64_t cost = hsz * (4 * RNN_COST_GATE + 5 * RNN_COST_NONLINEAR);
  NNLIB_TRY(nnlib__recurrent_check_state(l, n));
  lstm_areas a = areas_of(l, run);
  nnlib__recurrent_bias_sum(l, a.bias);
  NNLIB_TRY(nnlib__recurrent_project_inputs(l, x, a.gates, n, steps));
  nnlib__recurrent_load_initial(l, run, false, a.hprev, steps * hsz, n);
  nnlib__recurrent_load_initial(l, run, true, a.c0, hsz, n);
  lstm_step step = {l, &a, y, NULL, NULL, 0, steps};
  /* a zero h_{-1} adds nothing: step 0's cells alone */
  int64_t first = nnlib__recurrent_starts_at_zero(l, run) ? 1 : 0;
  a.w_hh_t = nnlib__recurrent_w_hh_t(l, run, steps - first);
  if (first == 1 && steps > 0)
    nnlib__recurrent_pass(n, cost, cells_forward, &step);
  nnlib__recurrent_stepper run_steps = {n,          first,      steps, false, 1,
                                        step_calls, step_cells, cost,  &step};
  NNLIB_TRY(nnlib__recurrent_run_steps(&run_steps));
  nnlib__recurrent_save_state(l, run, y, a.cell, n, steps);
  return NNLIB_OK;
}

/* One step of one sample backwards: gate activations in, dL/d(pre) out, in
 * place and added into the sample's step sums; carries in and out (see
 * the top of the file). */
NNLIB__VECTOR_CLONES
static void lstm_cell_backward(float *restrict gates,
                               const float *restrict cprev,
                               const float *restrict tc,
                               const float *restrict dy,
                               float *restrict carry_h, float *restrict carry_c,
                               float *restrict sums, int64_t width) {
  float *gi = gates, *gf = gi + width, *gg = gf + width, *go = gg + width;
  float *si = sums, *sf = si + width, *sg = sf + width, *so = sg + width;
  NNLIB__INDEPENDENT_ITERATIONS
  for (int64_t j = 0; j < width; j++) {
    float dh = carry_h[j] + dy[j];
    float i = gi[j], f = gf[j], g = gg[j], o = go[j], t = tc[j];
    float dc = dh * o * (1.0f - t * t) + carry_c[j];
    float di = dc * g * i * (1.0f - i), df = dc * cprev[j] * f * (1.0f - f);
    float dg = dc * i * (1.0f - g * g), d_o = dh * t * o * (1.0f - o);
    gi[j] = di;
    gf[j] = df;
    gg[j] = dg;
    go[j] = d_o;
    si[j] += di;
    sf[j] += df;
    sg[j] += dg;
    so[j] += d_o;
    carry_c[j] = dc * f;
  }
}

static void cells_backward(void *ctx, int64_t begin, int64_t end) {
  const lstm_step *p = ctx;
  const nnlib__recurrent *r = (const nnlib__recurrent *)p->l;
  const lstm_areas *a = p->a;
  int64_t hsz = r->hidden, t = p->t, steps = p->steps;
  for (int64_t s = begin; s < end; s++) {
    int64_t at = (s * steps + t) * hsz;
    lstm_cell_backward(
        a->gates + 4 * at, cell_before(r, a, s, t, steps), a->tanh_c + at,
        nnlib__recurrent_dy_at(p->l, p->dy, p->zeros, s, t, steps),
        a->carry_h + s * hsz, a->carry_c + s * hsz, a->step_sums + s * 4 * hsz,
        hsz);
  }
}

/* Step t's carry product for samples [s0, s0 + m): carry_h = dpre_t W_hh. */
static void carry_calls(void *ctx, int64_t t, int64_t s0, int64_t m,
                        nnlib__gemm_call *calls) {
  const lstm_step *p = ctx;
  calls[0] = nnlib__recurrent_carry_call(p->l, p->a->gates, t, 0.0f,
                                         p->a->carry_h, s0, m, p->steps);
}

/* Step t's backward cells over samples [begin, end). */
static void back_cells(void *ctx, int64_t t, int64_t begin, int64_t end) {
  lstm_step step = *(const lstm_step *)ctx;
  step.t = t;
  cells_backward(&step, begin, end);
}

static nnlib_status lstm_backward(nnlib_layer *l, const nnlib__run *run,
                                  const float *x, const float *y, float *dy,
                                  float *dx, int64_t n) {
  (void)y;
  const nnlib__recurrent *r = (const nnlib__recurrent *)l;
  int64_t hsz = r->hidden, steps = nnlib__recurrent_steps(l, run);
  lstm_areas a = areas_of(l, run);
  memset(a.carry_h, 0, (size_t)(n * hsz) * sizeof(float));
  memset(a.carry_c, 0, (size_t)(n * hsz) * sizeof(float));
  a.step_sums = nnlib__recurrent_step_sums(l, run, n);
  lstm_step step = {l, &a, NULL, dy, nnlib__recurrent_zeros(l, run), 0, steps};
  /* steps T-1 .. 1: cells, then carry_h = dpre_t W_hh; then step 0's
   * cells */
  int64_t cost = hsz * 4 * RNN_COST_GATE;
  nnlib__recurrent_stepper run_steps = {n,           1,          steps, true, 1,
                                        carry_calls, back_cells, cost,  &step};
  NNLIB_TRY(nnlib__recurrent_run_steps(&run_steps));
  if (steps > 0)
    nnlib__recurrent_pass(n, cost, cells_backward, &step);
  return nnlib__recurrent_finish_backward(l, run, x, a.gates, a.gates, a.hprev,
                                          NULL, a.step_sums, dx, n);
}

static const nnlib__layer_ops lstm_ops = {
    .kind = NNLIB_LAYER_LSTM,
    .plan = lstm_plan,
    .init = nnlib__recurrent_init,
    .forward = lstm_forward,
    .backward = lstm_backward,
    .destroy = nnlib__recurrent_destroy,
    .name = lstm_name,
    .decodes = true, /* the cache carries h and c between calls */
    .fuses_sgd = true,
};

nnlib_status nnlib_lstm_create(nnlib_layer **out, int64_t input_size,
                               int64_t hidden_size, int with_bias,
                               int return_sequences) {
  nnlib__recurrent_args a = {input_size, hidden_size, with_bias,
                             return_sequences};
  return nnlib__recurrent_create(out, &lstm_ops, "lstm", 4, &a);
}

/* ------------------------- model description and model file (codec) */

/* "lstm:H" or "lstm:H:nobias" */
static nnlib_status lstm_parse_spec(const nnlib__spec_item *item,
                                    nnlib_layer **out) {
  nnlib__recurrent_args a;
  unsigned rest;
  NNLIB_TRY(nnlib__spec_fields(item, 2, 3));
  NNLIB_TRY(nnlib__recurrent_parse_common(item, &a, &rest));
  if (rest != 0)
    return nnlib__spec_error(item, "the only option of lstm is \"nobias\"");
  return nnlib_lstm_create(out, 0, a.hidden_size, a.with_bias,
                           a.return_sequences);
}

static nnlib_status lstm_read_config(nnlib__reader *r, nnlib_layer **out) {
  nnlib__recurrent_args a;
  NNLIB_TRY(nnlib__recurrent_read_config(r, "lstm", &a));
  return nnlib_lstm_create(out, a.input_size, a.hidden_size, a.with_bias,
                           a.return_sequences);
}

const nnlib__layer_codec nnlib__lstm_codec = {
    .kind = NNLIB_LAYER_LSTM,
    .spec_names = {"lstm"},
    .parse_spec = lstm_parse_spec,
    .write_spec = nnlib__recurrent_write_spec,
    .write_config = nnlib__recurrent_write_config,
    .read_config = lstm_read_config,
};
