/* numerics.h - the NaN/Inf checks of nnlib_model_set_check_numerics, called
 * from the passes in passes.c only when the model's check_numerics is on. */
#ifndef NNLIB_NUMERICS_H
#define NNLIB_NUMERICS_H

#include "nnlib_internal.h"

/* Before the first layer: every input batch must be finite. */
nnlib_status nnlib__numerics_check_inputs(const nnlib_model *m,
                                          const nnlib__batch *batch);
/* After node v's forward pass: its output y must be finite. */
nnlib_status nnlib__numerics_after_forward(const nnlib_model *m, size_t v,
                                           const float *y,
                                           const nnlib__batch *batch);
/* After node v's layer ran backward: its parameter gradients and the
 * gradients of its input nodes (where kept) must be finite. */
nnlib_status nnlib__numerics_after_backward(const nnlib_model *m, size_t v,
                                            const nnlib__batch *batch);
/* After an optimizer update: every parameter must still be finite. */
nnlib_status nnlib__numerics_after_update(const nnlib_model *m);

#endif
