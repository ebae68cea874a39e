/* optim.h - the optimizer's struct and its update rules, one file each. */
#ifndef NNLIB_OPTIM_H
#define NNLIB_OPTIM_H

#include "core/core.h"

/* ---------------------------------------------------------- optimizer */

struct nnlib_optimizer {
  nnlib_optimizer_options o;
  int64_t t;       /* updates applied */
  float *state1;   /* momentum / first moment / square average (owned) */
  float *state2;   /* second moment (owned) */
  int64_t size;    /* parameters it was attached to */
};

/* Allocates state for `size` flat parameters. */
nnlib_status nnlib__optimizer_attach(nnlib_optimizer *opt, int64_t size);
/* The learning rate the schedule gives for update number t. */
float nnlib__optimizer_lr_at(const nnlib_optimizer *opt, int64_t t);
/* One update of params from grads (flat, `size` each); may scale grads. */
void nnlib__optimizer_update(nnlib_optimizer *opt, float *params, float *grads,
                             int64_t size);
/* Plain SGD (no momentum, weight decay or clipping) is p -= lr g, which the
 * layers can fold into their weight-gradient GEMM: true and this update's
 * rate in *lr if so. The caller then applies it and calls
 * nnlib__optimizer_count_update. */
bool nnlib__optimizer_is_plain_sgd(const nnlib_optimizer *opt, float *lr);
void nnlib__optimizer_count_update(nnlib_optimizer *opt);

/* The per-rule kernels, one file each. lr is this step's rate. */
void nnlib__sgd_update(const nnlib_optimizer_options *o, float lr,
                       float *params, const float *grads, float *velocity,
                       int64_t size, int64_t t);
void nnlib__adam_update(const nnlib_optimizer_options *o, float lr,
                        float *params, const float *grads, float *m, float *v,
                        int64_t size, int64_t t);
void nnlib__rmsprop_update(const nnlib_optimizer_options *o, float lr,
                           float *params, const float *grads, float *square_avg,
                           float *buffer, int64_t size);

#endif /* NNLIB_OPTIM_H */
