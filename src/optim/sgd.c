/* sgd.c - stochastic gradient descent as torch.optim.SGD (dampening 0):
 *   g = grad + wd p
 *   v = mu v + g                      (momentum > 0; v starts at 0)
 *   g = g + mu v  (Nesterov)  or  g = v
 *   p = p - lr g                                                          */
#include "optim/optim.h"

void nnlib__sgd_update(const nnlib_optimizer_options *o, float lr,
                       float *params, const float *grads, float *velocity,
                       int64_t size, int64_t t) {
  (void)t;
  float wd = o->weight_decay, mu = o->momentum;
  if (mu == 0.0f) {
    for (int64_t i = 0; i < size; i++)
      params[i] -= lr * (grads[i] + wd * params[i]);
    return;
  }
  if (o->nesterov) {
    for (int64_t i = 0; i < size; i++) {
      float g = grads[i] + wd * params[i];
      velocity[i] = mu * velocity[i] + g;
      params[i] -= lr * (g + mu * velocity[i]);
    }
  } else {
    for (int64_t i = 0; i < size; i++) {
      float g = grads[i] + wd * params[i];
      velocity[i] = mu * velocity[i] + g;
      params[i] -= lr * velocity[i];
    }
  }
}
