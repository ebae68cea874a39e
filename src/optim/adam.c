/* adam.c - Adam and AdamW as torch.optim.Adam / AdamW, at update s = t + 1:
 *   Adam:  g = grad + wd p            AdamW: p = p (1 - lr wd), g = grad
 *   m = b1 m + (1 - b1) g
 *   v = b2 v + (1 - b2) g^2
 *   p = p - (lr / (1 - b1^s)) m / (sqrt(v) / sqrt(1 - b2^s) + eps)        */
#include "optim/optim.h"

#include <math.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

/* The update runs in blocks of BLOCK values through three loops, so two of
 * them vectorise: sqrtf in a loop keeps GCC from vectorising it (each call
 * is guarded by a branch to the library for errno, unless
 * -fno-math-errno), so the square roots get a loop of their own, 4 at a
 * time through SSE's sqrtps where there is one (correctly rounded, as
 * sqrtf: the same bits). */
enum { BLOCK = 256 };

/* root[i] = sqrt(v[i]) for v >= 0 */
static void square_roots(const float *restrict v, float *restrict root,
                         int64_t count) {
  int64_t i = 0;
#if defined(__SSE__)
  for (; i + 4 <= count; i += 4)
    _mm_storeu_ps(root + i, _mm_sqrt_ps(_mm_loadu_ps(v + i)));
#endif
  for (; i < count; i++)
    root[i] = sqrtf(v[i]);
}

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
  float root[BLOCK];
  for (int64_t at = 0; at < size; at += BLOCK) {
    int64_t count = size - at < BLOCK ? size - at : BLOCK;
    float *restrict pb = params + at, *restrict mb = m + at,
                    *restrict vb = v + at;
    const float *restrict gb = grads + at;
    for (int64_t i = 0; i < count; i++) {
      float g = gb[i] + l2 * pb[i];
      mb[i] = b1 * mb[i] + (1.0f - b1) * g;
      vb[i] = b2 * vb[i] + (1.0f - b2) * g * g;
    }
    square_roots(vb, root, count);
    for (int64_t i = 0; i < count; i++)
      pb[i] = pb[i] * shrink - step * mb[i] / (root[i] * inv_sqrt_bc2 + eps);
  }
}
