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

#include "layers/layer.h"

#include <math.h>
#include <string.h>

/* Workspace areas; each kind uses those it needs (size 0 otherwise). */
enum {
  RNN_WS_GATES,     /* [N, T, G*H]: pre-activations, then activations (the
                       forward keeps them for backward), then dL/d(pre) */
  RNN_WS_HIDDEN,    /* gru [N, T, 3H]: W_hh h_{t-1} + b_hh per step, then
                       dL/d of it */
  RNN_WS_HPREV,     /* [N, T, H]: h_{t-1}, the state entering step t */
  RNN_WS_CELL,      /* lstm [N, T, H]: c_t */
  RNN_WS_TANH_C,    /* lstm [N, T, H]: tanh(c_t) */
  RNN_WS_CPREV0,    /* lstm [N, H]: c_{-1}, the initial cell state */
  RNN_WS_CARRY_H,   /* [N, H]: dL/dh_{t-1} through the recurrence */
  RNN_WS_CARRY_C,   /* lstm [N, H]: dL/dc_{t-1} */
  RNN_WS_BIAS,      /* rnn, lstm [G*H]: b_ih + b_hh; gru [4H]: see gru.c */
  RNN_WS_ZEROS,     /* [H]: zeros, dL/dh_t of steps not in the output */
  RNN_WS_RESET_H,   /* gru with linear_before_reset 0 [N, T, H]: r_t h_{t-1},
                       what W_hn multiplies (kept for dW_hn) */
  RNN_WS_D_RESET_H, /* the same gru [N, H]: dL/d(r_t h_{t-1}) of one step */
  RNN_WS_W_HH_T,    /* [H, G*H]: W_hh^T for the step products of a forward
                       (nnlib__recurrent_w_hh_t) */
  RNN_WS_STEP_SUMS, /* lstm, gru [N, S]: each sample's dL/d(pre) summed over
                       its steps by the backward cells; their column sums
                       are the bias gradients (S below; the cells add them
                       without bias too, one loop for both) */
  RNN_WS_COUNT
};

typedef struct nnlib__recurrent {
  nnlib_layer base;
  int64_t gates;       /* G */
  int64_t declared_in; /* F as created; 0: taken at compile */
  int64_t features;    /* F as planned */
  int64_t hidden;      /* H */
  int64_t steps;       /* T as planned: the longest sequence; a call may
                          run fewer (nnlib__recurrent_steps) */
  bool with_bias;
  bool return_sequences;
  nnlib_activation nonlinearity; /* rnn: tanh or relu */
  /* gru: true (PyTorch's form, ONNX's linear_before_reset = 1): n = tanh(
   * W_in x + b_in + r (W_hn h + b_hn)); false (ONNX's default 0): n =
   * tanh(W_in x + b_in + W_hn (r h) + b_hn). Unused by rnn and lstm. */
  bool linear_before_reset;
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

/* T of this call: run->steps when the model runs shorter sequences than
 * planned, else the planned T. Every per-step array of the workspace is
 * packed [n, T, width] with this T. */
int64_t nnlib__recurrent_steps(const nnlib_layer *l, const nnlib__run *run);

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
                                             int64_t n, int64_t steps);
/* W_hh^T [H, G*H], made into this call's workspace, when the forward runs
 * at least RNN_TRANSPOSED_MIN_PRODUCTS step products (`products`: the
 * steps whose h_{t-1} is not zero); else NULL, and the products read W_hh
 * as stored. The step products, h_{t-1} W_hh^T, then read their B as
 * stored rows instead of transposed ones: OpenBLAS packs B for every call
 * (for the benchmark LSTM, [64, 128] x [128, 512], 27 times a call), and
 * packing W_hh^T's contiguous rows costs about 6.5 us less a product than
 * gathering W_hh's columns (Haswell kernels, one thread: 110 against 120
 * us; 22 against 28 at 1 row), against one 13 us transpose. The packed
 * panels hold the same values in the same order, so OpenBLAS 0.3.21's
 * Haswell, Zen and Prescott kernels give the same bits either way (nine
 * shapes from 1 to 256 rows, 1 and 2 threads); its SkylakeX kernels do
 * not for some small ones (1 x 512 x 128, 17 x 100 x 33), whose products
 * go by kernels of their own. */
enum { RNN_TRANSPOSED_MIN_PRODUCTS = 4 };
const float *nnlib__recurrent_w_hh_t(const nnlib_layer *l,
                                     const nnlib__run *run, int64_t products);
/* Columns [col, col + width) of out's rows (ld T*G*H) at step t = beta
 * times what they hold + the rows of `in_all` at step t (ld T*H; h_{t-1},
 * or gru's r h_{t-1}) times W_hh's rows [col, col + width) transposed:
 * [N, H] x [H, width], one GEMM over the batch; w_hh_t: from
 * nnlib__recurrent_w_hh_t (NULL: W_hh as stored). */
nnlib_status nnlib__recurrent_step_product(const nnlib_layer *l,
                                           const float *w_hh_t,
                                           const float *in_all, int64_t t,
                                           int64_t col, int64_t width,
                                           float beta, float *out_all,
                                           int64_t n, int64_t steps);
/* The same product for samples [s0, s0 + m) only, as a
 * call for nnlib__recurrent_run_steps. */
nnlib__gemm_call
nnlib__recurrent_step_call(const nnlib_layer *l, const float *w_hh_t,
                           const float *hprev_all, int64_t t, int64_t col,
                           int64_t width, float beta, float *out_all,
                           int64_t s0, int64_t m, int64_t steps);
/* The carry product of step t (nnlib__recurrent_carry_product) for
 * samples [s0, s0 + m) only, as a call for nnlib__recurrent_run_steps. */
nnlib__gemm_call nnlib__recurrent_carry_call(const nnlib_layer *l,
                                             const float *dpre_all, int64_t t,
                                             float beta, float *carry,
                                             int64_t s0, int64_t m,
                                             int64_t steps);
/* b_ih + b_hh into sum (G*H floats), zeros without bias. */
void nnlib__recurrent_bias_sum(const nnlib_layer *l, float *sum);
/* Where the gate pass writes h_t of sample s: its output row when the
 * whole sequence is returned, else the next step's hprev row (the output
 * row for the last step). */
float *nnlib__recurrent_h_slot(const nnlib_layer *l, float *hprev_all,
                               float *y, int64_t s, int64_t t, int64_t steps);
/* Copies h_t from the output row into the next step's hprev row when the
 * slot was the output (whole sequence returned). */
void nnlib__recurrent_h_share(const nnlib_layer *l, float *hprev_all,
                              const float *y, int64_t s, int64_t t,
                              int64_t steps);
/* Asks for `count` floats from `from` in cache ahead of their use. The
 * GRU's cells read the n block of the input projection, which the step's
 * GEMMs do not touch: written for every step at once (2.75 MB for 64
 * samples of 28 steps of gru:128), it is out of L2 by then, and without
 * this each sample's cells waited for it. */
static inline void nnlib__recurrent_prefetch(const float *from, int64_t count) {
#if defined(__GNUC__)
  for (int64_t k = 0; k < count; k += 64 / (int64_t)sizeof(float))
    __builtin_prefetch(from + k);
#else
  (void)from;
  (void)count;
#endif
}
/* dL/dh_t from the layer's output gradient for sample s, or `zeros` (H
 * floats) when the output does not contain h_t (only the last step is
 * returned). */
const float *nnlib__recurrent_dy_at(const nnlib_layer *l, const float *dy,
                                    const float *zeros, int64_t s, int64_t t,
                                    int64_t steps);

/* ------------------------------------------------------------ decoding */

/* Decoding (run->cache set, nnlib_model_generate) carries each sequence's
 * state from one call to the next in the layer's cache: per sample
 * cache_floats = H (rnn, gru) or 2H (lstm: h, then c). A call starts from
 * the cache, except at position 0 when nnlib_recurrent_set_initial_state
 * gave a state (the cache is zero there, the state is not); outside
 * decoding it starts from that state or zeros, as always. */
bool nnlib__recurrent_reads_cache(const nnlib_layer *l,
                                  const nnlib__run *run);
/* h_{-1} is zero for every sample (no initial state, not from the cache):
 * step 0 needs no recurrent product. */
bool nnlib__recurrent_starts_at_zero(const nnlib_layer *l,
                                     const nnlib__run *run);
/* dst rows n (leading dimension ld) = the state entering this call: h
 * (cell false) or lstm's c (cell true), from the cache or the initial
 * state as above. */
void nnlib__recurrent_load_initial(const nnlib_layer *l,
                                   const nnlib__run *run, bool cell,
                                   float *dst, int64_t ld, int64_t n);
/* After the steps of a decoding call (nothing otherwise): each sample's
 * final h (its last output row) and, for lstm, c (cell: the [N, T, H]
 * c_t of the call, NULL for the other kinds) into its cache row. */
void nnlib__recurrent_save_state(const nnlib_layer *l, const nnlib__run *run,
                                 const float *y, const float *cell, int64_t n,
                                 int64_t steps);

/* ----------------------------------------------------- backward pieces */

/* carry[N, H] = beta * carry + dpre_t W_hh: [N, G*H] x [G*H, H], the
 * gradient reaching h_{t-1} through step t's recurrent product. */
nnlib_status nnlib__recurrent_carry_product(const nnlib_layer *l,
                                            const float *dpre_all, int64_t t,
                                            float beta, float *carry,
                                            int64_t n, int64_t steps);
/* After the steps: dX = dG_in W_ih, and the weight gradients over all N*T
 * rows at once: dW_ih = dG_in^T X, dW_hh = dG_hh^T Hprev. With fused
 * plain SGD these GEMMs update the weights in place instead.
 * last_block_in: NULL, or the [N*T, H] rows the last gate block of W_hh
 * multiplies instead of Hprev (gru with linear_before_reset 0: r h), whose
 * rows of dW_hh are then dG_hh(last block)^T last_block_in.
 * The bias gradients: db_ih the column sums of dG_in, db_hh those of
 * dG_hh (the same array except for gru, whose db_hh copies db_ih where
 * both hold the same values: r and z, and n with linear_before_reset 0).
 * step_sums: NULL (rnn), or the [N, S] sums of RNN_WS_STEP_SUMS, which
 * the cells filled, each row a sample's dG_in over its steps and then
 * its dG_hh in the columns that db_hh does not copy: the column sums run
 * over N rows there instead of N*T rows of dG read back from memory. */
nnlib_status nnlib__recurrent_finish_backward(
    nnlib_layer *l, const nnlib__run *run, const float *x, const float *dg_in,
    const float *dg_hh, const float *hprev_all, const float *last_block_in,
    const float *step_sums, float *dx, int64_t n);

/* S, the floats per sample of RNN_WS_STEP_SUMS: G*H, plus H for gru with
 * linear_before_reset 1 (its hidden side of n, dpre_n r). */
int64_t nnlib__recurrent_step_sums_width(const nnlib_layer *l);

/* RNN_WS_STEP_SUMS of the run, zeroed for n samples (the cells add). */
float *nnlib__recurrent_step_sums(const nnlib_layer *l, const nnlib__run *run,
                                  int64_t n);

/* ---------------------------------------------------- nonlinearities */

/* The gates' sigmoid and tanh are nnlib__sigmoid_gate and nnlib__tanh_gate
 * of core/vecmath.h: float with FMA, branch-free and vectorisable, within
 * 2.45 ulp (sigmoid; 1.69 above -16.29) and 1.91 ulp (tanh) of the exact
 * value (the activation layer's double ones are within 0.51 but 3 times
 * as slow, and were most of an LSTM step beyond its GEMMs). The forward
 * cells are compiled with its gate clones (AVX-512F, AVX2 with FMA,
 * baseline); the backward cells, which need no e^x, with the wide
 * clones. The files with cells forbid FMA contraction (clang's avx512f
 * implies FMA): the only FMAs are the gates' explicit fmaf, so every clone
 * gives the same bits. */
#include "core/vecmath.h"

/* ------------------------------------------------- the per-step passes */

/* Rough work of a pass per hidden unit, for the grain below, in units of
 * about 0.19 ns: each gate value costs a few float operations and memory
 * traffic, each float sigmoid or tanh (0.22 ns an element) about as much.
 * An lstm cell forward is 4 GATE + 5 NONLINEAR (measured 1.3 ns a hidden
 * unit), backward 4 GATE (1.0 ns: it streams the gates back from memory).
 * NONLINEAR was 4 while the gates ran in double (4.5 ns a unit forward). */
#define RNN_COST_GATE ((int64_t)1)
#define RNN_COST_NONLINEAR ((int64_t)1)

/* Runs fn(ctx, begin, end) over the n samples of one step, split into
 * contiguous ranges of samples on nnlib's threads (nnlib__parallel_for)
 * when each range gets enough work to pay for the hand-over; `cost` is a
 * sample's work in RNN_COST_* units. Every sample's cell reads and writes
 * only its own rows, so the split changes no bit. No GEMM may run inside
 * fn. */
void nnlib__recurrent_pass(int64_t n, int64_t cost, nnlib__range_fn fn,
                           void *ctx);
/* The steps [first, steps) of n samples: per step t, the
 * calls_per_step products `calls` gives for samples [s0, s0 + m), one
 * after the other, then the cells over those samples (`cells`, cost
 * RNN_COST_* units a sample, as nnlib__recurrent_pass); backward, from
 * the last step down, the cells first and then the products (the carry
 * into the step before). Each sample's
 * step reads only its own rows of h_{t-1}, so on several threads the
 * batch goes in lanes: each thread takes a range of the samples (at least
 * 32, cut at multiples of 16 rows) and runs all their steps
 * alone, products and cells, with no hand-over between the steps; on one
 * thread, or for fewer samples, one lane whose products and cells split
 * over the threads step by step. One hand-over a call instead of two a
 * step: GRU inference of the benchmark (gru:128, 28 steps, batch 64) on
 * two threads 1.09x faster, LSTM's as fast (each lane packs all of W_hh).
 * The bits depend on the thread count and the batch, as a product split
 * over the threads does: OpenBLAS rounds a product of fewer rows
 * differently. */
typedef void (*nnlib__recurrent_calls_fn)(void *ctx, int64_t t, int64_t s0,
                                          int64_t m, nnlib__gemm_call *calls);
typedef void (*nnlib__recurrent_cells_fn)(void *ctx, int64_t t, int64_t begin,
                                          int64_t end);
typedef struct nnlib__recurrent_stepper {
  int64_t n, first, steps;
  /* backward: the steps from steps - 1 down to first, each its cells
   * first and then its products */
  bool backward;
  int64_t calls_per_step; /* 1 to NNLIB__UNIT_CALLS_MAX */
  nnlib__recurrent_calls_fn calls;
  nnlib__recurrent_cells_fn cells;
  int64_t cell_cost;
  void *ctx;
} nnlib__recurrent_stepper;
nnlib_status nnlib__recurrent_run_steps(const nnlib__recurrent_stepper *s);
/* For tests: the least samples of a lane and the multiple its start is
 * rounded down to (<= 0: the defaults, 32 and 16; rows must not exceed
 * min_samples), so that small batches go in lanes too. Set it while no
 * model runs. */
void nnlib__recurrent_set_lanes(int64_t min_samples, int64_t rows);
/* For tests: the least work of a range of the cell passes and of the bias
 * gradients' column sums (<= 0: the default), so that small batches split
 * too. Set it while no model runs. */
void nnlib__recurrent_set_pass_grain(int64_t grain);

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
