/* adam.c - Adam and AdamW as torch.optim.Adam / AdamW, at update s = t + 1:
 *   Adam:  g = grad + wd p            AdamW: p = p (1 - lr wd), g = grad
 *   m = b1 m + (1 - b1) g
 *   v = b2 v + (1 - b2) g^2
 *   p = p - (lr / (1 - b1^s)) m / (sqrt(v) / sqrt(1 - b2^s) + eps)        */
#include "optim/optim.h"

#include <math.h>

void nnlib__adam_update(const nnlib_optimizer_options *o, float lr,
                        float *params, const float *grads, float *m, float *v,
                        int64_t size, int64_t t) {
  float b1 = o->beta1, b2 = o->beta2, eps = o->epsilon;
  double s = (double)(t + 1);
  float step = (float)(lr / (1.0 - pow(b1, s)));
  float inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(b2, s)));
  bool decoupled = o->kind == NNLIB_OPT_ADAMW;
  float l2 = decoupled ? 0.0f : o->weight_decay;
  float shrink = decoupled ? 1.0f - lr * o->weight_decay : 1.0f;
  for (int64_t i = 0; i < size; i++) {
    float p = params[i] * shrink;
    float g = grads[i] + l2 * params[i];
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    params[i] = p - step * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
  }
}
