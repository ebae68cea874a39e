/* optimizer.c - optimizer handles: options, learning-rate schedules, global
 * norm clipping, and dispatch to the one-rule-per-file update kernels. */
#include "optim/optim.h"

#include <math.h>
#include <string.h>

nnlib_status nnlib_optimizer_options_init_size(nnlib_optimizer_options *o,
                                               nnlib_optimizer_kind kind,
                                               size_t struct_size) {
  NNLIB_CHECK_ARG(o != NULL, "nnlib_optimizer_options_init: options is NULL");
  NNLIB_CHECK_ARG(kind >= NNLIB_OPT_SGD && kind <= NNLIB_OPT_RMSPROP,
                  "nnlib_optimizer_options_init: unknown optimizer %d",
                  (int)kind);
  nnlib_optimizer_options d;
  memset(&d, 0, sizeof d);
  d.kind = kind;
  bool adam = kind == NNLIB_OPT_ADAM || kind == NNLIB_OPT_ADAMW;
  d.learning_rate = adam ? 1e-3f : 1e-2f;
  d.weight_decay = kind == NNLIB_OPT_ADAMW ? 1e-2f : 0.0f;
  d.beta1 = 0.9f;
  d.beta2 = 0.999f;
  d.alpha = 0.99f;
  d.epsilon = 1e-8f;
  d.schedule = NNLIB_SCHEDULE_CONSTANT;
  d.gamma = 0.1f;
  return nnlib__init_options(o, struct_size, &d, sizeof d,
                             "nnlib_optimizer_options_init");
}

/* The entry point of programs built against 1.0-1.2 headers (the header's
 * macro of this name passes the caller's sizeof instead); the parentheses
 * keep the macro out. */
nnlib_status(nnlib_optimizer_options_init)(nnlib_optimizer_options *o,
                                           nnlib_optimizer_kind kind) {
  return nnlib_optimizer_options_init_size(
      o, kind, NNLIB__SIZE_THROUGH(nnlib_optimizer_options, clip_norm));
}

static bool finite_nonneg(float v) { return isfinite(v) && v >= 0.0f; }

static nnlib_status validate(const nnlib_optimizer_options *o) {
  const char *w = "optimizer";
  NNLIB_CHECK_ARG(o->kind >= NNLIB_OPT_SGD && o->kind <= NNLIB_OPT_RMSPROP,
                  "%s: unknown kind %d", w, (int)o->kind);
  NNLIB_CHECK_ARG(finite_nonneg(o->learning_rate),
                  "%s: learning rate %g must be finite and >= 0", w,
                  (double)o->learning_rate);
  NNLIB_CHECK_ARG(finite_nonneg(o->momentum) && o->momentum < 1.0f,
                  "%s: momentum %g must be in [0, 1)", w, (double)o->momentum);
  NNLIB_CHECK_ARG(o->nesterov == 0 || o->nesterov == 1,
                  "%s: nesterov must be 0 or 1", w);
  NNLIB_CHECK_ARG(!o->nesterov || o->momentum > 0.0f,
                  "%s: Nesterov needs momentum > 0", w);
  NNLIB_CHECK_ARG(finite_nonneg(o->weight_decay), "%s: weight decay %g must "
                  "be finite and >= 0", w, (double)o->weight_decay);
  NNLIB_CHECK_ARG(finite_nonneg(o->beta1) && o->beta1 < 1.0f &&
                      finite_nonneg(o->beta2) && o->beta2 < 1.0f,
                  "%s: beta1 %g and beta2 %g must be in [0, 1)", w,
                  (double)o->beta1, (double)o->beta2);
  NNLIB_CHECK_ARG(finite_nonneg(o->alpha) && o->alpha < 1.0f,
                  "%s: alpha %g must be in [0, 1)", w, (double)o->alpha);
  NNLIB_CHECK_ARG(isfinite(o->epsilon) && o->epsilon > 0.0f,
                  "%s: epsilon %g must be > 0", w, (double)o->epsilon);
  NNLIB_CHECK_ARG(o->schedule >= NNLIB_SCHEDULE_CONSTANT &&
                      o->schedule <= NNLIB_SCHEDULE_COSINE,
                  "%s: unknown schedule %d", w, (int)o->schedule);
  NNLIB_CHECK_ARG(o->schedule != NNLIB_SCHEDULE_STEP ||
                      (o->step_size >= 1 && finite_nonneg(o->gamma)),
                  "%s: step schedule needs step_size >= 1 and gamma >= 0", w);
  NNLIB_CHECK_ARG(o->schedule != NNLIB_SCHEDULE_COSINE ||
                      (o->total_steps >= 1 &&
                       finite_nonneg(o->min_learning_rate)),
                  "%s: cosine schedule needs total_steps >= 1 and "
                  "min_learning_rate >= 0", w);
  NNLIB_CHECK_ARG(o->warmup_steps >= 0 &&
                      (o->schedule != NNLIB_SCHEDULE_COSINE ||
                       o->warmup_steps < o->total_steps),
                  "%s: warmup_steps %lld must be >= 0 (and below "
                  "total_steps with the cosine schedule)",
                  w, (long long)o->warmup_steps);
  NNLIB_CHECK_ARG(finite_nonneg(o->clip_norm),
                  "%s: clip_norm %g must be finite and >= 0", w,
                  (double)o->clip_norm);
  return NNLIB_OK;
}

nnlib_status nnlib_optimizer_create(nnlib_optimizer **out,
                                    const nnlib_optimizer_options *options) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_optimizer_create: out is NULL");
  *out = NULL;
  nnlib_optimizer_options o;
  nnlib_optimizer_kind kind = NNLIB_OPT_SGD;
  if (options != NULL && options->struct_size >= offsetof(nnlib_optimizer_options,
                                                          learning_rate))
    kind = options->kind;
  if (kind < NNLIB_OPT_SGD || kind > NNLIB_OPT_RMSPROP)
    return nnlib__error(NNLIB_ERR_INVALID_ARGUMENT,
                        "optimizer: unknown kind %d", (int)kind);
  nnlib_optimizer_options_init(&o, kind);
  NNLIB_TRY(nnlib__read_options(&o, sizeof o, options,
                                "nnlib_optimizer_options"));
  NNLIB_TRY(validate(&o));
  nnlib_optimizer *opt = nnlib__calloc(1, sizeof *opt);
  if (opt == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "optimizer: no memory");
  opt->o = o;
  *out = opt;
  return NNLIB_OK;
}

nnlib_status nnlib_sgd_create(nnlib_optimizer **out, float learning_rate,
                              float momentum, int nesterov,
                              float weight_decay) {
  nnlib_optimizer_options o;
  nnlib_optimizer_options_init(&o, NNLIB_OPT_SGD);
  o.learning_rate = learning_rate;
  o.momentum = momentum;
  o.nesterov = nesterov;
  o.weight_decay = weight_decay;
  return nnlib_optimizer_create(out, &o);
}

void nnlib_optimizer_free(nnlib_optimizer *opt) {
  if (opt == NULL)
    return;
  nnlib__free(opt->state1);
  nnlib__free(opt->state2);
  nnlib__free(opt);
}

nnlib_status nnlib_optimizer_set_learning_rate(nnlib_optimizer *opt,
                                               float learning_rate) {
  NNLIB_CHECK_ARG(opt != NULL, "nnlib_optimizer_set_learning_rate: NULL");
  NNLIB_CHECK_ARG(finite_nonneg(learning_rate),
                  "optimizer: learning rate %g must be finite and >= 0",
                  (double)learning_rate);
  opt->o.learning_rate = learning_rate;
  return NNLIB_OK;
}

float nnlib_optimizer_get_learning_rate(const nnlib_optimizer *opt) {
  return opt ? opt->o.learning_rate : 0.0f;
}

int64_t nnlib_optimizer_get_step_count(const nnlib_optimizer *opt) {
  return opt ? opt->t : 0;
}

nnlib_status nnlib_optimizer_get_options(const nnlib_optimizer *opt,
                                         nnlib_optimizer_options *options) {
  NNLIB_CHECK_ARG(opt != NULL && options != NULL,
                  "nnlib_optimizer_get_options: optimizer or options is NULL");
  return nnlib__write_struct(options, &opt->o, sizeof opt->o,
                             "nnlib_optimizer_get_options");
}

nnlib_status nnlib__optimizer_attach(nnlib_optimizer *opt, int64_t size) {
  bool two_states = opt->o.kind != NNLIB_OPT_SGD;
  bool needs_first = opt->o.kind != NNLIB_OPT_SGD || opt->o.momentum > 0.0f;
  if (needs_first) {
    opt->state1 = nnlib__calloc((size_t)size, sizeof(float));
    if (opt->state1 == NULL)
      return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                          "optimizer: no memory for state of %lld parameters",
                          (long long)size);
  }
  if (two_states) {
    opt->state2 = nnlib__calloc((size_t)size, sizeof(float));
    if (opt->state2 == NULL)
      return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                          "optimizer: no memory for state of %lld parameters",
                          (long long)size);
  }
  opt->size = size;
  return NNLIB_OK;
}

float nnlib__optimizer_lr_at(const nnlib_optimizer *opt, int64_t t) {
  const nnlib_optimizer_options *o = &opt->o;
  int64_t w = o->warmup_steps;
  if (t < w) /* linear warmup: lr / W, 2 lr / W, ..., lr */
    return (float)((double)o->learning_rate * (double)(t + 1) / (double)w);
  t -= w;
  switch (o->schedule) {
  case NNLIB_SCHEDULE_STEP: {
    int64_t drops = t / o->step_size; /* whole periods completed */
    return o->learning_rate * powf(o->gamma, (float)drops);
  }
  case NNLIB_SCHEDULE_COSINE: {
    int64_t span = o->total_steps - w;
    double frac = t >= span ? 1.0 : (double)t / (double)span;
    return (float)(o->min_learning_rate +
                   (o->learning_rate - o->min_learning_rate) * 0.5 *
                       (1.0 + cos(3.14159265358979323846 * frac)));
  }
  case NNLIB_SCHEDULE_CONSTANT:
    break;
  }
  return o->learning_rate;
}

/* g <- g * c / |g| when |g| > c (global L2 norm over all parameters). */
static void clip_by_global_norm(float *grads, int64_t size, float clip) {
  double sq = 0.0;
  for (int64_t i = 0; i < size; i++)
    sq += (double)grads[i] * grads[i];
  double norm = sqrt(sq);
  if (norm > clip) {
    float scale = (float)(clip / norm);
    for (int64_t i = 0; i < size; i++)
      grads[i] *= scale;
  }
}

/* Every rule updates each parameter from its own gradient and state alone,
 * so the update splits over the pass pool by slices of the flat arrays
 * (blocks of SLICE_BLOCK values, a part at least MIN_PART_BLOCKS of them:
 * 32k values, some 30 microseconds) and gives the same bits on any
 * number of threads. */
enum { SLICE_BLOCK = 64, MIN_PART_BLOCKS = 512 };

typedef struct update_pass {
  const nnlib_optimizer *opt;
  float lr;
  float *params;
  const float *grads;
  int64_t size;
} update_pass;

/* state + at, or NULL for a rule without that state */
static float *slice_of(float *state, int64_t at) {
  return state != NULL ? state + at : NULL;
}

static void update_range(void *ctx, int64_t begin, int64_t end) {
  const update_pass *p = ctx;
  const nnlib_optimizer *opt = p->opt;
  const nnlib_optimizer_options *o = &opt->o;
  int64_t at = begin * SLICE_BLOCK;
  int64_t last = end * SLICE_BLOCK < p->size ? end * SLICE_BLOCK : p->size;
  float *params = p->params + at, *s1 = slice_of(opt->state1, at);
  float *s2 = slice_of(opt->state2, at);
  const float *grads = p->grads + at;
  switch (o->kind) {
  case NNLIB_OPT_SGD:
    nnlib__sgd_update(o, p->lr, params, grads, s1, last - at, opt->t);
    break;
  case NNLIB_OPT_ADAM:
  case NNLIB_OPT_ADAMW:
    nnlib__adam_update(o, p->lr, params, grads, s1, s2, last - at, opt->t);
    break;
  case NNLIB_OPT_RMSPROP:
    nnlib__rmsprop_update(o, p->lr, params, grads, s2, s1, last - at);
    break;
  }
}

void nnlib__optimizer_update(nnlib_optimizer *opt, float *params, float *grads,
                             int64_t size) {
  const nnlib_optimizer_options *o = &opt->o;
  if (o->clip_norm > 0.0f)
    clip_by_global_norm(grads, size, o->clip_norm);
  update_pass p = {opt, nnlib__optimizer_lr_at(opt, opt->t), params, grads,
                   size};
  nnlib__parallel_for((size + SLICE_BLOCK - 1) / SLICE_BLOCK, MIN_PART_BLOCKS,
                      update_range, &p);
  opt->t++;
}

bool nnlib__optimizer_is_plain_sgd(const nnlib_optimizer *opt, float *lr) {
  const nnlib_optimizer_options *o = &opt->o;
  if (o->kind != NNLIB_OPT_SGD || o->momentum != 0.0f ||
      o->weight_decay != 0.0f || o->clip_norm > 0.0f)
    return false;
  *lr = nnlib__optimizer_lr_at(opt, opt->t);
  return true;
}

void nnlib__optimizer_count_update(nnlib_optimizer *opt) { opt->t++; }
