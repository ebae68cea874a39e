/* loss.h - the losses, over raw buffers. */
#ifndef NNLIB_LOSS_H
#define NNLIB_LOSS_H

#include "core/core.h"

/* --------------------------------------------------------------- loss */

/* Mean loss of y against target over n samples of k outputs; writes
 * dL/dy into dy (may be NULL). target_is_index: target holds n class
 * indices (SOFTMAX_CE only). */
nnlib_status nnlib__loss(nnlib_loss loss, const float *y, const float *target,
                         bool target_is_index, float *dy, int64_t n, int64_t k,
                         double *loss_out);

#endif /* NNLIB_LOSS_H */
