/* generate.c - nnlib_model_generate: continuing a prompt with a language
 * model (one int32 input [T], logits [T, V] out), sampling each token from
 * softmax(logits / temperature) over the top-k likeliest.
 *
 * With the cache, the prompt runs once as one stretch of positions and
 * every later token as a stretch of one: each layer keeps what the next
 * positions need in its cache (attention its keys and values, recurrent
 * layers their state; nnlib__run.cache), so a token costs one position's
 * work. When the T positions are used up, the newest T/2 tokens run again
 * from position 0 with empty caches (learned positions are absolute, so
 * the window restarts rather than slides). Without the cache every token
 * re-runs the newest T tokens (at most) whole: the baseline the cache is
 * measured against. Both run the layers through the ordinary forward pass
 * (passes.c) with nnlib__batch.decoding set, on an inference buffer set of
 * their own, so the model's parameters and training buffers stay as they
 * were. */
#include "nnlib_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- options */

static const nnlib_generate_options default_options = {
    sizeof(nnlib_generate_options), 1.0f, 0, 1, 1};

nnlib_status nnlib_generate_options_init_size(nnlib_generate_options *o,
                                              size_t struct_size) {
  return nnlib__init_options(o, struct_size, &default_options,
                             sizeof default_options,
                             "nnlib_generate_options");
}

static nnlib_status read_options(const nnlib_generate_options *given,
                                 nnlib_generate_options *o) {
  *o = default_options;
  if (given != NULL)
    NNLIB_TRY(nnlib__read_options(o, sizeof *o, given,
                                  "nnlib_generate_options"));
  NNLIB_CHECK_ARG(o->temperature > 0.0f && isfinite(o->temperature),
                  "generate: temperature %g must be finite and > 0",
                  (double)o->temperature);
  NNLIB_CHECK_ARG(o->top_k >= 0, "generate: top_k %lld must be >= 0",
                  (long long)o->top_k);
  NNLIB_CHECK_ARG(o->use_cache == 0 || o->use_cache == 1,
                  "generate: use_cache must be 0 or 1");
  return NNLIB_OK;
}

/* ------------------------------------------------- the model's shape */

/* Every layer that runs must take stretches of positions. */
static nnlib_status check_layers_decode(const nnlib_model *m) {
  for (size_t v = 0; v < m->node_count; v++) {
    const nnlib_layer *l = m->nodes[v].layer;
    if (l == NULL || l->fused_away || l->ops->decodes)
      continue;
    char label[NNLIB__LABEL_SIZE];
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "generate: %s cannot run one position at a time",
                        nnlib__node_label(m, v, label, sizeof label));
  }
  return NNLIB_OK;
}

/* Every token the logits can pick must be an id the embeddings read back:
 * a model with more logits than ids would fail part-way through. */
static nnlib_status check_vocabulary(const nnlib_model *m, int64_t vocab) {
  for (size_t v = 0; v < m->node_count; v++) {
    const nnlib_layer *l = m->nodes[v].layer;
    if (l == NULL || !nnlib__layer_reads_ids(l) ||
        nnlib__embedding_vocab(l) >= vocab)
      continue;
    char label[NNLIB__LABEL_SIZE];
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "generate: the logits pick among %lld tokens, but %s "
                        "reads ids 0 to %lld only",
                        (long long)vocab,
                        nnlib__node_label(m, v, label, sizeof label),
                        (long long)(nnlib__embedding_vocab(l) - 1));
  }
  return NNLIB_OK;
}

/* One int32 input [T] and logits [T, V]: context T, vocabulary V. */
static nnlib_status check_language_model(const nnlib_model *m,
                                         int64_t *context, int64_t *vocab) {
  NNLIB_TRY(nnlib__check_compiled(m, "nnlib_model_generate"));
  const nnlib__node *in = &m->nodes[m->inputs[0]];
  if (m->input_count != 1 || !in->holds_ids || in->shape.rank != 1)
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "generate: the model must have one input of token "
                        "ids [T] read by an embedding");
  const nnlib__shape *out = &m->nodes[m->output].shape;
  if (out->rank != 2 || out->dims[0] != in->shape.dims[0])
    return nnlib__error(NNLIB_ERR_UNSUPPORTED,
                        "generate: the output must be logits [T, V] with the "
                        "input's T = %lld",
                        (long long)in->shape.dims[0]);
  *context = in->shape.dims[0];
  *vocab = out->dims[1];
  NNLIB_TRY(check_vocabulary(m, *vocab));
  return check_layers_decode(m);
}

/* ------------------------------------------------------------ decoder */

typedef struct decoder {
  nnlib_model *m;
  int64_t context, vocab;
  bool cached;
  nnlib__buffers bufs; /* an inference set of the model's plan */
  float **caches;      /* per node: its layer's cache, or NULL */
  float *cache_block;
  int64_t cache_floats;
  int32_t *window;     /* the tokens at positions 0 .. length - 1 */
  int64_t length;
  struct ranked { float logit; int32_t token; } *ranked; /* V, top-k */
  nnlib__rng rng;
} decoder;

static void decoder_free(decoder *d) {
  nnlib__buffers_free(&d->bufs);
  nnlib__free(d->caches);
  nnlib__free(d->cache_block);
  nnlib__free(d->window);
  nnlib__free(d->ranked);
}

static nnlib_status decoder_alloc_caches(decoder *d) {
  const nnlib_model *m = d->m;
  d->caches = nnlib__calloc(m->node_count, sizeof *d->caches);
  if (d->caches == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "generate: no memory");
  for (size_t v = 0; v < m->node_count; v++)
    if (m->nodes[v].layer != NULL)
      d->cache_floats += (int64_t)m->nodes[v].layer->cache_floats;
  if (d->cache_floats == 0)
    return NNLIB_OK;
  d->cache_block = nnlib__calloc((size_t)d->cache_floats, sizeof(float));
  if (d->cache_block == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "generate: no memory for a cache of %lld floats",
                        (long long)d->cache_floats);
  float *at = d->cache_block;
  for (size_t v = 0; v < m->node_count; v++) {
    const nnlib_layer *l = m->nodes[v].layer;
    if (l != NULL && l->cache_floats > 0) {
      d->caches[v] = at;
      at += l->cache_floats;
    }
  }
  return NNLIB_OK;
}

static nnlib_status decoder_init(decoder *d, nnlib_model *m, int64_t context,
                                 int64_t vocab, const nnlib_generate_options *o) {
  memset(d, 0, sizeof *d);
  d->m = m;
  d->context = context;
  d->vocab = vocab;
  d->cached = o->use_cache == 1;
  nnlib__rng_seed(&d->rng, o->seed);
  d->window = nnlib__calloc((size_t)context, sizeof *d->window);
  d->ranked = nnlib__calloc((size_t)vocab, sizeof *d->ranked);
  if (d->window == NULL || d->ranked == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY, "generate: no memory");
  NNLIB_TRY(nnlib__buffers_alloc(m, &d->bufs, false));
  return d->cached ? decoder_alloc_caches(d) : NNLIB_OK;
}

/* Runs window[first, first + count) at positions first .. first + count
 * - 1 (with the caches) or from 0 (without); *logits: the last one's. */
static nnlib_status run_positions(decoder *d, int64_t first, int64_t count,
                                  const float **logits) {
  nnlib__batch batch;
  memset(&batch, 0, sizeof batch);
  batch.x[0] = (const float *)(const void *)(d->window + first);
  batch.n = 1;
  batch.steps = count;
  batch.decoding = true;
  batch.position = d->cached ? first : 0;
  batch.caches = d->cached ? d->caches : NULL;
  const float *out;
  NNLIB_TRY(nnlib__forward(d->m, &d->bufs, &batch, NULL, &out));
  *logits = out + (count - 1) * d->vocab;
  return NNLIB_OK;
}

/* Runs the whole window from position 0, caches emptied first. */
static nnlib_status run_window(decoder *d, const float **logits) {
  if (d->cache_floats > 0)
    memset(d->cache_block, 0, (size_t)d->cache_floats * sizeof(float));
  return run_positions(d, 0, d->length, logits);
}

/* Appends the sampled token and computes the logits after it. */
static nnlib_status advance(decoder *d, int32_t token, const float **logits) {
  int64_t t = d->context;
  if (d->length < t) {
    d->window[d->length++] = token;
    return d->cached ? run_positions(d, d->length - 1, 1, logits)
                     : run_window(d, logits);
  }
  /* full: keep the newest tokens (T/2 with the cache, T - 1 without) */
  int64_t keep = d->cached ? (t / 2 > 0 ? t / 2 : 1) : t;
  memmove(d->window, d->window + (t - keep + 1),
          (size_t)(keep - 1) * sizeof *d->window);
  d->window[keep - 1] = token;
  d->length = keep;
  return run_window(d, logits);
}

/* ------------------------------------------------------------ sampling */

/* Larger logit first; ties by token, so the order is total. */
static int by_logit(const void *a, const void *b) {
  const struct ranked *x = a, *y = b;
  if (x->logit != y->logit)
    return x->logit > y->logit ? -1 : 1;
  return (x->token > y->token) - (x->token < y->token);
}

/* p_i proportional to exp((l_i - max) / temperature) over the top_k
 * likeliest tokens (all when 0 or >= V); u uniform picks one. */
static int32_t sample(decoder *d, const float *logits,
                      const nnlib_generate_options *o) {
  int64_t v = d->vocab, k = o->top_k > 0 && o->top_k < v ? o->top_k : v;
  for (int64_t i = 0; i < v; i++) {
    d->ranked[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
    d->ranked[i].token = (int32_t)i;
  }
  qsort(d->ranked, (size_t)v, sizeof *d->ranked, by_logit);
  double top = d->ranked[0].logit, total = 0.0;
  double inv_t = 1.0 / (double)o->temperature;
  for (int64_t i = 0; i < k; i++)
    total += exp(((double)d->ranked[i].logit - top) * inv_t);
  double u = (double)nnlib__rng_uniform(&d->rng) * total, sum = 0.0;
  for (int64_t i = 0; i < k; i++) {
    sum += exp(((double)d->ranked[i].logit - top) * inv_t);
    if (u < sum)
      return d->ranked[i].token;
  }
  return d->ranked[k - 1].token; /* rounding left u at the very end */
}

/* ------------------------------------------------------------- public */

static nnlib_status generate(decoder *d, const int32_t *prompt,
                             int64_t prompt_length, int64_t count,
                             const nnlib_generate_options *o, int32_t *out) {
  memcpy(d->window, prompt, (size_t)prompt_length * sizeof *prompt);
  d->length = prompt_length;
  const float *logits;
  NNLIB_TRY(run_window(d, &logits));
  for (int64_t i = 0; i < count; i++) {
    out[i] = sample(d, logits, o);
    if (i + 1 < count)
      NNLIB_TRY(advance(d, out[i], &logits));
  }
  return NNLIB_OK;
}

nnlib_status nnlib_model_generate(nnlib_model *m, const int32_t *prompt,
                                  int64_t prompt_length, int64_t count,
                                  const nnlib_generate_options *options,
                                  int32_t *out) {
  NNLIB_CHECK_ARG(m != NULL && prompt != NULL,
                  "generate: model or prompt is NULL");
  NNLIB_CHECK_ARG(prompt_length >= 1, "generate: the prompt is empty");
  NNLIB_CHECK_ARG(count >= 0, "generate: count %lld must be >= 0",
                  (long long)count);
  NNLIB_CHECK_ARG(out != NULL || count == 0, "generate: out is NULL");
  nnlib_generate_options o;
  NNLIB_TRY(read_options(options, &o));
  int64_t context = 0, vocab = 0;
  NNLIB_TRY(check_language_model(m, &context, &vocab));
  if (prompt_length > context)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "generate: the prompt has %lld tokens, the model's "
                        "context is %lld",
                        (long long)prompt_length, (long long)context);
  decoder d;
  nnlib_status st = decoder_init(&d, m, context, vocab, &o);
  /* the passes check numerics and profile over whole batches: not here */
  bool numerics = m->check_numerics, profiling = m->profiling;
  m->check_numerics = m->profiling = false;
  if (st == NNLIB_OK)
    st = generate(&d, prompt, prompt_length, count, &o, out);
  m->check_numerics = numerics;
  m->profiling = profiling;
  decoder_free(&d);
  return st;
}
