/* numerics.h - the NaN/Inf checks of nnlib_model_set_check_numerics, called
 * from the passes in train.c only when the model's check_numerics is on. */
#ifndef NNLIB_NUMERICS_H
#define NNLIB_NUMERICS_H

#include "nnlib_internal.h"

/* After layer i's forward pass over n samples (sequences of `steps`, 0:
 * as planned): its output (and, for the first layer, the input batch x)
 * must be finite. */
nnlib_status nnlib__numerics_after_forward(const nnlib_model *m, size_t i,
                                           const float *x, const float *y,
                                           int64_t n, int64_t steps);
/* After layer i's backward pass: its parameter gradients and, unless dx is
 * NULL, the gradient wrt its input (n samples) must be finite. */
nnlib_status nnlib__numerics_after_backward(const nnlib_model *m, size_t i,
                                            const float *dx, int64_t n,
                                            int64_t steps);
/* After an optimizer update: every parameter must still be finite. */
nnlib_status nnlib__numerics_after_update(const nnlib_model *m);

#endif
