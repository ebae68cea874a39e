/* embedding.c - token embeddings (torch.nn.Embedding): a sample is [T]
 * int32 token ids, the output [T, dim] their rows of W [vocab, dim]:
 *   y[t] = W[id[t]]
 *   dW = 0, then dW[id[t]] += dy[t] for every t of every sample (ids repeat)
 * The ids reach the layer through the passes' float pointers (the tensor's
 * 4-byte elements, dtype int32); the layer reads them back as int32_t. No
 * gradient flows into ids: backward never writes dx. The layer decodes:
 * a call of run->steps positions holds n * steps ids, each a row of its
 * own, so the position in the sequence changes nothing. */
#include "layers/layer.h"

#include <string.h>

typedef struct embedding_layer {
  nnlib_layer base;
  int64_t vocab_size, dim;
} embedding_layer;

static const embedding_layer *cemb(const nnlib_layer *l) {
  return (const embedding_layer *)l;
}

static const char *embedding_name(const nnlib_layer *l) {
  (void)l;
  return "embedding";
}

static nnlib_status embedding_plan(nnlib_layer *l, const nnlib__shape *in,
                                   int64_t max_batch) {
  (void)max_batch;
  const embedding_layer *e = cemb(l);
  if (in->rank != 1) {
    char got[160];
    nnlib__shape_text(in, got, sizeof got);
    return nnlib__error(NNLIB_ERR_SHAPE_MISMATCH,
                        "embedding: input is %s; an embedding reads [T] "
                        "token ids",
                        got);
  }
  int64_t out_dims[2] = {in->dims[0], e->dim}, out_size;
  NNLIB_TRY(nnlib__shape_size(out_dims, 2, &out_size, "embedding output"));
  l->out_shape.rank = 2;
  l->out_shape.dims[0] = out_dims[0];
  l->out_shape.dims[1] = out_dims[1];
  int64_t wshape[2] = {e->vocab_size, e->dim};
  nnlib__layer_declare_param(l, "weight", wshape, 2);
  return NNLIB_OK;
}

/* N(0, 1), as torch.nn.Embedding */
static void embedding_init(nnlib_layer *l, nnlib__rng *rng) {
  nnlib__param *w = &l->params[0];
  for (int64_t i = 0; i < w->size; i++)
    w->value.data[i] = nnlib__rng_normal(rng);
}

/* Ids in this call: n samples of run->steps positions (T when 0). */
static int64_t id_steps(const nnlib_layer *l, const nnlib__run *run) {
  return run->steps > 0 ? run->steps : l->in_shape.dims[0];
}

/* Every id of the call in [0, vocab), else OUT_OF_RANGE naming where. */
static nnlib_status check_ids(const nnlib_layer *l, const nnlib__run *run,
                              const int32_t *ids, int64_t n) {
  int64_t steps = id_steps(l, run), vocab = cemb(l)->vocab_size;
  for (int64_t r = 0; r < n * steps; r++)
    if (ids[r] < 0 || ids[r] >= vocab)
      return nnlib__error(NNLIB_ERR_OUT_OF_RANGE,
                          "embedding: sample %lld, position %lld has token "
                          "id %ld, outside the vocabulary of %lld (ids 0 to "
                          "%lld)",
                          (long long)(r / steps),
                          (long long)(run->position + r % steps),
                          (long)ids[r], (long long)vocab,
                          (long long)(vocab - 1));
  return NNLIB_OK;
}

static const int32_t *as_ids(const float *x) {
  return (const int32_t *)(const void *)x;
}

/* The passes split over the pass pool: forward by row, backward's
 * scatter-add by blocks of COLUMN_BLOCK columns of W (each column takes
 * the rows in row order, so repeated ids add up in the same order
 * whatever the split). A part holds at least MIN_PART_VALUES floats. */
enum { MIN_PART_VALUES = 65536, COLUMN_BLOCK = 16 };

typedef struct embedding_pass {
  const int32_t *ids;
  const float *w, *dy;
  float *y, *dst;
  int64_t rows, dim;
  float scale;
} embedding_pass;

static int64_t min_part(int64_t values_per_index) {
  return nnlib__parallel_grain(values_per_index, MIN_PART_VALUES);
}

static void gather_range(void *ctx, int64_t begin, int64_t end) {
  const embedding_pass *p = ctx;
  for (int64_t r = begin; r < end; r++)
    memcpy(p->y + r * p->dim, p->w + (int64_t)p->ids[r] * p->dim,
           (size_t)p->dim * sizeof(float));
}

static nnlib_status embedding_forward(nnlib_layer *l, const nnlib__run *run,
                                      const float *x, float *y, int64_t n) {
  const int32_t *ids = as_ids(x);
  int64_t rows = n * id_steps(l, run), dim = cemb(l)->dim;
  NNLIB_TRY(check_ids(l, run, ids, n));
  embedding_pass p = {.ids = ids, .w = l->params[0].value.data, .y = y,
                      .rows = rows, .dim = dim};
  nnlib__parallel_for(rows, min_part(dim), gather_range, &p);
  return NNLIB_OK;
}

/* dst[id[r]] += scale * dy[r] for every row r, columns of blocks [begin,
 * end): the gradient scatter-add (scale 1, dst zeroed first) or the fused
 * SGD step (scale -lr, dst W). */
static void scatter_range(void *ctx, int64_t begin, int64_t end) {
  const embedding_pass *p = ctx;
  int64_t c0 = begin * COLUMN_BLOCK;
  int64_t c1 = end * COLUMN_BLOCK < p->dim ? end * COLUMN_BLOCK : p->dim;
  for (int64_t r = 0; r < p->rows; r++) {
    float *row = p->dst + (int64_t)p->ids[r] * p->dim;
    const float *g = p->dy + r * p->dim;
    for (int64_t j = c0; j < c1; j++)
      row[j] += p->scale * g[j];
  }
}

static void scatter_rows(float *dst, const int32_t *ids, const float *dy,
                         int64_t rows, int64_t dim, float scale) {
  embedding_pass p = {.ids = ids, .dy = dy, .dst = dst, .rows = rows,
                      .dim = dim, .scale = scale};
  nnlib__parallel_for((dim + COLUMN_BLOCK - 1) / COLUMN_BLOCK,
                      min_part(rows * COLUMN_BLOCK), scatter_range, &p);
}

/* dx is not written: ids have no gradient (the model never asks for one). */
static nnlib_status embedding_backward(nnlib_layer *l, const nnlib__run *run,
                                       const float *x, const float *y,
                                       float *dy, float *dx, int64_t n) {
  (void)y;
  (void)dx;
  const int32_t *ids = as_ids(x);
  int64_t rows = n * id_steps(l, run), dim = cemb(l)->dim;
  /* forward checked these ids, but backward must never write outside W */
  NNLIB_TRY(check_ids(l, run, ids, n));
  nnlib__param *w = &l->params[0];
  if (run->sgd_fused) {
    scatter_rows(w->value.data, ids, dy, rows, dim, -run->sgd_lr);
    return NNLIB_OK;
  }
  memset(w->grad.data, 0, (size_t)w->size * sizeof(float));
  scatter_rows(w->grad.data, ids, dy, rows, dim, 1.0f);
  return NNLIB_OK;
}

static const nnlib__layer_ops embedding_ops = {
    .kind = NNLIB_LAYER_EMBEDDING,
    .plan = embedding_plan,
    .init = embedding_init,
    .forward = embedding_forward,
    .backward = embedding_backward,
    .name = embedding_name,
    .decodes = true,
    .fuses_sgd = true, /* W[id] -= lr dy[t]; dx never reads W */
};

int64_t nnlib__embedding_vocab(const nnlib_layer *l) {
  return cemb(l)->vocab_size;
}

nnlib_status nnlib_embedding_create(nnlib_layer **out, int64_t vocab_size,
                                    int64_t dim) {
  NNLIB_CHECK_ARG(out != NULL, "nnlib_embedding_create: out is NULL");
  *out = NULL;
  NNLIB_CHECK_ARG(vocab_size >= 1 && dim >= 1,
                  "embedding: vocab_size %lld and dim %lld must be >= 1",
                  (long long)vocab_size, (long long)dim);
  if (vocab_size > NNLIB__BLAS_DIM_MAX || dim > NNLIB__BLAS_DIM_MAX)
    return nnlib__error(NNLIB_ERR_TOO_LARGE,
                        "embedding: vocab_size %lld or dim %lld exceeds "
                        "2^31 - 1",
                        (long long)vocab_size, (long long)dim);
  int64_t dims[2] = {vocab_size, dim}, size;
  NNLIB_TRY(nnlib__shape_size(dims, 2, &size, "embedding weight"));
  embedding_layer *e = nnlib__alloc(sizeof *e);
  if (e == NULL)
    return nnlib__error(NNLIB_ERR_OUT_OF_MEMORY,
                        "nnlib_embedding_create: no memory");
  nnlib__layer_init(&e->base, &embedding_ops);
  e->vocab_size = vocab_size;
  e->dim = dim;
  *out = &e->base;
  return NNLIB_OK;
}

/* ------------------------- model description and model file (codec) */

/* "embedding:VOCAB:DIM" */
static nnlib_status embedding_parse_spec(const nnlib__spec_item *item,
                                         nnlib_layer **out) {
  int64_t vocab, dim;
  NNLIB_TRY(nnlib__spec_fields(item, 3, 3));
  NNLIB_TRY(nnlib__spec_int(item, 1, 1, NNLIB__BLAS_DIM_MAX, &vocab));
  NNLIB_TRY(nnlib__spec_int(item, 2, 1, NNLIB__BLAS_DIM_MAX, &dim));
  return nnlib_embedding_create(out, vocab, dim);
}

static void embedding_write_spec(const nnlib_layer *l, nnlib__text *t) {
  nnlib__text_append(t, "embedding:%lld:%lld", (long long)cemb(l)->vocab_size,
                     (long long)cemb(l)->dim);
}

/* config: i64 vocab_size, i64 dim, 16 bytes */
static void embedding_write_config(const nnlib_layer *l, nnlib__writer *w) {
  nnlib__put_i64(w, cemb(l)->vocab_size);
  nnlib__put_i64(w, cemb(l)->dim);
}

static nnlib_status embedding_read_config(nnlib__reader *r,
                                          nnlib_layer **out) {
  int64_t vocab, dim;
  NNLIB_TRY(nnlib__get_i64(r, &vocab));
  NNLIB_TRY(nnlib__get_i64(r, &dim));
  nnlib_status st = nnlib_embedding_create(out, vocab, dim);
  if (st == NNLIB_ERR_INVALID_ARGUMENT || st == NNLIB_ERR_TOO_LARGE)
    return nnlib__error(NNLIB_ERR_CORRUPT_FILE,
                        "embedding: config vocab_size %lld, dim %lld: no "
                        "embedding has them",
                        (long long)vocab, (long long)dim);
  return st;
}

const nnlib__layer_codec nnlib__embedding_codec = {
    .kind = NNLIB_LAYER_EMBEDDING,
    .spec_names = {"embedding"},
    .parse_spec = embedding_parse_spec,
    .write_spec = embedding_write_spec,
    .write_config = embedding_write_config,
    .read_config = embedding_read_config,
};
