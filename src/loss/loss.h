/* loss.h - the losses, over raw buffers. */
#ifndef NNLIB_LOSS_H
#define NNLIB_LOSS_H

#include "core/core.h"

/* --------------------------------------------------------------- loss */

/* What a loss compares the output with: floats of the output's shape, or
 * (SOFTMAX_CE) one class index per row of logits, stored as integral
 * floats or as int32 (4-byte elements either way). */
typedef struct nnlib__target {
  const float *data;
  bool is_index;
  bool is_int32; /* the indices are int32 */
} nnlib__target;

/* The class index of row r of an index target, as a double (so that a
 * non-integral float index can be refused). */
double nnlib__target_index(const nnlib__target *t, int64_t r);

/* NNLIB_ERR_OUT_OF_RANGE, naming the first, unless every one of the n
 * index targets is a class in 0..k-1. */
nnlib_status nnlib__check_index_targets(const nnlib__target *target, int64_t n,
                                        int64_t k);

/* Mean loss of y against the target over n rows of k outputs; writes
 * dL/dy into dy (may be NULL). Softmax cross-entropy averages over the
 * rows (samples, or the tokens of sequences: PyTorch's mean over flattened
 * tokens), MSE and BCE over all n k elements. */
nnlib_status nnlib__loss(nnlib_loss loss, const float *y, nnlib__target target,
                         float *dy, int64_t n, int64_t k, double *loss_out);

#endif /* NNLIB_LOSS_H */
