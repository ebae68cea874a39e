/* loss.c - mean squared error, binary cross-entropy on logits and softmax
 * cross-entropy on logits, each with its gradient, written to be finite for
 * any finite input. Reductions follow PyTorch's defaults: MSE and BCE average
 * over all N*K elements, softmax cross-entropy over the N samples. */
#include "loss/loss.h"

#include <math.h>

/* L = mean (y - t)^2,  dL/dy = 2 (y - t) / (N K) */
static void mse(const float *y, const float *t, float *dy, int64_t count,
                double *loss) {
  double sum = 0.0;
  float scale = 2.0f / (float)count;
  for (int64_t i = 0; i < count; i++) {
    float diff = y[i] - t[i];
    sum += (double)diff * diff;
    if (dy != NULL)
      dy[i] = scale * diff;
  }
  *loss = sum / (double)count;
}

/* Per element, on logit x and target t:
 *   l = max(x, 0) - x t + log(1 + e^{-|x|})   (never exponentiates a large x)
 *   dl/dx = sigmoid(x) - t                                                   */
static void bce_logits(const float *x, const float *t, float *dy,
                       int64_t count, double *loss) {
  double sum = 0.0;
  float scale = 1.0f / (float)count;
  for (int64_t i = 0; i < count; i++) {
    float xi = x[i], ti = t[i];
    float e = expf(-fabsf(xi));
    sum += (double)(fmaxf(xi, 0.0f) - xi * ti + log1pf(e));
    if (dy != NULL) {
      float sig = xi >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
      dy[i] = scale * (sig - ti);
    }
  }
  *loss = sum / (double)count;
}

double nnlib__target_index(const nnlib__target *t, int64_t r) {
  if (t->is_int32)
    return (double)((const int32_t *)(const void *)t->data)[r];
  return (double)t->data[r];
}

/* Per row z with target distribution t (one-hot, or an index c):
 *   l = sum_k t_k (lse(z) - z_k),  lse(z) = m + log sum e^{z - m}, m = max z
 *   dl/dz_k = p_k sum(t) - t_k,    p = softmax(z)
 * then averaged over the N rows. */
static nnlib_status softmax_ce(const float *z, const nnlib__target *target,
                               float *dy, int64_t n, int64_t k, double *loss) {
  const float *t = target->data;
  bool is_index = target->is_index;
  double total = 0.0;
  float scale = 1.0f / (float)n;
  for (int64_t r = 0; r < n; r++) {
    const float *zr = z + r * k;
    float m = zr[0];
    for (int64_t c = 1; c < k; c++)
      m = fmaxf(m, zr[c]);
    /* e^{z - m} is kept in dy (when given) to form p without a second exp */
    double s = 0.0;
    for (int64_t c = 0; c < k; c++) {
      float e = expf(zr[c] - m);
      s += e;
      if (dy != NULL)
        dy[r * k + c] = e;
    }
    double lse = m + log(s);
    int64_t label = -1;
    double tsum = 1.0;
    if (is_index) {
      double v = nnlib__target_index(target, r);
      if (!(v >= 0.0 && v < (double)k && v == floor(v)))
        return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                            "softmax_ce: target of row %lld is %g, must be "
                            "a class index in 0..%lld",
                            (long long)r, v, (long long)(k - 1));
      label = (int64_t)v;
      total += lse - zr[label];
    } else {
      tsum = 0.0;
      for (int64_t c = 0; c < k; c++) {
        float tc = t[r * k + c];
        tsum += tc;
        if (tc != 0.0f)
          total += tc * (lse - zr[c]);
      }
    }
    if (dy != NULL) {
      float *dr = dy + r * k;
      for (int64_t c = 0; c < k; c++) {
        float p = (float)(dr[c] / s);
        float tc = is_index ? (c == label ? 1.0f : 0.0f) : t[r * k + c];
        dr[c] = scale * (p * (float)tsum - tc);
      }
    }
  }
  *loss = total / (double)n;
  return NNLIB_OK;
}

nnlib_status nnlib__loss(nnlib_loss loss, const float *y, nnlib__target target,
                         float *dy, int64_t n, int64_t k, double *loss_out) {
  switch (loss) {
  case NNLIB_LOSS_MSE:
    mse(y, target.data, dy, n * k, loss_out);
    return NNLIB_OK;
  case NNLIB_LOSS_BCE_LOGITS:
    bce_logits(y, target.data, dy, n * k, loss_out);
    return NNLIB_OK;
  case NNLIB_LOSS_SOFTMAX_CE:
    return softmax_ce(y, &target, dy, n, k, loss_out);
  case NNLIB_LOSS_NONE:
    break;
  }
  return nnlib__error(NNLIB_ERR_WRONG_STATE, "model has no loss");
}
