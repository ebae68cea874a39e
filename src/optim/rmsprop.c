/* rmsprop.c - RMSProp as torch.optim.RMSprop (not centered):
 *   g = grad + wd p
 *   a = alpha a + (1 - alpha) g^2
 *   u = g / (sqrt(a) + eps)
 *   b = mu b + u; p = p - lr b    (momentum > 0)   or   p = p - lr u      */
#include "optim/optim.h"

#include <math.h>

void nnlib__rmsprop_update(const nnlib_optimizer_options *o, float lr,
                           float *params, const float *grads, float *square_avg,
                           float *buffer, int64_t size) {
  float alpha = o->alpha, eps = o->epsilon, wd = o->weight_decay;
  float mu = o->momentum;
  for (int64_t i = 0; i < size; i++) {
    float g = grads[i] + wd * params[i];
    square_avg[i] = alpha * square_avg[i] + (1.0f - alpha) * g * g;
    float u = g / (sqrtf(square_avg[i]) + eps);
    if (mu > 0.0f) {
      buffer[i] = mu * buffer[i] + u;
      params[i] -= lr * buffer[i];
    } else {
      params[i] -= lr * u;
    }
  }
}
