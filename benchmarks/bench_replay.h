/* bench_replay.h - a step's recorded GEMMs issued again on the step's own
 * buffers (issue 17), and the check that the bench's GEMM list
 * (bench_models.c) is those calls. */
#ifndef NNLIB_BENCH_REPLAY_H
#define NNLIB_BENCH_REPLAY_H

#include "bench_models.h"
#include "bench_record.h"

#include <stdbool.h>
#include <stddef.h>

/* Where a replay writes into memory the step keeps between steps. */
typedef struct bench_region {
  float *start;
  size_t floats;
} bench_region;

typedef struct bench_replay {
  bench_call *calls; /* the recorded calls, in the step's order */
  int count;
  int *layer;        /* per call: the layer of its list entry (-1: none) */
  const char **role; /* per call: its list entry's role (NULL: none)     */
  /* What the calls with beta != 0 accumulate into, merged; saved before
   * and restored after each timed replay (bench_replay_save/restore). */
  bench_region *regions;
  int region_count;
  float *saved;
  size_t saved_floats;
} bench_replay;

/* Copies the recording's calls and finds the regions to keep. false when
 * out of memory. */
bool bench_replay_init(bench_replay *r, const bench_recording *rec);
void bench_replay_free(bench_replay *r);

/* Issues the calls in order: all of them (layer < 0) or those attributed
 * to one layer (after bench_replay_attribute). */
void bench_replay_run(const bench_replay *r, int layer);

/* Copies the accumulated regions aside / back. */
void bench_replay_save(bench_replay *r);
void bench_replay_restore(const bench_replay *r);

/* 2 m n k summed over the calls (of one layer, or all for layer < 0). */
double bench_replay_flops(const bench_replay *r, int layer);

/* Values the calls wrote that are NaN, Inf or subnormal (each element of
 * each call's C, counted once per call that writes it). */
void bench_replay_scan(const bench_replay *r, long long *nonfinite,
                       long long *subnormal);

/* Compares the list (bench_model_gemms, expanded call by call in the
 * order the list runs: repeats in turn, a group interleaved) with the
 * recorded calls: count, then per call trans, m, n, k, alpha, beta and
 * the three leading dimensions. On a match, gives every call its entry's
 * layer and role and returns true; otherwise writes the first difference
 * into why and returns false. */
bool bench_replay_attribute(bench_replay *r, const bench_gemm *list,
                            int count, char *why, size_t why_size);

/* true when two recordings are the same calls on the same pointers; why
 * names the first difference. */
bool bench_recordings_equal(const bench_recording *x,
                            const bench_recording *y, char *why,
                            size_t why_size);

#endif
