/* profile.c - per-layer profile: wall time and matrix-product FLOPs of each
 * layer's forward and backward passes, counted while profiling is on.
 *
 * The FLOPs come from the GEMM seam (nnlib__gemm_flops_issued, 2 m n k per
 * product), so every layer kind is covered without a FLOP formula of its
 * own. When profiling is off, train.c tests one flag per layer call and
 * reads no clock. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include "nnlib_internal.h"

#include <string.h>
#include <time.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

nnlib__profile_mark nnlib__profile_start(void) {
  nnlib__profile_mark mark = {now_seconds(), nnlib__gemm_flops_issued()};
  return mark;
}

void nnlib__profile_stop(nnlib_layer *l, bool backward,
                         nnlib__profile_mark start) {
  double seconds = now_seconds() - start.seconds;
  double flops = nnlib__gemm_flops_issued() - start.flops;
  nnlib__layer_profile *p = &l->profile;
  if (backward) {
    p->backward_calls++;
    p->backward_seconds += seconds;
    p->backward_flops += flops;
  } else {
    p->forward_calls++;
    p->forward_seconds += seconds;
    p->forward_flops += flops;
  }
}

nnlib_status nnlib_model_set_profiling(nnlib_model *m, int on) {
  NNLIB_CHECK_ARG(m != NULL, "nnlib_model_set_profiling: model is NULL");
  NNLIB_CHECK_ARG(on == 0 || on == 1,
                  "nnlib_model_set_profiling: on is %d, must be 0 or 1", on);
  if (on)
    for (size_t i = 0; i < m->layer_count; i++)
      memset(&m->layers[i]->profile, 0, sizeof m->layers[i]->profile);
  m->profiling = on == 1;
  return NNLIB_OK;
}

static double gflops(double flops, double seconds) {
  return seconds > 0.0 ? flops / seconds * 1e-9 : 0.0;
}

nnlib_status nnlib_model_get_layer_profile(const nnlib_model *m, size_t index,
                                           nnlib_layer_profile *out) {
  NNLIB_CHECK_ARG(m != NULL && out != NULL,
                  "nnlib_model_get_layer_profile: model or out is NULL");
  if (out->struct_size < sizeof out->struct_size)
    return nnlib__error(NNLIB_ERR_STRUCT_SIZE,
                        "nnlib_model_get_layer_profile: struct_size %zu is "
                        "too small",
                        out->struct_size);
  if (index >= m->layer_count)
    return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                        "nnlib_model_get_layer_profile: layer %zu requested, "
                        "the model has %zu",
                        index, m->layer_count);
  const nnlib_layer *l = m->layers[index];
  const nnlib__layer_profile *p = &l->profile;
  nnlib_layer_profile full = {
      .struct_size = out->struct_size,
      .fused = l->fused_away ? 1 : 0,
      .forward_calls = p->forward_calls,
      .backward_calls = p->backward_calls,
      .forward_flops = p->forward_flops,
      .backward_flops = p->backward_flops,
      .forward_seconds = p->forward_seconds,
      .backward_seconds = p->backward_seconds,
      .forward_gflops = gflops(p->forward_flops, p->forward_seconds),
      .backward_gflops = gflops(p->backward_flops, p->backward_seconds),
  };
  /* an older caller's shorter struct gets the fields it knows */
  size_t size = out->struct_size < sizeof full ? out->struct_size : sizeof full;
  memcpy(out, &full, size);
  return NNLIB_OK;
}
