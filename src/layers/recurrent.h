/* recurrent.h - what rnn.c, lstm.c and gru.c share (recurrent.c).
 *
 * Sequences are batch first: x [N, T, F], y [N, T, H] (or [N, H] with only
 * the last step). Every per-step array in the workspace keeps that (n, t)
 * row order, so one GEMM covers all N*T rows where the math allows (the
 * input projection, dX, dW_ih, dW_hh) and the per-step GEMMs address step t
 * of every sample as rows with a leading dimension of T times the row width.
 *
 * Parameters are PyTorch's (torch.nn.RNN/LSTM/GRU, one layer): weight_ih
 * [G*H, F], weight_hh [G*H, H], bias_ih [G*H], bias_hh [G*H], with G gate
 * blocks of H rows each: 1 for rnn, i f g o for lstm, r z n for gru. */
#ifndef NNLIB_RECURRENT_H
#define NNLIB_RECURRENT_H

#include "nnlib_internal.h"

#include <math.h>
#include <string.h>

/* Workspace areas; each kind uses those it needs (size 0 otherwise). */
enum {
  RNN_WS_GATES,   /* [N, T, G*H]: pre-activations, then activations (the
                     forward keeps them for backward), then dL/d(pre) */
  RNN_WS_HIDDEN,  /* gru [N, T, 3H]: W_hh h_{t-1} + b_hh per step, then
                     dL/d of it */
  RNN_WS_HPREV,   /* [N, T, H]: h_{t-1}, the state entering step t */
  RNN_WS_CELL,    /* lstm [N, T, H]: c_t */
  RNN_WS_TANH_C,  /* lstm [N, T, H]: tanh(c_t) */
  RNN_WS_CPREV0,  /* lstm [N, H]: c_{-1}, the initial cell state */
  RNN_WS_CARRY_H, /* [N, H]: dL/dh_{t-1} through the recurrence */
  RNN_WS_CARRY_C, /* lstm [N, H]: dL/dc_{t-1} */
  RNN_WS_BIAS,    /* rnn, lstm [G*H]: b_ih + b_hh; gru [4H]: see gru.c */
  RNN_WS_ZEROS,   /* [H]: zeros, dL/dh_t of steps not in the output */
  RNN_WS_COUNT
};

typedef struct nnlib__recurrent {
  nnlib_layer base;
  int64_t gates;       /* G */
  int64_t declared_in; /* F as created; 0: taken at compile */
  int64_t features;    /* F as planned */
  int64_t hidden;      /* H */
  int64_t steps;       /* T as planned: the model's input fixes it */
  bool with_bias;
  bool return_sequences;
  nnlib_activation nonlinearity; /* rnn: tanh or relu */
  /* Initial state set by nnlib_recurrent_set_initial_state: state_rows
   * rows of H floats (1: every sample), owned; NULL: zeros. */
  float *h0, *c0;
  int64_t state_rows;
  /* Floats per sample of each workspace area (set by the kind's plan). */
  int64_t area_per_sample[RNN_WS_COUNT];
  int64_t area_fixed[RNN_WS_COUNT]; /* floats independent of the batch */
  int64_t max_batch;
} nnlib__recurrent;

/* Constructor arguments shared by the three kinds. */
typedef struct nnlib__recurrent_args {
  int64_t input_size, hidden_size;
  int with_bias, return_sequences;
} nnlib__recurrent_args;

/* Checks the arguments (messages name `kind`), allocates and initialises a
 * layer of `gates` gate blocks. */
nnlib_status nnlib__recurrent_create(nnlib_layer **out,
                                     const nnlib__layer_ops *ops,
                                     const char *kind, int64_t gates,
                                     const nnlib__recurrent_args *args);
bool nnlib__layer_is_recurrent(const nnlib_layer *l);

/* Shared plan: input [T, F], output [T, H] or [H], the four parameters.
 * The kind then sets area_per_sample / area_fixed; the total goes through
 * nnlib__recurrent_plan_workspace. */
nnlib_status nnlib__recurrent_plan(nnlib_layer *l, const nnlib__shape *in,
                                   int64_t max_batch);
nnlib_status nnlib__recurrent_plan_workspace(nnlib_layer *l);
/* The zero row of RNN_WS_ZEROS, cleared. */
const float *nnlib__recurrent_zeros(const nnlib_layer *l,
                                    const nnlib__run *run);
/* Start of area `a` in this call's workspace. */
float *nnlib__recurrent_area(const nnlib_layer *l, const nnlib__run *run,
                             int area);
/* PyTorch's default: every parameter U(-1/sqrt(H), 1/sqrt(H)). */
void nnlib__recurrent_init(nnlib_layer *l, nnlib__rng *rng);
void nnlib__recurrent_destroy(nnlib_layer *l);

/* Parameter views. bias_* are NULL without bias. */
const float *nnlib__recurrent_w_ih(const nnlib_layer *l);
const float *nnlib__recurrent_w_hh(const nnlib_layer *l);
const float *nnlib__recurrent_b_ih(const nnlib_layer *l);
const float *nnlib__recurrent_b_hh(const nnlib_layer *l);

/* ------------------------------------------------------ forward pieces */

/* Checks the initial state's rows against the batch n. */
nnlib_status nnlib__recurrent_check_state(const nnlib_layer *l, int64_t n);
/* dst rows n (leading dimension ld) = the initial state `state` (h0 or c0,
 * broadcast or per sample), or zeros when it is NULL. */
void nnlib__recurrent_load_state(const nnlib_layer *l, const float *state,
                                 float *dst, int64_t ld, int64_t n);
/* gates[N*T, G*H] = x[N*T, F] W_ih^T: the input projection of every step
 * of every sample in one GEMM. */
nnlib_status nnlib__recurrent_project_inputs(const nnlib_layer *l,
                                             const float *x, float *gates,
                                             int64_t n);
/* out rows (ld T*G*H) = beta * out + h_{t-1} W_hh^T for step t of all n
 * samples: [N, H] x [H, G*H], one GEMM over the batch. */
nnlib_status nnlib__recurrent_step_product(const nnlib_layer *l,
                                           const float *hprev_all, int64_t t,
                                           float beta, float *out_all,
                                           int64_t n);
/* b_ih + b_hh into sum (G*H floats), zeros without bias. */
void nnlib__recurrent_bias_sum(const nnlib_layer *l, float *sum);
/* Where the gate pass writes h_t of sample s: its output row when the
 * whole sequence is returned, else the next step's hprev row (the output
 * row for the last step). */
float *nnlib__recurrent_h_slot(const nnlib_layer *l, float *hprev_all,
                               float *y, int64_t s, int64_t t);
/* Copies h_t from the output row into the next step's hprev row when the
 * slot was the output (whole sequence returned). */
void nnlib__recurrent_h_share(const nnlib_layer *l, float *hprev_all,
                              const float *y, int64_t s, int64_t t);
/* dL/dh_t from the layer's output gradient for sample s, or `zeros` (H
 * floats) when the output does not contain h_t (only the last step is
 * returned). */
const float *nnlib__recurrent_dy_at(const nnlib_layer *l, const float *dy,
                                    const float *zeros, int64_t s, int64_t t);

/* ----------------------------------------------------- backward pieces */

/* carry[N, H] = beta * carry + dpre_t W_hh: [N, G*H] x [G*H, H], the
 * gradient reaching h_{t-1} through step t's recurrent product. */
nnlib_status nnlib__recurrent_carry_product(const nnlib_layer *l,
                                            const float *dpre_all, int64_t t,
                                            float beta, float *carry,
                                            int64_t n);
/* After the steps: dX = dG_in W_ih, and the weight gradients over all N*T
 * rows at once: dW_ih = dG_in^T X, dW_hh = dG_hh^T Hprev, db_ih and db_hh
 * the column sums of dG_in and dG_hh (the same array except for gru). With
 * fused plain SGD these GEMMs update the weights in place instead. */
nnlib_status nnlib__recurrent_finish_backward(nnlib_layer *l,
                                              const nnlib__run *run,
                                              const float *x,
                                              const float *dg_in,
                                              const float *dg_hh,
                                              const float *hprev_all,
                                              float *dx, int64_t n);

/* ---------------------------------------------------- nonlinearities */

/* The gate passes evaluate a few sigmoids and tanhs per hidden unit, per
 * step and sample: through libm's expf and tanhf they took two thirds of
 * the forward pass. These are branch-free (selects, no calls), so the gate
 * loops vectorise; errors stay within a few float ulps, below PyTorch's
 * own float32 differences (test_internal_rnn_torch.c). NaN propagates. */

/* The gate loops are compiled twice on x86-64, for the baseline (SSE2, 4
 * floats per vector) and for AVX2 (8), and the dynamic loader picks one
 * for the machine. Not for FMA: both round every operation alike, so the
 * results are the same bits on every machine. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NNLIB__TSAN 1
#endif
#endif
/* Not under ThreadSanitizer: the clones' resolver runs while the dynamic
 * loader relocates the library, before the TSan runtime is up, and its
 * instrumented entry crashes the process at load. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) &&          \
    !defined(__SANITIZE_THREAD__) && !defined(NNLIB__TSAN)
#define NNLIB__GATE_LOOP __attribute__((target_clones("avx2", "default")))
#else
#define NNLIB__GATE_LOOP
#endif

/* c ? a : b through the bits. A float select written with ?: becomes a
 * branch around the arithmetic of one side (GCC does not speculate a float
 * operation that may trap), and a loop with a branch does not vectorise;
 * this one has no float operation to guard. */
static inline float nnlib__rnn_select(bool c, float a, float b) {
  uint32_t mask = (uint32_t)0 - (uint32_t)c, ua, ub;
  memcpy(&ua, &a, sizeof ua);
  memcpy(&ub, &b, sizeof ub);
  uint32_t bits = (ua & mask) | (ub & ~mask);
  float v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

/* e^x for x <= 0: x = n ln2 + r with n = round(x / ln2) and |r| <= ln2/2
 * (ln2 split in a part exact in float for n up to 2^7, and the rest), e^r
 * by its Taylor polynomial to r^7 (remainder < 6e-9 relative), 2^n from
 * the exponent bits. Below -87, where 2^n would leave the normal range,
 * it gives 0. NaN gives some finite value: callers select NaN through. */
static inline float nnlib__rnn_exp_nonpositive(float x) {
  float xc = nnlib__rnn_select(x > -87.0f, x, -87.0f); /* NaN too */
  float t = xc * 1.44269504f;
  int32_t n = (int32_t)(t - 0.5f); /* t <= 0: rounds to nearest */
  float fn = (float)n;
  float r = (xc - fn * 0.693145752f) - fn * 1.42860677e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  uint32_t bits = (uint32_t)(n + 127) << 23; /* n >= -126 */
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return nnlib__rnn_select(x > -87.0f, scale * p, 0.0f);
}

/* 1 / (1 + e^-x) from e = e^{-|x|} <= 1, so nothing overflows. */
static inline float nnlib__rnn_sigmoid(float x) {
  float e = nnlib__rnn_exp_nonpositive(-fabsf(x));
  float s = 1.0f / (1.0f + e);
  return nnlib__rnn_select(x != x, x, nnlib__rnn_select(x >= 0.0f, s, e * s));
}

/* tanh |x| = (1 - e) / (1 + e) with e = e^{-2|x|}; below 0.125, where
 * 1 - e cancels, the series |x| - |x|^3/3 + 2|x|^5/15 - 17|x|^7/315 +
 * 62|x|^9/2835 (remainder < 1e-11 relative) instead. */
static inline float nnlib__rnn_tanh(float x) {
  float a = fabsf(x), a2 = a * a;
  float e = nnlib__rnn_exp_nonpositive(-2.0f * a);
  float far = (1.0f - e) / (1.0f + e);
  float series = 62.0f / 2835.0f;
  series = series * a2 - 17.0f / 315.0f;
  series = series * a2 + 2.0f / 15.0f;
  series = series * a2 - 1.0f / 3.0f;
  series = a + a * a2 * series;
  float y = copysignf(nnlib__rnn_select(a < 0.125f, series, far), x);
  return nnlib__rnn_select(x != x, x, y);
}

/* ----------------------------------------------- descriptions and files */

/* "<kind>:H[:options]" (options as the kind allows, see rnn.c) and ",last"
 * when only the last step is returned. */
void nnlib__recurrent_write_spec(const nnlib_layer *l, nnlib__text *t);
/* The H field and the "nobias" option; *rest_mask gets a bit per field
 * from 2 on that is not "nobias" (for the kind to interpret). */
nnlib_status nnlib__recurrent_parse_common(const nnlib__spec_item *item,
                                           nnlib__recurrent_args *args,
                                           unsigned *rest_mask);
/* config: i64 input_size as created, i64 hidden_size, u32 with_bias,
 * u32 return_sequences (the rnn adds its nonlinearity after them). */
void nnlib__recurrent_write_config(const nnlib_layer *l, nnlib__writer *w);
nnlib_status nnlib__recurrent_read_config(nnlib__reader *r, const char *kind,
                                          nnlib__recurrent_args *args);

#endif
