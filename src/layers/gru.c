/* gru.c - the gated recurrent unit of torch.nn.GRU (one layer), gates in
 * PyTorch's order r, z, n:
 *
 *   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
 *   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
 *   n = tanh(W_in x + b_in + r (W_hn h + b_hn))
 *   h_t = (1 - z) n + z h_{t-1}
 *
 * The reset gate multiplies W_hn h + b_hn, so the recurrent product cannot
 * be added into the input projection; it is kept per step (area HIDDEN).
 *
 * forward:  P = X W_ih^T            [N*T, F] x [F, 3H]  one GEMM, all steps
 *           per step t: Q_t = h_{t-1} W_hh^T   [N, H] x [H, 3H]  one GEMM
 *                       r, z, n, h_t           one fused pass (Q_n += b_hn
 *                       is kept for backward)
 * backward (t = T-1 .. 0), with dh = dY_t + carry:
 *           dpre_n = dh (1 - z) (1 - n^2)
 *           dpre_z = dh (h_{t-1} - n) z (1 - z)
 *           dpre_r = dpre_n (W_hn h + b_hn) r (1 - r)
 *           dQ_n   = dpre_n r      (the hidden side of n differs from the
 *                                   input side; r and z are the same)
 *           carry  = dh z + dQ_t W_hh    [N, 3H] x [3H, H]  one GEMM
 *           then dX = dP W_ih, dW_ih = dP^T X, dW_hh = dQ^T Hprev, db over
 *           all steps (recurrent.c)
 */
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

/* One step of one sample: p [3H] input side (pre-activations in, r z n
 * out), q [3H] hidden side (W_hh h_{t-1} in; q_n + b_hn out). */
NNLIB__VECTOR_CLONES
static void gru_cell(float *restrict p, float *restrict q,
                     const float *restrict bias, const float *restrict hprev,
                     float *restrict h, int64_t width) {
  float *pr = p, *pz = pr + width, *pn = pz + width;
  const float *qr = q, *qz = qr + width;
  float *qn = q + 2 * width;
  const float *brz = bias, *bn = bias + 2 * width, *bhn = bias + 3 * width;
  for (int64_t j = 0; j < width; j++) {
    float r = nnlib__sigmoid(pr[j] + qr[j] + brz[j]);
    float z = nnlib__sigmoid(pz[j] + qz[j] + brz[width + j]);
    float hn = qn[j] + bhn[j];
    float n = nnlib__tanh(pn[j] + bn[j] + r * hn);
    pr[j] = r;
    pz[j] = z;
    pn[j] = n;
    qn[j] = hn;
    h[j] = (1.0f - z) * n + z * hprev[j];
  }
}

typedef struct gru_areas {
  float *p, *q, *hprev, *carry, *bias;
} gru_areas;

static gru_areas areas_of(const nnlib_layer *l, const nnlib__run *run) {
  gru_areas a = {nnlib__recurrent_area(l, run, RNN_WS_GATES),
                 nnlib__recurrent_area(l, run, RNN_WS_HIDDEN),
                 nnlib__recurrent_area(l, run, RNN_WS_HPREV),
                 nnlib__recurrent_area(l, run, RNN_WS_CARRY_H),
                 nnlib__recurrent_area(l, run, RNN_WS_BIAS)};
  return a;
}

/* Q_t = 0 for every sample (a zero h_{-1}) */
static void zero_step(float *q, int64_t t, int64_t steps, int64_t width,
                      int64_t n) {
  for (int64_t s = 0; s < n; s++)
    memset(q + (s * steps + t) * width, 0, (size_t)width * sizeof(float));
}

static nnlib_status gru_forward(nnlib_layer *l, const nnlib__run *run,
                                const float *x, float *y, int64_t n) {
  const nnlib__recurrent *r = (const nnlib__recurrent *)l;
  int64_t hsz = r->hidden, steps = nnlib__recurrent_steps(l, run);
  NNLIB_TRY(nnlib__recurrent_check_state(l, n));
  gru_areas a = areas_of(l, run);
  gru_bias(l, a.bias, hsz);
  NNLIB_TRY(nnlib__recurrent_project_inputs(l, x, a.p, n, steps));
  nnlib__recurrent_load_initial(l, run, false, a.hprev, steps * hsz, n);
  bool zero_start = nnlib__recurrent_starts_at_zero(l, run);
  for (int64_t t = 0; t < steps; t++) {
    if (t > 0 || !zero_start)
      NNLIB_TRY(nnlib__recurrent_step_product(l, a.hprev, t, 0.0f, a.q, n, steps));
    else
      zero_step(a.q, t, steps, 3 * hsz, n);
    for (int64_t s = 0; s < n; s++) {
      int64_t at = (s * steps + t) * hsz;
      gru_cell(a.p + 3 * at, a.q + 3 * at, a.bias, a.hprev + at,
               nnlib__recurrent_h_slot(l, a.hprev, y, s, t, steps), hsz);
      nnlib__recurrent_h_share(l, a.hprev, y, s, t, steps);
    }
  }
  nnlib__recurrent_save_state(l, run, y, NULL, n, steps);
  return NNLIB_OK;
}

/* One step of one sample backwards (see the top of the file): p and q get
 * dL/d(pre) of the input and hidden sides, carry gets dh z. */
NNLIB__VECTOR_CLONES
static void gru_cell_backward(float *restrict p, float *restrict q,
                              const float *restrict hprev,
                              const float *restrict dy, float *restrict carry,
                              int64_t width) {
  float *pr = p, *pz = pr + width, *pn = pz + width;
  float *qr = q, *qz = qr + width, *qn = qz + width;
  for (int64_t j = 0; j < width; j++) {
    float dh = carry[j] + dy[j];
    float r = pr[j], z = pz[j], n = pn[j], hn = qn[j];
    float dn = dh * (1.0f - z) * (1.0f - n * n);
    float dz = dh * (hprev[j] - n) * z * (1.0f - z);
    float dr = dn * hn * r * (1.0f - r);
    pr[j] = dr;
    pz[j] = dz;
    pn[j] = dn;
    qr[j] = dr;
    qz[j] = dz;
    qn[j] = dn * r;
    carry[j] = dh * z;
  }
}

static nnlib_status gru_backward(nnlib_layer *l, const nnlib__run *run,
                                 const float *x, const float *y, float *dy,
                                 float *dx, int64_t n) {
  (void)y;
  const nnlib__recurrent *r = (const nnlib__recurrent *)l;
  int64_t hsz = r->hidden, steps = nnlib__recurrent_steps(l, run);
  gru_areas a = areas_of(l, run);
  const float *zeros = nnlib__recurrent_zeros(l, run);
  memset(a.carry, 0, (size_t)(n * hsz) * sizeof(float));
  for (int64_t t = steps; t-- > 0;) {
    for (int64_t s = 0; s < n; s++) {
      int64_t at = (s * steps + t) * hsz;
      gru_cell_backward(a.p + 3 * at, a.q + 3 * at, a.hprev + at,
                        nnlib__recurrent_dy_at(l, dy, zeros, s, t, steps),
                        a.carry + s * hsz, hsz);
    }
    /* carry = dh z (written above) + dQ_t W_hh */
    if (t > 0)
      NNLIB_TRY(nnlib__recurrent_carry_product(l, a.q, t, 1.0f, a.carry, n, steps));
  }
  return nnlib__recurrent_finish_backward(l, run, x, a.p, a.q, a.hprev, dx,
                                          n);
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

nnlib_status nnlib_gru_create(nnlib_layer **out, int64_t input_size,
                              int64_t hidden_size, int with_bias,
                              int return_sequences) {
  nnlib__recurrent_args a = {input_size, hidden_size, with_bias,
                             return_sequences};
  return nnlib__recurrent_create(out, &gru_ops, "gru", 3, &a);
}

/* ------------------------- model description and model file (codec) */

/* "gru:H" or "gru:H:nobias" */
static nnlib_status gru_parse_spec(const nnlib__spec_item *item,
                                   nnlib_layer **out) {
  nnlib__recurrent_args a;
  unsigned rest;
  NNLIB_TRY(nnlib__spec_fields(item, 2, 3));
  NNLIB_TRY(nnlib__recurrent_parse_common(item, &a, &rest));
  if (rest != 0)
    return nnlib__spec_error(item, "the only option of gru is \"nobias\"");
  return nnlib_gru_create(out, 0, a.hidden_size, a.with_bias,
                          a.return_sequences);
}

static nnlib_status gru_read_config(nnlib__reader *r, nnlib_layer **out) {
  nnlib__recurrent_args a;
  NNLIB_TRY(nnlib__recurrent_read_config(r, "gru", &a));
  return nnlib_gru_create(out, a.input_size, a.hidden_size, a.with_bias,
                          a.return_sequences);
}

const nnlib__layer_codec nnlib__gru_codec = {
    .kind = NNLIB_LAYER_GRU,
    .spec_names = {"gru"},
    .parse_spec = gru_parse_spec,
    .write_spec = nnlib__recurrent_write_spec,
    .write_config = nnlib__recurrent_write_config,
    .read_config = gru_read_config,
};
