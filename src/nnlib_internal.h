/* nnlib_internal.h - everything the library's files share and users never
 * see, one header per concern: core (errors, memory, rng, BLAS), tensor,
 * codec (bytes and description text), layer, loss, optim, model. A layer
 * file includes layers/layer.h only; this header is for the model's files,
 * the tools and the internal tests. */
#ifndef NNLIB_INTERNAL_H
#define NNLIB_INTERNAL_H

#include "core/codec.h"
#include "core/core.h"
#include "layers/layer.h"
#include "loss/loss.h"
#include "model/model.h"
#include "optim/optim.h"
#include "tensor/tensor.h"

#endif /* NNLIB_INTERNAL_H */
